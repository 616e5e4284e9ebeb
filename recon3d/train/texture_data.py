"""Training data for the texture-completion network (issue 5). Training only.

Two sources, both reduced to the network's inputs at :data:`NETWORK_SIZE` plus a target:

* **Real partial textures**: every real photo is reconstructed (head and, where the body is in
  frame, body); its projection at the fill resolution (1024²) gives the photo's colours and their
  confidence. Random extra masks hide part of what the camera saw; the baseline fill is recomputed
  without those texels, and the network must predict the hidden photo colours. Targets exist only
  where the photo saw the surface well.
* **Procedural complete textures**: skin tones, hair colours and hairlines, clothing colours and
  patterns per body part, shading from a random light; a random virtual camera decides what is
  "seen" (the same visibility test as for photos), plus random extra masks. Targets everywhere.

A sample is stored as uint8 arrays (partial, confidence, baseline, target, valid, held-out mask)
at R = 128 in ``.npz`` shards, so a run can stop and resume; generation is deterministic for a
seed.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from recon3d.texture.completion import NETWORK_SIZE, UVMaps, layout_maps, network_inputs
from recon3d.texture.projection import (
    TextureLayout,
    _texel_views,
    fill_unseen,
    project_texture,
    vertex_normals,
)

__all__ = [
    "LayoutGeometry",
    "Outfit",
    "PartialTexture",
    "Sample",
    "extra_mask",
    "head_geometry",
    "body_geometry",
    "dress_body",
    "procedural_texture",
    "random_view",
    "real_partial",
    "sample_from_partial",
    "save_shard",
    "load_shards",
]

# A texel whose confidence is at least this is trusted as ground truth for a held-out region.
TRUTH_CONFIDENCE = 0.25


@dataclasses.dataclass
class LayoutGeometry:
    """A layout at the fill resolution T with the rest mesh it belongs to.

    ``layout`` the :class:`TextureLayout` at T (mirror map, seed thresholds, parts);
    ``vertices`` (V, 3) rest mesh (model frame, y down, facing -z); ``faces`` (F, 3);
    ``face_labels`` (F,) shared part labels; ``maps`` the network-resolution maps;
    ``kind`` "head" or "body"."""

    kind: str
    layout: TextureLayout
    vertices: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    maps: UVMaps

    @property
    def size(self) -> int:
        return self.layout.size

    def texel_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) rest positions and (N, 3) unit normals of the used texels."""
        layout = self.layout
        tri = self.faces[layout.used_face]
        bary = layout.used_bary
        points = np.einsum("nk,nkd->nd", bary, self.vertices[tri])
        normals = vertex_normals(self.vertices, self.faces)
        nrm = np.einsum("nk,nkd->nd", bary, normals[tri])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
        return points.astype(np.float32), nrm.astype(np.float32)


def head_geometry(model=None) -> LayoutGeometry:
    from recon3d.models.head import HeadModel
    from recon3d.texture.completion import _head_labels

    model = model or HeadModel.from_pretrained()
    labels = _head_labels(model)
    return LayoutGeometry(
        kind="head",
        layout=model.texture_layout,
        vertices=model.mean_vertices.cpu().numpy().astype(np.float64),
        faces=model.faces,
        face_labels=labels,
        maps=layout_maps("head", model),
    )


def body_geometry(model=None) -> LayoutGeometry:
    import torch

    from recon3d.models.body import BodyModel

    model = model or BodyModel.from_pretrained()
    with torch.no_grad():
        rest = model.rest(torch.zeros(1, model.num_shape))[0][0].cpu().numpy()
    return LayoutGeometry(
        kind="body",
        layout=model.fill_layout,
        vertices=rest.astype(np.float64),
        faces=model.faces,
        face_labels=np.asarray(model.face_part),
        maps=layout_maps("body", model),
    )


