"""Training of the re-rendering networks ("Everybody Dance Now", Chan et al. 2019).

Stage 1, the body generator (pix2pixHD, Wang et al. 2018): three-scale PatchGAN discriminators
with LSGAN (or hinge) losses, the discriminator feature-matching loss and a perceptual loss
(ImageNet MobileNetV2 features by default; any callable returning a list of feature maps)::

    min_G max_{D1,D2,D3} sum_k L_GAN(G, D_k) + l_FM sum_k L_FM(G, D_k) + l_P L_P(G(x), y)

With temporal smoothing the generator sees the previous output frame: for a pair of consecutive
frames it makes ``G(x_{t-1}, 0)`` and then ``G(x_t, G(x_{t-1}, 0))``; the discriminators judge
the pair ``(x_{t-1}, x_t, y_{t-1}, y_t)`` (L_smooth) and the perceptual loss covers both frames.

Stage 2, the FaceGAN (after the body generator, which is frozen): a residual on the face crop,
``r + G(x)_F``, against the real crop ``y_F`` with its own discriminator (conditioned on the
pose-map crop) and a perceptual loss.

Runs on the CPU or a GPU, alone or under ``torchrun`` (DistributedDataParallel; gloo on CPUs,
NCCL on GPUs); checkpoints (every ``checkpoint_every`` steps, safetensors, no pickles) hold the
networks, the optimiser states and the sampler's random state, so a resumed run continues
exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recon3d.reenact.face import crop_boxes, face_boxes, face_visible
from recon3d.reenact.networks import FaceGenerator, RendererConfig, build_generator
from recon3d.train.adversarial import data_parallel, distributed_setup, training_device

log = logging.getLogger(__name__)

__all__ = [
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "PerceptualLoss",
    "ReenactTrainConfig",
    "TrainedReposer",
    "TrainingData",
    "feature_matching_loss",
    "gan_loss",
    "prepare_data",
    "rewind_to_body_end",
    "train_reposer",
]

Features = Callable[[torch.Tensor], list[torch.Tensor]]


@dataclass
class ReenactTrainConfig:
    """Optimisation settings (the architecture is a :class:`RendererConfig`).

    ``steps`` body-generator steps, then ``face_steps`` FaceGAN steps (when the renderer has a
    FaceGAN). Loss weights follow pix2pixHD (``lambda_fm = lambda_perceptual = 10``).
    ``time_limit`` (seconds, 0: none) ends each stage early once it has run that long (a wall
    time budget; the steps actually made are in the history).
    """

    steps: int = 2000
    face_steps: int = 500
    batch_size: int = 1
    learning_rate: float = 2e-4
    beta1: float = 0.5
    ndf: int = 16
    n_layers_d: int = 3
    num_d: int = 3
    face_ndf: int = 16
    gan_loss: str = "lsgan"
    lambda_fm: float = 10.0
    lambda_perceptual: float = 10.0
    seed: int = 0
    checkpoint_every: int = 200
    time_limit: float = 0.0

    def __post_init__(self) -> None:
        if self.gan_loss not in ("lsgan", "hinge"):
            raise ValueError(f"gan_loss must be 'lsgan' or 'hinge', got {self.gan_loss!r}")
        if self.steps < 0 or self.face_steps < 0 or self.batch_size < 1:
            raise ValueError("steps and face_steps must be >= 0 and batch_size >= 1")


# -- discriminators ---------------------------------------------------------------------------
class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convolutions (``n_layers`` of stride 2, one of stride 1), instance norm,
    leaky ReLU. ``forward`` returns every intermediate feature map, the last being the
    (B, 1, h, w) patch scores."""

    def __init__(self, in_channels: int, ndf: int = 16, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))
        ]
        c = ndf
        for i in range(1, n_layers + 1):
            out = min(ndf * 2**i, ndf * 8)
            stride = 2 if i < n_layers else 1
            layers.append(
                nn.Sequential(
                    nn.Conv2d(c, out, 4, stride, 2),
                    nn.InstanceNorm2d(out),
                    nn.LeakyReLU(0.2, True),
                )
            )
            c = out
        layers.append(nn.Conv2d(c, 1, 4, 1, 2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on the input downsampled 1, 2, 4... times (3x3 average pooling,
    stride 2). ``forward`` returns one feature list per scale, finest first."""

    def __init__(self, in_channels: int, ndf: int = 16, n_layers: int = 3, num_d: int = 3) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers) for _ in range(num_d)
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


# -- losses -----------------------------------------------------------------------------------
def gan_loss(
    outputs: list[list[torch.Tensor]], real: bool, *, kind: str = "lsgan", generator: bool = False
) -> torch.Tensor:
    """Adversarial loss summed over scales, on the last feature map (the patch scores) of each.

    ``lsgan``: (D - 1)^2 for real, D^2 for fake. ``hinge``: relu(1 - D) / relu(1 + D) for the
    discriminator, -D for the generator (``generator=True``)."""
    total = outputs[0][-1].new_zeros(())
    for feats in outputs:
        score = feats[-1]
        if kind == "lsgan":
            total = total + ((score - (1.0 if real else 0.0)) ** 2).mean()
        elif generator:
            total = total - score.mean()
        else:
            total = total + F.relu(1 - score if real else 1 + score).mean()
    return total


def feature_matching_loss(
    fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]
) -> torch.Tensor:
    """pix2pixHD's feature matching: L1 between the discriminators' intermediate features of
    generated and real inputs (real detached), weighted ``4 / (n_layers + 1) / num_d``."""
    total = fake[0][0].new_zeros(())
    num_d = len(fake)
    for f_scale, r_scale in zip(fake, real, strict=True):
        weight = 4.0 / (len(f_scale) - 1) / num_d
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + weight * F.l1_loss(f, r.detach())
    return total


class PerceptualLoss(nn.Module):
    """``sum_i w_i / M_i || F_i(x) - F_i(y) ||_1`` over the feature maps of a frozen network
    (pix2pixHD's VGG loss with pluggable features). ``weights`` default: 1/16, 1/8, 1/4, 1/2,
    1, ... up to the number of maps, deeper maps heavier as in pix2pixHD."""

    def __init__(self, features: Features, weights: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.features = features
        self.weights = weights

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.features(x)
        with torch.no_grad():
            fy = self.features(y)
        weights = self.weights or tuple(2.0 ** (i - len(fx) + 1) for i in range(len(fx)))
        total = x.new_zeros(())
        for w, a, b in zip(weights, fx, fy, strict=True):
            total = total + w * F.l1_loss(a, b.detach())
        return total


# -- data -------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """A frame set as tensors: (N, 3, S, S) uint8 ``frames`` and ``pose_maps``, (N, 4) int64
    ``boxes`` (face crops), ``pairs``: indices t with t - 1 in the same sequence, the target's
    ankle ``stats`` and (N,) bool ``face_visible`` (the frames the FaceGAN trains on)."""

    frames: torch.Tensor
    pose_maps: torch.Tensor
    boxes: torch.Tensor
    pairs: torch.Tensor
    stats: Any = None
    face_visible: torch.Tensor | None = None


def prepare_data(frame_set, size: int) -> TrainingData:
    """Pose maps drawn at ``size`` x ``size``, frames resized, face boxes (from the keypoints,
    with :func:`recon3d.reenact.face.face_boxes`, the framing used at render time) and temporal
    pairs from a FrameSet (``frames`` (N, H, W, 3) uint8, ``poses``, ``sequence`` (N,))."""
    import cv2

    from recon3d.reenact.normalize import ankle_stats
    from recon3d.reenact.posemap import draw_pose_map

    frames = np.asarray(frame_set.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be (N, H, W, 3) uint8 with N > 0, got {frames.shape}")
    poses = frame_set.poses
    if len(poses) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(poses)} poses")
    if frames.shape[1:3] != (size, size):
        frames = np.stack(
            [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
        )
    if tuple(poses.image_size) != (size, size):
        poses = poses.resized((size, size))
    maps = np.stack([draw_pose_map(poses, i, size=(size, size)) for i in range(len(poses))])
    sequence = np.asarray(frame_set.sequence)
    pairs = np.nonzero(sequence[1:] == sequence[:-1])[0] + 1
    return TrainingData(
        frames=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
        pose_maps=torch.from_numpy(maps).permute(0, 3, 1, 2).contiguous(),
        boxes=torch.from_numpy(face_boxes(poses, size=(size, size))),
        pairs=torch.from_numpy(pairs.astype(np.int64)),
        stats=_stats(poses, ankle_stats),
        face_visible=torch.from_numpy(face_visible(poses)),
    )


def _stats(poses, ankle_stats):
    """The target's ankle statistics, or None for frames without full bodies."""
    try:
        return ankle_stats(poses)
    except ValueError as exc:
        log.warning("no ankle statistics for these frames (%s): poses will not be normalised", exc)
        return None


def _to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device, non_blocking=True).float() / 127.5 - 1.0


# -- training ---------------------------------------------------------------------------------
@dataclass
class TrainedReposer:
    """What :func:`train_reposer` returns: the trained networks (on the CPU, eval mode), the
    configurations, the per-step losses and timings."""

    generator: nn.Module
    face_generator: nn.Module | None
    renderer: RendererConfig
    config: ReenactTrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps_per_second: float = 0.0
    stats: Any = None


class _Nets(nn.Module):
    """Every trained network in one module, so one state dict covers a checkpoint."""

    def __init__(self, renderer: RendererConfig, config: ReenactTrainConfig) -> None:
        super().__init__()
        self.G = build_generator(renderer)
        frames = 2 if renderer.temporal else 1
        self.D = MultiscaleDiscriminator(6 * frames, config.ndf, config.n_layers_d, config.num_d)
        if renderer.face:
            self.F = FaceGenerator(renderer.face_ngf, n_blocks=renderer.face_blocks)
            self.DF = MultiscaleDiscriminator(6, config.face_ndf, config.n_layers_d, 1)


def train_reposer(
    data: TrainingData,
    renderer: RendererConfig,
    config: ReenactTrainConfig,
    *,
    perceptual: Features | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainedReposer:
    """Train the body generator, then the FaceGAN, on prepared data.

    Args:
        data: from :func:`prepare_data` at ``renderer.size``.
        renderer: the architecture (temporal smoothing, FaceGAN, widths).
        config: optimisation settings.
        perceptual: feature network for the perceptual losses (a callable (B, 3, H, W) in
            [-1, 1] -> list of feature maps, e.g.
            :class:`recon3d.train.perceptual.MobileNetV2Features`); None: no perceptual loss.
        device: "cpu", "cuda", ... (default: CUDA when available). Under ``torchrun`` each
            process takes its local rank's GPU, or the CPU with gloo.
        checkpoint_dir: where ``checkpoint.safetensors`` is written every
            ``config.checkpoint_every`` steps and at the end.
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        progress: show a tqdm progress bar (rank 0 only).
    """
    from tqdm.auto import tqdm

    device = training_device(device)
    distributed, rank, world = distributed_setup(device)
    if len(data.frames) == 0:
        raise ValueError("no training frames")
    if renderer.temporal and len(data.pairs) == 0:
        raise ValueError("temporal smoothing needs consecutive frames (equal sequence ids)")

    torch.manual_seed(config.seed)
    nets = _Nets(renderer, config).to(device)
    g_params = list(nets.G.parameters())
    opts = {
        "opt_G": torch.optim.Adam(g_params, config.learning_rate, betas=(config.beta1, 0.999)),
        "opt_D": torch.optim.Adam(
            nets.D.parameters(), config.learning_rate, betas=(config.beta1, 0.999)
        ),
    }
    if renderer.face:
        opts["opt_F"] = torch.optim.Adam(
            nets.F.parameters(), config.learning_rate, betas=(config.beta1, 0.999)
        )
        opts["opt_DF"] = torch.optim.Adam(
            nets.DF.parameters(), config.learning_rate, betas=(config.beta1, 0.999)
        )
    sampler = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    start = 0
    ckpt = pathlib.Path(checkpoint_dir) / "checkpoint.safetensors" if checkpoint_dir else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    if resume and ckpt is not None and ckpt.exists():
        start, history = _load_checkpoint(ckpt, nets, opts, sampler, renderer, config)
        log.info("resumed from step %d", start)
    if perceptual is not None and isinstance(perceptual, nn.Module):
        perceptual = perceptual.to(device)
    p_loss = PerceptualLoss(perceptual) if perceptual is not None else None

    G, D = nets.G, nets.D
    FG = nets.F if renderer.face else None
    DF = nets.DF if renderer.face else None
    if distributed:
        G, D = data_parallel(G, device), data_parallel(D, device)
        if renderer.face:
            FG, DF = data_parallel(FG, device), data_parallel(DF, device)

    body_pool = data.pairs if renderer.temporal else torch.arange(len(data.frames))
    face_pool = body_pool
    if data.face_visible is not None:  # the FaceGAN trains on frames with a visible face
        face_pool = body_pool[data.face_visible[body_pool]]
    face_steps = config.face_steps if renderer.face else 0
    if face_steps and len(face_pool) == 0:
        log.warning("no training frame shows a face: the FaceGAN is not trained")
        face_steps = 0
    total = config.steps + face_steps
    bar = tqdm(
        total=total, initial=start, desc="reposer", unit="step", disable=not progress or rank
    )
    started = time.perf_counter()
    stage_started = started
    saved = start
    done = 0
    step = start
    try:
        while step < total:
            if config.time_limit > 0 and _out_of_time(stage_started, config, distributed):
                if step >= config.steps:
                    log.info("time limit: FaceGAN stage stopped at step %d", step)
                    break
                log.info("time limit: body stage stopped at step %d", step)
                bar.update(config.steps - step)
                step, stage_started = config.steps, time.perf_counter()
                continue
            if step == config.steps and start < config.steps:
                stage_started = time.perf_counter()
            pool = body_pool if step < config.steps else face_pool
            pick = torch.randint(len(pool), (config.batch_size * world,), generator=sampler)
            index = pool[pick[rank * config.batch_size : (rank + 1) * config.batch_size]]
            if step < config.steps:
                losses = _body_step(G, D, opts, data, index, renderer, config, p_loss, device)
            else:
                losses = _face_step(G, FG, DF, opts, data, index, renderer, config, p_loss, device)
            losses = {"step": float(step), **losses}
            history.append(losses)
            done += 1
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k != "step"})
            step += 1
            if ckpt is not None and rank == 0 and step % config.checkpoint_every == 0:
                _save_checkpoint(ckpt, step, nets, opts, sampler, renderer, config, history)
                saved = step
            if rank == 0 and step % config.checkpoint_every == 0:
                recent = [
                    h for h in history[-config.checkpoint_every :] if h.keys() == losses.keys()
                ]
                means = {k: round(float(np.mean([h[k] for h in recent])), 4) for k in losses}
                log.info(
                    "step %d (%.2f steps/s): %s",
                    step,
                    done / (time.perf_counter() - started),
                    means,
                )
        # The final state (also when a time limit ended a stage early).
        if ckpt is not None and rank == 0 and saved != step:
            _save_checkpoint(ckpt, step, nets, opts, sampler, renderer, config, history)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    if distributed:
        torch.distributed.barrier()
    g = nets.G.cpu().eval()
    f = nets.F.cpu().eval() if renderer.face else None
    return TrainedReposer(
        generator=g,
        face_generator=f,
        renderer=renderer,
        config=config,
        history=history,
        seconds=seconds,
        steps_per_second=done / seconds if seconds > 0 else 0.0,
        stats=data.stats,
    )


def _out_of_time(stage_started: float, config: ReenactTrainConfig, distributed: bool) -> bool:
    """Whether the stage's wall time is spent (rank 0 decides for every process)."""
    late = torch.tensor(float(time.perf_counter() - stage_started > config.time_limit))
    if distributed:
        torch.distributed.broadcast(late, 0)
    return bool(late)


def _generate(G, maps: list[torch.Tensor], temporal: bool) -> list[torch.Tensor]:
    """Outputs for consecutive pose maps, each conditioned on the previous output (zeros for
    the first) when ``temporal``."""
    outs: list[torch.Tensor] = []
    for x in maps:
        if temporal:
            prev = outs[-1] if outs else torch.zeros_like(x)
            outs.append(G(torch.cat([x, prev], 1)))
        else:
            outs.append(G(x))
    return outs


def _batch(data: TrainingData, index: torch.Tensor, temporal: bool, device: torch.device):
    frames = [index - 1, index] if temporal else [index]
    maps = [_to_float(data.pose_maps[i], device) for i in frames]
    real = [_to_float(data.frames[i], device) for i in frames]
    return maps, real


def _body_step(G, D, opts, data, index, renderer, config, p_loss, device) -> dict[str, float]:
    maps, real = _batch(data, index, renderer.temporal, device)
    fake = _generate(G, maps, renderer.temporal)
    cond = torch.cat(maps, 1)
    real_in = torch.cat([cond, *real], 1)
    fake_in = torch.cat([cond, *fake], 1)
    # Generator: fool every scale, match the discriminators' features, perceptual loss.
    d_fake = D(fake_in)
    with torch.no_grad():
        d_real = D(real_in)
    loss_gan = gan_loss(d_fake, True, kind=config.gan_loss, generator=True)
    loss_fm = feature_matching_loss(d_fake, d_real)
    loss_p = fake[0].new_zeros(())
    if p_loss is not None:
        loss_p = sum(p_loss(f, r) for f, r in zip(fake, real, strict=True))
    loss_g = loss_gan + config.lambda_fm * loss_fm + config.lambda_perceptual * loss_p
    opts["opt_G"].zero_grad(set_to_none=True)
    loss_g.backward()
    opts["opt_G"].step()
    # Discriminators: real pairs against the (detached) generated ones.
    loss_d = _discriminator_loss(D, real_in, fake_in.detach(), config.gan_loss)
    opts["opt_D"].zero_grad(set_to_none=True)
    loss_d.backward()
    opts["opt_D"].step()
    with torch.no_grad():
        l1 = sum(F.l1_loss(f, r) for f, r in zip(fake, real, strict=True)) / len(fake)
    return {
        "g_gan": loss_gan.item(),
        "g_fm": loss_fm.item(),
        "g_perceptual": loss_p.item(),
        "d": loss_d.item(),
        "l1": l1.item(),
    }


def _face_step(G, FG, DF, opts, data, index, renderer, config, p_loss, device) -> dict[str, float]:
    maps, real = _batch(data, index, renderer.temporal, device)
    with torch.no_grad():
        body = _generate(G, maps, renderer.temporal)[-1]
    boxes = data.boxes[index].to(device)
    s = renderer.face_size
    pose_crop = crop_boxes(maps[-1], boxes, s)
    body_crop = crop_boxes(body, boxes, s)
    real_crop = crop_boxes(real[-1], boxes, s)
    refined = FG(pose_crop, body_crop)
    d_fake = DF(torch.cat([pose_crop, refined], 1))
    loss_gan = gan_loss(d_fake, True, kind=config.gan_loss, generator=True)
    loss_p = refined.new_zeros(())
    if p_loss is not None:
        loss_p = p_loss(refined, real_crop)
    loss_f = loss_gan + config.lambda_perceptual * loss_p
    opts["opt_F"].zero_grad(set_to_none=True)
    loss_f.backward()
    opts["opt_F"].step()
    loss_d = _discriminator_loss(
        DF,
        torch.cat([pose_crop, real_crop], 1),
        torch.cat([pose_crop, refined.detach()], 1),
        config.gan_loss,
    )
    opts["opt_DF"].zero_grad(set_to_none=True)
    loss_d.backward()
    opts["opt_DF"].step()
    with torch.no_grad():
        l1 = F.l1_loss(refined, real_crop)
        l1_body = F.l1_loss(body_crop, real_crop)
    return {
        "face_gan": loss_gan.item(),
        "face_perceptual": loss_p.item(),
        "face_d": loss_d.item(),
        "face_l1": l1.item(),
        "face_l1_body": l1_body.item(),
    }


def _discriminator_loss(D, real_in, fake_in, kind: str) -> torch.Tensor:
    """Real and generated inputs in one forward pass (instance norm keeps samples apart; one
    pass per backward is what DistributedDataParallel expects)."""
    both = D(torch.cat([real_in, fake_in], 0))
    n = len(real_in)
    real = [[f[:n] for f in scale] for scale in both]
    fake = [[f[n:] for f in scale] for scale in both]
    return 0.5 * (gan_loss(real, True, kind=kind) + gan_loss(fake, False, kind=kind))


# -- checkpoints ------------------------------------------------------------------------------
def _save_checkpoint(path, step, nets, opts, sampler, renderer, config, history) -> None:
    from safetensors.torch import save

    from recon3d.exchange.atomic import write_atomic

    tensors = {f"nets.{k}": v.detach().cpu().contiguous() for k, v in nets.state_dict().items()}
    groups = {}
    for name, opt in opts.items():
        state = opt.state_dict()
        groups[name] = state["param_groups"]
        for idx, entries in state["state"].items():
            for key, value in entries.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{name}.{idx}.{key}"] = t.detach().cpu().contiguous()
    tensors["sampler"] = sampler.get_state()
    meta = {
        "step": str(step),
        "renderer": json.dumps(renderer.to_dict()),
        "train": json.dumps(asdict(config)),
        "param_groups": json.dumps(groups),
        "history": json.dumps(history),
    }
    write_atomic(path, save(tensors, metadata=meta))


def _load_checkpoint(path, nets, opts, sampler, renderer, config):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if json.loads(meta["renderer"]) != renderer.to_dict():
        raise ValueError(f"checkpoint {path} was made for another renderer configuration")
    nets.load_state_dict(
        {k[len("nets.") :]: v for k, v in tensors.items() if k.startswith("nets.")}
    )
    groups = json.loads(meta["param_groups"])
    for name, opt in opts.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        prefix = name + "."
        for key, value in tensors.items():
            if key.startswith(prefix):
                idx, entry = key[len(prefix) :].split(".", 1)
                state.setdefault(int(idx), {})[entry] = value
        opt.load_state_dict({"state": state, "param_groups": groups[name]})
    sampler.set_state(tensors["sampler"])
    return int(meta["step"]), json.loads(meta["history"])


def rewind_to_body_end(source: str | os.PathLike, destination: str | os.PathLike) -> int:
    """Copy a checkpoint rewound to the end of its body stage, so that a resumed run with a
    larger ``steps`` goes on training the body generator (e.g. a run that a time limit ended).

    A body stage ended by ``time_limit`` jumps the step counter to ``steps``; the copy's counter
    is set back to the number of body steps actually made. A FaceGAN stage, which was trained on
    the shorter body generator, is undone: fresh FaceGAN and face discriminator (the seed's
    initial weights), no FaceGAN optimiser state, its history dropped. The body generator, its
    discriminator, optimisers and the sampler state are kept.

    Returns:
        the number of body steps in the copy (where a resumed run continues).
    """
    from safetensors import safe_open
    from safetensors.torch import save

    from recon3d.exchange.atomic import write_atomic

    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    renderer = RendererConfig.from_dict(json.loads(meta["renderer"]))
    config = ReenactTrainConfig(**json.loads(meta["train"]))
    body = [h for h in json.loads(meta["history"]) if h["step"] < config.steps]
    if [int(h["step"]) for h in body] != list(range(len(body))):
        raise ValueError(f"checkpoint {source}: its body-stage history is not contiguous")
    if renderer.face:
        torch.manual_seed(config.seed)
        fresh = _Nets(renderer, config).state_dict()
        for key in list(tensors):
            if key.startswith(("nets.F.", "nets.DF.")):
                tensors[key] = fresh[key[len("nets.") :]].contiguous()
            elif key.startswith(("opt_F.", "opt_DF.")):
                del tensors[key]
    meta["history"] = json.dumps(body)
    meta["step"] = str(len(body))
    pathlib.Path(destination).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(destination, save(tensors, metadata=meta))
    return len(body)
