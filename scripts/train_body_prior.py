"""Train the pose prior of the body refinement (recon3d/train/pose_prior.py).

Usage (CPU, a few minutes):
    python scripts/train_body_prior.py --data data/body_train --out data/body_prior_run \
        --prior-bank data/mocap_bank_train.npy
``--ship`` copies the weights to weights/body_prior.safetensors and registers them in
weights/manifest.json with the measured metrics given by --metrics (JSON).
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
    from recon3d.train.pose_prior import PriorConfig, train_pose_prior

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, PriorConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = config_from_args(args, PriorConfig)
    path = train_pose_prior(config)
    if args.ship:
        ship(
            path,
            ROOT / "weights" / "body_prior.safetensors",
            command="python scripts/train_body_prior.py " + " ".join(argv or sys.argv[1:]),
            seed=config.seed,
            data=(
                f"motion-capture bank {config.prior_bank or '(none)'} and the body network's "
                f"poses on the synthetic shards in {config.data}"
            ),
            metrics=args.metrics,
            licence=(
                "Apache-2.0 (trained by this project on retargeted DeepMimic clips and Anny poses)"
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
