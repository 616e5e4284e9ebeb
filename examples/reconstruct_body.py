"""Reconstruct a textured, rigged full body from one photo, export it with its skeleton, and
render it from the front, the side and the back.

Usage:  python examples/reconstruct_body.py [PHOTO] [OUT_DIR]
(defaults: tests/data/obama3.jpg, out/example_body)
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
from PIL import Image

from recon3d import NoPersonFound, reconstruct
from recon3d.metrics import keypoint_pck, silhouette_iou

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    photo = (
        pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "tests/data/obama3.jpg"
    )
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parent / "out/example_body"
    out.mkdir(parents=True, exist_ok=True)

    try:
        rec = reconstruct(photo, target="body", progress=True)
    except NoPersonFound as exc:
        print(f"nobody in {photo}: {exc}")
        return 1
    print(rec)
    print(f"height {rec.params['height_m']:.2f} m, {len(rec.skeleton.names)} joints")
    print(f"silhouette IoU {silhouette_iou(rec):.3f}, PCK@0.1 {keypoint_pck(rec):.3f}")
    print(f"stage times (s): { {k: round(v, 3) for k, v in rec.timings.items()} }")
    print(
        "COCO-17 keypoints in the photo (px):", np.round(rec.landmarks_2d("coco17")[:3], 1), "..."
    )

    for ext in (".glb", ".obj"):
        for path in rec.export(out / f"body{ext}"):
            print("wrote", path)
    views = np.concatenate([rec.render(yaw=y, size=384) for y in (0, 60, 180)], axis=1)
    Image.fromarray(views).save(out / "views.png")
    Image.fromarray(rec.overlay()).save(out / "overlay.png")
    print("wrote", out / "views.png", "and", out / "overlay.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
