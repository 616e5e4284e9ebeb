"""The real-image picture of docs/body_network.md: video frames with the mesh of (a)
optimisation only and (c) the network + refinement over the person mask, where they differ:
green where mesh and mask agree, red where the mesh lies outside the mask, blue where the mask
is not covered. Whole bodies (vtest.avi) and a head and shoulders (carphone.mp4).

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_real.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

VIDEOS = ROOT.parent / "shared" / "data" / "video"
#: (video, frame index, zoom): frames of the 58-image evaluation (every fourth frame).
FRAMES = (("vtest.avi", 536, 3), ("vtest.avi", 556, 3), ("carphone.mp4", 40, 2))
HEIGHT = 360


def _agreement(rec, image: np.ndarray) -> np.ndarray:
    """``image`` with mesh-and-mask agreement painted over it (see the module docstring)."""
    from recon3d.render.renderer import render_mesh

    camera = rec.camera
    drawn = (
        render_mesh(
            rec.vertices, rec.faces, camera.K, (camera.width, camera.height), depth_only=True
        ).depth
        > 0
    )
    mask = rec.person_mask > 0.5
    out = image.copy()
    for region, colour in (
        (drawn & mask, (40, 200, 40)),
        (drawn & ~mask, (230, 40, 40)),
        (mask & ~drawn, (40, 80, 230)),
    ):
        out[region] = (0.45 * out[region] + 0.55 * np.array(colour)).astype(np.uint8)
    return out


def agreement_row(
    methods: dict, frame: np.ndarray, person, height: int, crop=(slice(None), slice(None)), zoom=1
) -> np.ndarray:
    """One row of tiles: each pipeline of ``methods`` (label -> pipeline) on ``frame`` with the
    front end's ``person``, painted by :func:`_agreement`, cropped, zoomed (nearest pixel),
    brought to ``height`` and labelled with the method and its silhouette IoU."""
    from make_docs_body_net import _label, _row

    from recon3d.metrics import silhouette_iou

    tiles = []
    for label, pipe in methods.items():
        rec = pipe(frame, person=person, complete_texture=False)
        tile = _agreement(rec, frame)[crop]
        tile = cv2.resize(tile, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        scale = height / tile.shape[0]
        tile = cv2.resize(
            tile, (round(tile.shape[1] * scale), height), interpolation=cv2.INTER_AREA
        )
        tiles.append(_label(tile, f"{label} IoU {silhouette_iou(rec):.3f}"))
    return _row(tiles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from make_docs_body_net import _save_grid

    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.io.video import read_video

    plain = BodyReconstructionPipeline.from_pretrained(use_network=False)
    net = BodyReconstructionPipeline.from_pretrained(
        use_network=True,
        detector=plain.detector,
        face_detector=plain.face_detector,
        hand_detector=plain.hand_detector,
    )
    rows = []
    for video, index, zoom in FRAMES:
        frames, _ = read_video(VIDEOS / video)
        frame = next(np.ascontiguousarray(f) for i, f in enumerate(frames) if i == index)
        person = plain.detect(frame)
        x0, y0, x1, y1 = (int(v) for v in person.box)
        pad = int(0.15 * max(x1 - x0, y1 - y0))
        crop = (slice(max(y0 - pad, 0), y1 + pad), slice(max(x0 - pad, 0), x1 + pad))
        rows.append(agreement_row({"(a)": plain, "(c)": net}, frame, person, HEIGHT, crop, zoom))
    _save_grid(rows, args.out / "body_network_real.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
