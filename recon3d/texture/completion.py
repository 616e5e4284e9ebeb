"""Completion of the unseen texture with a trained gated-convolution U-Net (issue 5).

The projection (:mod:`recon3d.texture.projection`) gives the photo's colours where the camera saw
the surface, a confidence per texel, and a deterministic baseline fill (mirror, then harmonic
propagation over the mesh) everywhere else. The completion network works in UV space at a
reduced resolution ``R`` (128²): it sees the partial texture, its confidence, the same two
mirrored through the layout's left/right symmetry map, the baseline fill, and the layout's
body-part labels, and predicts a correction of the baseline. The correction is upsampled to the
full texture and applied where the photo did not see the surface (blended by confidence), so
observed texels keep the photo's full-resolution colours.

The network is shared by heads and bodies: the part labels tell the two layouts apart (a head
texture uses the four head labels, a body texture the sixteen body labels).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recon3d.weights import cached_arrays

__all__ = [
    "ASSET",
    "complete",
    "visibility_rgba",
    "HEAD_PARTS",
    "NETWORK_SIZE",
    "GatedConv2d",
    "TextureCompletionNet",
    "TextureCompleter",
    "UVMaps",
    "compose",
    "local_fill",
    "network_inputs",
    "uv_maps_for",
]

ASSET = "texture_net.safetensors"
NETWORK_SIZE = 128
HEAD_PARTS = ("face", "scalp", "side", "neck")
# Body part labels come first, then the head's: one label vocabulary for both layouts.
BODY_PARTS = (
    "torso",
    "head",
    "upperarm.L",
    "upperarm.R",
    "forearm.L",
    "forearm.R",
    "hand.L",
    "hand.R",
    "thigh.L",
    "thigh.R",
    "shin.L",
    "shin.R",
    "foot.L",
    "foot.R",
    "eyes",
    "mouth",
)
NUM_PARTS = len(BODY_PARTS) + len(HEAD_PARTS)
# partial (3) + confidence (1) + mirrored partial (3) + mirrored confidence (1) + baseline (3)
# + local fill (3) + layout mask (1) + part one-hot.
IN_CHANNELS = 15 + NUM_PARTS
# Where the dynamic channels sit in the inputs.
BASELINE = slice(8, 11)
LOCAL = slice(11, 14)
# Confidence above which a texel counts as seen for the hand-over to the network's colours
# (the projection's own blend uses min(4 conf, 1)).
_ALPHA_GAIN = 4.0
# Texels seen at grazing angles hold stretched photo colours (glasses smeared towards the ear):
# only texels seen at least this well seed the local fill.
LOCAL_SEED_CONFIDENCE = 0.25
# Largest texture side at which the fills and the network's fields are combined.
_FILL_SIZE = 1024


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019, "Free-Form Image Inpainting with Gated Convolution"):
    ``ELU(conv_f(x)) * sigmoid(conv_g(x))``, so the layer learns where its input is valid
    instead of taking a hand-made mask."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride, pad, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gate = self.conv(x).chunk(2, dim=1)
        return nn.functional.elu(feature) * torch.sigmoid(gate)


class TextureCompletionNet(nn.Module):
    """Gated-convolution U-Net in UV space.

    ``forward(inputs)`` takes (B, IN_CHANNELS, R, R) network inputs (:func:`network_inputs`)
    and returns (B, 3, R, R): the completed texture in [-1, 1]. The network predicts, per texel,
    a blend weight between two fills (the mesh-harmonic baseline, which carries colours across
    seams and to the back, and the local UV fill, which is sharper inside seen regions) and a
    colour correction: ``mix(baseline, local, weight) + correction`` (:meth:`components`). The
    split lets the completion apply the same blend and correction to full-resolution fills.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.width = width
        self.enc0 = nn.Sequential(GatedConv2d(IN_CHANNELS, w), GatedConv2d(w, w))
        self.enc1 = nn.Sequential(GatedConv2d(w, 2 * w, 3, 2), GatedConv2d(2 * w, 2 * w))
        self.enc2 = nn.Sequential(GatedConv2d(2 * w, 4 * w, 3, 2), GatedConv2d(4 * w, 4 * w))
        self.enc3 = nn.Sequential(GatedConv2d(4 * w, 4 * w, 3, 2), GatedConv2d(4 * w, 4 * w))
        # Dilated bottleneck at R/8: a wide receptive field to carry colours across the atlas.
        self.middle = nn.Sequential(
            GatedConv2d(4 * w, 4 * w, dilation=2),
            GatedConv2d(4 * w, 4 * w, dilation=4),
            GatedConv2d(4 * w, 4 * w, dilation=8),
        )
        self.dec2 = GatedConv2d(8 * w, 4 * w)
        self.dec1 = GatedConv2d(6 * w, 2 * w)
        self.dec0 = GatedConv2d(3 * w, w)
        self.out = nn.Conv2d(w, 4, 3, padding=1)
        # Zero correction and an even blend at initialisation.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        correction, weight = self.components(inputs)
        return compose(inputs[:, BASELINE], inputs[:, LOCAL], correction, weight)

    def components(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, R, R) colour correction and (B, 1, R, R) blend weight in [0, 1] (0: the
        baseline fill, 1: the local fill)."""
        if inputs.ndim != 4 or inputs.shape[1] != IN_CHANNELS:
            raise ValueError(f"expected (B, {IN_CHANNELS}, R, R) inputs, got {tuple(inputs.shape)}")
        if inputs.shape[-1] % 8 or inputs.shape[-2] % 8:
            raise ValueError(f"the UV size must be a multiple of 8, got {tuple(inputs.shape)}")
        e0 = self.enc0(inputs)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        x = self.middle(self.enc3(e2))
        up = functools.partial(nn.functional.interpolate, scale_factor=2, mode="nearest")
        x = self.dec2(torch.cat([up(x), e2], 1))
        x = self.dec1(torch.cat([up(x), e1], 1))
        x = self.dec0(torch.cat([up(x), e0], 1))
        out = self.out(x)
        return out[:, :3], torch.sigmoid(out[:, 3:])


def compose(
    baseline: torch.Tensor, local: torch.Tensor, correction: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``baseline + weight * (local - baseline) + correction``, clamped to [-1, 1]."""
    return (baseline + weight * (local - baseline) + correction).clamp(-1.0, 1.0)


