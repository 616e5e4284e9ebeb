"""The re-rendering networks of "Everybody Dance Now" (Chan et al. 2019): pix2pixHD generators
(Wang et al. 2018) conditioned on a pose map and, for temporal smoothing, on the previous output
frame, and the FaceGAN residual generator for the face crop.

Plain ``nn.Module`` s: no I/O, no device logic. Images are (B, 3, H, W) float tensors in
[-1, 1]; pose maps are drawn RGB skeletons scaled the same way.

Width: pix2pixHD's global generator (``ngf=64``, 4 downsamplings, 9 residual blocks) costs
55 GMAC per 256x256 frame and has 182 M parameters; the defaults here (``ngf=16``, 3
downsamplings, 6 residual blocks at 1/8 resolution) cost 2.7 GMAC and 2.0 M parameters, which is
what a 2-core CPU can run at about 8 frames/s at 256x256 (see docs/reenactment.md for the
measurement). The price is capacity: a 16-wide generator reproduces a person's colours,
silhouette and coarse clothing, but fine texture (cloth folds, facial detail) comes out blurred.
``ngf`` is a parameter for users with a GPU or more time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

__all__ = [
    "FaceGenerator",
    "GlobalGenerator",
    "LocalEnhancer",
    "RendererConfig",
    "ResidualBlock",
    "build_generator",
]


@dataclass
class RendererConfig:
    """Architecture of a reposer's networks (stored with its weights).

    Attributes:
        size: output frames are ``size`` x ``size`` pixels.
        ngf: width of the first generator layer (doubles at each downsampling).
        n_downsample: stride-2 convolutions of the global generator.
        n_blocks: residual blocks at the bottleneck of the global generator.
        temporal: the generator also sees the previous output frame (temporal smoothing).
        local_enhancer: wrap the global generator (run at ``size / 2``) in pix2pixHD's local
            enhancer; None chooses it for ``size >= 512``.
        n_blocks_local: residual blocks of the local enhancer.
        face: a FaceGAN refines the face crop.
        face_size: side of the face crop the FaceGAN works at (pixels); None: ``size // 4``.
        face_ngf: width of the FaceGAN.
        face_blocks: residual blocks of the FaceGAN.
    """

    size: int = 256
    ngf: int = 16
    n_downsample: int = 3
    n_blocks: int = 6
    temporal: bool = True
    local_enhancer: bool | None = None
    n_blocks_local: int = 2
    face: bool = True
    face_size: int | None = None
    face_ngf: int = 16
    face_blocks: int = 2

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 16:
            raise ValueError(f"size must be a multiple of 16 and >= 32, got {self.size}")
        if self.local_enhancer is None:
            self.local_enhancer = self.size >= 512
        if self.face_size is None:
            self.face_size = max(32, (self.size // 4) // 8 * 8)
        if self.ngf < 1 or self.face_ngf < 1:
            raise ValueError("ngf and face_ngf must be positive")

    @property
    def in_channels(self) -> int:
        """Generator input: the pose map (3), plus the previous frame (3) when temporal."""
        return 6 if self.temporal else 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RendererConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown renderer config keys {sorted(unknown)}")
        return cls(**data)


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and a skip connection (pix2pixHD's ResnetBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator: 7x7 conv, ``n_downsample`` stride-2 convs, residual blocks,
    as many transposed convs back up, 7x7 conv and tanh.

    Input (B, in_channels, H, W), H and W multiples of ``2**n_downsample``; output (B, 3, H, W)
    in [-1, 1].
    """

    def __init__(
        self, in_channels: int, ngf: int = 16, n_downsample: int = 3, n_blocks: int = 6
    ) -> None:
        super().__init__()
        self.n_downsample = n_downsample
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode="reflect"),
            _norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for i in range(n_downsample):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(True)]
        width = ngf * 2**n_downsample
        layers += [ResidualBlock(width) for _ in range(n_blocks)]
        for i in range(n_downsample, 0, -1):
            c = ngf * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(c // 2),
                nn.ReLU(True),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(ngf, 3, 7, padding=3, padding_mode="reflect"), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.features[0].in_channels, 2**self.n_downsample, "GlobalGenerator")
        return self.head(_channels_last(self.features(x)))


