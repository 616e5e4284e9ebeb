"""Training of the body network with an HMR-style adversarial prior.

Losses on synthetic shards (recon3d/train/synthetic.py): rotation matrices and shape against the
ground truth, the camera, a vertex loss on the posed mesh (root-relative), the 2D reprojection
of the keypoints, and an adversarial loss from discriminators on per-joint rotations, the whole
pose and the shape (Kanazawa et al. 2018), trained against plausible samples: retargeted motion
capture poses and shapes drawn from Anny's phenotype space (the PCA prior).

Runs on the CPU or a GPU (``device``; CUDA when available), alone or under ``torchrun``
(DistributedDataParallel: one process per GPU with NCCL, or CPU processes with gloo);
the checkpoint is a safetensors file (no pickles), rewritten every epoch, and a run resumes
from it; ``snapshot_every`` also keeps every n-th epoch's network.
"""

from __future__ import annotations

import logging
import pathlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from recon3d.models.body import BodyModel, axis_angle_to_matrix
from recon3d.models.body_net import BodyRegressor, root_to_camera
from recon3d.models.body_prior import PoseDiscriminator
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
from recon3d.train.synthetic import KEYPOINT_PAIRS, free_bone_indices

log = logging.getLogger(__name__)

#: Training samples whose root joint projects further than this from the crop's centre, in crop
#: sides, are left out (see :func:`load_shards`).
MAX_ROOT_OFFSET = 3.0


@dataclass
class TrainConfig:
    data: str = "data/body_train"
    out: str = "data/body_net_run"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-4
    adversarial_weight: float = 0.05
    vertex_weight: float = 2.0
    keypoint_weight: float = 1.0
    seed: int = 0
    prior_bank: str = ""
    prior_samples: int = 20000
    #: Also keep the network of every this many epochs (0: the last checkpoint only).
    snapshot_every: int = 0
    #: > 0: the network also reads the shards' RGB crops of the person (``image``, stored by
    #: ``generate_body_data.py --image-size``), this many pixels a side.
    image_size: int = 0
    #: "cpu", "cuda", "cuda:1"...; empty: CUDA when available (under ``torchrun``, each
    #: process's ``LOCAL_RANK`` GPU), else the CPU.
    device: str = ""


def load_shards(
    folder: pathlib.Path, model: BodyModel, image_size: int = 0
) -> dict[str, torch.Tensor]:
    """All shards of a folder as tensors, with the training targets derived once; with
    ``image_size``, also their image crops, (N, 3, image_size, image_size) in [0, 1]."""
    arrays: dict[str, list[np.ndarray]] = {}
    paths = sorted(folder.glob("body_s*_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no shards (body_s*_*.npz) in {folder}")
    keys = ["keypoints", "world", "mask", "crop", "shape", "pose", "translation", "K"]
    if image_size:
        keys.append("image")
    for path in paths:
        with np.load(path, allow_pickle=False) as shard:
            if image_size and (
                "image" not in shard.files or shard["image"].shape[1:3] != (image_size,) * 2
            ):
                raise ValueError(
                    f"{path.name} has no {image_size}-pixel image crops "
                    f"(generate_body_data.py --image-size {image_size})"
                )
            for key in keys:
                arrays.setdefault(key, []).append(shard[key])
    data = {k: np.concatenate(v) for k, v in arrays.items()}
    root_rest = model.mean_joints[0].numpy()[None] + np.einsum(
        "nk,kd->nd", data["shape"], model.joint_shape_basis[:, 0].numpy()
    )
    root = root_rest + data["translation"]
    with np.errstate(invalid="ignore", divide="ignore"):
        camera = np.stack(
            [root_to_camera(r, c, k) for r, c, k in zip(root, data["crop"], data["K"], strict=True)]
        )
    # A root (pelvis) behind the camera, or far outside a close-up's crop, has no usable camera
    # target: in video-call framings a pelvis near the camera plane projects dozens of crop
    # sides away, and its gradients blow up the training.
    keep = np.isfinite(camera).all(1) & (np.abs(camera[:, :2]).max(1) <= MAX_ROOT_OFFSET)
    if not keep.all():
        log.info(
            "dropped %d of %d samples whose root is behind the camera or more than %g crop "
            "sides from the crop's centre",
            int((~keep).sum()),
            len(keep),
            MAX_ROOT_OFFSET,
        )
        data = {k: v[keep] for k, v in data.items()}
        camera = camera[keep]
    out = {k: torch.from_numpy(v.astype(np.float32)) for k, v in data.items()}
    out["mask"] = out["mask"][:, None] / 255.0
    if image_size:
        out["image"] = out["image"].permute(0, 3, 1, 2) / 255.0
    out["camera"] = torch.from_numpy(camera.astype(np.float32))
    out["rotations"] = axis_angle_to_matrix(out["pose"])
    return out


def prior_samples(bank_path: str, model: BodyModel, n: int, seed: int) -> torch.Tensor:
    """(N, 19, 3, 3) plausible poses for the discriminator: retargeted motion capture (the
    training clips) when a bank is given, else the pose generator's own random poses."""
    from recon3d.train.synthetic import random_pose

    bank = np.load(bank_path, allow_pickle=False) if bank_path else None
    rng = np.random.default_rng(seed)
    poses = np.stack([random_pose(model, rng, bank) for _ in range(n)])[:, free_bone_indices(model)]
    return axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float32))


