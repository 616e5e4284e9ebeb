"""Driving-pose detection on a video: time per frame (per front end) and keypoint jitter with and
without temporal smoothing.

Usage:  PYOPENGL_PLATFORM=egl python benchmarks/bench_driving.py [--video tests/data/carphone.mp4]
                                                                  [--frames 120] [--json out.json]

Jitter is measured on confident points (confidence > 0.5 in the frames compared), in pixels:
``motion`` = mean |x(t+1) - x(t)| (includes the real movement), ``jerk`` = mean
|x(t+1) - 2 x(t) + x(t-1)| (the second difference: near zero for smooth movement, dominated by
detection noise).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (MediaPipe runs its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pose_or_none(detector, frame):
    from recon3d.errors import NoPersonFound

    try:
        return detector.detect(frame)
    except NoPersonFound:
        return None


def jitter(points: np.ndarray, confidence: np.ndarray) -> dict[str, float]:
    """``motion`` and ``jerk`` (pixels) of (T, ..., 2) points over confident samples."""
    ok1 = (confidence[1:] > 0.5) & (confidence[:-1] > 0.5)
    step = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    ok2 = ok1[1:] & ok1[:-1]
    second = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1)
    return {
        "motion": float(step[ok1].mean()) if ok1.any() else float("nan"),
        "jerk": float(second[ok2].mean()) if ok2.any() else float("nan"),
    }


def main(argv=None) -> int:
    from recon3d.io.video import read_video
    from recon3d.reenact.poses import (
        DEFAULT_SMOOTHING,
        PoseSequence,
        _Detectors,
        _frame_keypoints,
        _smoothed,
        face68_from_mediapipe478,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=pathlib.Path, default=ROOT / "tests/data/carphone.mp4")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument(
        "--static", action="store_true", help="every frame as a photo (no pose tracking)"
    )
    args = parser.parse_args(argv)

    frames, fps = read_video(args.video, max_frames=args.frames)
    frames = list(frames)
    face68_from_mediapipe478(np.zeros((478, 2)))  # build the map outside the timing
    det = _Detectors(face=True, hands=True, tracking=not args.static)
    _frame_keypoints(det, frames[0])  # warm-up (graph start)

    # Per front end, each over all frames.
    stage = {}
    start = time.perf_counter()
    people = [_pose_or_none(det.pose, f) for f in frames]
    stage["pose"] = time.perf_counter() - start
    start = time.perf_counter()
    for f in frames:
        det.face.detect(f)
    stage["face"] = time.perf_counter() - start
    start = time.perf_counter()
    for f, p in zip(frames, people, strict=True):
        if p is not None:
            det.hands.detect(f, p)
    stage["hands"] = time.perf_counter() - start

    start, cpu_start = time.perf_counter(), _cpu_seconds()
    rows = [_frame_keypoints(det, f) for f in frames]
    total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    det.close()
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    raw = PoseSequence(**stacked, image_size=frames[0].shape[:2], fps=fps)
    start = time.perf_counter()
    smooth = _smoothed(raw, args.smoothing)
    smoothing_s = time.perf_counter() - start

    n = len(frames)
    result = {
        "video": str(args.video),
        "frames": n,
        "size": list(frames[0].shape[:2]),
        "fps": fps,
        "tracking": not args.static,
        "per_frame_s": total / n,
        "cpu_per_frame_s": cpu / n,
        "per_frame_stage_s": {k: v / n for k, v in stage.items()},
        "smoothing_total_s": smoothing_s,
        "smoothing_sigma_s": args.smoothing,
        "found": {
            "body (nose conf > 0.5)": float((raw.body_confidence[:, 0] > 0.5).mean()),
            "face": float((raw.face_confidence[:, 0] > 0).mean()),
            "right hand": float((raw.hands_confidence[:, 0, 0] > 0).mean()),
            "left hand": float((raw.hands_confidence[:, 1, 0] > 0).mean()),
        },
        "jitter_raw": {},
        "jitter_smoothed": {},
    }
    for name in ("body", "face", "hands"):
        for key, seq in (("jitter_raw", raw), ("jitter_smoothed", smooth)):
            result[key][name] = jitter(getattr(seq, name), getattr(seq, f"{name}_confidence"))
    result["load_average"] = os.getloadavg()

    mode = "static (photo) mode" if args.static else "video (tracking) mode"
    print(f"{args.video.name}: {n} frames {frames[0].shape[1]}x{frames[0].shape[0]}, {mode}")
    print(f"detect_poses per frame: {1000 * result['per_frame_s']:.1f} ms wall, "
          f"{1000 * result['cpu_per_frame_s']:.1f} ms CPU (all threads) "
          f"(pose {1000 * stage['pose'] / n:.1f}, face {1000 * stage['face'] / n:.1f}, "
          f"hands {1000 * stage['hands'] / n:.1f} ms when run alone); smoothing "
          f"{1000 * smoothing_s:.2f} ms for the clip")  # fmt: skip
    print("found in share of frames:", result["found"])
    print(f"{'part':6} {'motion raw':>11} {'smoothed':>9} {'jerk raw':>9} {'smoothed':>9}  (px)")
    for name in ("body", "face", "hands"):
        r, s = result["jitter_raw"][name], result["jitter_smoothed"][name]
        print(f"{name:6} {r['motion']:11.3f} {s['motion']:9.3f} {r['jerk']:9.3f} {s['jerk']:9.3f}")
    print(f"load average: {result['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
