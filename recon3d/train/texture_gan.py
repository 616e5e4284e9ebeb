"""Adversarial training of the texture-completion network (issue 5). Training only.

Generator: :class:`recon3d.texture.completion.TextureCompletionNet`. Two discriminators:

* a PatchGAN on UV textures (conditioned on the layout mask and part labels);
* the **mesh-texture discriminator**: a PatchGAN on renders of the textured rest mesh from random
  views. The renders are differentiable with respect to the texture: each view's UV lookup map is
  rasterised once with pyrender (a face-id pass plus exact ray-triangle barycentrics), then the
  texture is sampled with ``grid_sample``, so seams and back views are judged as a viewer sees
  them.

Losses for the generator: L1 on texels with a known target (weighted up where the network had to
predict them), a MobileNetV2 perceptual loss, hinge adversarial losses from both
discriminators, and a left/right symmetry term on texels seen on neither side.
"Real" textures for the discriminators are the complete procedural textures.

Runs on the CPU or a GPU (``device``), alone or under ``torchrun`` (DistributedDataParallel:
NCCL with one process per GPU, gloo on CPUs);
checkpoints every ``checkpoint_every`` steps and resumes from the last one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time

import numpy as np
import torch
from torch import nn

from recon3d.texture.completion import (
    IN_CHANNELS,
    NUM_PARTS,
    TextureCompletionNet,
    UVMaps,
)
from recon3d.train.adversarial import (
    data_parallel,
    distributed_setup,
    distributed_teardown,
    training_device,
    unwrap,
)

__all__ = [
    "PatchDiscriminator",
    "TrainConfig",
    "UVViews",
    "render_views",
    "train",
    "uv_views",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    data: str
    out: str
    perceptual_weights: str
    steps: int = 2000
    batch_size: int = 4
    learning_rate: float = 2e-4
    width: int = 16
    held_out_weight: float = 5.0
    perceptual_weight: float = 0.2
    uv_adversarial_weight: float = 0.01
    mesh_adversarial_weight: float = 0.01
    symmetry_weight: float = 0.3
    ssim_weight: float = 0.0
    real_fraction: float = 0.0
    adversarial: bool = True
    views: int = 24
    view_size: int = 128
    checkpoint_every: int = 100
    seed: int = 0
    #: "cpu" (default), "cuda", ...; empty: CUDA when available. Under ``torchrun`` a bare
    #: "cuda" is each process's ``LOCAL_RANK`` GPU. (CUDA stays opt-in here: this trainer
    #: renders its views with OpenGL and has not run on a GPU machine yet.)
    device: str = "cpu"


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) with spectral normalisation: (B, C, H, W) -> (B, 1, H/8, W/8)
    realness scores."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        w = width
        self.layers = nn.Sequential(
            sn(nn.Conv2d(in_channels, w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * w, 4 * w, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * w, 1, 3, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclasses.dataclass
class UVViews:
    """UV lookup maps of a mesh seen from several views: ``grid`` (N, S, S, 2) texture
    coordinates for ``grid_sample`` (x right, y down, in [-1, 1]); ``mask`` (N, 1, S, S)."""

    grid: torch.Tensor
    mask: torch.Tensor


def uv_views(
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray,
    face_uv: np.ndarray,
    *,
    n: int,
    size: int,
    seed: int,
) -> UVViews:
    """Rasterise ``n`` random views (any yaw, pitch within ±30°) of a rest mesh.

    Args:
        vertices: (V, 3) model frame (y down, facing -z); faces: (F, 3).
        uv: (U, 2) texture coordinates (origin bottom-left); face_uv: (F, 3).
    """
    from scipy.ndimage import distance_transform_edt
    from scipy.spatial.transform import Rotation

    from recon3d.render.renderer import render_mesh

    rng = np.random.default_rng(seed)
    centre = vertices.mean(0)
    extent = float(np.ptp(vertices, axis=0).max())
    focal = 2.5 * size
    distance = focal * extent * 1.1 / size
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    # Face ids as flat colours on an unwelded copy of the mesh: id + 1 in 24 bits.
    ids = np.arange(1, len(faces) + 1)
    colours = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], 1).astype(np.uint8)
    grids, masks = [], []
    for _ in range(n):
        rotation = Rotation.from_euler(
            "yx", [rng.uniform(-180, 180), rng.uniform(-30, 30)], degrees=True
        ).as_matrix()
        posed = (vertices - centre) @ rotation.T + np.array([0.0, 0.0, distance])
        corners = posed[faces].reshape(-1, 3)
        out = render_mesh(
            corners,
            np.arange(len(corners)).reshape(-1, 3),
            K,
            (size, size),
            vertex_colors=np.repeat(colours, 3, axis=0),
            background=(0, 0, 0),
        ).color.astype(np.int64)
        face = out[..., 0] + (out[..., 1] << 8) + (out[..., 2] << 16) - 1
        ys, xs = np.nonzero(face >= 0)
        f = face[ys, xs]
        # Exact barycentrics of each pixel centre's ray on its triangle (Moller-Trumbore).
        rays = np.stack([(xs + 0.5 - K[0, 2]) / focal, (ys + 0.5 - K[1, 2]) / focal], 1)
        rays = np.c_[rays, np.ones(len(rays))]
        a, b, c = (posed[faces[f, i]] for i in range(3))
        e1, e2 = b - a, c - a
        p = np.cross(rays, e2)
        det = np.einsum("nd,nd->n", e1, p)
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        t = -a
        u = np.einsum("nd,nd->n", t, p) / det
        q = np.cross(t, e1)
        v = np.einsum("nd,nd->n", rays, q) / det
        w = 1 - u - v
        # Pixels on triangle edges can carry a neighbour's id (the rasteriser's coverage rule
        # differs from the ray test): keep only consistent ones, then fill from the nearest.
        inside = (u > -0.05) & (v > -0.05) & (w > -0.05)
        ys, xs, f, u, v, w = ys[inside], xs[inside], f[inside], u[inside], v[inside], w[inside]
        tex = w[:, None] * uv[face_uv[f, 0]] + u[:, None] * uv[face_uv[f, 1]]
        tex += v[:, None] * uv[face_uv[f, 2]]
        grid = np.zeros((size, size, 2), np.float32)
        grid[ys, xs, 0] = tex[:, 0] * 2 - 1
        grid[ys, xs, 1] = (1 - tex[:, 1]) * 2 - 1  # UV origin bottom-left; image rows go down
        good = np.zeros((size, size), bool)
        good[ys, xs] = True
        _, (iy, ix) = distance_transform_edt(~good, return_indices=True)
        grid = grid[iy, ix]
        mask = (face >= 0).astype(np.float32)[None]
        grids.append(grid)
        masks.append(mask)
    return UVViews(torch.from_numpy(np.stack(grids)), torch.from_numpy(np.stack(masks)))


def render_views(texture: torch.Tensor, views: UVViews, index: torch.Tensor) -> torch.Tensor:
    """(B, 4, S, S) renders (RGB in [-1, 1], black background, plus the mask) of (B, 3, R, R)
    textures from views ``index`` (B,)."""
    grid, mask = views.grid[index], views.mask[index]
    colour = nn.functional.grid_sample(texture, grid, mode="bilinear", align_corners=False)
    return torch.cat([colour * mask, mask], 1)


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


class _Data:
    """Shards in memory with the static layout channels of both kinds."""

    def __init__(self, data: dict[str, np.ndarray], maps: dict[str, UVMaps], shards: int) -> None:
        self.is_head = torch.from_numpy(data["is_head"])
        self.inputs = torch.from_numpy(data["inputs"][:, :14])
        self.target = torch.from_numpy(data["target"]).permute(0, 3, 1, 2)
        self.valid = torch.from_numpy(data["valid"])[:, None]
        self.held_out = torch.from_numpy(data["held_out"])[:, None]
        self.static = {k: torch.from_numpy(m.static_channels) for k, m in maps.items()}
        self.mirror = {k: torch.from_numpy(m.mirror) for k, m in maps.items()}
        self.synthetic = torch.from_numpy(data["synthetic"])
        head = data["is_head"]
        log.info(
            "%d samples (%d head, %d synthetic) from %d shards",
            len(head),
            int(head.sum()),
            int(self.synthetic.sum()),
            shards,
        )

    def indices(self, kind: str) -> torch.Tensor:
        return torch.nonzero(self.is_head == (kind == "head")).reshape(-1)

    def batch(self, kind: str, idx: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        stored = self.inputs[idx]
        inputs = stored.float() / 127.5 - 1.0
        # Stored as round((x + 1) * 127.5): an exact 0 comes back as 128 (0.004); confidences
        # (channels 3 and 7) must be exactly 0 where unseen, as at inference.
        conf = inputs[:, [3, 7]]
        inputs[:, [3, 7]] = torch.where(stored[:, [3, 7]] == 128, torch.zeros_like(conf), conf)
        static = self.static[kind].expand(len(idx), -1, -1, -1)
        return {
            "inputs": torch.cat([inputs, static], 1).to(device),
            "target": (self.target[idx].float() / 127.5 - 1.0).to(device),
            "valid": self.valid[idx].float().to(device),
            "held_out": self.held_out[idx].float().to(device),
            "static": static.to(device),
        }


def train(config: TrainConfig) -> pathlib.Path:
    """Train (or resume) and return the path of the generator's weights in ``config.out``."""
    from recon3d.models.body import BodyModel
    from recon3d.models.head import HeadModel
    from recon3d.train.perceptual import MobileNetV2Features
    from recon3d.train.texture_data import body_geometry, head_geometry

    device = training_device(config.device)
    distributed, rank, world = distributed_setup(device)
    torch.manual_seed(config.seed + rank)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    from recon3d.train.texture_data import load_shards

    paths = sorted(pathlib.Path(config.data).glob("shard_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no shard_*.npz in {config.data}")
    shards = load_shards(paths)
    kinds = [
        k for k, head in (("head", True), ("body", False)) if (shards["is_head"] == head).any()
    ]
    builders = {"head": (HeadModel.from_pretrained, head_geometry)}
    builders["body"] = (BodyModel.from_pretrained, body_geometry)
    geometries, views = {}, {}
    for kind in kinds:
        model = builders[kind][0]()
        g = geometries[kind] = builders[kind][1](model)
        v = uv_views(
            g.vertices,
            g.faces,
            model.uv,
            model.face_uv,
            n=config.views,
            size=config.view_size,
            seed=config.seed,
        )
        views[kind] = UVViews(v.grid.to(device), v.mask.to(device))
    data = _Data(shards, {k: g.maps for k, g in geometries.items()}, len(paths))

    net = TextureCompletionNet(width=config.width).to(device)
    d_uv = PatchDiscriminator(3 + 1 + NUM_PARTS).to(device)
    d_mesh = PatchDiscriminator(4).to(device)
    step = _resume(out, net, d_uv, d_mesh)
    if distributed:
        net = data_parallel(net, device)
        d_uv = data_parallel(d_uv, device)
        d_mesh = data_parallel(d_mesh, device)
    opt_g = torch.optim.Adam(net.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(
        [*d_uv.parameters(), *d_mesh.parameters()], lr=config.learning_rate, betas=(0.5, 0.999)
    )
    features = MobileNetV2Features.from_file(config.perceptual_weights).to(device)
    generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
    pools = {k: data.indices(k)[rank::world] for k in kinds}
    synthetic_pools = {
        k: torch.nonzero(data.synthetic & (data.is_head == (k == "head"))).reshape(-1)
        for k in kinds
    }
    real_pools = {
        k: torch.nonzero(~data.synthetic & (data.is_head == (k == "head"))).reshape(-1)
        for k in kinds
    }
    if config.adversarial and not all(len(p) for p in synthetic_pools.values()):
        raise ValueError("the discriminators need procedural (complete) textures of every kind")
    started = time.perf_counter()
    totals: dict[str, float] = {}
    while step < config.steps:
        kind = kinds[step % len(kinds)]
        pool = pools[kind]
        idx = pool[torch.randint(len(pool), (config.batch_size,), generator=generator)]
        n_real = round(config.real_fraction * config.batch_size)
        if n_real:
            # Oversample real photos: the procedural textures outnumber them.
            real_pool = real_pools[kind]
            pick = torch.randint(len(real_pool), (n_real,), generator=generator)
            idx[:n_real] = real_pool[pick]
        batch = data.batch(kind, idx, device)
        output = net(batch["inputs"])
        losses = _generator_losses(output, batch, data.mirror[kind].to(device), features, config)
        if config.adversarial:
            view = torch.randint(config.views, (config.batch_size,), generator=generator)
            fake_uv = torch.cat([output * batch["static"][:, :1], batch["static"]], 1)
            fake_mesh = render_views(output, views[kind], view.to(device))
            losses["adv_uv"] = -config.uv_adversarial_weight * d_uv(fake_uv).mean()
            losses["adv_mesh"] = -config.mesh_adversarial_weight * d_mesh(fake_mesh).mean()
        total = sum(losses.values())
        opt_g.zero_grad()
        total.backward()
        opt_g.step()
        if config.adversarial:
            spool = synthetic_pools[kind]
            ridx = spool[torch.randint(len(spool), (config.batch_size,), generator=generator)]
            real = data.batch(kind, ridx, device)
            real_uv = torch.cat([real["target"] * real["static"][:, :1], real["static"]], 1)
            real_mesh = render_views(real["target"], views[kind], view.to(device))
            loss_d = _hinge_d(d_uv(real_uv), d_uv(fake_uv.detach())) + _hinge_d(
                d_mesh(real_mesh), d_mesh(fake_mesh.detach())
            )
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            losses["discriminators"] = loss_d
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach())
        step += 1
        if step % config.checkpoint_every == 0 or step == config.steps:
            if rank == 0:
                means = {k: round(v / config.checkpoint_every, 4) for k, v in totals.items()}
                rate = config.checkpoint_every / (time.perf_counter() - started)
                log.info("step %d (%.2f steps/s): %s", step, rate, means)
                _checkpoint(out, step, unwrap(net), unwrap(d_uv), unwrap(d_mesh), config)
            totals = {}
            started = time.perf_counter()
    distributed_teardown(distributed)
    return out / "texture_net.safetensors"


def _generator_losses(
    output: torch.Tensor,
    batch: dict[str, torch.Tensor],
    mirror: torch.Tensor,
    features: nn.Module,
    config: TrainConfig,
) -> dict[str, torch.Tensor]:
    from recon3d.train.perceptual import perceptual_distance

    valid, held_out, target = batch["valid"], batch["held_out"], batch["target"]
    weight = valid * (1.0 + config.held_out_weight * held_out)
    l1 = ((output - target).abs() * weight).sum() / (3 * weight.sum()).clamp_min(1.0)
    # Perceptual: the target where it is known, the (fixed) output elsewhere.
    composite = torch.where(valid > 0, target, output.detach())
    perceptual = perceptual_distance(features, output, composite, mask=valid).mean()
    # Symmetry where neither the texel nor its mirror was seen.
    b, _, r, _ = output.shape
    has = mirror >= 0
    flat = output.flatten(2)
    mirrored = flat[:, :, mirror.clamp_min(0)]
    inputs = batch["inputs"]
    unseen = (inputs[:, 3].flatten(1) == 0) & (inputs[:, 7].flatten(1) == 0) & has
    sym = ((flat - mirrored).abs().mean(1) * unseen).sum() / unseen.sum().clamp_min(1)
    losses = {
        "l1": l1,
        "perceptual": config.perceptual_weight * perceptual,
        "symmetry": config.symmetry_weight * sym,
    }
    if config.ssim_weight > 0:
        similarity = _ssim_map(output, target)
        losses["ssim"] = config.ssim_weight * (
            1 - (similarity * held_out).sum() / held_out.sum().clamp_min(1.0)
        )
    return losses


def _ssim_map(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """(B, 1, H, W) SSIM (Gaussian window, channels averaged) of images in [-1, 1]."""
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=a.dtype, device=a.device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    channels = a.shape[1]
    kx = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = nn.functional.pad(t, (radius, radius, radius, radius), mode="reflect")
        t = nn.functional.conv2d(t, kx, groups=channels)
        return nn.functional.conv2d(t, ky, groups=channels)

    # SSIM's luminance term is not shift-invariant: compare in [0, 1], as images are.
    a, b = (a + 1) * 0.5, (b + 1) * 0.5
    c1, c2 = 0.01**2, 0.03**2
    ma, mb = blur(a), blur(b)
    va = blur(a * a) - ma * ma
    vb = blur(b * b) - mb * mb
    cov = blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.mean(1, keepdim=True)


def _checkpoint(out, step, net, d_uv, d_mesh, config: TrainConfig) -> None:
    from safetensors.torch import save_file

    meta = {
        "step": str(step),
        "config": json.dumps({"width": config.width, "in_channels": IN_CHANNELS}),
        "train": json.dumps(dataclasses.asdict(config)),
    }
    for name, module in (("texture_net", net), ("d_uv", d_uv), ("d_mesh", d_mesh)):
        tmp = out / f"{name}.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp), meta)
        os.replace(tmp, out / f"{name}.safetensors")


def _resume(out, net, d_uv, d_mesh) -> int:
    from safetensors import safe_open
    from safetensors.torch import load_file

    names = ("texture_net", "d_uv", "d_mesh")
    if not all((out / f"{n}.safetensors").exists() for n in names):
        return 0
    with safe_open(str(out / "texture_net.safetensors"), framework="pt") as f:
        step = int(f.metadata().get("step", "0"))
    for name, module in zip(names, (net, d_uv, d_mesh), strict=True):
        module.load_state_dict(load_file(str(out / f"{name}.safetensors")))
    log.info("resumed from step %d", step)
    return step
