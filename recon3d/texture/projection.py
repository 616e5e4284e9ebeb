"""Photo -> UV texture: resample the visible surface, then fill what the camera never saw.

For every texel of the model's UV layout, the texel map gives a triangle and barycentrics, hence
a 3D surface point on the fitted mesh. That point is projected into the photo; it is *visible*
when its depth matches the depth buffer of the mesh rendered from the photo's camera, and its
weight falls off with the angle between the surface normal and the viewing ray. Unseen texels are
filled deterministically: first from their left/right mirror texel (through the layout's mirror
map), then by harmonic (Laplace) interpolation of colours over the mesh surface, which crosses UV
seams without leaving marks because it works on the 3D mesh, not on the image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from recon3d.camera import Camera
from recon3d.render.renderer import render_mesh

# Depth tolerance of the visibility test, relative to the distance (1 cm at 1 m).
_DEPTH_TOLERANCE = 0.01
_MAX_DEPTH_RENDER_SIDE = 1024


class TextureLayout:
    """A UV layout rasterised at one resolution, with the caches texturing needs.

    Args:
        texel_face: (T, T) int triangle under each texel, -1 outside the layout's islands.
        texel_bary: (T, T, 2) first two barycentrics of each texel.
        texel_mirror: (T, T) int flat index of each texel's left/right mirror texel.
        seed_threshold: visibility weight (cos² of the view angle) above which a texel seeds
            the fill of unseen texels, scalar or (T, T). Texels seen at grazing angles sit on the
            silhouette where the photo mixes in background, so the default (~57°) is strict;
            a model may lower it where grazing views still show the person (top of the head).
    """

    def __init__(
        self,
        texel_face: np.ndarray,
        texel_bary: np.ndarray,
        texel_mirror: np.ndarray,
        seed_threshold: np.ndarray | float = 0.3,
    ) -> None:
        if texel_face.ndim != 2 or texel_face.shape[0] != texel_face.shape[1]:
            raise ValueError(f"expected a square (T, T) texel map, got {texel_face.shape}")
        self.size = int(texel_face.shape[0])
        self.texel_face = texel_face
        self.used = np.flatnonzero(texel_face.ravel() >= 0)
        self.used_face = texel_face.ravel()[self.used]
        b2 = texel_bary.reshape(-1, 2)[self.used].astype(np.float32)
        self.used_bary = np.c_[b2, 1.0 - b2.sum(1)]
        self.mirror = texel_mirror.ravel()
        threshold = np.broadcast_to(np.asarray(seed_threshold, np.float32), texel_face.shape)
        self.seed_threshold = threshold.ravel()[self.used]

    @functools.cached_property
    def gutter(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of empty texels within a few texels of an island, and of the nearest
        island texel to each: island colours are copied outwards so bilinear filtering and
        mipmaps at island borders never pick up the empty background."""
        from scipy.ndimage import distance_transform_edt

        outside = self.texel_face < 0
        dist, (iy, ix) = distance_transform_edt(outside, return_indices=True)
        target = np.flatnonzero((outside & (dist <= 8)).ravel())
        source = (iy * self.size + ix).ravel()[target]
        return target, source


@dataclass(frozen=True)
class TextureResult:
    """``texture`` (T, T, 3) uint8 completed texture; ``observed`` (T, T, 3) uint8 photo colours
    where seen; ``confidence`` (T, T) float32 in [0, 1]: how well each texel was seen
    (0 = completed, not seen)."""

    texture: np.ndarray
    observed: np.ndarray
    confidence: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    import trimesh

    tri = vertices[faces]
    # Unnormalised face normals (twice the area): their sum weights faces by area.
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return trimesh.geometry.mean_vertex_normals(len(vertices), faces, face_n)


