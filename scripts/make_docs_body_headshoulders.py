"""The head-and-shoulders picture of docs/body_network.md: carphone frames with the mesh of (a)
optimisation only, the session-16 default refinement, that refinement without the pull on bones
the photo's edge cuts, and the default refinement, over the person mask: green where mesh and
mask agree, red where the mesh lies outside the mask, blue where the mask is not covered.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_headshoulders.py [--out docs/images]
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

VIDEO = ROOT.parent / "shared" / "data" / "video" / "carphone.mp4"
#: Frames of the 58-image evaluation (every fourth frame).
FRAMES = (16, 48, 96)
HEIGHT = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    from make_docs_body_net import _save_grid
    from make_docs_body_real import agreement_row

    from recon3d.body_pipeline import REFINE_OPTIONS, BodyReconstructionPipeline
    from recon3d.io.video import read_video

    plain = BodyReconstructionPipeline.from_pretrained(use_network=False)
    shared = {
        "detector": plain.detector,
        "face_detector": plain.face_detector,
        "hand_detector": plain.hand_detector,
    }
    free_cut = dataclasses.replace(REFINE_OPTIONS, torso_iterations=0, pose_iterations=20)
    methods = {
        "(a)": plain,
        "session 16": BodyReconstructionPipeline.from_pretrained(
            refine_options=dataclasses.replace(free_cut, pull_cut_bones=True), **shared
        ),
        "free cut bones": BodyReconstructionPipeline.from_pretrained(
            refine_options=free_cut, **shared
        ),
        "default": BodyReconstructionPipeline.from_pretrained(**shared),
    }
    frames, _ = read_video(VIDEO)
    chosen = {i: np.ascontiguousarray(f) for i, f in enumerate(frames) if i in FRAMES}
    rows = []
    for index in FRAMES:
        frame = chosen[index]
        rows.append(agreement_row(methods, frame, plain.detect(frame), HEIGHT, zoom=2))
    _save_grid(rows, args.out / "body_headshoulders.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
