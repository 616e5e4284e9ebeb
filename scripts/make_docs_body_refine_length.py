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

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from make_docs_body_net import _fit_height, _label, _row, _save_grid  # noqa: E402

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
        rows.append(_row(tiles))
    _save_grid(rows, args.out / "body_refine_length.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
