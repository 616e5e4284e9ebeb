"""Generate synthetic training shards for the body network (see recon3d/train/synthetic.py).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/generate_body_data.py --out data/body_train --seed 1 \
        --start 0 --stop 40 [--shard-size 100] [--mocap-bank data/mocap_bank_train.npy] \
        [--cut-off 0.6] [--head-and-shoulders 1.0] [--clothed] [--image-size 64]

Run several processes on disjoint ``--start/--stop`` ranges to use more cores; a stopped run
resumes where it was (existing shards are skipped). Backgrounds: frames of the street video in
../shared/data/video (no large faces) and random gradients.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("generate_body_data")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--mocap-bank", type=pathlib.Path, default=None)
    parser.add_argument("--cut-off", type=float, default=0.0, help="share of portrait framings")
    parser.add_argument(
        "--head-and-shoulders",
        type=float,
        default=0.0,
        help="share of people framed on the head and shoulders, as in a video call",
    )
    parser.add_argument(
        "--clothed", action="store_true", help="dress every person: clothes and hair with thickness"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=0,
        help="also store the render's RGB crop of the person, this many pixels a side",
    )
    parser.add_argument(
        "--video",
        type=pathlib.Path,
        default=ROOT.parent / "shared" / "data" / "video" / "vtest.avi",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import generate_shard, load_backgrounds

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = BodyModel.from_pretrained()
    detector = MediaPipePoseDetector()
    backgrounds = []
    if args.video.exists():
        tmp = args.out / "_frames"
        tmp.mkdir(exist_ok=True)
        if not any(tmp.iterdir()):
            (tmp / args.video.name).symlink_to(args.video.resolve())
        backgrounds = load_backgrounds([tmp], max_frames=60)
    bank = np.load(args.mocap_bank) if args.mocap_bank else None
    for index in range(args.start, args.stop):
        start = time.perf_counter()
        path = generate_shard(
            model,
            detector,
            backgrounds,
            args.out,
            args.seed,
            index,
            args.shard_size,
            bank,
            args.cut_off,
            args.clothed,
            args.image_size,
            args.head_and_shoulders,
        )
        if path is not None:
            with np.load(path) as shard:
                kept = len(shard["shape"])
                missed = int(shard["missed"])
            log.info(
                "%s: %d samples (%d missed) in %.1f s",
                path.name,
                kept,
                missed,
                time.perf_counter() - start,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