@dataclasses.dataclass
class PartialTexture:
    """A projection at the fill resolution T: ``observed`` (T, T, 3) uint8, ``confidence``
    (T, T) float32, plus the posed mesh it came from (``vertices`` (V, 3)) for the fill."""

    observed: np.ndarray
    confidence: np.ndarray
    vertices: np.ndarray


@dataclasses.dataclass
class Sample:
    """One training sample at R: ``inputs`` (C, R, R) float32 network inputs, ``target``
    (R, R, 3) uint8, ``valid`` (R, R) bool where the target is known, ``held_out`` (R, R) bool
    texels the network had to predict that have a known target; ``synthetic``: the target is a
    complete procedural texture (the discriminators' "real" examples)."""

    kind: str
    inputs: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    held_out: np.ndarray
    synthetic: bool = False


def real_partial(rec, geometry: LayoutGeometry) -> PartialTexture:
    """The projection of a real reconstruction at the fill resolution."""
    tex = project_texture(
        rec.image,
        rec.vertices.astype(np.float64),
        geometry.faces,
        rec.camera.K,
        geometry.layout,
        person_mask=rec.person_mask,
    )
    return PartialTexture(tex.observed, tex.confidence, rec.vertices.astype(np.float64))


def extra_mask(
    size: int, rng: np.random.Generator, coverage: float, around: np.ndarray | None = None
) -> np.ndarray:
    """(size, size) bool: random free-form strokes and ellipses covering about ``coverage``
    of the square (the masks of Yu et al. 2019, in UV space), or of ``around`` (size, size)
    bool when given, with the shapes then centred on texels of ``around``."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    if around is not None:
        ys, xs = np.nonzero(around)
        target = coverage * len(ys)
    else:
        target = coverage * size * size

    def start() -> np.ndarray:
        if around is None:
            return rng.integers(0, size, 2)
        i = rng.integers(len(ys))
        return np.array([xs[i], ys[i]])

    covered = 0
    while covered < target:
        if rng.random() < 0.5:
            centre = tuple(int(c) for c in start())
            axes = tuple(int(a) for a in rng.integers(size // 32, size // 6, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            points = [start()]
            for _ in range(int(rng.integers(3, 8))):
                step = rng.normal(0, size / 10, 2)
                points.append(np.clip(points[-1] + step, 0, size - 1).astype(np.int64))
            width = int(rng.integers(size // 64 + 1, size // 16 + 2))
            cv2.polylines(mask, [np.array(points, np.int32)], False, 1, width)
        covered = mask.sum() if around is None else mask[around].sum()
    return mask.astype(bool)


def _baseline(
    observed: np.ndarray, confidence: np.ndarray, geometry: LayoutGeometry, vertices: np.ndarray
) -> np.ndarray:
    """(T, T, 3) uint8 baseline texture exactly as :func:`project_texture` composes it."""
    import cv2

    layout = geometry.layout
    size = layout.size
    conf = confidence.reshape(-1).astype(np.float32)
    filled = fill_unseen(
        observed.reshape(-1, 3).astype(np.float32), conf, layout, vertices, geometry.faces
    )
    filled = np.clip(filled + 0.5, 0, 255).astype(np.uint8).reshape(size, size, 3)
    alpha = np.minimum(confidence * 4.0, 1.0).astype(np.float32)
    texture = cv2.blendLinear(observed, filled, alpha, 1.0 - alpha)
    target, source = layout.gutter
    flat = texture.reshape(-1, 3)
    flat[target] = flat[source]
    return texture


def sample_from_partial(
    partial: PartialTexture,
    geometry: LayoutGeometry,
    rng: np.random.Generator,
    *,
    truth: np.ndarray | None = None,
    coverage: tuple[float, float] = (0.1, 0.4),
) -> Sample:
    """Hide random extra regions of a partial texture and build the network sample.

    Args:
        partial: the projection (real or synthetic) at T.
        truth: (T, T, 3) uint8 complete texture (synthetic), or None: the photo colours are the
            truth where the confidence is at least :data:`TRUTH_CONFIDENCE`.
    """
    import cv2

    size = geometry.size
    hide = extra_mask(size, rng, float(rng.uniform(*coverage)))
    seen = partial.confidence > 0
    conf = np.where(hide, 0.0, partial.confidence).astype(np.float32)
    observed = np.where(conf[..., None] > 0, partial.observed, 0).astype(np.uint8)
    baseline = _baseline(observed, conf, geometry, partial.vertices)
    inputs = network_inputs(baseline, observed, conf, geometry.maps)

    r = NETWORK_SIZE
    used = geometry.maps.used
    if truth is None:
        known = (partial.confidence >= TRUTH_CONFIDENCE).astype(np.float32)
        truth_img = partial.observed
    else:
        known = (geometry.layout.texel_face >= 0).astype(np.float32)
        truth_img = truth
    known_r = cv2.resize(known, (r, r), interpolation=cv2.INTER_AREA)
    weighted = cv2.resize(
        truth_img.astype(np.float32) * known[..., None], (r, r), interpolation=cv2.INTER_AREA
    )
    target = weighted / np.maximum(known_r, 1e-6)[..., None]
    valid = (known_r > 0.999) & used
    unseen_r = cv2.resize((conf == 0).astype(np.float32), (r, r), interpolation=cv2.INTER_AREA)
    hidden_r = cv2.resize((hide & seen).astype(np.float32), (r, r), interpolation=cv2.INTER_AREA)
    held_out = valid & (unseen_r > 0.999) & ((hidden_r > 0.5) if truth is None else True)
    return Sample(
        kind=geometry.kind,
        inputs=inputs,
        target=np.clip(target + 0.5, 0, 255).astype(np.uint8),
        valid=valid,
        held_out=held_out,
        synthetic=truth is not None,
    )


# ----------------------------------------------------------------------- procedural textures
_SKIN = np.array(
    [
        [255, 224, 196],
        [240, 200, 170],
        [224, 172, 140],
        [198, 134, 96],
        [160, 104, 72],
        [120, 80, 56],
        [88, 58, 42],
    ],
    np.float32,
)
HAIR_COLOURS = np.array(
    [[20, 16, 14], [60, 40, 28], [110, 74, 44], [190, 150, 90], [150, 70, 40], [170, 170, 170]],
    np.float32,
)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    h, s, v = rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def _pattern(points: np.ndarray, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """(N, 3) a garment's colours at 3D points: solid, stripes, checks or blotches."""
    n = len(points)
    kind = rng.integers(0, 4)
    colour = np.broadcast_to(base, (n, 3)).copy()
    if kind == 0:
        return colour
    second = _random_colour(rng)
    period = rng.uniform(0.02, 0.12)
    if kind == 1:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        on = np.sin(points @ axis / period * 2 * np.pi) > rng.uniform(-0.5, 0.5)
    elif kind == 2:
        on = (np.floor(points[:, 0] / period) + np.floor(points[:, 1] / period)) % 2 == 0
    else:
        waves = sum(
            np.sin(points @ rng.normal(size=3) / period + rng.uniform(0, 6.3)) for _ in range(3)
        )
        on = waves > 0.8
    colour[on] = second
    return colour