def train(config: TrainConfig) -> pathlib.Path:
    """Train (or resume) and return the path of the final weights in ``config.out``."""
    device = training_device(config.device)
    distributed, rank, world = distributed_setup(device)
    torch.manual_seed(config.seed + rank)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    model = BodyModel.from_pretrained()
    free = tuple(int(i) for i in free_bone_indices(model))
    data = load_shards(pathlib.Path(config.data), model, config.image_size)
    n = len(data["shape"])
    net = BodyRegressor(image_size=config.image_size)
    disc = PoseDiscriminator()
    start_epoch = resume(out, "body_net.safetensors", net, disc)
    # The random draws (initial weights, prior samples, batch order) are made on the CPU, so a
    # run's data and initialisation do not depend on the device.
    prior = prior_samples(config.prior_bank, model, config.prior_samples, config.seed)
    prior_shape = torch.randn(config.prior_samples, model.num_shape)
    kp_mp = torch.as_tensor([a for a, _ in KEYPOINT_PAIRS])
    kp_model = torch.as_tensor([model.keypoint(b) for _, b in KEYPOINT_PAIRS])
    # Pose only the vertices the losses read: a random subset for the vertex loss and the
    # support of the keypoint regressor (posing all 13 718 per sample dominates a CPU step).
    regressor = _top_k_rows(model.keypoint_regressor[kp_model], 32)
    support = torch.nonzero(regressor.abs().sum(0) > 0).reshape(-1)
    sample = torch.as_tensor(
        np.random.default_rng(0).choice(model.num_vertices, 1500, replace=False)
    )
    vertex_subset = torch.unique(torch.cat([support, sample]))
    losses_index = {
        "sample": torch.searchsorted(vertex_subset, sample).to(device),
        "regressor": regressor[:, vertex_subset].to(device),
    }
    vertex_subset = vertex_subset.to(device)
    model.to(device)
    net.to(device)
    disc.to(device)
    data = {k: v.to(device) for k, v in data.items()}
    prior, prior_shape = prior.to(device), prior_shape.to(device)
    if distributed:
        net = data_parallel(net, device)
        disc = data_parallel(disc, device)
    opt_g = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.learning_rate)

    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)[rank::world].to(device)
        totals: dict[str, torch.Tensor] = {}
        steps = 0
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            pred = net(batch["keypoints"], batch["world"], batch["mask"], batch.get("image"))
            losses = _generator_losses(
                model, free, pred, batch, vertex_subset, losses_index, kp_mp, config
            )
            fake = disc(pred["rotations"], pred["shape"])
            losses["adversarial"] = config.adversarial_weight * generator_loss(fake)
            total = sum(losses.values())
            opt_g.zero_grad()
            total.backward()
            opt_g.step()
            # Discriminator: plausible samples against the network's (detached) outputs.
            j = torch.randint(len(prior), (len(idx),), generator=generator).to(device)
            real = disc(prior[j], prior_shape[j])
            fake = disc(pred["rotations"].detach(), pred["shape"].detach())
            loss_d = discriminator_loss(real, fake)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            losses["discriminator"] = loss_d
            # Summed on the device: a float() per step would wait for a GPU every step.
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
            steps += 1
        if rank == 0:
            means = {k: round(float(v) / max(steps, 1), 5) for k, v in totals.items()}
            log.info("epoch %d (%.1f s): %s", epoch, time.perf_counter() - started, means)
            save_checkpoint(
                out,
                "body_net.safetensors",
                epoch,
                unwrap(net),
                unwrap(disc),
                config,
                config.snapshot_every,
            )
    distributed_teardown(distributed)
    return out / "body_net.safetensors"


