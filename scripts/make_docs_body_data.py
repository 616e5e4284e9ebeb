"""The training-data picture of docs/body_network.md: the same synthetic people rendered as the
first shards were (flat part colours on the bare body) and dressed (clothes and hair with
thickness), each with the landmarks and mask edge MediaPipe found on that render.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_data.py [--out docs/images] [--n 6]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEIGHT = 256


def _draw(image: np.ndarray, person) -> np.ndarray:
    """The render with MediaPipe's mask edge (yellow) and landmarks (green: visible)."""
    out = image.copy()
    if person is None:
        cv2.putText(out, "missed", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 0, 0), 2)
        return out
    edges = cv2.Canny((person.mask > 0.5).astype(np.uint8) * 255, 50, 150) > 0
    out[cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0] = (255, 220, 0)
    for (x, y), v in zip(person.points, person.visibility, strict=True):
        colour = (0, 230, 0) if v > 0.5 else (230, 0, 0)
        cv2.circle(out, (round(x), round(y)), 4, colour, -1, cv2.LINE_AA)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_train.npy")
    parser.add_argument(
        "--video", type=pathlib.Path, default=ROOT.parent / "shared/data/video/vtest.avi"
    )
    args = parser.parse_args(argv)

    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import random_sample, render_sample, video_frames

    model = BodyModel.from_pretrained()
    detector = MediaPipePoseDetector()
    bank = np.load(args.bank) if args.bank.exists() else None
    backgrounds = video_frames(args.video, 20) if args.video.exists() else []
    columns = []
    for i in range(args.n):
        rng = np.random.default_rng([args.seed, i])
        sample = random_sample(model, rng, bank, cut_off=0.4)
        tiles = []
        for clothed in (False, True):
            # The same person and camera; the background crop is drawn after the outfit.
            image, _ = render_sample(
                model, sample, np.random.default_rng([args.seed, i, 1]), backgrounds, clothed
            )
            try:
                person = detector.detect(image)
            except Exception:  # noqa: BLE001 - MediaPipe missing the person is worth showing
                person = None
            tiles.append(_draw(image, person))
        columns.append(np.concatenate(tiles, 0))
    grid = np.concatenate(columns, 1)
    h, w = grid.shape[:2]
    grid = cv2.resize(grid, (round(w * 2 * HEIGHT / h), 2 * HEIGHT), interpolation=cv2.INTER_AREA)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "body_training_data.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