@dataclasses.dataclass
class Outfit:
    """A random person's clothes and hair at N surface points: ``colour`` (N, 3) float RGB,
    unshaded, and the (N,) bool masks of what covers the body (``shirt``, ``trousers``,
    ``shoes``, ``hair``) for renderers that give them thickness."""

    colour: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    shoes: np.ndarray
    hair: np.ndarray


def dress_body(
    points: np.ndarray,
    part: np.ndarray,
    rng: np.random.Generator,
    skin: np.ndarray,
    hair: np.ndarray,
) -> Outfit:
    """Clothes and hair for body points: a shirt (short or long sleeves) and trousers (short or
    long), each solid or patterned, shoes, a hairline and hair at the back of the head (or
    bald), skin elsewhere.

    Args:
        points: (N, 3) rest-pose surface points, model frame (y down, facing -z).
        part: (N,) body part names (``BODY_PARTS``; ``"eyes"`` and ``"mouth"`` too).
        rng: the random generator.
        skin, hair: (3,) RGB colours.
    """
    y = points[:, 1]
    colour = np.broadcast_to(skin, (len(points), 3)).copy()
    top_colour = _random_colour(rng)
    bottom_colour = _random_colour(rng)
    long_sleeves, long_legs = rng.random() < 0.5, rng.random() < 0.7
    shirt = np.isin(part, ["torso", "upperarm.L", "upperarm.R"])
    if long_sleeves:
        shirt |= np.isin(part, ["forearm.L", "forearm.R"])
    # The torso's lower part belongs to the trousers.
    hips = (part == "torso") & (y > np.quantile(y[part == "torso"], rng.uniform(0.75, 0.9)))
    trousers = np.isin(part, ["thigh.L", "thigh.R"]) | hips
    if long_legs:
        trousers |= np.isin(part, ["shin.L", "shin.R"])
    shirt &= ~trousers
    colour[shirt] = _pattern(points[shirt], rng, top_colour)
    colour[trousers] = _pattern(points[trousers], rng, bottom_colour)
    feet = np.isin(part, ["foot.L", "foot.R"])
    colour[feet] = _random_colour(rng) * 0.6
    head = part == "head"
    head_top = float(y[head].min())
    head_len = float(y[head].max()) - head_top
    hairline = head_top + rng.uniform(0.08, 0.3) * head_len
    back = points[:, 2] > np.median(points[head, 2])
    hairy = head & ((y < hairline) | back & (y < head_top + rng.uniform(0.3, 0.8) * head_len))
    if rng.random() < 0.1:
        hairy[:] = False
    colour[hairy] = hair
    colour[part == "eyes"] = (235, 235, 235)
    colour[part == "mouth"] = skin * np.array([0.85, 0.55, 0.55])
    return Outfit(colour, shirt, trousers, feet, hairy)


