"""Train the pose prior that keeps the body refinement plausible
(``weights/body_prior.safetensors``).

The discriminator that trains alongside the body network sees only the network's outputs as
fakes. Those are close to plausible (the network is supervised in 3D on synthetic people), so
that discriminator learns the small differences between the network's poses and motion capture
and hardly anything about anatomy: on held-out motion capture with one bone turned past its range
it tells the two apart barely better than chance (docs/body_network.md, "A pose prior for the
refinement"). This one is trained with least-squares GAN losses against two kinds of fakes:

* the frozen body network's poses on the synthetic training shards (the adversarial part: what
  the refinement starts from), and
* plausible poses with one to three bones (not the root) turned to a uniformly random rotation:
  the way an optimisation pulled by 2D evidence leaves the manifold. Only the logits that can
  know are pushed to 0: the whole pose's and those of the turned bones; the untouched bones'
  rotations and the shape are plausible and stay targets of 1.

Plausible samples are the training motion-capture clips retargeted onto the model
(``data/mocap_bank_train.npy``) and the pose generator's random poses, as for the body network.
Deterministic given the seed. Training only.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
from dataclasses import asdict, dataclass

import torch

from recon3d.models.body import BodyModel
from recon3d.models.body_net import BodyRegressor
from recon3d.models.body_prior import PoseDiscriminator
from recon3d.train.body_net import load_shards, prior_samples

log = logging.getLogger(__name__)

__all__ = ["PriorConfig", "random_bone_negatives", "train_pose_prior"]


@dataclass
class PriorConfig:
    data: str = "data/body_train"
    out: str = "data/body_prior_run"
    #: The frozen body network whose poses are fakes ("" for the shipped one).
    network: str = ""
    prior_bank: str = ""
    prior_samples: int = 40000
    steps: int = 6000
    batch_size: int = 256
    learning_rate: float = 3e-4
    #: Share of each fake batch taken from the network's poses; the rest are random-bone poses.
    network_share: float = 0.5
    seed: int = 0


def random_bone_negatives(
    rotations: torch.Tensor, generator: torch.Generator, max_bones: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plausible (B, J, 3, 3) rotations with 1 to ``max_bones`` of bones 1..J-1 (all but the
    root, which is the first) replaced by rotations uniform over SO(3); and the (B, J) mask of
    the replaced bones."""
    b, j = rotations.shape[:2]
    out = rotations.clone()
    count = torch.randint(1, max_bones + 1, (b,), generator=generator)
    order = torch.rand(b, j - 1, generator=generator).argsort(1) + 1
    chosen = torch.arange(j - 1)[None] < count[:, None]
    rows = torch.arange(b)[:, None].expand_as(order)[chosen]
    cols = order[chosen]
    out[rows, cols] = _uniform_rotations(len(rows), generator).to(rotations.dtype)
    changed = torch.zeros(b, j, dtype=torch.bool)
    changed[rows, cols] = True
    return out, changed


def _uniform_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations uniform over SO(3) (from unit quaternions uniform on the sphere)."""
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=generator), dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(n, 3, 3)


@torch.no_grad()
def network_poses(net: BodyRegressor, data: dict[str, torch.Tensor], batch: int = 512):
    """The network's (N, 19, 3, 3) rotations and (N, 16) shapes on the shards' inputs."""
    rotations, shapes = [], []
    for s in range(0, len(data["keypoints"]), batch):
        pred = net(
            data["keypoints"][s : s + batch],
            data["world"][s : s + batch],
            data["mask"][s : s + batch],
            data["image"][s : s + batch] if "image" in data else None,
        )
        rotations.append(pred["rotations"])
        shapes.append(pred["shape"])
    return torch.cat(rotations), torch.cat(shapes)


def train_pose_prior(config: PriorConfig) -> pathlib.Path:
    """Train the prior and write ``config.out/body_prior.safetensors`` (atomically)."""
    from safetensors.torch import save_file

    torch.manual_seed(config.seed)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model = BodyModel.from_pretrained()
    if config.network:
        net = BodyRegressor.from_file(config.network)
    else:
        net = BodyRegressor.from_pretrained()
    data = load_shards(pathlib.Path(config.data), model, net.image_size)
    fake_rot, fake_shape = network_poses(net, data)
    del data
    real_rot = prior_samples(config.prior_bank, model, config.prior_samples, config.seed)
    real_shape = torch.randn(config.prior_samples, model.num_shape)
    log.info("%d plausible poses, %d network poses", len(real_rot), len(fake_rot))

    disc = PoseDiscriminator(real_rot.shape[1], model.num_shape)
    opt = torch.optim.Adam(disc.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    n_net = round(config.batch_size * config.network_share)
    started = time.perf_counter()
    running = 0.0
    for step in range(config.steps):
        i = torch.randint(len(real_rot), (config.batch_size,), generator=generator)
        k = torch.randint(len(fake_rot), (n_net,), generator=generator)
        m = torch.randint(len(real_rot), (config.batch_size - n_net,), generator=generator)
        turned, changed = random_bone_negatives(real_rot[m], generator)
        fakes = torch.cat([fake_rot[k], turned])
        fake_shapes = torch.cat([fake_shape[k], real_shape[m]])
        # Targets: 0 for every logit of the network's poses; for the turned poses 0 for the
        # turned bones and the whole pose, 1 for the rest.
        targets = torch.zeros(len(fakes), changed.shape[1] + 2)
        targets[n_net:, : changed.shape[1]] = (~changed).float()
        targets[n_net:, -1] = 1.0
        real = disc(real_rot[i], real_shape[i])
        loss = ((real - 1) ** 2).mean() + ((disc(fakes, fake_shapes) - targets) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if (step + 1) % 500 == 0:
            log.info(
                "step %d (%.0f s): discriminator loss %.4f",
                step + 1,
                time.perf_counter() - started,
                running / 500,
            )
            running = 0.0
    path = out / "body_prior.safetensors"
    tmp = path.with_suffix(".tmp")
    meta = {"config": json.dumps(disc.config()), "train_config": json.dumps(asdict(config))}
    save_file({k: v.contiguous() for k, v in disc.state_dict().items()}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path
