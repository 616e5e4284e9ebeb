"""The picture of docs/head_network.md's "Geometry only, on a video": the head network alone,
without the texture, on every frame of carphone.mp4: four frames with the fitted mesh over them,
and the head's yaw, pitch and roll over the clip.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_head_track.py [--video V] [--out IMAGE]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from scipy.spatial.transform import Rotation

from recon3d.errors import NoFaceFound
from recon3d.io.video import read_video
from recon3d.pipeline import HeadReconstructionPipeline

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=pathlib.Path, default=ROOT / "tests/data/carphone.mp4")
    parser.add_argument(
        "--out", type=pathlib.Path, default=ROOT / "docs/images/head_track_carphone.jpg"
    )
    parser.add_argument("--shown", type=int, nargs="*", default=[0, 40, 80, 119])
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pipe = HeadReconstructionPipeline.from_pretrained()
    frames, _ = read_video(args.video)
    angles, shown, seconds = {}, {}, []
    total = 0
    for index, frame in enumerate(frames):
        total += 1
        start = time.perf_counter()
        try:
            rec = pipe(frame, refine=False, texture=False)
        except NoFaceFound:
            continue
        seconds.append(time.perf_counter() - start)
        angles[index] = Rotation.from_matrix(rec.params["rotation"]).as_euler("YXZ", True)
        if index in args.shown:
            shown[index] = rec.overlay(alpha=0.5)

    fig = plt.figure(figsize=(12, 6.2))
    grid = fig.add_gridspec(2, len(shown), height_ratios=(1.1, 1))
    for column, (index, image) in enumerate(sorted(shown.items())):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(image, interpolation="bilinear")
        ax.set_title(f"frame {index}", fontsize=10)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    index = np.array(sorted(angles))
    values = np.array([angles[i] for i in index])
    for column, name in enumerate(("yaw", "pitch", "roll")):
        ax.plot(index, values[:, column], label=name)
    ax.set_xlabel("frame")
    ax.set_ylabel("degrees")
    ax.legend(loc="lower right", ncol=3)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{args.video.name}: a face in {len(angles)} of {total} frames, "
        f"median {1e3 * np.median(seconds):.0f} ms per frame (decode to mesh, 2 CPU cores)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=100, pil_kwargs={"quality": 90})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