def procedural_texture(geometry: LayoutGeometry, rng: np.random.Generator) -> np.ndarray:
    """(T, T, 3) uint8 complete texture of a random person in the layout of ``geometry``."""
    from recon3d.texture.completion import BODY_PARTS, HEAD_PARTS

    layout = geometry.layout
    points, normals = geometry.texel_points()
    labels = geometry.face_labels[layout.used_face]
    skin = _SKIN[rng.integers(0, len(_SKIN))] * rng.uniform(0.9, 1.08, 3)
    hair = HAIR_COLOURS[rng.integers(0, len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    colour = np.broadcast_to(skin, (len(points), 3)).copy()
    y = points[:, 1]
    if geometry.kind == "head":
        nb = len(BODY_PARTS)
        scalp = labels == nb + HEAD_PARTS.index("scalp")
        side = labels == nb + HEAD_PARTS.index("side")
        face = labels == nb + HEAD_PARTS.index("face")
        top, bottom = float(y.min()), float(y.max())
        hairline = top + rng.uniform(0.05, 0.35) * (bottom - top)
        back_length = top + rng.uniform(0.2, 0.8) * (bottom - top)
        hairy = scalp & (y < hairline + 0.03) | side & (y < back_length) & (points[:, 2] > 0)
        if rng.random() < 0.1:
            hairy[:] = False  # bald
        colour[hairy] = hair
        if rng.random() < 0.2:  # beard or stubble on the lower face
            chin = face & (y > top + 0.75 * (bottom - top))
            colour[chin] = 0.6 * colour[chin] + 0.4 * hair
    else:
        part = np.asarray(BODY_PARTS)[np.minimum(labels, len(BODY_PARTS) - 1)]
        colour = dress_body(points, part, rng, skin, hair).colour
    # Shading: a random key light plus ambient, and low-frequency brightness variation.
    light = rng.normal(size=3)
    light[2] = -abs(light[2])
    light /= np.linalg.norm(light)
    shade = rng.uniform(0.45, 0.75) + rng.uniform(0.2, 0.5) * np.clip(normals @ light, 0, 1)
    shade *= 1 + 0.06 * np.sin(points @ rng.normal(size=3) * 20 + rng.uniform(0, 6.3))
    colour = colour * shade[:, None] + rng.normal(0, 3, colour.shape)
    out = np.zeros((layout.size * layout.size, 3), np.float32)
    out[layout.used] = colour
    target, source = layout.gutter
    out[target] = out[source]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(layout.size, layout.size, 3)


def random_view(
    geometry: LayoutGeometry, texture: np.ndarray, rng: np.random.Generator
) -> PartialTexture:
    """What a random, mostly frontal camera sees of a rest mesh with a complete texture."""
    from scipy.spatial.transform import Rotation

    layout = geometry.layout
    yaw = rng.uniform(-70, 70) if rng.random() < 0.8 else rng.uniform(-180, 180)
    pitch = rng.uniform(-20, 20)
    rotation = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix()
    centre = geometry.vertices.mean(0)
    extent = float(np.ptp(geometry.vertices, axis=0).max())
    size = 512
    focal = size * rng.uniform(1.5, 3.0)
    distance = focal * extent * 1.15 / size
    vertices = (geometry.vertices - centre) @ rotation.T + np.array([0.0, 0.0, distance])
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    normals = vertex_normals(vertices, geometry.faces)
    _, weight = _texel_views((size, size), vertices, normals, geometry.faces, K, layout, 2.0, None)
    conf = np.zeros(layout.size * layout.size, np.float32)
    conf[layout.used] = weight
    conf = conf.reshape(layout.size, layout.size)
    observed = np.where(conf[..., None] > 0, texture, 0).astype(np.uint8)
    return PartialTexture(observed, conf, vertices)


# ------------------------------------------------------------------------------------ shards
def save_shard(path: str | pathlib.Path, samples: list[Sample]) -> None:
    """Write samples to an ``.npz`` shard (uint8/bool arrays; inputs quantised to 8 bits)."""
    import io

    from recon3d.exchange.atomic import write_atomic

    inputs = np.stack([s.inputs[:14] for s in samples])
    arrays = {
        "kind": np.array([s.kind == "head" for s in samples]),
        "inputs": np.clip((inputs + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8),
        "target": np.stack([s.target for s in samples]),
        "valid": np.stack([s.valid for s in samples]),
        "held_out": np.stack([s.held_out for s in samples]),
        "synthetic": np.array([s.synthetic for s in samples]),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(pathlib.Path(path), buffer.getvalue())


def load_shards(paths: list[pathlib.Path]) -> dict[str, np.ndarray]:
    """Concatenate shards: ``is_head`` (N,), ``inputs`` (N, 14, R, R) uint8, ``target``
    (N, R, R, 3) uint8, ``valid`` and ``held_out`` (N, R, R) bool, ``synthetic`` (N,) bool.
    The static layout channels are added per kind when batches are built."""
    parts: dict[str, list[np.ndarray]] = {}
    for path in paths:
        with np.load(path) as data:
            for key in ("kind", "inputs", "target", "valid", "held_out"):
                parts.setdefault(key, []).append(data[key])
            if "synthetic" in data:
                synthetic = data["synthetic"]
            else:
                # Shards written before the flag existed: real photos are known only where
                # the photo saw the surface, procedural textures almost everywhere.
                synthetic = data["valid"].mean((1, 2)) > 0.2
            parts.setdefault("synthetic", []).append(synthetic)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["is_head"] = out.pop("kind")
    return out