def _generator_losses(model, free, pred, batch, vertex_subset, index, kp_mp, config):
    rot_gt = batch["rotations"]
    losses = {
        "rotation": ((pred["rotations"] - rot_gt) ** 2).sum((-1, -2)).mean(),
        "shape": 0.1 * ((pred["shape"] - batch["shape"]) ** 2).mean(),
        "camera": ((pred["camera"] - batch["camera"]) ** 2).mean(),
    }
    out_pred = model(pred["shape"], pred["rotations"], bones=free, vertex_indices=vertex_subset)
    with torch.no_grad():
        out_gt = model(batch["shape"], rot_gt, bones=free, vertex_indices=vertex_subset)
    root_p = out_pred.joints[:, :1]
    root_g = out_gt.joints[:, :1]
    vp = out_pred.vertices[:, index["sample"]] - root_p
    vg = out_gt.vertices[:, index["sample"]] - root_g
    losses["vertices"] = config.vertex_weight * (vp - vg).abs().sum(-1).mean()
    # 2D: model keypoints projected with the predicted camera, against the detector's points
    # (crop units), weighted by visibility.
    offsets = torch.einsum("kv,bvd->bkd", index["regressor"], out_pred.vertices) - root_p
    xy = project_in_crop(pred["camera"], offsets, batch["crop"], batch["K"])
    target = batch["keypoints"][:, kp_mp]
    vis = target[..., 2]
    err = ((xy - target[..., :2]) ** 2).sum(-1)
    losses["keypoints"] = config.keypoint_weight * (vis * err).sum() / vis.sum().clamp_min(1)
    return losses


def project_in_crop(
    camera: torch.Tensor, offsets: torch.Tensor, crop: torch.Tensor, K: torch.Tensor
) -> torch.Tensor:
    """Perspective projection, in crop units, of points given as (B, N, 3) offsets from the root
    joint, whose position the network's ``camera`` (B, 3) encodes (see
    :func:`recon3d.models.body_net.camera_to_root`)."""
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    f = 0.5 * (fx + fy)
    side = crop[:, 2]
    z_root = torch.exp(camera[:, 2]) * f / side
    u_root = crop[:, 0] + camera[:, 0] * side
    v_root = crop[:, 1] + camera[:, 1] * side
    root = torch.stack([(u_root - cx) * z_root / fx, (v_root - cy) * z_root / fy, z_root], -1)
    points = root[:, None] + offsets
    z = points[..., 2].clamp_min(1e-3)
    u = fx[:, None] * points[..., 0] / z + cx[:, None]
    v = fy[:, None] * points[..., 1] / z + cy[:, None]
    return torch.stack(
        [(u - crop[:, None, 0]) / side[:, None], (v - crop[:, None, 1]) / side[:, None]], -1
    )


def _top_k_rows(weights: torch.Tensor, k: int) -> torch.Tensor:
    """(K, V) regressor keeping the ``k`` largest weights of each row, renormalised: keypoints
    within millimetres of the full regressor's, from a few hundred vertices instead of nine
    thousand."""
    top = torch.topk(weights, k, dim=1)
    out = torch.zeros_like(weights).scatter_(1, top.indices, top.values)
    return out / out.sum(1, keepdim=True)


__all__ = ["PoseDiscriminator", "TrainConfig", "load_shards", "project_in_crop", "train"]
