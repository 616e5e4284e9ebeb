"""Fit the rigged body model to one person's MediaPipe pose and segmentation mask.

Unknowns: shape (16 PCA coefficients, N(0, 1) prior), rotations of the main bones (root, spine,
neck, head, clavicles, shoulders, elbows, wrists, hips, knees, ankles; axis-angle in the rest
pose's world-aligned axes) and the translation in the camera frame; the intrinsics ``K`` are
given. Energy, with image distances normalised by the person's torso length ``s`` in pixels:

    E = λ_kp Σ v_i |π(K_i) - x_i|² / s² / Σ v_i            2D keypoints, by visibility v_i
      + λ_3d Σ v_l (1 - cos∠(d_l, D_l))                     limb directions vs MediaPipe's metric
                                                           world landmarks (scale-free)
      + λ_out mean_v relu(sdf(π(v)))² / s²                  no vertex outside the person mask
      + λ_cover mean_b min_c |b - π(c)|² / s²               every mask-boundary point b is
                                                           reached by a contour vertex c
      + Σ λ_j |θ_j|² + λ_β |β|² + λ_knee Σ relu(-flexion)²  pose, shape and joint-limit priors
      + λ_up (R_root e_y)_z²                               the pelvis stands upright
      + λ_torso Σ relu(r - dist(arm, torso axis))²          forearms stay out of the torso
      + λ_face mean |π(F_k) - f_k|² / s_face²                MediaPipe face mesh, when visible
      + Σ (λ_init + λ_hid (1 - v_j)) |θ_j - θ_j,init|²      near a network's estimate (refinement),
                                                           more where the bone's end is unseen

``sdf`` is the signed distance to the mask boundary (distance transforms of the mask and of its
complement), sampled with ``grid_sample`` at projected vertices, so the silhouette terms need no
differentiable rasteriser. Contour vertices (normal perpendicular to the viewing ray) are
re-selected every few iterations. Minimised with Adam from an initialisation that aligns the
rest body's torso to MediaPipe's world landmarks (Kabsch) and sets the distance from the torso's
size in pixels.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from recon3d.fitting.head_fit import FACE_OVAL, IRIS
from recon3d.keypoints.base import FaceLandmarks
from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks
from recon3d.models.body import BodyModel, axis_angle_to_matrix
from recon3d.models.body_prior import PoseDiscriminator

_log = logging.getLogger(__name__)
#: Shares of a leg inside the mask that differ by less than this are a tie (edge pixels).
_LEG_TIE = 0.05

# MediaPipe pose landmark -> body-model keypoint (COCO-WholeBody names and hand points).
MEDIAPIPE_TO_MODEL = {
    "nose": "nose",
    "left_eye": "left_eye",
    "right_eye": "right_eye",
    "left_ear": "left_ear",
    "right_ear": "right_ear",
    "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow",
    "right_elbow": "right_elbow",
    "left_wrist": "left_wrist",
    "right_wrist": "right_wrist",
    "left_pinky": "left_pinky",
    "right_pinky": "right_pinky",
    "left_index": "left_index",
    "right_index": "right_index",
    "left_thumb": "left_thumb",
    "right_thumb": "right_thumb",
    "left_hip": "left_hip",
    "right_hip": "right_hip",
    "left_knee": "left_knee",
    "right_knee": "right_knee",
    "left_ankle": "left_ankle",
    "right_ankle": "right_ankle",
    "left_heel": "left_heel",
    "right_heel": "right_heel",
    "left_foot_index": "left_big_toe",
    "right_foot_index": "right_big_toe",
}
# Limbs compared in direction with MediaPipe's world landmarks.
_LIMBS = (
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_ear", "right_ear"),
    ("nose", "left_ear"),
    ("nose", "right_ear"),
)
# Bones that the fit rotates, with the weight of their |θ|² prior (stiffer spine and neck).
FREE_BONES = {
    "root": 0.0,
    "spine04": 0.4,
    "spine02": 0.4,
    "neck01": 0.2,
    "head": 0.2,
    "clavicle.L": 0.8,
    "clavicle.R": 0.8,
    "upperarm01.L": 0.02,
    "upperarm01.R": 0.02,
    "lowerarm01.L": 0.02,
    "lowerarm01.R": 0.02,
    "wrist.L": 0.05,
    "wrist.R": 0.05,
    "upperleg01.L": 0.05,
    "upperleg01.R": 0.05,
    "lowerleg01.L": 0.05,
    "lowerleg01.R": 0.05,
    "foot.L": 0.2,
    "foot.R": 0.2,
}
# Hand-model landmarks (MediaPipe hands order) that replace the pose's hand points.
_HAND_POINTS = {"wrist": 0, "thumb": 2, "index": 5, "pinky": 17}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_WARM_BONES = ("root", "spine04", "spine02")
_TORSO_BONES = ("neck01", "spine04", "upperarm01.L", "upperarm01.R")
_WORK_SIDE = 384
# Optimiser name -> the stages it runs with L-BFGS (the others with Adam).
_LBFGS_STAGES = {
    "adam": (),
    "lbfgs": ("torso", "pose", "silhouette"),
    "lbfgs-pose": ("torso", "pose"),
}
# Upper bounds of the clothing thickness per part, metres (hair on the head, coats on the torso).
CLOTHING_MAX = {
    "torso": 0.08,
    "head": 0.05,
    "upperarm": 0.06,
    "forearm": 0.05,
    "hand": 0.005,
    "thigh": 0.04,
    "shin": 0.06,
    "foot": 0.02,
}


@dataclass
class BodyFitOptions:
    """Weights and iteration counts of the body fit (defaults tuned for speed on a CPU)."""

    torso_iterations: int = 20
    pose_iterations: int = 40
    silhouette_iterations: int = 40
    learning_rate: float = 0.04
    keypoint_weight: float = 10.0
    face_weight: float = 2.0
    direction_weight: float = 0.02
    outside_weight: float = 4.0
    cover_weight: float = 6.0
    shape_prior: float = 0.002
    clothing_prior: float = 1.0
    pose_prior: float = 0.01
    knee_weight: float = 1.0
    torso_weight: float = 5.0
    upright_weight: float = 0.5
    init_weight: float = 0.0
    #: Extra pull towards ``init`` for the limb bones whose end landmark MediaPipe does not see
    #: (elbow for the upper arm, wrist for the forearm...: visibility below
    #: ``visibility_threshold``), scaled by ``1 - visibility``. There the keypoint term is off
    #: and the mask says little, so the network's 3D estimate is the better evidence.
    hidden_init_weight: float = 0.0
    #: Whether ``hidden_init_weight`` also pulls a bone that the photo's edge cuts (its start
    #: landmark in the photo, its end outside, as the upper arms of a head-and-shoulders
    #: framing): the mask places its part in the photo. Occluded ends in the photo are pulled
    #: either way.
    pull_cut_bones: bool = True
    visibility_threshold: float = 0.5
    contour_every: int = 10
    #: ``"adam"``: Adam, one energy evaluation per iteration. ``"lbfgs"``: L-BFGS with a
    #: strong-Wolfe line search in every stage; the iteration counts are then its energy
    #: evaluations, so the two cost about the same. ``"lbfgs-pose"``: L-BFGS in the torso and
    #: pose stages (keypoints, a smooth least-squares problem), Adam for the silhouette. The
    #: contour vertices are re-selected every ``contour_every`` evaluations with Adam, between
    #: L-BFGS runs of ``contour_every`` evaluations (a line search needs a fixed energy).
    #: Measured in docs/body_network.md: Adam is the default.
    optimiser: str = "adam"
    #: Adam's learning rates rise linearly from ``1 / warmup_iterations`` of their value to the
    #: full value over the first ``warmup_iterations`` Adam iterations (0: full from the start;
    #: L-BFGS stages are not counted). Adam's first steps move every parameter by about the
    #: learning rate whatever the size of its gradient, which scrambles a start that already
    #: agrees with the photo (a network's estimate): one full step from the network-only body
    #: took its keypoint error on nine photos from 21 to 94 px (docs/body_network.md, "Adam's
    #: first steps").
    warmup_iterations: int = 0
    #: For each leg MediaPipe does not see (frozen, out of the silhouette terms), start from
    #: the rest pose (standing) where MediaPipe places the knee outside the photo, or where
    #: standing puts more of the leg inside the person mask than ``init``'s guess does;
    #: otherwise, ties included, from the guess. A no-op from the rest pose; matters when
    #: ``init`` is a network's guess.
    choose_unseen_legs: bool = False
    #: With ``choose_unseen_legs``, a leg whose knee MediaPipe places outside the photo stands,
    #: except, with this set, where MediaPipe still reports that knee visible (visibility
    #: above ``visibility_threshold``, as everywhere in the fit: a confident guess just past
    #: the edge, as for a person cut at the knees); that leg is left to the mask test like
    #: other unseen legs (the start's guess unless standing puts more of it inside the mask).
    #: Knees of upper-body portraits are reported with visibilities near 0 and still stand.
    trust_knees_outside_frame: bool = False
    #: Count a landmark MediaPipe reports visible even where it lies outside the photo (a
    #: confident guess past the edge) in the keypoint term and in deciding which legs are seen.
    #: By default only landmarks inside the photo count.
    landmarks_outside_frame: bool = False
    #: Weight of the adversarial pose prior (``prior`` of :func:`fit_body`, the least-squares
    #: generator loss of its pose logits) in the pose and silhouette stages; 0 leaves it out.
    adversarial_weight: float = 0.0


@dataclass
class BodyFit:
    """Result of :func:`fit_body`.

    Attributes:
        shape: (num_shape,) float32 shape coefficients.
        pose: (J, 3) float32 axis-angle bone rotations (zero for bones not fitted).
        translation: (3,) float32 camera-frame translation, metres.
        clothing: (P,) float32 clothing thickness per body part (``BodyModel.part_weights``
            order), metres along the rest normals.
        keypoint_error_px: mean 2D error of the visible MediaPipe landmarks, pixels.
        keypoint_scale_px: the person's torso length in pixels (the normalisation).
        losses: final value of each energy term.
    """

    shape: np.ndarray
    pose: np.ndarray
    translation: np.ndarray
    keypoint_error_px: float
    keypoint_scale_px: float
    clothing: np.ndarray | None = None
    losses: dict[str, float] = field(default_factory=dict)


def fit_body(
    model: BodyModel,
    person: BodyLandmarks,
    K: np.ndarray,
    *,
    options: BodyFitOptions | None = None,
    init: BodyFit | None = None,
    face: FaceLandmarks | None = None,
    hands: dict[str, np.ndarray] | None = None,
    prior: PoseDiscriminator | None = None,
) -> BodyFit:
    """Fit shape, pose and translation to one person (see the module docstring).

    Args:
        model: the body model.
        person: MediaPipe pose of the person (landmarks, world landmarks, mask).
        K: (3, 3) intrinsics of the photo.
        options: weights and iterations.
        init: a starting point (e.g. from a network); default: the rest body aligned to the
            torso.
        face: MediaPipe face mesh of the person, when the face is visible: its points (but the
            oval and the irises) pull the head, with errors normalised by the face size.
        hands: MediaPipe hand landmarks by side (``{"left": (21, 2), ...}``, see
            :mod:`recon3d.keypoints.mediapipe_hands`): their wrist and knuckles replace the pose
            model's hand points.
        prior: the adversarial pose prior (:class:`~recon3d.models.body_prior.PoseDiscriminator`)
            that ``options.adversarial_weight`` weighs; required when that weight is set.
    """
    from scipy.spatial import cKDTree

    opts = options or BodyFitOptions()
    if opts.optimiser not in _LBFGS_STAGES:
        raise ValueError(f"optimiser must be one of {tuple(_LBFGS_STAGES)}, got {opts.optimiser!r}")
    if opts.warmup_iterations < 0:
        raise ValueError(f"warmup_iterations must be >= 0, got {opts.warmup_iterations}")
    if opts.adversarial_weight and prior is None:
        raise ValueError(
            "options.adversarial_weight is set but no prior was given: pass "
            "prior=PoseDiscriminator.from_pretrained() (recon3d.models.body_prior)"
        )
    device = model.mean_vertices.device
    dtype = model.mean_vertices.dtype
    h, w = person.mask.shape

    model_index = torch.as_tensor([model.keypoint(v) for v in MEDIAPIPE_TO_MODEL.values()])
    target_2d, weight_np, scale_px = _keypoint_targets(person, hands, opts)
    seen = _seen_landmarks(person, opts)
    names = list(MEDIAPIPE_TO_MODEL)

    # Working resolution of the silhouette terms.
    work = min(1.0, _WORK_SIDE / max(h, w))
    sdf, boundary = _mask_fields(person, work)
    sdf_t = torch.as_tensor(sdf, dtype=dtype, device=device)[None, None]
    boundary_t = torch.as_tensor(boundary, dtype=dtype, device=device)
    scale_work = scale_px * work

    K_t = torch.as_tensor(K, dtype=dtype, device=device)
    target_t = torch.as_tensor(target_2d, dtype=dtype, device=device)
    weight_t = torch.as_tensor(weight_np, dtype=dtype, device=device)
    limbs, limb_w, limb_dir = _limb_targets(person, opts.visibility_threshold, names)
    limb_dir_t = torch.as_tensor(limb_dir, dtype=dtype, device=device)
    limb_w_t = torch.as_tensor(limb_w, dtype=dtype, device=device)

    free_names = sorted(FREE_BONES, key=model.bone)
    free = tuple(model.bone(name) for name in free_names)
    prior_w = torch.as_tensor([FREE_BONES[n] for n in free_names], dtype=dtype, device=device)
    root = free_names.index("root")
    knees = [free_names.index(n) for n in ("lowerleg01.L", "lowerleg01.R")]
    warm_bones = torch.as_tensor([n in _WARM_BONES for n in free_names], device=device)
    # Unseen legs stay in the rest pose (standing) and out of the silhouette terms: behind a
    # podium or below the frame, the mask says nothing about them.
    frozen_names, hidden_parts = _unobserved(seen)
    frozen = torch.as_tensor([n in frozen_names for n in free_names], device=device)
    seen_vertex = ~np.isin(np.asarray(model.part_names)[model.vertex_part], list(hidden_parts))
    seen_vertex_t = torch.as_tensor(seen_vertex, device=device)

    if init is None:
        init = _initialise(model, person, K, target_2d, weight_np, names)
    start_pose = init.pose
    if opts.choose_unseen_legs and frozen_names:
        start_pose = _choose_unseen_legs(
            model,
            person,
            init,
            frozen_names,
            hidden_parts,
            K,
            sdf,
            work,
            opts.trust_knees_outside_frame,
            opts.visibility_threshold,
        )
    shape = torch.tensor(init.shape, dtype=dtype, device=device)[None].requires_grad_(True)
    free_pose = torch.tensor(start_pose[list(free)], dtype=dtype, device=device)[None]
    init_pose = free_pose[0].detach().clone()
    unseen = _unseen_ends(person, free_names, hands, opts.visibility_threshold, opts.pull_cut_bones)
    pull = opts.init_weight + opts.hidden_init_weight * unseen
    pull_t = torch.as_tensor(pull, dtype=dtype, device=device)[1:, None]
    init_shape = torch.as_tensor(init.shape, dtype=dtype, device=device)[None]
    free_pose.requires_grad_(True)
    translation = torch.tensor(init.translation, dtype=dtype, device=device)[None]
    translation.requires_grad_(True)

    part_w, part_names = model.part_weights()
    part_w = part_w.to(device=device, dtype=dtype)
    clothing_max = torch.as_tensor(
        [CLOTHING_MAX[n] for n in part_names], dtype=dtype, device=device
    )
    if init.clothing is not None:
        start = np.clip(init.clothing / clothing_max.cpu().numpy(), 1e-3, 1 - 1e-3)
        start = np.log(start / (1 - start))
    else:
        start = np.full(len(part_names), -2.0)
    raw_clothing = torch.tensor(start, dtype=dtype, device=device).requires_grad_(True)
    optimiser = torch.optim.Adam(
        [
            {"params": [raw_clothing], "lr": opts.learning_rate * 2},
            {"params": [free_pose], "lr": opts.learning_rate},
            {"params": [shape], "lr": opts.learning_rate * 2},
            {"params": [translation], "lr": opts.learning_rate * 0.25},
        ]
    )
    if face is not None:
        keep = np.setdiff1d(np.arange(len(face.points)), np.r_[FACE_OVAL, IRIS])
        face_tri = torch.as_tensor(model.faces[model.face_points.faces[keep]], device=device)
        face_bary = torch.as_tensor(model.face_points.bary[keep], dtype=dtype, device=device)
        face_target = torch.as_tensor(face.points[keep, :2], dtype=dtype, device=device)
        face_scale = float(max(face.size, 1.0))
    faces = torch.as_tensor(model.faces, device=device)
    # Points of the arms that must stay out of the torso: elbows, wrists, mid-forearms.
    arm = [model.keypoint(n) for n in ("left_elbow", "left_wrist", "right_elbow", "right_wrist")]
    losses: dict[str, torch.Tensor] = {}
    stages = (
        ["torso"] * opts.torso_iterations
        + ["pose"] * opts.pose_iterations
        + ["silhouette"] * opts.silhouette_iterations
    )
    contour_state = {"contour": torch.zeros(0, dtype=torch.long, device=device), "refresh": True}

    def energy(stage: str) -> torch.Tensor:
        """The energy of ``stage`` at the current parameters, with its gradients (masked as the
        stage says); re-selects the contour vertices when ``contour_state`` asks for it."""
        contour = contour_state["contour"]
        clothing = _clothing(raw_clothing, clothing_max)
        offsets = (part_w @ clothing)[None]
        # The rotation matrices once, for the model and the adversarial prior.
        local = axis_angle_to_matrix(free_pose)
        out = model(shape, local, translation, bones=free, normal_offsets=offsets)
        verts = out.vertices[0]
        all_keypoints = model.keypoints(out.vertices)[0]
        keypoints = all_keypoints[model_index]
        projected = _project(keypoints, K_t)
        err = ((projected - target_t) ** 2).sum(-1) / scale_px**2
        losses["keypoints"] = (
            opts.keypoint_weight * (weight_t * err).sum() / weight_t.sum().clamp_min(1e-6)
        )

        rotation_prior = (prior_w * (free_pose[0] ** 2).sum(-1)).sum()
        if opts.init_weight or opts.hidden_init_weight:
            # Stay near the starting estimate (a network's 3D guess) where 2D says little.
            losses["init"] = (pull_t * (free_pose[0, 1:] - init_pose[1:]) ** 2).sum() + (
                opts.init_weight * 0.1 * ((shape - init_shape) ** 2).sum()
            )
        # Standing people are upright in level photos: the pelvis's up axis should not tip
        # towards or away from the camera (the spine bones bend for a stooping person).
        up = axis_angle_to_matrix(free_pose[0, root])[:, 1]
        losses["upright"] = opts.upright_weight * up[2] ** 2
        losses["pose_prior"] = opts.pose_prior * rotation_prior
        if stage != "torso" and face is not None:
            face_3d = (out.vertices[0][face_tri] * face_bary[..., None]).sum(1)
            face_err = ((_project(face_3d, K_t) - face_target) ** 2).sum(-1) / face_scale**2
            losses["face"] = opts.face_weight * face_err.mean()
        if stage != "torso":
            flexion = free_pose[0, knees, 0]
            losses["knee"] = opts.knee_weight * torch.relu(-flexion).pow(2).sum()
            dirs = _directions(keypoints, limbs)
            cos = (dirs * limb_dir_t).sum(-1)
            losses["directions"] = opts.direction_weight * (limb_w_t * (1 - cos)).sum()
            losses["shape_prior"] = opts.shape_prior * (shape**2).sum()
            if opts.adversarial_weight:
                losses["adversarial"] = opts.adversarial_weight * prior.pose_loss(local)[0]
            joints = {name: out.joints[0, free_names.index(name)] for name in _TORSO_BONES}
            losses["torso"] = opts.torso_weight * _hands_outside_torso(
                joints, _arm_points(all_keypoints[arm])
            )
        if stage == "silhouette":
            if contour_state["refresh"] or contour.numel() == 0:
                contour = _contour_vertices(verts.detach(), faces)
                contour_state["contour"] = contour
                contour_state["refresh"] = False
            uv_work = _project(verts, K_t) * work
            inside = _sample(sdf_t, uv_work, sdf.shape) / scale_work
            # Only vertices that land in the frame and belong to observed parts.
            hh, ww = sdf.shape
            in_frame = (
                (uv_work[:, 0] >= 0)
                & (uv_work[:, 0] <= ww - 1)
                & (uv_work[:, 1] >= 0)
                & (uv_work[:, 1] <= hh - 1)
                & seen_vertex_t
            )
            outside = torch.relu(inside) * in_frame
            losses["outside"] = opts.outside_weight * outside.pow(2).mean()
            if contour.numel() and len(boundary_t):
                c2d = uv_work[contour]
                # Nearest projected contour vertex of each mask boundary point (a k-d tree:
                # the dense distance matrix was an eighth of the fit's time).
                points = c2d.detach().cpu().numpy()
                # A vertex at the camera plane projects to infinity; the tree needs finite points.
                tree = cKDTree(np.nan_to_num(points, nan=1e9, posinf=1e9, neginf=-1e9))
                nearest = torch.as_tensor(tree.query(boundary)[1], device=device)
                dist2 = ((boundary_t - c2d[nearest]) ** 2).sum(-1) / scale_work**2
                losses["cover"] = opts.cover_weight * dist2.mean()
            losses["clothing"] = opts.clothing_prior * (clothing**2).sum()
        total = sum(losses.values())
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        free_pose.grad[0, frozen] = 0
        if stage == "torso":
            # The rigid alignment and the spine first.
            free_pose.grad[0, ~warm_bones] = 0
            shape.grad = None
        if stage != "silhouette":
            raw_clothing.grad = None
        return total.detach()

    lbfgs_stages = _LBFGS_STAGES[opts.optimiser]
    params = [raw_clothing, free_pose, shape, translation]
    warmup = None
    if opts.warmup_iterations > 1:
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimiser,
            start_factor=1.0 / opts.warmup_iterations,
            total_iters=opts.warmup_iterations - 1,
        )
    it = 0
    for stage, run in itertools.groupby(stages):
        count = len(list(run))
        if stage not in lbfgs_stages:
            for _ in range(count):
                contour_state["refresh"] = it % opts.contour_every == 0
                optimiser.step(lambda stage=stage: energy(stage))
                if warmup is not None:
                    warmup.step()
                it += 1
        else:
            it += count
            lbfgs = torch.optim.LBFGS(
                params, lr=1.0, max_iter=count, history_size=10, line_search_fn="strong_wolfe"
            )
            for chunk in range(0, count, opts.contour_every):
                evaluations = min(opts.contour_every, count - chunk)
                lbfgs.param_groups[0]["max_eval"] = evaluations
                lbfgs.param_groups[0]["max_iter"] = evaluations
                contour_state["refresh"] = True
                lbfgs.step(lambda stage=stage: energy(stage))

    with torch.no_grad():
        pose = torch.as_tensor(init.pose, dtype=dtype, device=device)[None].clone()
        pose[:, list(free)] = free_pose
        clothing = _clothing(raw_clothing, clothing_max)
        out = model(shape, pose, translation, normal_offsets=(part_w @ clothing)[None])
        keypoints = model.keypoints(out.vertices)[0][model_index]
        px = _project(keypoints, K_t).cpu().numpy()
    vis = weight_np > 0
    err_px = np.linalg.norm(px - target_2d, axis=1)
    return BodyFit(
        shape=shape.detach()[0].cpu().numpy().astype(np.float32),
        pose=pose.detach()[0].cpu().numpy().astype(np.float32),
        translation=translation.detach()[0].cpu().numpy().astype(np.float32),
        clothing=clothing.cpu().numpy().astype(np.float32),
        keypoint_error_px=float(err_px[vis].mean()) if vis.any() else float("nan"),
        keypoint_scale_px=float(scale_px),
        losses={k: float(v.detach()) for k, v in losses.items()},
    )


def _seen_landmarks(person: BodyLandmarks, opts: BodyFitOptions) -> np.ndarray:
    """(33,) bool: the MediaPipe landmarks the fit counts as seen."""
    if opts.landmarks_outside_frame:
        return person.visibility > opts.visibility_threshold
    return person.visible(opts.visibility_threshold)


def _keypoint_targets(
    person: BodyLandmarks, hands: dict[str, np.ndarray] | None, opts: BodyFitOptions
) -> tuple[np.ndarray, np.ndarray, float]:
    """The keypoint term's targets: (K, 2) pixel positions of the model keypoints
    (:data:`MEDIAPIPE_TO_MODEL` order), (K,) weights (0 for landmarks not seen) and the torso
    length in pixels that normalises the errors."""
    mp_index = [POSE_LANDMARKS.index(k) for k in MEDIAPIPE_TO_MODEL]
    target_2d = person.points[mp_index].astype(np.float64)
    seen = _seen_landmarks(person, opts)
    weight = np.where(seen[mp_index], 1.0, 0.0)
    weight *= person.visibility[mp_index]
    names = list(MEDIAPIPE_TO_MODEL)
    for side, points in (hands or {}).items():
        # The hand model's knuckles and wrist are sharper than the pose model's hand points.
        for name, index in _HAND_POINTS.items():
            row = names.index(f"{side}_{name}")
            target_2d[row] = points[index]
            weight[row] = 1.0
    torso_idx = [names.index(n) for n in _TORSO]
    return target_2d, weight, _torso_length(target_2d[torso_idx], person)


def keypoint_error(
    model: BodyModel,
    vertices: np.ndarray,
    person: BodyLandmarks,
    K: np.ndarray,
    *,
    hands: dict[str, np.ndarray] | None = None,
    options: BodyFitOptions | None = None,
) -> tuple[float, float]:
    """How far a posed body's keypoints land from the landmarks the fit would use, as
    :attr:`BodyFit.keypoint_error_px` and :attr:`BodyFit.keypoint_scale_px` report it, for any
    estimate (e.g. the network's alone, which runs no fit).

    Args:
        vertices: (V, 3) posed vertices in the camera frame (with any clothing).
        hands: the hand landmarks the fit was given, if any.
        options: the fit's options (which landmarks count as seen).
    Returns:
        (mean pixel error over the seen landmarks, NaN when none is seen; torso length in
        pixels).
    """
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"expected K of shape (3, 3), got {K.shape}")
    vertices = np.asarray(vertices)
    if vertices.shape != (model.num_vertices, 3):
        raise ValueError(
            f"expected vertices of shape ({model.num_vertices}, 3), got {vertices.shape}"
        )
    target_2d, weight, scale_px = _keypoint_targets(person, hands, options or BodyFitOptions())
    model_index = [model.keypoint(v) for v in MEDIAPIPE_TO_MODEL.values()]
    dtype, device = model.mean_vertices.dtype, model.mean_vertices.device
    with torch.no_grad():
        posed = torch.as_tensor(vertices, dtype=dtype, device=device)[None]
        keypoints = model.keypoints(posed)[0][model_index]
        px = _project(keypoints, torch.as_tensor(K, dtype=dtype, device=device)).cpu().numpy()
    seen = weight > 0
    err = np.linalg.norm(px - target_2d, axis=1)
    return (float(err[seen].mean()) if seen.any() else float("nan")), float(scale_px)


def _clothing(raw: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Clothing thickness in [0, upper] from unconstrained parameters (smooth bounds)."""
    return upper * torch.sigmoid(raw)


def _unobserved(seen: np.ndarray) -> tuple[set[str], set[str]]:
    """Bones to keep at rest and body parts to leave out of the silhouette terms, per leg:
    without a seen knee the whole leg, without a seen ankle the shin and foot (``seen``:
    (33,) bool per MediaPipe landmark)."""
    frozen: set[str] = set()
    hidden: set[str] = set()
    for side, name in (("L", "left"), ("R", "right")):
        if not seen[POSE_LANDMARKS.index(f"{name}_knee")]:
            frozen |= {f"upperleg01.{side}", f"lowerleg01.{side}", f"foot.{side}"}
            hidden |= {f"thigh.{side}", f"shin.{side}", f"foot.{side}"}
        elif not seen[POSE_LANDMARKS.index(f"{name}_ankle")]:
            frozen |= {f"lowerleg01.{side}", f"foot.{side}"}
            hidden |= {f"shin.{side}", f"foot.{side}"}
    return frozen, hidden


# Limb bone -> the landmarks at its far end, whose visibility says whether the bone is seen.
_BONE_ENDS = {
    "upperarm01": ("elbow",),
    "lowerarm01": ("wrist",),
    "wrist": ("index", "pinky"),
    "upperleg01": ("knee",),
    "lowerleg01": ("ankle",),
    "foot": ("heel", "foot_index"),
}
# Limb bone -> the landmark at its near end (the joint it turns about).
_BONE_STARTS = {
    "upperarm01": "shoulder",
    "lowerarm01": "elbow",
    "wrist": "wrist",
    "upperleg01": "hip",
    "lowerleg01": "knee",
    "foot": "ankle",
}


def _unseen_ends(
    person: BodyLandmarks,
    bones: list[str],
    hands: dict[str, np.ndarray] | None,
    threshold: float,
    pull_cut_bones: bool = True,
) -> np.ndarray:
    """(len(bones),) ``1 - visibility`` of each limb bone's far end (the mean over its end
    landmarks) where that is below ``threshold``; 0 for seen ends, for the other bones and for
    a hand the hand model found. Without ``pull_cut_bones`` also 0 for a bone that the photo's
    edge cuts: its end outside the photo, its start inside."""
    unseen = np.zeros(len(bones))
    for i, bone in enumerate(bones):
        base, _, side = bone.partition(".")
        if base not in _BONE_ENDS:
            continue
        name = "left" if side == "L" else "right"
        if base in ("lowerarm01", "wrist") and name in (hands or {}):
            continue
        ends = [POSE_LANDMARKS.index(f"{name}_{end}") for end in _BONE_ENDS[base]]
        visibility = float(np.mean(person.visibility[ends]))
        if not pull_cut_bones:
            start = person.points[POSE_LANDMARKS.index(f"{name}_{_BONE_STARTS[base]}")]
            end = person.points[ends].mean(axis=0)
            if person.inside(start) and not person.inside(end):
                continue
        unseen[i] = 1.0 - visibility if visibility < threshold else 0.0
    return np.clip(unseen, 0.0, 1.0)


def _choose_unseen_legs(
    model: BodyModel,
    person: BodyLandmarks,
    init: BodyFit,
    frozen: set[str],
    hidden_parts: set[str],
    K: np.ndarray,
    sdf: np.ndarray,
    work: float,
    trust_outside_frame: bool = False,
    threshold: float = 0.5,
) -> np.ndarray:
    """``init.pose`` (J, 3) with each unseen leg's frozen bones set to the rest pose (standing)
    where standing puts a larger share of the leg's in-frame vertices inside the person mask
    (``sdf`` at the working scale ``work``, inside <= 0) than ``init``'s guess, and where
    MediaPipe places the knee outside the photo (the leg is below the frame: nothing speaks for
    a guess). Where the mask prefers neither (shares within :data:`_LEG_TIE`, as when something
    covers the leg), the guess stays: on real photos with a knee or lower leg covered, the
    network's guess places the hidden joints better than standing (docs/body_network.md)."""
    pose = init.pose.copy()
    part_of_vertex = np.asarray(model.part_names)[model.vertex_part]
    hh, ww = sdf.shape
    h, w = person.mask.shape
    for side, name in (("L", "left"), ("R", "right")):
        if not any(b.endswith(f".{side}") for b in frozen):
            continue
        parts = [p for p in hidden_parts if p.endswith(f".{side}")]
        # The frozen bones and the twist and toe bones below them (a network sets those too).
        chain = ("upperleg", "lowerleg", "foot", "toe")
        if f"upperleg01.{side}" not in frozen:
            chain = chain[1:]
        bones = [
            i
            for i, label in enumerate(model.bone_labels)
            if label.endswith(f".{side}") and label.startswith(chain)
        ]
        rest = pose.copy()
        rest[bones] = 0.0
        if np.allclose(rest[bones], pose[bones]):
            continue
        knee = POSE_LANDMARKS.index(f"{name}_knee")
        knee_x, knee_y = person.points[knee]
        trusted = trust_outside_frame and person.visibility[knee] > threshold
        if not trusted and not (0 <= knee_x < w and 0 <= knee_y < h):
            pose[bones] = 0.0
            continue
        leg = np.isin(part_of_vertex, parts)
        with torch.no_grad():
            dev = model.mean_vertices.device
            out = model(
                torch.as_tensor(np.repeat(init.shape[None], 2, 0), device=dev),
                torch.as_tensor(np.stack([pose, rest]), device=dev),
                torch.as_tensor(np.repeat(init.translation[None], 2, 0), device=dev),
            )
        inside_share = []
        for vertices in out.vertices[:, torch.as_tensor(leg, device=dev)].cpu().numpy():
            p = vertices @ K.T
            uv = p[:, :2] / np.maximum(p[:, 2:], 1e-6) * work
            x, y = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
            in_frame = (x >= 0) & (x < ww) & (y >= 0) & (y < hh)
            inside_share.append(
                float((sdf[y[in_frame], x[in_frame]] <= 0).mean()) if in_frame.any() else -1.0
            )
        _log.debug(
            "unseen %s leg: %.3f of the guess inside the mask, %.3f standing",
            name,
            *inside_share,
        )
        if inside_share[1] > inside_share[0] + _LEG_TIE:
            pose[bones] = 0.0
    return pose


def _project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    p = points @ K.T
    return p[..., :2] / p[..., 2:].clamp_min(1e-6)


def _torso_length(torso: np.ndarray, person: BodyLandmarks) -> float:
    """Mean shoulder-to-hip length in pixels; the mask height / 3 if the torso is unreliable."""
    left = np.linalg.norm(torso[0] - torso[2])
    right = np.linalg.norm(torso[1] - torso[3])
    length = 0.5 * (left + right)
    fallback = (person.box[3] - person.box[1]) / 3.0
    return float(length if length > 0.1 * fallback else fallback)


def _mask_fields(person: BodyLandmarks, work: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (outside > 0) of the cleaned person mask at the working resolution, and
    (N, 2) points sampled on the mask's boundary away from the image border."""
    import cv2

    h, w = person.mask.shape
    size = (max(1, round(w * work)), max(1, round(h * work)))
    mask = cv2.resize(person.mask, size, interpolation=cv2.INTER_AREA) > 0.5
    m8 = mask.astype(np.uint8)
    outside = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 5)
    inside = cv2.distanceTransform(m8, cv2.DIST_L2, 5)
    sdf = (outside - inside).astype(np.float32)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c[:, 0] for c in contours]) if contours else np.zeros((0, 2))
    hh, ww = mask.shape
    keep = (pts[:, 0] > 1) & (pts[:, 0] < ww - 2) & (pts[:, 1] > 1) & (pts[:, 1] < hh - 2)
    pts = pts[keep].astype(np.float64)
    if len(pts) > 600:
        pts = pts[np.linspace(0, len(pts) - 1, 600).astype(int)]
    return sdf, pts


