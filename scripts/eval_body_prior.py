"""Does a pose discriminator tell plausible poses from broken ones? Held-out motion capture
against the same poses with one bone turned past its anatomical range.

For each discriminator file: the AUC of its pose loss (:meth:`PoseDiscriminator.pose_loss`)
ranking 1,000 held-out poses (the test clips through the pose generator) above copies with one
bone turned 5-30 % past its range in ``eval_body_net.ANATOMICAL_LIMITS`` (or a knee bent 0.3-1
rad backwards); and the share of the broken copies still implausible after 40 Adam steps on the
pose loss alone (the root held fixed).

Usage:
    python scripts/eval_body_prior.py weights/body_prior.safetensors \
        data/crop_exp/net_base/discriminator.safetensors
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

BROKEN_STEMS = (
    "upperarm01",
    "lowerarm01",
    "upperleg01",
    "lowerleg01",
    "spine04",
    "neck01",
    "clavicle",
    "wrist",
    "foot",
    "head",
)


def broken_copies(model, poses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``poses`` (N, J, 3) with one bone each turned past its anatomical range."""
    from eval_body_net import ANATOMICAL_LIMITS

    bad = poses.copy()
    for i in range(len(bad)):
        stem = BROKEN_STEMS[rng.integers(len(BROKEN_STEMS))]
        bone = stem if stem in model.bone_labels else f"{stem}.{'LR'[rng.integers(2)]}"
        if stem == "lowerleg01" and rng.random() < 0.5:
            bad[i, model.bone(bone)] = (-rng.uniform(0.3, 1.0), 0, 0)
        else:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            bad[i, model.bone(bone)] = axis * ANATOMICAL_LIMITS[stem] * rng.uniform(1.05, 1.3)
    return bad


def auc(higher: np.ndarray, lower: np.ndarray) -> float:
    """P(a score of ``higher`` > a score of ``lower``), ties counted half."""
    a, b = higher[:, None], lower[None]
    return float((a > b).mean() + 0.5 * (a == b).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("discriminators", type=pathlib.Path, nargs="+")
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_test.npy")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from eval_body_net import implausible, load_prior

    from recon3d.models.body import BodyModel, axis_angle_to_matrix
    from recon3d.train.synthetic import free_bone_indices, random_pose

    torch.manual_seed(args.seed)
    model = BodyModel.from_pretrained()
    free = free_bone_indices(model)
    bank = np.load(args.bank, allow_pickle=False)
    rng = np.random.default_rng(args.seed)
    plausible = np.stack([random_pose(model, rng, bank) for _ in range(args.n)])
    broken = broken_copies(model, plausible, rng)
    before = np.mean([implausible(model, p) for p in broken])
    print(f"{args.n} held-out poses; {100 * before:.0f} % of the broken copies implausible")
    print(f"{'discriminator':<60}{'AUC':>7}{'repaired':>10}")
    for path in args.discriminators:
        disc = load_prior(path)

        def loss(poses, disc=disc):
            rotations = axis_angle_to_matrix(torch.as_tensor(poses[:, free], dtype=torch.float32))
            return disc.pose_loss(rotations)

        with torch.no_grad():
            score = auc(-loss(plausible).numpy(), -loss(broken).numpy())
        x = torch.tensor(broken[:, free], dtype=torch.float32, requires_grad=True)
        opt = torch.optim.Adam([x], lr=0.04)
        for _ in range(40):
            total = disc.pose_loss(axis_angle_to_matrix(x)).sum()
            opt.zero_grad()
            total.backward()
            x.grad[:, 0] = 0
            opt.step()
        repaired = broken.copy()
        repaired[:, free] = x.detach().numpy()
        after = np.mean([implausible(model, p) for p in repaired])
        print(f"{str(path):<60}{score:>7.3f}{100 * (1 - after):>9.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
