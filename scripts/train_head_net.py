"""Train the head network (recon3d/train/head_net.py) on synthetic shards.

Usage (CPU or one GPU, one process):
    python scripts/train_head_net.py --data data/head_train --out data/head_net_run --epochs 60
Without the adversarial prior (the ablation): ``--adversarial-weight 0``.
Several processes (DistributedDataParallel; gloo on CPUs):
    torchrun --nproc_per_node 2 scripts/train_head_net.py --data ... --out ...
A run resumes from the checkpoint in --out. ``--ship`` copies the final weights to weights/ and
registers them in weights/manifest.json with the measured metrics given by --metrics (JSON).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from recon3d.train.cli import add_config_arguments, config_from_args, ship
    from recon3d.train.head_net import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--command", type=str, default="", help="recorded in the manifest")
    parser.add_argument("--data-note", type=str, default="", help="recorded in the manifest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = config_from_args(args, TrainConfig)
    path = train(config)
    if args.ship:
        ship(
            path,
            ROOT / "weights" / "head_net.safetensors",
            command=args.command
            or "python scripts/train_head_net.py " + " ".join(argv or sys.argv[1:]),
            seed=config.seed,
            data=args.data_note
            or f"synthetic shards in {config.data} (scripts/generate_head_data.py)",
            metrics=args.metrics,
            licence="Apache-2.0 (trained by this project on synthetic Anny head renders)",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
