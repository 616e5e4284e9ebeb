"""Make ``docs/images/pose_map_example.png``: real frames beside their pose maps.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_pose_map_example.py
            [--video tests/data/carphone.mp4] [--photo tests/data/biden.jpg] [--out ...]

Left pair: frame 60 of the video with the keypoints of :func:`recon3d.reenact.poses.detect_poses`
over the whole clip (smoothed); right pair: a full-body photo (one frame, no smoothing). Each
pair is scaled to 480 pixels high; the pose maps are drawn at that size.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

HEIGHT = 480


def _pair(frame: np.ndarray, poses, index: int) -> np.ndarray:
    import cv2

    from recon3d.reenact.posemap import draw_pose_map

    h, w = frame.shape[:2]
    size = (HEIGHT, round(w * HEIGHT / h))
    big = cv2.resize(
        frame, size[::-1], interpolation=cv2.INTER_CUBIC if h < HEIGHT else cv2.INTER_AREA
    )
    return np.concatenate([big, draw_pose_map(poses, index, size=size)], axis=1)


def main(argv=None) -> int:
    from PIL import Image

    from recon3d.io import load_image
    from recon3d.io.video import read_video
    from recon3d.reenact.poses import detect_poses

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=pathlib.Path, default=ROOT / "tests/data/carphone.mp4")
    parser.add_argument("--frame", type=int, default=60)
    parser.add_argument("--photo", type=pathlib.Path, default=ROOT / "tests/data/biden.jpg")
    parser.add_argument(
        "--out", type=pathlib.Path, default=ROOT / "docs/images/pose_map_example.png"
    )
    args = parser.parse_args(argv)

    frames, fps = read_video(args.video)
    frames = list(frames)
    video_poses = detect_poses(frames, fps=fps, progress=False)
    photo = load_image(args.photo)
    photo_poses = detect_poses([photo], progress=False, tracking=False)
    gap = np.full((HEIGHT, 16, 3), 255, np.uint8)
    canvas = np.concatenate(
        [_pair(frames[args.frame], video_poses, args.frame), gap, _pair(photo, photo_poses, 0)], 1
    )
    Image.fromarray(canvas).save(args.out, optimize=True)
    print(f"wrote {args.out} ({canvas.shape[1]}x{canvas.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
