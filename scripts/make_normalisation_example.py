"""Make ``docs/images/pose_normalisation.png``: the global pose normalisation at work.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_normalisation_example.py [--out ...]

Source: the mocap walk (towards the camera) seen small, by a virtual camera that makes a
standing person 45 % of the frame height; target: the dance_b clip seen at 80 %. Panels: the
source poses (every 6th frame overlaid), the target poses (every 15th; their ankle range and
heights are the target statistics), the source poses normalised to the target
(``normalize_poses``, every 6th). Dashed lines: the target's farthest and closest ankle
positions (t_min, t_max).
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

SIZE = (384, 384)


def _overlay(poses, every: int = 6) -> np.ndarray:
    from recon3d.reenact.posemap import draw_pose_map

    canvas = np.zeros((*poses.image_size, 3), np.uint8)
    for i in range(0, len(poses), every):
        canvas = np.maximum(canvas, draw_pose_map(poses, i))
    return canvas


def _dashed(image: np.ndarray, y: float) -> None:
    row = int(round(y))
    if 0 <= row < image.shape[0]:
        for x in range(0, image.shape[1], 12):
            image[row, x : x + 6] = 160


def main(argv=None) -> int:
    from PIL import Image

    from recon3d.io.mocap import load_deepmimic, retarget_to_body
    from recon3d.reenact.normalize import ankle_stats, normalize_poses
    from recon3d.reenact.poses import _body_model, _posed_keypoints, _virtual_camera_projection

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mocap", type=pathlib.Path, default=pathlib.Path("/work/shared/data/mocap")
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=ROOT / "docs/images/pose_normalisation.png"
    )
    args = parser.parse_args(argv)

    def clip_poses(name: str, fraction: float):
        clip = load_deepmimic(args.mocap / f"humanoid3d_{name}.txt")
        motion = retarget_to_body(clip, _body_model())
        points = _posed_keypoints(motion.poses, motion.translation, None)
        return _virtual_camera_projection(points, SIZE, clip.fps, height_fraction=fraction)

    source = clip_poses("walk", 0.45)
    target = clip_poses("dance_b", 0.8)
    stats = ankle_stats(target)
    normalised = normalize_poses(source, stats)
    panels = [_overlay(source), _overlay(target, every=15), _overlay(normalised)]
    for panel in panels[1:]:
        _dashed(panel, stats.min)
        _dashed(panel, stats.max)
    gap = np.full((SIZE[0], 12, 3), 255, np.uint8)
    canvas = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    Image.fromarray(canvas).save(args.out, optimize=True)
    print(f"wrote {args.out}; target {stats}; source {ankle_stats(source)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
