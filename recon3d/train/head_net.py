"""Training of the head network with an HMR-style adversarial prior. Training only.

Losses on synthetic shards (``recon3d/train/synthetic_head.py``): identity, expression,
rotation and camera against the ground truth, a vertex loss on the head mesh (relative to the
centre of the face's landmarks, after the best scale), the 2D reprojection of the 478 landmarks
with the predicted rotation and camera against MediaPipe's detections, and an adversarial loss
(LSGAN, shared with the body trainer in :mod:`recon3d.train.adversarial`) from discriminators
on the identity and the expression coefficients, trained against plausible samples: identities
from the PCA prior N(0, 1) and the head fit's expressions on real frames (the bank built by
``scripts/generate_head_data.py``).

Runs on the CPU or a GPU, alone or under ``torchrun`` (DistributedDataParallel, gloo on CPUs);
checkpoints are safetensors files (no pickles), one per epoch, and a run resumes from the last.
"""

from __future__ import annotations

import logging
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recon3d.models.head import HeadModel
from recon3d.models.head_net import HeadRegressor
from recon3d.train.adversarial import (
    data_parallel,
    discriminator_loss,
    distributed_setup,
    distributed_teardown,
    generator_loss,
    resume,
    save_checkpoint,
    training_device,
    unwrap,
)
from recon3d.train.body_net import project_in_crop

log = logging.getLogger(__name__)

__all__ = ["HeadDiscriminator", "TrainConfig", "load_shards", "train"]

NET_FILE = "head_net.safetensors"


@dataclass
class TrainConfig:
    data: str = "data/head_train"
    out: str = "data/head_net_run"
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 1e-3
    adversarial_weight: float = 0.05
    vertex_weight: float = 50.0
    keypoint_weight: float = 10.0
    identity_weight: float = 0.1
    expression_weight: float = 1.0
    seed: int = 0
    bank: str = "data/head_expressions.npz"
    width: int = 512
    device: str = ""
    #: Also keep the network of every this many epochs (0: the last checkpoint only).
    snapshot_every: int = 0


class HeadDiscriminator(nn.Module):
    """Identity and expression discriminators: (B, K) identity and (B, E) expression
    coefficients -> (B, 2) logits."""

    def __init__(self, num_identity: int = 60, num_expression: int = 52) -> None:
        super().__init__()

        def mlp(n: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(n, 64), nn.LeakyReLU(0.2), nn.Linear(64, 32), nn.LeakyReLU(0.2),
                nn.Linear(32, 1),
            )  # fmt: skip

        self.identity = mlp(num_identity)
        self.expression = mlp(num_expression)

    def forward(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.identity(identity), self.expression(expression)], -1)


