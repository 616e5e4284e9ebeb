"""The picture of docs/head_network.md: per real photo, the photo, the optimisation's geometry
over it, then the geometry seen from the side (60°) for optimisation only, the head network
alone, and the network followed by the short refinement.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_head_net.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "camera.png")
SIZE = 220


def _crop(image: np.ndarray, box: np.ndarray, scale: float) -> np.ndarray:
    """A square crop around the face box (image pixels scaled by ``scale``), SIZE pixels."""
    x0, y0, x1, y1 = np.asarray(box, np.float64) * scale
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * max(x1 - x0, y1 - y0)
    affine = np.array([[SIZE / side, 0, SIZE / 2 - cx * SIZE / side]])
    affine = np.r_[affine, [[0, SIZE / side, SIZE / 2 - cy * SIZE / side]]]
    return cv2.warpAffine(image, affine, (SIZE, SIZE), flags=cv2.INTER_AREA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from recon3d.pipeline import HeadReconstructionPipeline

    plain = HeadReconstructionPipeline.from_pretrained(use_network=False)
    net = HeadReconstructionPipeline.from_pretrained(use_network=True, detector=plain.detector)
    rows = []
    for name in PHOTOS:
        path = ROOT / "tests" / "data" / name
        recs = [
            plain(path, complete_texture=False),
            net(path, complete_texture=False, refine=False),
            net(path, complete_texture=False),
        ]
        box = recs[0].params["face_box"]
        overlay = recs[0].overlay()
        scale = overlay.shape[1] / recs[0].image.shape[1]
        tiles = [_crop(recs[0].image, box, 1.0), _crop(overlay, box, scale)]
        tiles += [r.render(yaw=60, shading="geometry", size=SIZE) for r in recs]
        rows.append(np.hstack(tiles))
    picture = np.vstack(rows)
    target = args.out / "head_network.jpg"
    cv2.imwrite(str(target), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    sys.stdout.write(f"{target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
