"""Fit the head model to MediaPipe's 478 face landmarks.

Unknowns: identity (60 PCA coefficients, N(0, 1) prior), expression (52 facial actions in
[0, 1]), head rotation (axis-angle) and translation in the camera frame; the intrinsics ``K`` are
given. Energy, with the landmarks' 2D positions normalised by the face size:

    E = Σ w_i |π(R·L_i + t) - x_i|² / s²                   (2D reprojection)
      + λ_z Σ |(d_i - mean d) - α (z_i - mean z)|² / s²     (MediaPipe depth, up to scale α)
      + λ_id |c_id|² + λ_exp |c_exp|² + λ_box (bounds of c_exp)

solved with L-BFGS after a PnP initialisation; the rigid pose is solved first, then everything.
A trained network (later) can provide ``init`` and the same energy refines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from recon3d.keypoints.base import FaceLandmarks
from recon3d.models.head import HeadModel

# MediaPipe face-oval points follow the visible silhouette, not fixed skin points, so they are
# trusted less; iris centres depend on gaze, which the blendshapes model only roughly.
_FACE_OVAL = np.array([
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
])  # fmt: skip
_IRIS = np.arange(468, 478)


@dataclass
class HeadFitOptions:
    """Weights and iteration counts of the head fit (defaults tuned for speed on a CPU)."""

    depth_weight: float = 0.3
    identity_prior: float = 2e-3
    expression_prior: float = 1e-3
    bounds_weight: float = 10.0
    oval_weight: float = 0.3
    iris_weight: float = 0.2
    rigid_iterations: int = 30
    full_iterations: int = 80


@dataclass
class HeadFit:
    """Fitted parameters. ``rotation`` (3, 3) and ``translation`` (3,) map model to camera frame."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    reprojection_error_px: float
    history: list[float] = field(default_factory=list)


def initial_pose(model_points: np.ndarray, image_points: np.ndarray, K: np.ndarray):
    """Rotation (3, 3) and translation (3,) from PnP on the mean-shape landmarks."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(
        model_points.astype(np.float64), image_points.astype(np.float64), K, None,
        flags=cv2.SOLVEPNP_SQPNP,
    )  # fmt: skip
    if not ok or tvec[2, 0] <= 0:
        # Fallback that cannot fail: frontal head at the distance that matches its pixel size.
        span_model = np.ptp(model_points[:, :2], axis=0).max()
        span_image = np.ptp(image_points, axis=0).max()
        z = K[0, 0] * span_model / max(span_image, 1.0)
        centre = (image_points.mean(0) - K[:2, 2]) / K[0, 0] * z
        return np.eye(3), np.array([centre[0], centre[1], z]) - model_points.mean(0)
    rot, _ = cv2.Rodrigues(rvec)
    return rot, tvec[:, 0]


def fit_head(
    model: HeadModel,
    landmarks: FaceLandmarks,
    K: np.ndarray,
    *,
    options: HeadFitOptions | None = None,
    init: HeadFit | None = None,
) -> HeadFit:
    """Fit identity, expression and pose to one face's landmarks.

    Args:
        model: the head model (its buffers' device is used).
        landmarks: (478, 3) MediaPipe points in image pixels.
        K: (3, 3) camera intrinsics in pixels.
        options: energy weights and iteration counts.
        init: a previous estimate (e.g. from a network) to start from instead of PnP.
    """
    import roma

    opts = options or HeadFitOptions()
    device = model.mean_vertices.device
    f64 = dict(device=device, dtype=torch.float64)
    mean, id_basis, exp_basis = (t.to(**f64) for t in model.surface_basis("mediapipe478"))
    target = torch.as_tensor(landmarks.points, **f64)
    Kt = torch.as_tensor(K, **f64)
    scale = max(landmarks.size, 1.0)

    weights = np.ones(len(target))
    weights[_FACE_OVAL] = opts.oval_weight
    weights[_IRIS] = opts.iris_weight
    w = torch.as_tensor(weights / weights.sum(), **f64)

    if init is None:
        rot0, t0 = initial_pose(mean.cpu().numpy(), landmarks.points[:, :2], K)
        identity = torch.zeros(model.num_identity, **f64)
        expression = torch.zeros(model.num_expression, **f64)
    else:
        rot0, t0 = init.rotation, init.translation
        identity = torch.as_tensor(init.identity, **f64)
        expression = torch.as_tensor(init.expression, **f64)
    rotvec = roma.rotmat_to_rotvec(torch.as_tensor(rot0, **f64))
    translation = torch.as_tensor(t0, **f64)
    history: list[float] = []

    def energy(rotvec, translation, identity, expression):
        points = mean + torch.einsum("k,knd->nd", identity, id_basis)
        points = points + torch.einsum("k,knd->nd", expression, exp_basis)
        cam = points @ roma.rotvec_to_rotmat(rotvec).T + translation
        z = cam[:, 2].clamp_min(1e-4)
        proj = cam[:, :2] / z[:, None] * Kt[[0, 1], [0, 1]] + Kt[:2, 2]
        e2d = (w * ((proj - target[:, :2]) ** 2).sum(-1)).sum() / scale**2
        # Depth offsets in pixels at the face's distance, against MediaPipe's relative z.
        d_px = (z - z.mean()) * Kt[0, 0] / z.mean()
        z_mp = target[:, 2] - target[:, 2].mean()
        alpha = ((d_px * z_mp).sum() / (z_mp * z_mp).sum().clamp_min(1e-9)).detach().clamp(0.5, 2.0)
        ez = (w * (d_px - alpha * z_mp) ** 2).sum() / scale**2
        prior = opts.identity_prior * (identity**2).sum() + opts.expression_prior * (expression**2).sum()
        bounds = opts.bounds_weight * (torch.relu(-expression) ** 2 + torch.relu(expression - 1) ** 2).sum()
        return e2d + opts.depth_weight * ez + prior + bounds, proj

    def run(params: list[torch.Tensor], iterations: int) -> None:
        if iterations <= 0:
            return
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.LBFGS(
            params, lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
            tolerance_grad=1e-10, tolerance_change=1e-12,
        )  # fmt: skip

        def closure():
            optimizer.zero_grad()
            loss, _ = energy(rotvec, translation, identity, expression)
            loss.backward()
            history.append(float(loss))
            return loss

        optimizer.step(closure)
        for p in params:
            p.requires_grad_(False)

    if init is None:
        run([rotvec, translation], opts.rigid_iterations)
    run([rotvec, translation, identity, expression], opts.full_iterations)

    with torch.no_grad():
        expression.clamp_(0.0, 1.0)
        _, proj = energy(rotvec, translation, identity, expression)
        err = float((proj - target[:, :2]).norm(dim=-1).mean())
        rotation = roma.rotvec_to_rotmat(rotvec)
    return HeadFit(
        identity=identity.cpu().numpy().astype(np.float32),
        expression=expression.cpu().numpy().astype(np.float32),
        rotation=rotation.cpu().numpy(),
        translation=translation.cpu().numpy(),
        reprojection_error_px=err,
        history=history,
    )
