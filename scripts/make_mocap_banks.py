"""Retarget the DeepMimic clips onto the body model and save pose banks for training and for
the held-out evaluation (different clips).

Usage:  python scripts/make_mocap_banks.py [--mocap ../shared/data/mocap] [--out data]
Writes ``mocap_bank_train.npy`` and ``mocap_bank_test.npy``: (N, 104, 3) axis-angle poses with
the root orientation removed (the data generator draws its own global orientation).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEST_CLIPS = ("dance_b", "kick", "spinkick", "crawl")


def main(argv=None) -> int:
    from recon3d.io.mocap import load_deepmimic, retarget_to_body
    from recon3d.models.body import BodyModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mocap", type=pathlib.Path, default=ROOT.parent / "shared/data/mocap")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = BodyModel.from_pretrained()
    banks: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for path in sorted(args.mocap.glob("humanoid3d_*.txt")):
        name = path.stem.removeprefix("humanoid3d_")
        poses = retarget_to_body(load_deepmimic(path), model).poses.copy()
        poses[:, 0] = 0.0  # the generator draws the global orientation
        banks["test" if name in TEST_CLIPS else "train"].append(poses)
        logging.info(
            "%s: %d frames -> %s", name, len(poses), "test" if name in TEST_CLIPS else "train"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for split, items in banks.items():
        bank = np.concatenate(items).astype(np.float32)
        np.save(args.out / f"mocap_bank_{split}.npy", bank)
        logging.info("%s bank: %d poses", split, len(bank))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