def _limb_targets(person: BodyLandmarks, threshold: float, names: list[str]):
    limbs, weights, dirs = [], [], []
    world = person.world.astype(np.float64)
    for a, b in _LIMBS:
        ia, ib = POSE_LANDMARKS.index(a), POSE_LANDMARKS.index(b)
        d = world[ib] - world[ia]
        n = np.linalg.norm(d)
        limbs.append((names.index(a), names.index(b)))
        weights.append(min(person.visibility[ia], person.visibility[ib]) if n > 1e-6 else 0.0)
        dirs.append(d / max(n, 1e-9))
    weights = np.where(np.asarray(weights) > threshold, weights, 0.0)
    return np.asarray(limbs), weights, np.asarray(dirs)


def _directions(keypoints: torch.Tensor, limbs: np.ndarray) -> torch.Tensor:
    d = keypoints[limbs[:, 1]] - keypoints[limbs[:, 0]]
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def _sample(field: torch.Tensor, uv: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear samples of a (1, 1, H, W) field at (N, 2) pixel positions (border-clamped)."""
    h, w = shape
    grid = torch.stack([(2 * uv[:, 0] + 1) / w - 1, (2 * uv[:, 1] + 1) / h - 1], -1)
    out = torch.nn.functional.grid_sample(
        field, grid[None, :, None], mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0, 0, :, 0]


def _contour_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Indices of vertices whose normal is nearly perpendicular to the viewing ray."""
    tri = vertices[faces]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    vn = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    vn = vn / vn.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ray = vertices / vertices.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (vn * ray).sum(-1).abs()
    return torch.nonzero(cos < 0.2).reshape(-1)


def _arm_points(elbows_wrists: torch.Tensor) -> torch.Tensor:
    """(6, 3): left elbow, wrist, mid-forearm, then the same on the right."""
    le, lw, re, rw = elbows_wrists
    return torch.stack([le, lw, 0.5 * (le + lw), re, rw, 0.5 * (re + rw)])


def _hands_outside_torso(joints: dict[str, torch.Tensor], hands: torch.Tensor) -> torch.Tensor:
    """Penalty for arm points (elbows, wrists, forearms) inside the torso, modelled as a capsule
    around the spine whose radius is a fraction of the shoulder width (arms crossed must stay in
    front of the chest)."""
    top = joints["neck01"]
    bottom = joints["spine04"]
    width = (joints["upperarm01.L"] - joints["upperarm01.R"]).norm()
    radius = 0.28 * width
    axis = top - bottom
    t = (((hands - bottom) @ axis) / (axis @ axis)).clamp(0, 1)
    closest = bottom + t[:, None] * axis
    dist = (hands - closest).norm(dim=-1)
    return (torch.relu(radius - dist) / radius).pow(2).sum()


def _initialise(model, person, K, target_2d, weight, names) -> BodyFit:
    """Rest body rotated onto MediaPipe's world torso (Kabsch) at the distance that matches the
    torso's length in pixels."""
    with torch.no_grad():
        like = {"dtype": model.mean_vertices.dtype, "device": model.mean_vertices.device}
        zeros = torch.zeros(1, model.num_joints, 3, **like)
        out = model(torch.zeros(1, model.num_shape, **like), zeros)
        rest_kp = model.keypoints(out.vertices)[0].cpu().numpy().astype(np.float64)
    idx = [model.keypoint(MEDIAPIPE_TO_MODEL[n]) for n in _TORSO]
    mp_idx = [POSE_LANDMARKS.index(n) for n in _TORSO]
    src = rest_kp[idx]
    dst = person.world[mp_idx].astype(np.float64)
    rotation = _kabsch(src - src.mean(0), dst - dst.mean(0))
    rotvec = _matrix_to_axis_angle(rotation)
    root = model.mean_joints[0].cpu().numpy().astype(np.float64)

    # Distance from the torso length: model torso (rotated) vs pixels.
    torso_names = [names.index(n) for n in _TORSO]
    scale_px = _torso_length(target_2d[torso_names], person)
    model_torso = 0.5 * (np.linalg.norm(src[0] - src[2]) + np.linalg.norm(src[1] - src[3]))
    f = 0.5 * (K[0, 0] + K[1, 1])
    depth = f * model_torso / max(scale_px, 1e-6)
    centre_px = target_2d[torso_names].mean(0)
    centre_cam = np.linalg.solve(K, np.r_[centre_px, 1.0]) * depth
    rotated_centre = rotation @ (src.mean(0) - root) + root
    translation = centre_cam - rotated_centre
    pose = np.zeros((model.num_joints, 3), np.float32)
    pose[0] = rotvec
    _limb_ik(model, person, rotation, rest_kp, pose)
    return BodyFit(
        shape=np.zeros(model.num_shape, np.float32),
        pose=pose,
        translation=translation.astype(np.float32),
        keypoint_error_px=float("nan"),
        keypoint_scale_px=scale_px,
    )


# Limb bones posed analytically at the start (and by the body network's limb alignment):
# (bone, parent bone or None for the root, from landmark, to landmark).
LIMB_CHAINS = (
    ("upperarm01.L", None, "left_shoulder", "left_elbow"),
    ("lowerarm01.L", "upperarm01.L", "left_elbow", "left_wrist"),
    ("upperarm01.R", None, "right_shoulder", "right_elbow"),
    ("lowerarm01.R", "upperarm01.R", "right_elbow", "right_wrist"),
    ("upperleg01.L", None, "left_hip", "left_knee"),
    ("lowerleg01.L", "upperleg01.L", "left_knee", "left_ankle"),
    ("upperleg01.R", None, "right_hip", "right_knee"),
    ("lowerleg01.R", "upperleg01.R", "right_knee", "right_ankle"),
)


def _limb_ik(model, person, root_rotation, rest_kp, pose, threshold: float = 0.5) -> None:
    """Point each upper/lower limb bone along MediaPipe's world-landmark direction of that limb
    (the smallest rotation that does it), where both ends are visible; unseen thighs hang
    straight down. Arms crossed in front of
    the chest or legs stepping towards the camera are then reached from the start, not through
    the local minima of the 2D fit. Writes into ``pose`` (J, 3)."""
    import cv2

    world = person.world.astype(np.float64)
    world_rotation = {None: root_rotation}
    for bone, parent, a, b in LIMB_CHAINS:
        parent_rotation = world_rotation.get(parent)
        if parent_rotation is None:
            continue
        ia, ib = POSE_LANDMARKS.index(a), POSE_LANDMARKS.index(b)
        if min(person.visibility[ia], person.visibility[ib]) >= threshold:
            direction = world[ib] - world[ia]
        elif bone.startswith("upperleg"):
            # An unseen leg stands: the thigh hangs along the image's down direction, whatever
            # the lean of the torso (the fit keeps unseen legs where they are).
            direction = np.array([0.0, 1.0, 0.0])
        else:
            world_rotation[bone] = parent_rotation
            continue
        rest = (
            rest_kp[model.keypoint(MEDIAPIPE_TO_MODEL[b])]
            - rest_kp[model.keypoint(MEDIAPIPE_TO_MODEL[a])]
        )
        target = parent_rotation.T @ direction
        local = rotation_between(rest, target)
        pose[model.bone(bone)] = cv2.Rodrigues(local)[0].ravel()
        world_rotation[bone] = parent_rotation @ local


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking the direction of ``a`` to that of ``b``."""
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-9:
        if cos > 0:
            return np.eye(3)
        # Opposite directions: half a turn about any axis perpendicular to a.
        perp = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        perp /= np.linalg.norm(perp)
        return 2 * np.outer(perp, perp) - np.eye(3)
    k = axis / sin
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    angle = np.arctan2(sin, cos)
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * (kx @ kx)


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R minimising |R src - dst|² for (N, 3) centred point sets."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _matrix_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    import cv2

    rotvec, _ = cv2.Rodrigues(rotation)
    return rotvec.ravel()
