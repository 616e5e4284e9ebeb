"""The clothing picture of docs/body_network.md: per real photo, the body network alone
(``refine=False``) as the naked body it predicts (``clothing="none"``, before session 13) and
wearing the clothes read off the person mask (``clothing="mask"``, the default), each as its
silhouette against MediaPipe's person mask (green: both, blue: the mask only, red: the body
only) labelled with the IoU, then the clothed result over the photo.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_clothing.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from unittest import mock

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "obama2.jpg")


def silhouette_map(rec) -> np.ndarray:
    """(H, W, 3) uint8: the photo dimmed, with the body's silhouette against the person mask
    coloured (green both, blue mask only, red body only)."""
    from recon3d.metrics import silhouettes

    body, mask = silhouettes(rec, max(rec.camera.width, rec.camera.height))
    out = (rec.image.astype(np.float32) * 0.45).astype(np.uint8)
    for region, colour in (
        (body & mask, (40, 200, 40)),
        (mask & ~body, (40, 90, 255)),
        (body & ~mask, (255, 40, 40)),
    ):
        out[region] = (0.35 * out[region] + 0.65 * np.array(colour)).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from make_docs_body_net import _fit_height, _label, _row, _save_grid

    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import silhouette_iou

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    rows = []
    for name in PHOTOS:
        path = ROOT / "tests" / "data" / name
        with mock.patch("recon3d.body_pipeline.NETWORK_ONLY_CLOTHING", "none"):
            naked = pipe(path, complete_texture=False, refine=False)
        clothed = pipe(path, refine=False)
        tiles = [
            _label(_fit_height(silhouette_map(rec), 380), f"{label}, IoU {silhouette_iou(rec):.3f}")
            for rec, label in ((naked, "naked"), (clothed, "clothed"))
        ]
        tiles.append(_label(_fit_height(clothed.overlay(), 380), "over the photo"))
        rows.append(_row(tiles))
    _save_grid(rows, args.out / "body_network_clothing.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
