"""The picture of docs/body_network.md's "How short can the refinement be?": per real photo,
the mesh over the photo for the body network alone, refinements of 5 + 10, 10 + 20 and
20 + 40 (the default) pose + silhouette iterations, and optimisation only.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_refine_length.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from make_docs_body_net import _fit_height, _label  # noqa: E402

PHOTOS = ("obama3.jpg", "camera.png", "obama2.jpg")
#: (label, (pose, silhouette) iterations of the refinement; None: the network alone).
REFINEMENTS = (
    ("network alone", None),
    ("5 + 10", (5, 10)),
    ("10 + 20", (10, 20)),
    ("20 + 40 (default)", (20, 40)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    import cv2

    from recon3d.body_pipeline import REFINE_OPTIONS, BodyReconstructionPipeline

    plain = BodyReconstructionPipeline.from_pretrained(use_network=False)
    net = BodyReconstructionPipeline.from_pretrained(use_network=True, detector=plain.detector)
    rows = []
    for name in PHOTOS:
        path = ROOT / "tests" / "data" / name
        tiles = []
        for label, iterations in REFINEMENTS:
            if iterations is None:
                rec = net(path, complete_texture=False, refine=False)
            else:
                net.refine_options = dataclasses.replace(
                    REFINE_OPTIONS,
                    pose_iterations=iterations[0],
                    silhouette_iterations=iterations[1],
                )
                rec = net(path, complete_texture=False)
            tiles.append(_label(_fit_height(rec.overlay()), label))
        scratch = plain(path, complete_texture=False)
        tiles.append(_label(_fit_height(scratch.overlay()), "optimisation"))
        gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
        rows.append(np.hstack([x for tile in tiles for x in (tile, gap)][:-1]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    target = args.out / "body_refine_length.jpg"
    cv2.imwrite(str(target), np.vstack(rows)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    sys.stdout.write(f"{target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