def project_texture(
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    layout: TextureLayout,
    *,
    angle_power: float = 2.0,
) -> TextureResult:
    """Texture of a mesh from one photo.

    Args:
        image: (H, W, 3) uint8 photo.
        vertices: (V, 3) mesh in the photo's camera frame (OpenCV, metres).
        faces: (F, 3) triangles.
        K: (3, 3) intrinsics of the photo.
        layout: the model's UV layout at the output resolution.
        angle_power: exponent of the cosine view-angle weight.
    """
    import cv2

    h, w = image.shape[:2]
    size, used, bary = layout.size, layout.used, layout.used_bary
    tri = faces[layout.used_face]
    points = np.einsum("nk,nkd->nd", bary, vertices[tri].astype(np.float32))
    normals = np.einsum("nk,nkd->nd", bary, vertex_normals(vertices, faces)[tri].astype(np.float32))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)

    # Depth buffer of the mesh from the photo's camera, at a bounded resolution.
    camera = Camera(K=K, width=w, height=h)
    small = camera.bounded(_MAX_DEPTH_RENDER_SIDE)
    depth = render_mesh(
        vertices, faces, small.K, (small.width, small.height), depth_only=True
    ).depth

    z = points[:, 2]
    uv_img = camera.project(points)
    # The bounded camera differs by an image-plane affine map: K_small · K⁻¹.
    to_small = (small.K @ np.linalg.inv(camera.K))[:2]
    px = np.round(uv_img @ to_small[:, :2].T + to_small[:, 2]).astype(np.int64)
    px = np.clip(px, 0, [small.width - 1, small.height - 1])
    # Minimum depth in a 3x3 neighbourhood so texels on silhouettes are not lost to rounding.
    depth_min = cv2.erode(np.where(depth > 0, depth, np.inf).astype(np.float32), np.ones((3, 3)))
    buffer_z = depth_min[px[:, 1], px[:, 0]]
    inside = (
        (uv_img[:, 0] >= 0)
        & (uv_img[:, 0] <= w - 1)
        & (uv_img[:, 1] >= 0)
        & (uv_img[:, 1] <= h - 1)
    )
    visible = inside & np.isfinite(buffer_z) & (z <= buffer_z * (1 + _DEPTH_TOLERANCE))
    view = -points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    cosine = np.clip((normals * view).sum(1), 0.0, 1.0)
    weight = np.where(visible, cosine**angle_power, 0.0).astype(np.float32)

    map_x = np.zeros(size * size, np.float32)
    map_y = np.zeros(size * size, np.float32)
    map_x[used], map_y[used] = uv_img[:, 0], uv_img[:, 1]
    sampled = (
        cv2.remap(
            image,
            map_x.reshape(size, size),
            map_y.reshape(size, size),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        .reshape(-1, 3)
        .astype(np.float32)
    )

    conf = np.zeros(size * size, np.float32)
    conf[used] = weight
    observed = np.zeros((size * size, 3), np.float32)
    observed[used] = sampled[used]

    filled = fill_unseen(observed, conf, layout, tri, vertices, faces)
    # Smooth hand-over from observed to filled colours as the viewing angle grows.
    alpha = np.clip(conf / 0.25, 0.0, 1.0)[:, None]
    texture = alpha * observed + (1 - alpha) * filled
    target, source = layout.gutter
    texture[target] = texture[source]
    texture = texture.reshape(size, size, 3)
    observed_img = np.where(conf[:, None] > 0, observed, 0).reshape(size, size, 3)
    return TextureResult(
        texture=np.clip(texture + 0.5, 0, 255).astype(np.uint8),
        observed=np.clip(observed_img + 0.5, 0, 255).astype(np.uint8),
        confidence=conf.reshape(size, size),
    )


def fill_unseen(
    observed: np.ndarray,
    conf: np.ndarray,
    layout: TextureLayout,
    tri: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
) -> np.ndarray:
    """Colours (T*T, 3) for every used texel from the mirror texel, then Laplace interpolation.

    Args:
        observed: (T*T, 3) float colours, valid where ``conf`` > 0.
        conf: (T*T,) visibility weights.
        layout: the UV layout (used texels, their barycentrics, mirror map, seed thresholds).
        tri: (N, 3) vertex indices of the triangle under each used texel.
        vertices: (V, 3) mesh vertices; faces: (F, 3) triangles.
    """
    used, bary, mirror = layout.used, layout.used_bary, layout.mirror
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    n_vertices = len(vertices)
    m = mirror[used]
    m_conf = np.where(m >= 0, conf[np.maximum(m, 0)], 0.0)
    own = conf[used]
    # Mirror colours count fully only where the texel itself is poorly seen.
    w_m = m_conf * np.clip(1.0 - own / np.maximum(m_conf, 1e-6), 0.0, 1.0)
    colour = own[:, None] * observed[used] + w_m[:, None] * observed[np.maximum(m, 0)]
    weight = own + w_m
    known_texel = weight > 0.05
    colour[known_texel] /= weight[known_texel, None]

    # Per-vertex colour from well-seen texels only (barycentric splatting), then harmonic fill.
    # Texels seen at grazing angles sit on the silhouette, where the photo mixes in background.
    seed = weight > layout.seed_threshold
    splat_w = (bary * np.where(seed, weight, 0.0)[:, None]).ravel()
    corner = tri.ravel()
    acc_w = np.bincount(corner, splat_w, minlength=n_vertices)
    corner_colour = np.repeat(colour, 3, axis=0)
    acc = np.stack(
        [
            np.bincount(corner, splat_w * corner_colour[:, c], minlength=n_vertices)
            for c in range(3)
        ],
        1,
    )
    known = acc_w > 1e-3
    vertex_colour = np.zeros((n_vertices, 3))
    vertex_colour[known] = acc[known] / acc_w[known, None]
    if known.any() and not known.all():
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        adj = sp.coo_matrix(
            (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices,) * 2
        )
        adj = ((adj + adj.T) > 0).astype(np.float64).tocsr()
        lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
        unknown = ~known
        a = lap[unknown][:, unknown].tocsc()
        rhs = -lap[unknown][:, known] @ vertex_colour[known]
        # Vertices in components with no observed colour (e.g. the inside of the mouth when it is
        # closed) get a tiny anchor to the mean observed colour so the system stays regular.
        a = a + sp.identity(a.shape[0], format="csc") * 1e-6
        rhs = rhs + 1e-6 * vertex_colour[known].mean(0)
        vertex_colour[unknown] = spla.splu(a).solve(np.asarray(rhs))
    interpolated = np.einsum("nk,nkd->nd", bary, vertex_colour[tri])

    out = np.zeros((len(conf), 3), np.float32)
    blend = np.clip(weight / 0.25, 0.0, 1.0)[:, None]
    out[used] = blend * colour + (1 - blend) * interpolated
    return out
