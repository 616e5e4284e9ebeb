"""The picture of docs/body_network.md: per real photo, the fitted mesh over the photo for
optimisation only, the body network alone and the network + refinement, then the three
geometries seen from the side (90°), where depth errors show.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_net.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png")
HEIGHT = 300
LABELS = ("optimisation", "network", "network + refine")


def _fit_height(image: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w * height / h), height), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles of one height side by side, with white gaps."""
    gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
    return np.hstack([x for tile in tiles for x in (tile, gap)][:-1])


def side_views(recs: list) -> list[np.ndarray]:
    """Each reconstruction's geometry seen from its side (90°), ``HEIGHT`` tall, the empty
    margins trimmed."""
    return [
        _fit_height(
            r.render(yaw=-90, shading="geometry", size=HEIGHT)[:, HEIGHT // 6 : -HEIGHT // 6]
        )
        for r in recs
    ]


def _save_grid(rows: list[np.ndarray], target: pathlib.Path) -> None:
    """Rows stacked (padded white to the widest), written as a JPEG; the path on stdout."""
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(target), np.vstack(rows)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    sys.stdout.write(f"{target}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from recon3d.body_pipeline import BodyReconstructionPipeline

    plain = BodyReconstructionPipeline.from_pretrained(use_network=False)
    net = BodyReconstructionPipeline.from_pretrained(use_network=True, detector=plain.detector)
    rows = []
    for name in PHOTOS:
        path = ROOT / "tests" / "data" / name
        recs = [
            plain(path, complete_texture=False),
            net(path, complete_texture=False, refine=False),
            net(path, complete_texture=False),
        ]
        tiles = [
            _label(_fit_height(r.overlay()), label) for r, label in zip(recs, LABELS, strict=True)
        ]
        tiles += side_views(recs)
        rows.append(_row(tiles))
    _save_grid(rows, args.out / "body_network.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
