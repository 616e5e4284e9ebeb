"""Train the body network (recon3d/train/body_net.py) on synthetic shards.

Usage (one process, on a GPU when there is one; ``--device cpu`` keeps it on the CPU):
    python scripts/train_body_net.py --data data/body_train --out data/body_net_run --epochs 30
Several processes (DistributedDataParallel; gloo on CPUs, one process per GPU with NCCL):
    torchrun --nproc_per_node 2 scripts/train_body_net.py --data ... --out ...
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
    from recon3d.train.body_net import TrainConfig, train
    from recon3d.train.cli import add_config_arguments, config_from_args, ship

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, TrainConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = config_from_args(args, TrainConfig)
    path = train(config)
    if args.ship:
        ship(
            path,
            ROOT / "weights" / "body_net.safetensors",
            command="python scripts/train_body_net.py " + " ".join(argv or sys.argv[1:]),
            seed=config.seed,
            data=f"synthetic shards in {config.data} (scripts/generate_body_data.py)",
            metrics=args.metrics,
            licence="Apache-2.0 (trained by this project on synthetic Anny renders)",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
