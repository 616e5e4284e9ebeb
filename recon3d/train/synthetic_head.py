"""Synthetic training data for the head network: random heads rendered headless with real face
textures, seen by the real MediaPipe face mesh. Training only.

Each sample is an Anny head (:class:`~recon3d.models.head.HeadModel`) with random identity
coefficients (N(0, 1.1²)), a random expression (sparse: a few active facial actions, or one of
the expressions fitted on real frames, or neutral), a random head rotation (yaw up to ±70°,
pitch ±30°, roll ±20°) and a random camera (28-85 mm equivalent, face 18-60 % of the frame).
It is textured with a real photo's projected head texture (``data/texture/partials``, the unseen
texels filled by :func:`recon3d.texture.completion.local_fill`), colour-jittered, shaded by a
random directional light (normals from the rendered depth) and composited over a real video frame
or a gradient. MediaPipe's face mesh then runs on the render: the network learns from the
detector's real outputs, and samples where it finds no face are dropped (their count is stored).

Shards are ``.npz`` files (no pickles: every array is numeric) named by seed and index; a run that
is stopped resumes by skipping the shards that exist, and a shard is written atomically.
Everything is deterministic given the seed: shard ``i`` draws from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recon3d.models.body_net import root_to_camera
from recon3d.models.head import HeadModel
from recon3d.models.head_net import network_inputs, reference_point

log = logging.getLogger(__name__)

IMAGE_SIZE = 320  # square renders, pixels
TEXTURE_SIDE = 512
YAW, PITCH, ROLL = 70.0, 30.0, 20.0  # degrees, uniform ranges ±


@dataclass(frozen=True)
class HeadSample:
    """Ground truth of one rendered head: ``identity`` (60,), ``expression`` (52,),
    ``rotation`` (3, 3) and ``translation`` (3,) model -> camera frame, ``K`` (3, 3)."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    K: np.ndarray


def load_textures(paths: Sequence[pathlib.Path], side: int = TEXTURE_SIDE) -> list[np.ndarray]:
    """Real partial head textures (``observed`` (T, T, 3) uint8 and ``confidence`` (T, T) in an
    ``.npz``) with their unseen texels filled by the push-pull fill, as (side, side, 3) uint8."""
    import cv2

    from recon3d.texture.completion import local_fill

    out = []
    for path in sorted(paths):
        with np.load(path, allow_pickle=False) as data:
            observed, confidence = data["observed"], data["confidence"]
        filled = local_fill(observed, confidence)
        seen = confidence > 0.25
        filled[seen] = observed[seen]
        small = cv2.resize(filled, (side, side), interpolation=cv2.INTER_AREA)
        out.append(np.clip(small + 0.5, 0, 255).astype(np.uint8))
    return out


def random_expression(
    num: int, rng: np.random.Generator, bank: np.ndarray | None = None
) -> np.ndarray:
    """(num,) expression weights in [0, 1]: neutral (15 %), a fitted real expression from
    ``bank`` (N, num) with noise (35 % when given), else 1-5 random active actions."""
    u = rng.random()
    if u < 0.15:
        return np.zeros(num)
    if bank is not None and len(bank) and u < 0.5:
        e = bank[rng.integers(len(bank))] + rng.normal(0, 0.05, num) * (rng.random(num) < 0.2)
        return np.clip(e, 0, 1)
    e = np.zeros(num)
    active = rng.choice(num, rng.integers(1, 6), replace=False)
    e[active] = rng.uniform(0.2, 1.0, len(active))
    return e


def random_sample(
    model: HeadModel, rng: np.random.Generator, bank: np.ndarray | None = None
) -> HeadSample:
    """A random head in front of a random camera (the face 18-60 % of the frame's side)."""
    from scipy.spatial.transform import Rotation

    identity = rng.normal(0, 1.1, model.num_identity)
    expression = random_expression(model.num_expression, rng, bank)
    angles = rng.uniform(-1, 1, 3) * (PITCH, YAW, ROLL)
    rotation = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    f = rng.uniform(28, 85) / 36.0 * IMAGE_SIZE
    c = (IMAGE_SIZE - 1) / 2
    K = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
    fill = rng.uniform(0.18, 0.6)
    depth = f * 0.2 / (fill * IMAGE_SIZE)  # a face ~0.2 m across (diagonal)
    uv = c + rng.uniform(-0.22, 0.22, 2) * IMAGE_SIZE
    centre = np.array([(uv[0] - c) * depth / f, (uv[1] - c) * depth / f, depth])
    translation = centre - rotation @ reference_point(model, identity, expression)
    return HeadSample(identity, expression, rotation, translation, K)


