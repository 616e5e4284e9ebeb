"""Head pose and shape in every frame of a video, fast: the head network alone, geometry only.

``refine=False, texture=False`` skips the fit and the texture stages, so each frame costs the
face detector plus a few milliseconds (``docs/head_network.md``, "Speed"). The script writes one
CSV row per frame: the head's rotation as yaw / pitch / roll in degrees (about the camera's
vertical, horizontal and viewing axes: OpenCV frame, x right, y down, z forward; 0, 0, 0 faces
the camera), the position of the head's centre (the mean of its vertices) in metres in that
frame, and the landmark reprojection error. Frames without a face
get an empty row. With ``--overlay`` it also writes the fitted mesh over each frame as a video.

Usage:  python examples/track_head_video.py [VIDEO] [OUT_DIR] [--max-frames N] [--overlay]
(defaults: tests/data/carphone.mp4, out/track)
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time

import numpy as np
from scipy.spatial.transform import Rotation

from recon3d.errors import NoFaceFound
from recon3d.io.video import read_video, write_video
from recon3d.pipeline import HeadReconstructionPipeline

HERE = pathlib.Path(__file__).resolve().parent
COLUMNS = ("frame", "yaw_deg", "pitch_deg", "roll_deg", "x_m", "y_m", "z_m", "error_px")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=HERE.parent / "tests/data/carphone.mp4")
    parser.add_argument("out", nargs="?", default=HERE.parent / "out/track")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--overlay", action="store_true", help="also write overlay.mp4")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pipe = HeadReconstructionPipeline.from_pretrained()
    frames, fps = read_video(args.video, max_frames=args.max_frames)
    rows, overlays, seconds = [], [], []
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        try:
            rec = pipe(frame, refine=False, texture=False)
        except NoFaceFound:
            rows.append({"frame": index})
            overlays.append(frame)
            continue
        seconds.append(time.perf_counter() - start)
        yaw, pitch, roll = Rotation.from_matrix(rec.params["rotation"]).as_euler("YXZ", True)
        x, y, z = rec.vertices.mean(0)
        values = (yaw, pitch, roll, x, y, z, rec.params["reprojection_error_px"])
        rows.append({"frame": index, **dict(zip(COLUMNS[1:], np.round(values, 4), strict=True))})
        if args.overlay:
            overlays.append(rec.overlay())

    with open(out / "head_track.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out / 'head_track.csv'}: {len(rows)} frames, a face in {len(seconds)}")
    if seconds:
        print(
            f"per frame with a face: median {1e3 * np.median(seconds):.0f} ms "
            f"({1 / np.median(seconds):.0f} frames/s), decode to mesh"
        )
    if args.overlay and overlays:
        print("wrote", write_video(out / "overlay.mp4", overlays, fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
