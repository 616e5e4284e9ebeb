"""Rasterise a UV layout into a texel map: which triangle, and where in it, each texel lies.

Pure numpy (no GL context), vectorised over triangles: a 2048² body layout takes about a second,
so body models compute their texel map when first loaded instead of shipping tens of megabytes.
"""

from __future__ import annotations

import numpy as np

# Triangles are processed in chunks so the candidate (triangle, texel) pairs stay bounded in memory.
_CHUNK_PAIRS = 4_000_000


def rasterize_uv(uv: np.ndarray, face_uv: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel map of a UV layout.

    Args:
        uv: (N, 2) texture coordinates in [0, 1]² (v up, glTF/OBJ convention).
        face_uv: (F, 3) indices into ``uv`` per triangle corner.
        size: texture side in texels.
    Returns:
        ``texel_face`` (size, size) int32 triangle under each texel (-1 outside every island) and
        ``texel_bary`` (size, size, 3) float32 barycentrics. Row 0 is v = 1 (image convention);
        texel centres are at ((i + 0.5) / size). Where triangles overlap, the later one wins.
    """
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"expected uv of shape (N, 2), got {uv.shape}")
    if face_uv.ndim != 2 or face_uv.shape[1] != 3:
        raise ValueError(f"expected face_uv of shape (F, 3), got {face_uv.shape}")
    tri = uv[face_uv].astype(np.float64) * size  # (F, 3, 2) in texel units
    tri[..., 1] = size - tri[..., 1]
    lo = np.clip(np.floor(tri.min(1) - 0.5).astype(np.int64), 0, size - 1)
    hi = np.clip(np.ceil(tri.max(1) - 0.5).astype(np.int64), 0, size - 1)
    extent = hi - lo + 1  # (F, 2) candidate texels per axis
    counts = extent[:, 0] * extent[:, 1]

    texel_face = np.full(size * size, -1, np.int32)
    texel_bary = np.zeros((size * size, 3), np.float32)
    start = 0
    while start < len(tri):
        # Largest run of triangles whose candidate pairs fit in one chunk (at least one).
        cum = np.cumsum(counts[start:])
        stop = start + max(1, int(np.searchsorted(cum, _CHUNK_PAIRS)))
        _rasterize_chunk(tri, lo, extent, counts, start, stop, size, texel_face, texel_bary)
        start = stop
    return texel_face.reshape(size, size), texel_bary.reshape(size, size, 3)


def _rasterize_chunk(tri, lo, extent, counts, start, stop, size, texel_face, texel_bary) -> None:
    faces = np.arange(start, stop)
    n = counts[faces]
    face = np.repeat(faces, n)
    # Index of each candidate within its triangle's bounding box.
    local = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    width = extent[face, 0]
    x = lo[face, 0] + local % width
    y = lo[face, 1] + local // width
    # Edge vectors per triangle (float32 is exact enough at texel scale and twice as fast).
    t = tri[start:stop].astype(np.float32)
    a = t[:, 0]
    v0, v1 = t[:, 1] - a, t[:, 2] - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok_face = np.abs(den) > 1e-9
    inv = np.where(ok_face, 1.0 / np.where(ok_face, den, 1.0), 0.0).astype(np.float32)
    k = face - start
    px = (x + 0.5).astype(np.float32) - a[k, 0]
    py = (y + 0.5).astype(np.float32) - a[k, 1]
    l1 = (px * v1[k, 1] - v1[k, 0] * py) * inv[k]
    l2 = (v0[k, 0] * py - px * v0[k, 1]) * inv[k]
    l0 = 1.0 - l1 - l2
    inside = ok_face[k] & (l0 >= -1e-4) & (l1 >= -1e-4) & (l2 >= -1e-4)
    flat = (y * size + x)[inside]
    texel_face[flat] = face[inside]
    texel_bary[flat, 0] = l0[inside]
    texel_bary[flat, 1] = l1[inside]
    texel_bary[flat, 2] = l2[inside]


def mirror_texels(
    texel_face: np.ndarray,
    texel_bary: np.ndarray,
    uv: np.ndarray,
    face_uv: np.ndarray,
    face_mirror: np.ndarray,
    corner_mirror: np.ndarray,
) -> np.ndarray:
    """Flat index of each texel's left/right mirror texel, from a triangle-level mirror map.

    Args:
        texel_face, texel_bary: the texel map (:func:`rasterize_uv`).
        uv, face_uv: the layout.
        face_mirror: (F,) mirror triangle of each triangle, -1 where the mesh is not symmetric.
        corner_mirror: (F, 3) for corner k of triangle f, the corner of ``face_mirror[f]`` that
            holds the mirror image of its vertex.
    Returns:
        (size, size) int32; -1 for empty texels and texels without a mirror.
    """
    size = texel_face.shape[0]
    flat_face = texel_face.ravel()
    used = np.flatnonzero(flat_face >= 0)
    f = flat_face[used]
    mf = face_mirror[f]
    has = mf >= 0
    out = np.full(size * size, -1, np.int32)
    used, f, mf = used[has], f[has], mf[has]
    bary = texel_bary.reshape(-1, 3)[used]
    mirrored_bary = np.zeros_like(bary)
    rows = np.arange(len(used))[:, None]
    mirrored_bary[rows, corner_mirror[f]] = bary
    point = np.einsum("nk,nkd->nd", mirrored_bary, uv[face_uv[mf]])
    col = np.clip((point[:, 0] * size).astype(np.int64), 0, size - 1)
    row = np.clip(((1.0 - point[:, 1]) * size).astype(np.int64), 0, size - 1)
    target = row * size + col
    # Keep only mirrors that land on a texel of the same (mirrored) triangle's island.
    valid = flat_face[target] >= 0
    out[used[valid]] = target[valid]
    return out.reshape(size, size)


def downsample_mirror(mirror_full: np.ndarray, full_size: int, used: np.ndarray) -> np.ndarray:
    """A mirror map at a lower resolution through the full-resolution one.

    Each low-resolution texel takes the mirror of the full-resolution texel at its centre; a
    texel whose mirror falls outside the low-resolution islands gets none.

    Args:
        mirror_full: (T*T,) flat mirror index at ``full_size`` T (-1: none).
        full_size: T, a multiple of the low resolution R.
        used: (R, R) bool texels inside the islands at the low resolution.
    Returns:
        (R*R,) int64 flat mirror index at R (-1: none).
    """
    size = used.shape[0]
    if full_size % size:
        raise ValueError(f"the texture size {full_size} is not a multiple of {size}")
    step = full_size // size
    centre = np.arange(size) * step + step // 2
    m = mirror_full[(centre[:, None] * full_size + centre[None, :]).ravel()]
    mirror = np.where(m >= 0, (m // full_size) // step * size + (m % full_size) // step, -1)
    flat_used = used.ravel()
    mirror = np.where(flat_used & (m >= 0), mirror, -1)
    mirror = np.where(mirror >= 0, np.where(flat_used[np.maximum(mirror, 0)], mirror, -1), -1)
    return mirror.astype(np.int64)
