"""What the body and head network trainers share: LSGAN losses of the adversarial prior (HMR,
Kanazawa et al. 2018, with least-squares GAN losses), process-group set-up for ``torchrun``, and
safetensors checkpoints of a network and its discriminator that a run resumes from. Training
only.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "data_parallel",
    "discriminator_loss",
    "distributed_setup",
    "distributed_teardown",
    "generator_loss",
    "resume",
    "save_checkpoint",
    "training_device",
    "unwrap",
]


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of the generator: the discriminator's logits on its outputs pushed to 1."""
    return ((fake - 1) ** 2).mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of the discriminator: plausible samples to 1, the network's (detached) to 0."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def training_device(requested: str | torch.device | None = None) -> torch.device:
    """The device a trainer runs on: ``requested``, else CUDA when available, else the CPU.
    A bare ``"cuda"`` becomes the current GPU, or under ``torchrun`` the GPU of the process's
    ``LOCAL_RANK``; either is made the current one (NCCL needs it)."""
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        if device.index is None:
            distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
            index = int(os.environ.get("LOCAL_RANK", "0")) if distributed else None
            device = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        torch.cuda.set_device(device)
    return device


def distributed_setup(device: torch.device | None = None) -> tuple[bool, int, int]:
    """Join the process group when run under ``torchrun`` (NCCL for a GPU ``device``, gloo
    otherwise); ``(distributed, rank, world)``."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not torch.distributed.is_initialized():
        cuda = device is not None and device.type == "cuda"
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    return distributed, rank, world


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel on ``device`` (its GPU, or the CPU)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def distributed_teardown(distributed: bool) -> None:
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") else module


def save_checkpoint(
    out: pathlib.Path,
    name: str,
    epoch: int,
    net: nn.Module,
    disc: nn.Module,
    config: Any,
    snapshot_every: int = 0,
) -> None:
    """Write ``out/name`` and ``out/discriminator.safetensors`` (each module's own ``config()``
    in its metadata, where it has one), each atomically (temporary file, then rename): the last
    checkpoint, which a run resumes from. With ``snapshot_every`` > 0, every that many epochs
    the network is also kept as ``out/<stem>_e<epoch>.safetensors``, so an earlier epoch can
    still be evaluated once the run has gone past it."""
    from safetensors.torch import save_file

    meta = {"epoch": str(epoch), "train": json.dumps(asdict(config))}
    files = [(net, name), (disc, "discriminator.safetensors")]
    if snapshot_every > 0 and (epoch + 1) % snapshot_every == 0:
        stem = pathlib.Path(name)
        files.append((net, f"{stem.stem}_e{epoch:03d}{stem.suffix}"))
    for module, filename in files:
        target = out / filename
        tmp = target.with_name(target.name + ".tmp")
        own = {"config": json.dumps(module.config())} if hasattr(module, "config") else {}
        save_file(
            {k: v.contiguous() for k, v in module.state_dict().items()},
            str(tmp),
            metadata={**meta, **own},
        )
        tmp.replace(target)


def resume(out: pathlib.Path, name: str, net: nn.Module, disc: nn.Module) -> int:
    """Load the last checkpoint in ``out`` if there is one; the epoch to start from."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = out / name
    if not path.exists() or not (out / "discriminator.safetensors").exists():
        return 0
    with safe_open(str(path), framework="pt") as f:
        epoch = int(f.metadata().get("epoch", "-1"))
    net.load_state_dict(load_file(str(path)))
    disc.load_state_dict(load_file(str(out / "discriminator.safetensors")))
    log.info("resumed from epoch %d", epoch)
    return epoch + 1
