"""Command line: ``recon3d reconstruct PHOTO -o head.obj``, ``recon3d batch IN_DIR -o OUT_DIR``,
``recon3d repose --person PHOTO --driving VIDEO -o out.mp4`` and ``recon3d info``."""

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
    if args.raw_texture and not args.texture:
        print(
            "error: --raw-texture keeps the photo's projection as the texture, which "
            "--no-texture turns off; drop one of them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.refine is False and args.network is False:
        print(
            "error: --no-refine gives the network's estimate alone, which --no-network turns "
            "off; drop one of them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        # Before the reconstruction, not after it: a missing output folder should not cost
        # the user the seconds of a body fit.
        for target in (out, args.preview):
            if target:
                atomic.check_target(target)
    except Recon3dError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    try:
        rec = reconstruct(
            args.photo,
            target=args.target,
            face_index=args.face_index,
            person_index=args.person_index,
            progress=not args.quiet,
            complete_texture=not args.raw_texture,
            texture=args.texture,
            use_network=args.network,
            refine=args.refine is not False,
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
        key = "reprojection_error_px" if rec.target == "head" else "keypoint_error_px"
        err = rec.params.get(key, float("nan"))
        total = sum(rec.timings.values())
        print(
            f"reconstructed {rec.target} from {args.photo} in {total:.2f} s "
            f"(landmark reprojection error {err:.1f} px)"
        )
        for path in written:
            print(f"  wrote {path}")
    return 0


def _cmd_repose(args: argparse.Namespace) -> int:
    from recon3d.errors import (
        InvalidImageError,
        NoPersonFound,
        PoseFileError,
        Recon3dError,
        UnsupportedTargetError,
    )
    from recon3d.exchange import atomic

    out = pathlib.Path(args.output)
    if out.suffix.lower() not in (".mp4", ".gif"):
        print(f"error: output must end with .mp4 or .gif: {out}", file=sys.stderr)
        return EXIT_USAGE
    # Output paths are checked before minutes of work, and written only when complete.
    try:
        atomic.check_target(out)
        if args.save_reposer:
            if not args.save_reposer.endswith(".safetensors"):
                print("error: --save-reposer must end with .safetensors", file=sys.stderr)
                return EXIT_USAGE
            atomic.check_target(args.save_reposer)
    except Recon3dError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = not args.quiet
    try:
        from recon3d.io.video import write_video
        from recon3d.reenact.poses import load_driving
        from recon3d.reenact.reposer import Reposer

        poses = load_driving(args.driving, progress=progress)
        person = pathlib.Path(args.person)
        if person.suffix == ".safetensors":
            reposer = Reposer.load(person, device=args.device)
        else:
            from recon3d.pipeline import reconstruct

            rec = reconstruct(person, target="body", progress=progress)
            reposer = Reposer.fit(
                rec,
                size=args.size,
                steps=args.steps,
                face_steps=args.face_steps,
                perceptual_weights=args.perceptual_weights,
                device=args.device,
                seed=args.seed,
                progress=progress,
            )
            if args.save_reposer:
                reposer.save(args.save_reposer)
        frames = reposer.render(poses, normalize=not args.no_normalize, progress=progress)
        written = write_video(out, frames, poses.fps)
    except (InvalidImageError, NoPersonFound, PoseFileError, UnsupportedTargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Recon3dError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if not args.quiet:
        print(f"wrote {written} ({len(poses)} frames at {poses.fps:g} fps)")
    return 0


def _batch_inputs(folder: pathlib.Path) -> list[pathlib.Path]:
    """Regular, non-hidden files directly in ``folder``, sorted by name (not recursive)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _cmd_batch(args: argparse.Namespace) -> int:
    from recon3d.batch import BatchFailure, reconstruct_many
    from recon3d.errors import InvalidImageError, NoFaceFound, NoPersonFound, Recon3dError

    in_dir, out_dir = pathlib.Path(args.input_dir), pathlib.Path(args.output)
    if not in_dir.is_dir():
        print(f"error: input folder {in_dir} does not exist or is not a folder", file=sys.stderr)
        return EXIT_USAGE
    if out_dir.resolve() == in_dir.resolve():
        print("error: the output folder must differ from the input folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Only OUT_DIR itself is created: a missing parent is more likely a typo.
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create output folder {out_dir}: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    inputs = _batch_inputs(in_dir)
    if not inputs:
        print(f"error: no files in {in_dir}", file=sys.stderr)
        return EXIT_USAGE

    def progress(outcome: object) -> None:
        if args.quiet:
            return
        if isinstance(outcome, BatchFailure):
            print(f"  failed {outcome.source}: {outcome.error_type}", flush=True)
        else:
            print(f"  ok     {outcome.source} -> {outcome.outputs[0]}", flush=True)

    if not args.quiet:
        print(f"reconstructing {len(inputs)} files from {in_dir} into {out_dir}", flush=True)
    try:
        result = reconstruct_many(
            inputs,
            workers=args.workers,
            output_dir=out_dir,
            format=args.format,
            target=args.target,
            face_index=args.face_index,
            person_index=args.person_index,
            texture=args.texture,
            on_result=progress,
        )
    except (Recon3dError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary(), file=sys.stderr if result.failures else sys.stdout)
    if result.ok:
        return 0
    input_errors = (InvalidImageError, NoFaceFound, NoPersonFound)
    if all(isinstance(f.error, input_errors) for f in result.failures):
        return EXIT_INPUT
    return EXIT_ENVIRONMENT


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
        help="what to reconstruct; auto: the body when visible, else the head (default: auto)",
    )
    rec.add_argument(
        "--face-index",
        type=int,
        default=0,
        help="head: which face when there are several, largest first (default: 0)",
    )
    rec.add_argument(
        "--person-index",
        type=int,
        default=0,
        help="body: which person when there are several, by face size (default: 0)",
    )
    rec.add_argument(
        "--raw-texture",
        action="store_true",
        help="keep the photo's projection only (RGBA, alpha = visibility) instead of "
        "completing the unseen parts with the texture network",
    )
    rec.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="texture the mesh from the photo (default), or write the geometry alone "
        "(--no-texture: faster, most of all for heads)",
    )
    rec.add_argument(
        "--network",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the trained network's estimate and refine it briefly, or fit from "
        "scratch (--no-network); default: each target's release default (docs/head_network.md, "
        "docs/body_network.md)",
    )
    rec.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refine the network's estimate with a short fit (default), or keep the estimate "
        "alone (--no-refine: about 3x faster for bodies, placed on the photo's landmarks, "
        "looser silhouette)",
    )
    rec.add_argument(
        "--preview",
        metavar="PNG",
        help="also write a preview strip (photo, overlay, front, side, back)",
    )
    rec.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    rec.set_defaults(func=_cmd_reconstruct)

    batch = sub.add_parser(
        "batch",
        help="reconstruct every photo in a folder; bad files are reported at the end",
        description=(
            "Reconstruct every regular, non-hidden file directly inside IN_DIR into OUT_DIR "
            "(created if missing; its parent must exist) as <stem>.<format>. Files that fail "
            "are skipped and listed at the end. Exit status: 0 all succeeded, 3 some inputs "
            "were unusable (bad image, no face), 4 other failures (export, weights, renderer)."
        ),
    )
    batch.add_argument("input_dir", metavar="IN_DIR", help="folder of input photos")
    batch.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    batch.add_argument(
        "--format", choices=["obj", "glb", "ply"], default="obj", help="mesh format (default: obj)"
    )
    batch.add_argument(
        "--workers", type=int, default=1, help="photos processed at once (default: 1)"
    )
    batch.add_argument(
        "--target",
        choices=["auto", "head", "body"],
        default="auto",
        help="what to reconstruct; auto: the body when visible, else the head (default: auto)",
    )
    batch.add_argument(
        "--face-index", type=int, default=0, help="which face, largest first (default: 0)"
    )
    batch.add_argument(
        "--person-index", type=int, default=0, help="which person, by face size (default: 0)"
    )
    batch.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="texture each mesh from its photo (default), or write the geometry alone "
        "(--no-texture: faster)",
    )
    batch.add_argument("-q", "--quiet", action="store_true", help="only the final report")
    batch.set_defaults(func=_cmd_batch)

    rep = sub.add_parser(
        "repose",
        help="re-render a person in the poses of a driving video or clip",
        description=(
            "Re-render PERSON (a photo, from which a body reconstruction and a person-specific "
            "renderer are trained: slow on a CPU; or a reposer saved with --save-reposer) in "
            "the poses of DRIVING (a video, a folder of OpenPose JSON files, a DeepMimic .txt "
            "clip). Exit status: 0 done, 2 usage, 3 unusable input, 4 other failures."
        ),
    )
    rep.add_argument("--person", required=True, help="photo.jpg or reposer.safetensors")
    rep.add_argument(
        "--driving", required=True, help="video, OpenPose JSON folder or DeepMimic clip"
    )
    rep.add_argument("-o", "--output", required=True, help="output video: .mp4 or .gif")
    rep.add_argument("--size", type=int, default=256, help="output side in pixels (default 256)")
    rep.add_argument("--steps", type=int, default=2000, help="training steps of the body generator")
    rep.add_argument("--face-steps", type=int, default=500, help="training steps of the FaceGAN")
    rep.add_argument(
        "--perceptual-weights",
        metavar="PTH",
        help="torchvision's mobilenet_v2-b0353104.pth for the perceptual loss "
        "(default: $RECON3D_PERCEPTUAL_WEIGHTS)",
    )
    rep.add_argument("--save-reposer", metavar="PATH", help="save the trained reposer here")
    rep.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if present)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument(
        "--no-normalize", action="store_true", help="skip the global pose normalisation"
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    rep.set_defaults(func=_cmd_repose)

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
