"""Command line: ``recon3d reconstruct PHOTO -o head.obj`` and ``recon3d info``."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from recon3d._version import __version__

EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_ENVIRONMENT = 4


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from recon3d.errors import InvalidImageError, NoFaceFound, NoPersonFound, Recon3dError
    from recon3d.exchange import SUPPORTED_EXTENSIONS, atomic
    from recon3d.pipeline import reconstruct

    out = pathlib.Path(args.output)
    if out.suffix.lower() not in SUPPORTED_EXTENSIONS:
        print(
            f"error: output must end with one of {', '.join(SUPPORTED_EXTENSIONS)}: {out}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        rec = reconstruct(
            args.photo, target=args.target, face_index=args.face_index, progress=not args.quiet
        )
        written = rec.export(out)
        if args.preview:
            import io

            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(rec.preview()).save(buf, format="PNG")
            written.append(atomic.write_atomic(atomic.check_target(args.preview), buf.getvalue()))
    except (InvalidImageError, NoFaceFound, NoPersonFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except NotImplementedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Recon3dError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if not args.quiet:
        err = rec.params.get("reprojection_error_px", float("nan"))
        total = sum(rec.timings.values())
        print(
            f"reconstructed {rec.target} from {args.photo} in {total:.2f} s "
            f"(landmark reprojection error {err:.1f} px)"
        )
        for path in written:
            print(f"  wrote {path}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import numpy
    import torch

    from recon3d.render.backend import backend_name
    from recon3d.weights import read_manifest, verified_path, weights_dir

    def version(module: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(module)
        except Exception:
            return "not installed"

    print(f"recon3d {__version__}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"torch {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    print(
        f"numpy {numpy.__version__}, mediapipe {version('mediapipe')}, "
        f"trimesh {version('trimesh')}, pyrender {version('pyrender')}, "
        f"PyOpenGL {version('PyOpenGL')}"
    )
    print(f"renderer: {backend_name()}")
    folder = weights_dir()
    print(f"weights: {folder}")
    try:
        files = read_manifest(folder)["files"]
    except Exception as exc:
        print(f"  manifest: {exc}")
        return EXIT_ENVIRONMENT
    status = 0
    for name, entry in sorted(files.items()):
        try:
            verified_path(name, folder)
            state = "ok"
        except Exception as exc:
            state = f"PROBLEM: {exc}"
            status = EXIT_ENVIRONMENT
        print(f"  {name} ({entry.get('size', 0) / 1e6:.1f} MB): {state}")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recon3d",
        description="One photo of a person -> a textured 3D mesh (offline, CPU).",
    )
    parser.add_argument("--version", action="version", version=f"recon3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    rec = sub.add_parser("reconstruct", help="reconstruct a textured mesh from a photo")
    rec.add_argument("photo", help="input photo (JPEG, PNG, WebP, ...)")
    rec.add_argument(
        "-o", "--output", required=True, help="output mesh: .obj (+ .mtl + .png), .glb or .ply"
    )
    rec.add_argument(
        "--target",
        choices=["auto", "head", "body"],
        default="auto",
        help="what to reconstruct (default: auto)",
    )
    rec.add_argument(
        "--face-index",
        type=int,
        default=0,
        help="which face when there are several, largest first (default: 0)",
    )
    rec.add_argument(
        "--preview",
        metavar="PNG",
        help="also write a preview strip (photo, overlay, front, side, back)",
    )
    rec.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    rec.set_defaults(func=_cmd_reconstruct)

    info = sub.add_parser("info", help="versions, weights found, renderer backend")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
