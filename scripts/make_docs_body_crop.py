"""The picture of docs/body_network.md's "An aligned image crop": what a body network built with
``image_size=64`` reads beside the landmarks: the 64x64 RGB crop of the person's square and the
32x32 mask crop, for held-out synthetic renders (top) and real photos and a video frame
(bottom).

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_crop.py [--out docs/images]
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

SHARED = ROOT.parent / "shared" / "data"
PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png")
TILE = 160


def _pair(image: np.ndarray, person) -> np.ndarray:
    """The image crop and the mask crop of one person, side by side, each TILE pixels high."""
    from recon3d.models.body_net import network_inputs

    inputs = network_inputs(person, image, 64)
    crop = cv2.resize(inputs["image"], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    mask = cv2.resize(inputs["mask"], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    return np.hstack([crop, np.full((TILE, 2, 3), 255, np.uint8), np.repeat(mask[..., None], 3, 2)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument("--seed", type=int, default=2, help="of the synthetic people")
    args = parser.parse_args(argv)
    from make_docs_body_net import _label, _row, _save_grid

    from recon3d.io import load_image
    from recon3d.io.video import read_video
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import load_backgrounds, random_sample, render_sample

    model = BodyModel.from_pretrained()
    detector = MediaPipePoseDetector()
    rng = np.random.default_rng([args.seed, 15])
    backgrounds = load_backgrounds([SHARED / "video"], max_frames=20)
    backgrounds = [b for b in backgrounds if b.shape[1] > 400]  # the street, not a face
    synthetic = []
    while len(synthetic) < 4:
        sample = random_sample(model, rng, None, cut_off=0.5)
        image, _ = render_sample(model, sample, rng, backgrounds)
        try:
            synthetic.append(_label(_pair(image, detector.detect(image)), "render"))
        except Exception:  # noqa: BLE001 - MediaPipe missed the render: draw another
            continue
    real = []
    for name in PHOTOS:
        image = load_image(SHARED / "photos" / name)
        real.append(_label(_pair(image, detector.detect(image)), name.split(".")[0]))
    frames, _ = read_video(SHARED / "video" / "carphone.mp4", max_frames=1)
    frame = next(frames)
    real.append(_label(_pair(frame, detector.detect(frame)), "carphone"))
    _save_grid([_row(synthetic), _row(real[:4]), _row(real[4:])], args.out / "body_crop.jpg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
