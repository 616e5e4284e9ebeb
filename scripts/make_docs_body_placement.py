"""The placement picture of docs/body_network.md: per real photo, the body network alone
(``refine=False``) placed on MediaPipe's metric world torso (before session 12) and placed on
the photo's landmarks (``rigid="photo"``, the default), each over the photo, labelled with its
mean keypoint error against MediaPipe (torso lengths).

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_placement.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from unittest import mock

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PHOTOS = ("obama2.jpg", "grace_hopper.jpg", "obama.jpg", "camera.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from make_docs_body_net import _fit_height, _label, _row, _save_grid

    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import landmark_error

    net = BodyReconstructionPipeline.from_pretrained(use_network=True)
    rows = []
    for name in PHOTOS:
        path = ROOT / "tests" / "data" / name
        with mock.patch("recon3d.body_pipeline.NETWORK_ONLY_RIGID", "world"):
            world = net(path, complete_texture=False, refine=False)
        photo = net(path, complete_texture=False, refine=False)
        tiles = [
            _label(
                _fit_height(rec.overlay(), 420),
                f"{label}, error {landmark_error(rec)[1]:.3f}",
            )
            for rec, label in ((world, "world torso"), (photo, "photo"))
        ]
        rows.append(_row(tiles))
    _save_grid(rows, args.out / "body_network_placement.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
