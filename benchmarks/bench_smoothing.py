"""Choosing the temporal smoothing of driving keypoints: error against known motion.

Usage:  PYOPENGL_PLATFORM=egl python benchmarks/bench_smoothing.py [--noise 1.0 2.0]
            [--mocap /work/shared/data/mocap] [--json out.json]

Exact keypoints come from mocap clips (dance_a, dance_b, kick, walk) retargeted onto the body
model and projected at 256 x 256, 30 fps (:func:`recon3d.reenact.poses.load_driving`); i.i.d.
Gaussian noise of ``--noise`` pixels (per coordinate) plays the detector's jitter. For each
smoothing sigma the table gives the mean distance of the smoothed body keypoints to the exact
ones: too little smoothing leaves the noise, too much blurs fast moves (kicks, spins).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

CLIPS = ("dance_a", "dance_b", "kick", "walk")
SIGMAS = (0.0, 0.025, 0.033, 0.05, 0.067, 0.1, 0.15)


def main(argv=None) -> int:
    from recon3d.reenact.poses import load_driving, smooth_keypoints

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mocap", type=pathlib.Path, default=pathlib.Path("/work/shared/data/mocap")
    )
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    truth = {
        c: load_driving(args.mocap / f"humanoid3d_{c}.txt", image_size=(256, 256), fps=30).body
        for c in CLIPS
    }
    results = {}
    print("mean body-keypoint error (px) after smoothing, 256 x 256 frame, 30 fps")
    print(f"{'noise':>6} {'clip':>8} " + " ".join(f"{s:>7.3f}s" for s in SIGMAS))
    for noise in args.noise:
        for clip, body in truth.items():
            noisy = body + rng.normal(0.0, noise, body.shape).astype(np.float32)
            conf = np.ones(body.shape[:2], np.float32)
            row = []
            for sigma in SIGMAS:
                smooth, _ = smooth_keypoints(noisy, conf, sigma * 30)
                row.append(float(np.linalg.norm(smooth - body, axis=-1).mean()))
            results[f"{noise}/{clip}"] = dict(zip(map(str, SIGMAS), row, strict=True))
            print(f"{noise:6.1f} {clip:>8} " + " ".join(f"{e:8.3f}" for e in row))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