class HeadRenderer:
    """Renders textured heads of the model's topology (split at UV seams)."""

    def __init__(self, model: HeadModel, textures: Sequence[np.ndarray]) -> None:
        from recon3d.render.renderer import TexturedMeshRenderer

        corner_uv = model.uv[model.face_uv].reshape(-1, 2)
        corner_vertex = model.faces.reshape(-1)
        key = np.c_[corner_vertex, np.round(corner_uv * 1e6).astype(np.int64)]
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        self.vertex_index = corner_vertex[first]
        faces = inverse.reshape(-1, 3)
        self.renderers = [TexturedMeshRenderer(faces, corner_uv[first], t) for t in textures]

    def render(
        self,
        vertices: np.ndarray,
        K: np.ndarray,
        rng: np.random.Generator,
        backgrounds: Sequence[np.ndarray],
    ) -> np.ndarray:
        """(S, S, 3) uint8 render of camera-frame ``vertices`` (V, 3) over a background."""
        from recon3d.train.synthetic import _background_crop

        renderer = self.renderers[rng.integers(len(self.renderers))]
        out = renderer.render(vertices[self.vertex_index], K, (IMAGE_SIZE, IMAGE_SIZE))
        colour = out.color.astype(np.float32)
        # Colour jitter: per-channel gain, brightness, gamma.
        colour *= rng.uniform(0.85, 1.15, 3) * rng.uniform(0.75, 1.2)
        colour = 255.0 * (np.clip(colour, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
        colour *= _shading(out.depth, K, rng)[..., None]
        background = _background_crop(backgrounds, rng, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)
        image = np.where(out.alpha[..., None], colour, background)
        image += rng.normal(0, rng.uniform(0, 4), image.shape)
        return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _shading(depth: np.ndarray, K: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) Lambertian shading from a random directional light, normals from the depth map."""
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    points = np.stack(
        [(xs - K[0, 2]) * depth / K[0, 0], (ys - K[1, 2]) * depth / K[1, 1], depth], -1
    )
    dx = np.gradient(points, axis=1)
    dy = np.gradient(points, axis=0)
    normals = np.cross(dx, dy)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)
    normals *= -np.sign(normals[..., 2:3] + 1e-9)  # towards the camera
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.6), -rng.uniform(0.4, 1.5)])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.45, 0.8)
    lambert = np.clip(normals @ light, 0, 1)
    shade = ambient + (1.15 - ambient) * lambert
    return np.where(depth > 0, shade, 1.0).astype(np.float32)


def head_vertices(model: HeadModel, sample: HeadSample) -> np.ndarray:
    """(V, 3) camera-frame vertices of a sample."""
    with torch.no_grad():
        verts = model.vertices(
            torch.as_tensor(sample.identity, dtype=torch.float32)[None],
            torch.as_tensor(sample.expression, dtype=torch.float32)[None],
        )[0].numpy()
    return verts.astype(np.float64) @ sample.rotation.T + sample.translation


def generate_shard(
    model: HeadModel,
    detector,
    renderer: HeadRenderer,
    backgrounds: Sequence[np.ndarray],
    out_dir: pathlib.Path,
    seed: int,
    index: int,
    size: int,
    bank: np.ndarray | None = None,
) -> pathlib.Path | None:
    """Write shard ``index`` of a run (``size`` attempted samples); skip it when it exists.

    Samples where MediaPipe finds no face are dropped (their count is stored as ``missed``)."""
    import io

    from recon3d.exchange.atomic import write_atomic

    path = out_dir / f"head_s{seed}_{index:05d}.npz"
    if path.exists():
        return None
    rng = np.random.default_rng([seed, index])
    rows: dict[str, list[np.ndarray]] = {}
    missed = 0
    for _ in range(size):
        sample = random_sample(model, rng, bank)
        image = renderer.render(head_vertices(model, sample), sample.K, rng, backgrounds)
        faces = detector.detect(image)
        if not faces:
            missed += 1
            continue
        face = faces[0]
        inputs = network_inputs(face.points, face.box)
        camera = root_to_camera(
            sample.rotation @ reference_point(model, sample.identity, sample.expression)
            + sample.translation,
            inputs["crop"],
            sample.K,
        )
        for key, value in inputs.items():
            rows.setdefault(key, []).append(value)
        rows.setdefault("points", []).append(face.points.astype(np.float32))
        rows.setdefault("identity", []).append(sample.identity.astype(np.float32))
        rows.setdefault("expression", []).append(sample.expression.astype(np.float32))
        rows.setdefault("rotation", []).append(sample.rotation.astype(np.float32))
        rows.setdefault("translation", []).append(sample.translation.astype(np.float32))
        rows.setdefault("camera", []).append(camera.astype(np.float32))
        rows.setdefault("K", []).append(sample.K.astype(np.float32))
    arrays = {k: np.stack(v) for k, v in rows.items()} if rows else {}
    arrays["missed"] = np.array(missed)
    arrays["attempted"] = np.array(size)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
    return path


__all__ = [
    "HeadRenderer",
    "HeadSample",
    "IMAGE_SIZE",
    "generate_shard",
    "head_vertices",
    "load_textures",
    "random_expression",
    "random_sample",
]