class LocalEnhancer(nn.Module):
    """pix2pixHD's local enhancer for outputs of 512 px and more: the global generator runs on
    the input downsampled by 2 and its last feature map (``ngf`` channels, half resolution) is
    added to a full-resolution branch of width ``ngf // 2``.

    Input (B, in_channels, H, W), H and W multiples of ``2**(n_downsample + 1)``; output
    (B, 3, H, W) in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int,
        ngf: int = 16,
        n_downsample: int = 3,
        n_blocks: int = 6,
        n_blocks_local: int = 2,
    ) -> None:
        super().__init__()
        self.global_net = GlobalGenerator(in_channels, ngf, n_downsample, n_blocks)
        local = max(ngf // 2, 4)
        self.n_downsample = n_downsample + 1
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.local_down = nn.Sequential(
            nn.Conv2d(in_channels, local, 7, padding=3, padding_mode="reflect"),
            _norm(local),
            nn.ReLU(True),
            nn.Conv2d(local, ngf, 3, stride=2, padding=1),
            _norm(ngf),
            nn.ReLU(True),
        )
        self.local_up = nn.Sequential(
            *[ResidualBlock(ngf) for _ in range(n_blocks_local)],
            nn.ConvTranspose2d(ngf, local, 3, stride=2, padding=1, output_padding=1),
            _norm(local),
            nn.ReLU(True),
            nn.Conv2d(local, 3, 7, padding=3, padding_mode="reflect"),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.local_down[0].in_channels, 2**self.n_downsample, "LocalEnhancer")
        coarse = self.global_net.features(self.downsample(x))
        h = self.local_up[:-2](self.local_down(x) + coarse)
        return self.local_up[-2:](_channels_last(h))


class FaceGenerator(nn.Module):
    """FaceGAN: a residual for the face crop. Input: the face crop of the pose map and the body
    generator's face crop, (B, 3, S, S) each; output: the refined crop, body crop + residual,
    clamped to [-1, 1] (B, 3, S, S). The last layer starts at zero, so an untrained FaceGAN
    returns the body generator's crop unchanged.
    """

    def __init__(self, ngf: int = 16, n_downsample: int = 2, n_blocks: int = 2) -> None:
        super().__init__()
        self.n_downsample = n_downsample
        layers: list[nn.Module] = [
            nn.Conv2d(6, ngf, 7, padding=3, padding_mode="reflect"),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(n_downsample):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(ngf * 2**n_downsample) for _ in range(n_blocks)]
        for i in range(n_downsample, 0, -1):
            c = ngf * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(c // 2),
                nn.ReLU(True),
            ]
        self.features = nn.Sequential(*layers)
        self.residual = nn.Conv2d(ngf, 3, 7, padding=3, padding_mode="reflect")
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)

    def forward(self, pose_crop: torch.Tensor, body_crop: torch.Tensor) -> torch.Tensor:
        _check_image(pose_crop, 3, 2**self.n_downsample, "FaceGenerator pose crop")
        if body_crop.shape != pose_crop.shape:
            raise ValueError(
                f"FaceGenerator: body crop {tuple(body_crop.shape)} must match the pose crop "
                f"{tuple(pose_crop.shape)}"
            )
        r = self.residual(self.features(torch.cat([pose_crop, body_crop], 1)))
        return (body_crop + r).clamp(-1.0, 1.0)


def build_generator(config: RendererConfig) -> nn.Module:
    """The body generator of a configuration: a :class:`LocalEnhancer` when
    ``config.local_enhancer``, else a :class:`GlobalGenerator`."""
    if config.local_enhancer:
        return LocalEnhancer(
            config.in_channels, config.ngf, config.n_downsample, config.n_blocks,
            config.n_blocks_local,
        )  # fmt: skip
    return GlobalGenerator(config.in_channels, config.ngf, config.n_downsample, config.n_blocks)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """The 7x7 output convolutions (few output channels, full resolution) run about twice as
    fast on the CPU with channels-last inputs; the rest of the network does not gain."""
    return x.contiguous(memory_format=torch.channels_last)


def _check_image(x: torch.Tensor, channels: int, multiple: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what}: expected (B, {channels}, H, W), got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(
            f"{what}: H and W must be multiples of {multiple}, got {tuple(x.shape[2:])}"
        )
