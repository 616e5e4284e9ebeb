"""Reconstruct a textured 3D head from one photo, export it, and render it from a few angles.

Usage:  python examples/reconstruct_head.py [PHOTO] [OUT_DIR]
(defaults: tests/data/grace_hopper.jpg, out/example)
"""

from __future__ import annotations

import pathlib
import sys

from PIL import Image

from recon3d import NoFaceFound, reconstruct

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    photo = (
        pathlib.Path(sys.argv[1])
        if len(sys.argv) > 1
        else HERE.parent / "tests/data/grace_hopper.jpg"
    )
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parent / "out/example"
    out.mkdir(parents=True, exist_ok=True)

    try:
        rec = reconstruct(photo, target="head", progress=True)
    except NoFaceFound as exc:
        print(f"no face in {photo}: {exc}")
        return 1
    print(rec)
    print(f"landmark reprojection error: {rec.params['reprojection_error_px']:.2f} px")
    print(f"stage times (s): { {k: round(v, 3) for k, v in rec.timings.items()} }")

    for ext in (".obj", ".glb", ".ply"):
        for path in rec.export(out / f"head{ext}"):
            print("wrote", path)

    # A turntable of renders, and the 68 iBUG landmarks in photo pixels.
    views = [rec.render(yaw=yaw, size=256) for yaw in (-60, 0, 60, 180)]
    strip = Image.new("RGB", (256 * len(views), 256))
    for i, view in enumerate(views):
        strip.paste(Image.fromarray(view), (256 * i, 0))
    strip.save(out / "turntable.png")
    print("wrote", out / "turntable.png")
    print("iBUG-68 nose tip (px):", rec.landmarks_2d("ibug68")[30])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
