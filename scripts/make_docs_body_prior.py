"""The picture of the pose prior in docs/body_network.md: per real input, the default refinement
without and with the adversarial pose prior's term, over the photo and seen from the side (90°).

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_prior.py INPUT... [--out docs/images]
An input is a photo or ``video#frame`` (as scripts/eval_body_real.py names them), with
``:mirrored`` for its mirror image. The overlays are cropped to the person.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def load_input(spec: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a photo or of ``video#frame``, mirrored with ``:mirrored``."""
    from recon3d.io.image import load_image
    from recon3d.io.video import read_video

    spec, mirrored = spec.removesuffix(":mirrored"), spec.endswith(":mirrored")
    path, _, frame = spec.partition("#")
    if frame:
        frames, _ = read_video(pathlib.Path(path))
        image = next(f for i, f in enumerate(frames) if i == int(frame))
    else:
        image = load_image(pathlib.Path(path))
    return np.ascontiguousarray(image[:, ::-1] if mirrored else image)


def person_crop(rec, image: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """``image`` (the input's size) cropped to the projected mesh's box, widened by
    ``margin`` of its height on every side."""
    uv = rec.camera.project(np.asarray(rec.vertices, np.float64))
    (x0, y0), (x1, y1) = uv.min(0), uv.max(0)
    pad = margin * (y1 - y0)
    h, w = image.shape[:2]
    x0, y0 = max(int(x0 - pad), 0), max(int(y0 - pad), 0)
    x1, y1 = min(int(x1 + pad), w), min(int(y1 + pad), h)
    return image[y0:y1, x0:x1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from eval_body_net import out_of_range
    from make_docs_body_net import _fit_height, _label, _row, _save_grid, side_views

    from recon3d.body_pipeline import REFINE_OPTIONS, BodyReconstructionPipeline

    with_prior = BodyReconstructionPipeline.from_pretrained()
    without = BodyReconstructionPipeline.from_pretrained(
        refine_options=dataclasses.replace(REFINE_OPTIONS, adversarial_weight=0.0),
        detector=with_prior.detector,
        face_detector=with_prior.face_detector,
        hand_detector=with_prior.hand_detector,
    )
    rows = []
    for spec in args.inputs:
        pixels = load_input(spec)
        recs = [pipe(pixels, complete_texture=False) for pipe in (without, with_prior)]
        labels = []
        for rec, name in zip(recs, ("no prior", "prior"), strict=True):
            broken = out_of_range(with_prior.model, np.asarray(rec.params["pose"]))
            labels.append(f"{name}: {', '.join(broken) or 'plausible'}")
        tiles = [
            _label(_fit_height(person_crop(recs[0], r.overlay())), t)
            for r, t in zip(recs, labels, strict=True)
        ]
        tiles += side_views(recs)
        rows.append(_row(tiles))
    _save_grid(rows, args.out / "body_prior.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