def load_shards(folder: pathlib.Path) -> dict[str, torch.Tensor]:
    """All shards ``head_s*_*.npz`` of a folder as float32 tensors."""
    keys = ("landmarks", "crop", "identity", "expression", "rotation", "translation", "camera", "K")
    arrays: dict[str, list[np.ndarray]] = {}
    paths = sorted(pathlib.Path(folder).glob("head_s*_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no shards (head_s*_*.npz) in {folder}")
    for path in paths:
        with np.load(path, allow_pickle=False) as shard:
            if "landmarks" not in shard.files:
                continue  # every sample of this shard was missed
            for key in keys:
                arrays.setdefault(key, []).append(shard[key])
    return {k: torch.from_numpy(np.concatenate(v).astype(np.float32)) for k, v in arrays.items()}


def expression_bank(path: str) -> torch.Tensor:
    """(N, 52) plausible expressions: the head fit's estimates on real frames."""
    with np.load(path, allow_pickle=False) as data:
        return torch.from_numpy(data["expression"].astype(np.float32))


class _Geometry(nn.Module):
    """The head model restricted to what the losses read: a vertex subset and the 478 landmarks,
    with the landmark centre, all linear in the coefficients."""

    def __init__(self, model: HeadModel, num_vertices: int = 1500) -> None:
        super().__init__()
        idx = torch.as_tensor(
            np.sort(np.random.default_rng(0).choice(model.num_vertices, num_vertices, False))
        )
        mean, id_basis, exp_basis = model.surface_basis("mediapipe478")
        self.register_buffer("v_mean", model.mean_vertices[idx].float())
        self.register_buffer("v_id", model.identity_basis[:, idx].float())
        self.register_buffer("v_exp", model.expression_basis[:, idx].float())
        self.register_buffer("l_mean", mean.float())
        self.register_buffer("l_id", id_basis.float())
        self.register_buffer("l_exp", exp_basis.float())

    def forward(self, identity: torch.Tensor, expression: torch.Tensor):
        """(B, S, 3) vertices and (B, 478, 3) landmarks, both relative to the landmark centre."""
        lm = (
            self.l_mean
            + torch.einsum("bk,knd->bnd", identity, self.l_id)
            + torch.einsum("bk,knd->bnd", expression, self.l_exp)
        )
        verts = (
            self.v_mean
            + torch.einsum("bk,knd->bnd", identity, self.v_id)
            + torch.einsum("bk,knd->bnd", expression, self.v_exp)
        )
        centre = lm.mean(1, keepdim=True)
        return verts - centre, lm - centre


def _losses(geometry, pred, batch, config: TrainConfig) -> dict[str, torch.Tensor]:
    losses = {
        "identity": config.identity_weight * ((pred["identity"] - batch["identity"]) ** 2).mean(),
        "expression": config.expression_weight
        * ((pred["expression"] - batch["expression"]) ** 2).sum(-1).mean(),
        "rotation": ((pred["rotation"] - batch["rotation"]) ** 2).sum((-1, -2)).mean(),
        "camera": ((pred["camera"] - batch["camera"]) ** 2).mean(),
    }
    verts_p, lm_p = geometry(pred["identity"], pred["expression"])
    with torch.no_grad():
        verts_g, _ = geometry(batch["identity"], batch["expression"])
    # Scale-free: the head's absolute size is not observable from one view (a larger head
    # farther away looks the same), so the prediction is scaled to the truth first.
    scale = (verts_p * verts_g).sum((1, 2)) / (verts_p**2).sum((1, 2)).clamp_min(1e-9)
    aligned = scale[:, None, None] * verts_p
    losses["vertices"] = config.vertex_weight * (aligned - verts_g).abs().sum(-1).mean()
    # 2D: the landmarks posed with the predicted rotation and camera, in crop units, against the
    # detector's points (the normalised inputs' x, y).
    offsets = torch.einsum("bij,bnj->bni", pred["rotation"], lm_p)
    xy = project_in_crop(pred["camera"], offsets, batch["crop"], batch["K"])
    target = batch["landmarks"][..., :2]
    losses["keypoints"] = config.keypoint_weight * ((xy - target) ** 2).sum(-1).mean()
    return losses


def train(config: TrainConfig) -> pathlib.Path:
    """Train (or resume) and return the path of the final weights in ``config.out``."""
    device = training_device(config.device)
    distributed, rank, world = distributed_setup(device)
    torch.manual_seed(config.seed + rank)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model = HeadModel.from_pretrained()
    geometry = _Geometry(model).to(device)
    data = {k: v.to(device) for k, v in load_shards(pathlib.Path(config.data)).items()}
    n = len(data["identity"])
    net = HeadRegressor(model.num_identity, model.num_expression, width=config.width).to(device)
    disc = HeadDiscriminator(model.num_identity, model.num_expression).to(device)
    start_epoch = resume(out, NET_FILE, net, disc)
    if distributed:
        net = data_parallel(net, device)
        disc = data_parallel(disc, device)
    opt_g = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.learning_rate)
    bank = expression_bank(config.bank).to(device)
    adversarial = config.adversarial_weight > 0
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(start_epoch, config.epochs):
        # Step decay for the last third of the epochs.
        lr = config.learning_rate * (0.1 if epoch >= 2 * config.epochs // 3 else 1.0)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)[rank::world].to(device)
        totals: dict[str, torch.Tensor] = {}
        steps = 0
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            pred = net(batch["landmarks"])
            losses = _losses(geometry, pred, batch, config)
            if adversarial:
                fake = disc(pred["identity"], pred["expression"])
                losses["adversarial"] = config.adversarial_weight * generator_loss(fake)
            total = sum(losses.values())
            opt_g.zero_grad()
            total.backward()
            opt_g.step()
            if adversarial:
                j = torch.randint(len(bank), (len(idx),), generator=generator).to(device)
                real_exp = (bank[j] + 0.03 * torch.randn_like(bank[j])).clamp(0, 1)
                real = disc(torch.randn_like(pred["identity"]), real_exp)
                fake = disc(pred["identity"].detach(), pred["expression"].detach())
                loss_d = discriminator_loss(real, fake)
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                losses["discriminator"] = loss_d
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
            steps += 1
        if rank == 0:
            means = {k: round(float(v) / max(steps, 1), 5) for k, v in totals.items()}
            log.info("epoch %d (%.1f s): %s", epoch, time.perf_counter() - started, means)
            save_checkpoint(
                out, NET_FILE, epoch, unwrap(net), unwrap(disc), config, config.snapshot_every
            )
    distributed_teardown(distributed)
    return out / NET_FILE