def local_fill(
    observed: np.ndarray,
    confidence: np.ndarray,
    levels: int = 8,
    max_size: int = 1024,
    seed_confidence: float = LOCAL_SEED_CONFIDENCE,
) -> np.ndarray:
    """(T, T, 3) float32 push-pull fill of the unseen texels from the seen ones, in UV space.

    Normalised convolution over an image pyramid (Gortler et al. 1996): colours and their
    weights (seen texels only) are reduced level by level, then on the way up each level keeps
    its own normalised colour where it has enough weight and takes the coarser level's where
    not. Sharp near seen texels and cheap; it knows nothing of seams or symmetry, which the
    baseline fill handles. Textures larger than ``max_size`` are filled at ``max_size`` (seen
    texels keep their own colours at full resolution). Only texels seen with at least
    ``seed_confidence`` seed the fill.
    """
    import cv2

    size = observed.shape[0]
    seed = confidence >= seed_confidence
    weight = seed.astype(np.float32)
    colour = np.zeros(observed.shape, np.float32)
    cv2.copyTo(observed.astype(np.float32), seed.view(np.uint8), colour)
    if size > max_size:
        colour = cv2.resize(colour, (max_size, max_size), interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, (max_size, max_size), interpolation=cv2.INTER_AREA)
    pyramid = [(colour, weight)]
    for _ in range(levels):
        colour, weight = cv2.pyrDown(colour), cv2.pyrDown(weight)
        pyramid.append((colour, weight))
        if min(weight.shape) <= 4:
            break
    colour, weight = pyramid[-1]
    filled = colour / np.maximum(weight, 1e-6)[..., None]
    channels = observed.shape[2]
    for colour, weight in reversed(pyramid[:-1]):
        coarse = cv2.resize(
            filled, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        # A quarter of the kernel's weight on seen texels is enough to trust this level:
        # filled = trust * colour / weight + (1 - trust) * coarse. OpenCV's per-element
        # products with the weights repeated per channel are ~10x faster than numpy's
        # broadcast over a trailing axis of 3.
        trust = np.minimum(4.0 * weight, 1.0)
        gain = trust / np.maximum(weight, 1e-6)
        filled = cv2.add(
            cv2.multiply(colour, cv2.merge([gain] * channels)),
            cv2.multiply(coarse, cv2.merge([1.0 - trust] * channels)),
        )
    if size > max_size:
        filled = cv2.resize(filled, (size, size), interpolation=cv2.INTER_LINEAR)
        seen = confidence > 0
        filled[seen] = observed[seen]
    return filled


@dataclass(frozen=True)
class UVMaps:
    """Static maps of one UV layout at the network resolution R.

    ``used`` (R, R) bool texels inside the layout's islands; ``mirror`` (R*R,) int flat index of
    each texel's left/right mirror texel or -1; ``parts`` (R, R) int label in the shared
    vocabulary (:data:`BODY_PARTS` then :data:`HEAD_PARTS`), -1 outside the islands."""

    used: np.ndarray
    mirror: np.ndarray
    parts: np.ndarray

    @functools.cached_property
    def static_channels(self) -> np.ndarray:
        """(1 + NUM_PARTS, R, R) float32: the layout mask and the part one-hot."""
        size = self.used.shape[0]
        one_hot = np.zeros((NUM_PARTS, size, size), np.float32)
        ys, xs = np.nonzero(self.parts >= 0)
        one_hot[self.parts[ys, xs], ys, xs] = 1.0
        return np.concatenate([self.used[None].astype(np.float32), one_hot])


def _downsample(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def network_inputs(
    texture: np.ndarray,
    observed: np.ndarray,
    confidence: np.ndarray,
    maps: UVMaps,
    local: np.ndarray | None = None,
) -> np.ndarray:
    """(IN_CHANNELS, R, R) float32 network inputs from a projection at any resolution T.

    Args:
        texture: (T, T, 3) uint8 baseline texture (observed colours blended with the fill).
        observed: (T, T, 3) uint8 photo colours, zero where unseen.
        confidence: (T, T) float visibility confidence in [0, 1].
        maps: the layout's :class:`UVMaps` at R.
        local: (T, T, 3) float :func:`local_fill` of ``observed`` (computed when None).
    """
    size = maps.used.shape[0]
    if texture.shape[:2] != confidence.shape or observed.shape != texture.shape:
        raise ValueError(
            f"expected texture, observed (T, T, 3) and confidence (T, T) of one size, got "
            f"{texture.shape}, {observed.shape}, {confidence.shape}"
        )
    import cv2

    conf = np.clip(confidence.astype(np.float32), 0.0, 1.0)
    conf_r = _downsample(conf, size)
    weighted = _downsample(cv2.multiply(observed.astype(np.float32), cv2.merge([conf] * 3)), size)
    partial = np.where(conf_r[..., None] > 1e-4, weighted / np.maximum(conf_r, 1e-4)[..., None], 0)
    baseline = _downsample(texture.astype(np.float32), size)
    if local is None:
        local = local_fill(observed, conf)
    local_r = _downsample(local.astype(np.float32), size)
    used = maps.used
    conf_r = conf_r * used
    partial = partial * used[..., None]
    flat_conf = conf_r.reshape(-1)
    flat_partial = partial.reshape(-1, 3)
    has_mirror = maps.mirror >= 0
    source = np.maximum(maps.mirror, 0)
    m_conf = np.where(has_mirror, flat_conf[source], 0.0).reshape(size, size)
    m_partial = np.where(has_mirror[:, None], flat_partial[source], 0.0).reshape(size, size, 3)
    to_signed = 2.0 / 255.0
    channels = [
        partial.transpose(2, 0, 1) * to_signed - conf_r[None],
        conf_r[None],
        m_partial.transpose(2, 0, 1) * to_signed - m_conf[None],
        m_conf[None],
        baseline.transpose(2, 0, 1) * to_signed - 1.0,
        local_r.transpose(2, 0, 1) * to_signed - 1.0,
    ]
    return np.concatenate([*channels, maps.static_channels]).astype(np.float32)


def uv_maps_for(
    uv: np.ndarray,
    face_uv: np.ndarray,
    face_labels: np.ndarray,
    mirror_full: np.ndarray,
    full_size: int,
    size: int = NETWORK_SIZE,
) -> UVMaps:
    """Network-resolution maps of a layout.

    Args:
        uv: (U, 2) texture coordinates; face_uv: (F, 3) their indices per triangle.
        face_labels: (F,) part label per triangle in the shared vocabulary.
        mirror_full: (T*T,) flat mirror index map of the layout at ``full_size`` T (-1: none).
        size: network resolution R (T must be a multiple of it).
    """
    from recon3d.texture.layout import downsample_mirror, rasterize_uv

    texel_face, _ = rasterize_uv(uv, face_uv, size)
    used = texel_face >= 0
    parts = np.where(used, face_labels[np.maximum(texel_face, 0)], -1)
    mirror = downsample_mirror(mirror_full, full_size, used)
    return UVMaps(used=used, mirror=mirror.astype(np.int64), parts=parts.astype(np.int64))


def visibility_rgba(observed: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(T, T, 4) uint8: the raw projection (photo colours, black where unseen) with its
    visibility as alpha, ``255 * min(1, 4 * confidence)`` (the weight with which completion
    hands over from the photo to the completed colours)."""
    alpha = np.minimum(confidence.astype(np.float32) * _ALPHA_GAIN, 1.0) * 255.0
    return np.dstack([observed, np.round(alpha).astype(np.uint8)])


def complete(completer: TextureCompleter | None, projection) -> np.ndarray:
    """The texture of a reconstruction from a projection
    (:class:`~recon3d.texture.projection.TextureResult`): completed by ``completer``, or with
    None the raw projection with its visibility as alpha (:func:`visibility_rgba`)."""
    if completer is None:
        return visibility_rgba(projection.observed, projection.confidence)
    return completer(projection.texture, projection.observed, projection.confidence)


class TextureCompleter:
    """A trained :class:`TextureCompletionNet` with the UV maps of one layout.

    Build with :meth:`from_pretrained` (``kind`` ``"head"`` or ``"body"``); call with a
    projection to get the completed full-resolution texture.
    """

    def __init__(
        self, net: TextureCompletionNet, maps: UVMaps, device: str | torch.device = "cpu"
    ) -> None:
        self.net = net.eval().to(device)
        self.maps = maps
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(
        cls, kind: str, model=None, device: str | torch.device | None = None
    ) -> TextureCompleter:
        """The shipped network (hash-checked) for the ``"head"`` or ``"body"`` layout of
        ``model`` (the shipped head or body model when None)."""
        arrays, metadata = cached_arrays(ASSET, ())
        config = json.loads(metadata.get("config", "{}"))
        net = TextureCompletionNet(width=int(config["width"]))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
        maps = layout_maps(kind, model)
        return cls(net, maps, device or "cpu")

    def to(self, device: str | torch.device) -> TextureCompleter:
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    @torch.no_grad()
    def __call__(
        self, texture: np.ndarray, observed: np.ndarray, confidence: np.ndarray
    ) -> np.ndarray:
        """(T, T, 3) uint8 completed texture.

        Args:
            texture: (T, T, 3) uint8 baseline texture from the projection.
            observed: (T, T, 3) uint8 photo colours (zero where unseen).
            confidence: (T, T) float32 visibility confidence.
        """
        import cv2

        from recon3d._threads import torch_single_threaded

        full = texture.shape[0]
        conf = confidence.astype(np.float32, copy=False)
        # The fills and the network's fields at the fill resolution (at most 1024², where the
        # projection computes its own fill); only the resulting change of colour is upsampled.
        # Full-resolution work goes channel by channel: a 2048² float32 RGB temporary (48 MB)
        # is above glibc's mmap threshold (32 MB), so each call would fault in fresh pages,
        # which cost ~0.1 s per such array on the development VM.
        work = min(full, _FILL_SIZE)
        if work < full:
            texture_w = _downsample(texture, work)
            conf_w = _downsample(conf, work)
            weighted = cv2.merge(
                [
                    _downsample(cv2.multiply(plane, conf, dtype=cv2.CV_32F), work)
                    for plane in cv2.split(observed)
                ]
            )
            # weighted / conf where seen, else 0 (OpenCV: numpy's broadcast over a trailing
            # axis of 3 costs ~10x more at this size).
            observed_w = np.zeros(weighted.shape, np.float32)
            divided = cv2.divide(weighted, cv2.merge([np.maximum(conf_w, 1e-6)] * 3))
            cv2.copyTo(divided, (conf_w > 0).view(np.uint8), observed_w)
            observed_w = observed_w.astype(np.uint8)
        else:
            texture_w, conf_w, observed_w = texture, conf, observed
        local = local_fill(observed_w, conf_w)
        inputs = network_inputs(texture_w, observed_w, conf_w, self.maps, local)
        x = torch.from_numpy(inputs)[None].to(self.device)
        with torch_single_threaded():
            correction, weight = self.net.components(x)
        fields = torch.cat([correction * 127.5, weight], 1)[0].permute(1, 2, 0).float().cpu()
        fields = cv2.resize(fields.numpy(), (work, work), interpolation=cv2.INTER_LINEAR)
        *correction_planes, weight_plane = cv2.split(fields)
        unseen = 1.0 - np.minimum(conf * _ALPHA_GAIN, 1.0)
        channels = []
        # Channel by channel in OpenCV: numpy's broadcast of the (R, R, 1) weight over a
        # trailing axis of 3 cost ~10x more.
        for texture_plane, local_plane, base_plane, correction_plane in zip(
            cv2.split(texture),
            cv2.split(local),
            cv2.split(texture_w),
            correction_planes,
            strict=True,
        ):
            # The change of colour: weight * (local - baseline) + correction.
            change_plane = cv2.add(
                cv2.multiply(cv2.subtract(local_plane, base_plane, dtype=cv2.CV_32F), weight_plane),
                correction_plane,
            )
            if work < full:
                change_plane = cv2.resize(
                    change_plane, (full, full), interpolation=cv2.INTER_LINEAR
                )
            # Saturating, rounding add in OpenCV (numpy's clip is several times slower here).
            channels.append(
                cv2.add(texture_plane, cv2.multiply(change_plane, unseen), dtype=cv2.CV_8U)
            )
        return cv2.merge(channels)


def layout_maps(kind: str, model=None) -> UVMaps:
    """:class:`UVMaps` at :data:`NETWORK_SIZE` of the shipped head or body layout."""
    if kind == "head":
        return _head_maps(model)
    if kind == "body":
        return _body_maps(model)
    raise ValueError(f"kind must be 'head' or 'body', got {kind!r}")


def _head_labels(model) -> np.ndarray:
    """(F,) part label of each head-model triangle in the shared vocabulary: face (inside the
    jaw line and below the brows, front half), scalp (above the brows), neck (below the chin),
    side (ears, back of the head)."""
    from recon3d.models.landmarks import interpolate_surface

    mean = model.mean_vertices.cpu().numpy()
    faces = model.faces
    ibug = interpolate_surface(mean, faces, model.landmarks["ibug68"])
    centroid = mean[faces].mean(1)
    brow_y = ibug[17:27, 1].mean()
    chin_y = ibug[8, 1]
    jaw_x = np.abs(ibug[[0, 16], 0] - ibug[27, 0]).mean()
    front_z = ibug[[0, 16], 2].mean()
    labels = np.full(len(faces), HEAD_PARTS.index("side"))
    dx = np.abs(centroid[:, 0] - ibug[27, 0])
    face = (dx < jaw_x) & (centroid[:, 2] < front_z) & (centroid[:, 1] >= brow_y - 0.01)
    labels[face] = HEAD_PARTS.index("face")
    labels[centroid[:, 1] < brow_y - 0.01] = HEAD_PARTS.index("scalp")
    labels[(centroid[:, 1] > chin_y + 0.005) & ~face] = HEAD_PARTS.index("neck")
    return labels + len(BODY_PARTS)


def _head_maps(model) -> UVMaps:
    from recon3d.models.head import HeadModel

    model = model or HeadModel.from_pretrained()
    layout = model.texture_layout
    return uv_maps_for(model.uv, model.face_uv, _head_labels(model), layout.mirror, layout.size)


def _body_maps(model) -> UVMaps:
    from recon3d.models.body import BodyModel

    model = model or BodyModel.from_pretrained()
    if tuple(model.part_names) != BODY_PARTS:
        raise ValueError(f"unexpected body part names {model.part_names}")
    # The mirror comes from the projection's geometry level (512², already built for the
    # texture) rather than the 1024² fill level the network trained with: that saves 0.9 s on
    # the first call, 31 of the 16 384 texels get a neighbouring mirror texel, and completion
    # on real photos measured the same to 0.01 dB (scripts/eval_texture_levels.py).
    level = model.texture_layout.coarse
    return uv_maps_for(
        model.uv, model.face_uv, np.asarray(model.face_part), level.mirror, level.size
    )
