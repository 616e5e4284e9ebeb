"""Fit the head model to MediaPipe's 478 face landmarks.

Unknowns: identity (60 PCA coefficients, N(0, 1) prior), expression (52 facial actions in
[0, 1]), head rotation (axis-angle) and translation in the camera frame; the intrinsics ``K`` are
given. Energy, with the landmarks' 2D positions normalised by the face size:

    E = Σ w_i |π(R·L_i + t) - x_i|² / s²                   (2D reprojection)
      + λ_z Σ |(d_i - mean d) - α (z_i - mean z)|² / s²     (MediaPipe depth, up to scale α)
      + λ_id |c_id|² + λ_exp |c_exp|²,      with 0 ≤ c_exp ≤ 1

solved by alternating PnP for the pose and a bounded linear least-squares solve for the
coefficients (see :func:`fit_head`), from a PnP initialisation on the mean shape.
A trained network (later) can provide ``init`` and the same energy refines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon3d._threads import blas_single_threaded
from recon3d.keypoints.base import FaceLandmarks
from recon3d.models.head import HeadModel

# MediaPipe face-oval points follow the visible silhouette, not fixed skin points, so they are
# trusted less; iris centres depend on gaze, which the blendshapes model only roughly.
FACE_OVAL = np.array(
    [
        10,
        338,
        297,
        332,
        284,
        251,
        389,
        356,
        454,
        323,
        361,
        288,
        397,
        365,
        379,
        378,
        400,
        377,
        152,
        148,
        176,
        149,
        150,
        136,
        172,
        58,
        132,
        93,
        234,
        127,
        162,
        21,
        54,
        103,
        67,
        109,
    ]
)
IRIS = np.arange(468, 478)


@dataclass
class HeadFitOptions:
    """Weights and iteration counts of the head fit (defaults tuned for speed on a CPU)."""

    depth_weight: float = 0.3
    identity_prior: float = 5e-7
    expression_prior: float = 2e-7
    oval_weight: float = 0.3
    iris_weight: float = 0.2
    iterations: int = 4
    #: Pull of the coefficients towards ``init``'s (a network's estimate), per coefficient, in
    #: the units of ``identity_prior``; 0 (the default) pulls towards zero only.
    init_weight: float = 0.0


@dataclass
class HeadFit:
    """Fitted parameters. ``rotation`` (3, 3) and ``translation`` (3,) map model to camera frame."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    reprojection_error_px: float
    depth_scale: float = 1.0
    history: list[float] = field(default_factory=list)


def initial_pose(model_points: np.ndarray, image_points: np.ndarray, K: np.ndarray):
    """Rotation (3, 3) and translation (3,) from PnP on the mean-shape landmarks."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(
        model_points.astype(np.float64),
        image_points.astype(np.float64),
        K,
        None,
        flags=cv2.SOLVEPNP_SQPNP,
    )
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

    Alternates (1) the pose by PnP for the current shape and (2) identity, expression and the
    depth scale by a bounded *linear* least-squares solve: for a fixed pose the perspective
    residual ``(u - c_x)·Z - f·X`` is linear in the model coefficients, so each step is exact and
    takes milliseconds, and the expression bounds [0, 1] are respected exactly.

    Args:
        model: the head model.
        landmarks: (478, 3) MediaPipe points in image pixels.
        K: (3, 3) camera intrinsics in pixels.
        options: energy weights and iteration counts.
        init: a previous estimate (e.g. from a network) to start from instead of PnP.

    Runs with OpenBLAS on one thread (:func:`recon3d._threads.blas_single_threaded`): its small
    QR and matrix products gain nothing from more, several fits in concurrent threads would
    contend for OpenBLAS's thread pool, and the last bits of the result depend on the thread
    count, so this keeps fits from your own threads bit-identical to serial ones.
    """
    with blas_single_threaded():
        return _fit_head(model, landmarks, K, options=options, init=init)


def _fit_head(
    model: HeadModel,
    landmarks: FaceLandmarks,
    K: np.ndarray,
    *,
    options: HeadFitOptions | None,
    init: HeadFit | None,
) -> HeadFit:
    import cv2
    from scipy.optimize import lsq_linear

    opts = options or HeadFitOptions()
    mean_t, id_t, exp_t = model.surface_basis("mediapipe478")
    mean = mean_t.detach().cpu().numpy().astype(np.float64)  # (N, 3)
    basis = np.concatenate([id_t.detach().cpu().numpy(), exp_t.detach().cpu().numpy()]).astype(
        np.float64
    )
    basis = basis.transpose(1, 2, 0)  # (N, 3, K)
    n_id, n_exp = model.num_identity, model.num_expression
    n_coef = n_id + n_exp
    target = landmarks.points.astype(np.float64)
    uv, z_mp = np.ascontiguousarray(target[:, :2]), target[:, 2] - target[:, 2].mean()
    scale = max(landmarks.size, 1.0)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    weights = np.ones(len(target))
    weights[FACE_OVAL] = opts.oval_weight
    weights[IRIS] = opts.iris_weight
    weights /= weights.sum()
    sqrt_w = np.sqrt(weights)

    if init is None:
        coeffs = np.zeros(n_coef)
        rotation, translation = initial_pose(mean, uv, K)
    else:
        coeffs = np.r_[init.identity, init.expression].astype(np.float64)
        rotation, translation = init.rotation.copy(), init.translation.copy()
    depth_scale = 1.0
    lower = np.r_[np.full(n_id, -np.inf), np.zeros(n_exp), 0.3]
    upper = np.r_[np.full(n_id, np.inf), np.ones(n_exp), 3.0]
    prior = np.sqrt(
        np.r_[np.full(n_id, opts.identity_prior), np.full(n_exp, opts.expression_prior)]
    )
    # Optional pull towards the initial estimate: rows sqrt(w)·(c - c_init).
    pull = np.sqrt(opts.init_weight) if init is not None and opts.init_weight > 0 else 0.0
    init_coeffs = coeffs.copy()
    history: list[float] = []

    def shape(c: np.ndarray) -> np.ndarray:
        return mean + basis @ c

    for _ in range(opts.iterations):
        # (1) Pose for the current shape.
        points = shape(coeffs)
        rvec, _ = cv2.Rodrigues(rotation)
        ok, rvec, tvec = cv2.solvePnP(
            points,
            uv,
            K,
            None,
            rvec,
            translation.reshape(3, 1).copy(),
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
        if ok and tvec[2, 0] > 0:
            rotation, translation = cv2.Rodrigues(rvec)[0], tvec[:, 0]
        # (2) Coefficients and depth scale for the current pose (linear, bounded).
        z_now = (points @ rotation[2] + translation[2]).clip(1e-4)
        z_mean = z_now.mean()
        a_x = fx * rotation[0] + (cx - uv[:, :1]) * rotation[2]  # (N, 3)
        a_y = fy * rotation[1] + (cy - uv[:, 1:]) * rotation[2]
        row_scale = (sqrt_w / (z_now * scale))[:, None]
        rows_x = np.einsum("nd,ndk->nk", a_x, basis) * row_scale
        rhs_x = (
            -((a_x * mean).sum(1) + fx * translation[0] + (cx - uv[:, 0]) * translation[2])
            * row_scale[:, 0]
        )
        rows_y = np.einsum("nd,ndk->nk", a_y, basis) * row_scale
        rhs_y = (
            -((a_y * mean).sum(1) + fy * translation[1] + (cy - uv[:, 1]) * translation[2])
            * row_scale[:, 0]
        )
        # Depth: (Z_i - mean Z)·f/Z̄ ≈ alpha·z_mp_i, in face-size units.
        dz_basis = np.einsum("d,ndk->nk", rotation[2], basis)
        dz_basis -= dz_basis.mean(0)
        dz_mean = mean @ rotation[2]
        dz_mean -= dz_mean.mean()
        depth_scale = (np.sqrt(opts.depth_weight) * sqrt_w / scale)[:, None]
        rows_z = np.c_[dz_basis * fx / z_mean, -z_mp] * depth_scale
        rhs_z = -(dz_mean * fx / z_mean) * depth_scale[:, 0]
        blocks = [
            np.c_[rows_x, np.zeros(len(uv))],
            np.c_[rows_y, np.zeros(len(uv))],
            rows_z,
            np.c_[np.diag(prior), np.zeros(n_coef)],
        ]
        targets = [rhs_x, rhs_y, rhs_z, np.zeros(n_coef)]
        if pull:
            blocks.append(np.c_[np.eye(n_coef) * pull, np.zeros(n_coef)])
            targets.append(pull * init_coeffs)
        a = np.vstack(blocks)
        b = np.concatenate(targets)
        # Same minimiser on the (K+1)-row triangular factor: |Ax - b|² = |Rx - Qᵀb|² + const,
        # so the bounded solver's inner least squares work on ~113 rows instead of ~1550.
        q, r = np.linalg.qr(a)
        qtb = q.T @ b
        sol = lsq_linear(r, qtb, bounds=(lower, upper), method="bvls", lsmr_tol="auto")
        # BVLS can return a bound missed by a denormal (-5e-20 seen): clip to the exact box.
        x = np.clip(sol.x, lower, upper)
        coeffs, depth_scale = x[:n_coef], float(x[-1])
        history.append(float(2 * sol.cost + b @ b - qtb @ qtb))

    points = shape(coeffs) @ rotation.T + translation
    proj = points[:, :2] / points[:, 2:3] * (fx, fy) + (cx, cy)
    err = float(np.linalg.norm(proj - uv, axis=1).mean())
    return HeadFit(
        identity=coeffs[:n_id].astype(np.float32),
        expression=coeffs[n_id:].astype(np.float32),
        rotation=rotation,
        translation=translation,
        reprojection_error_px=err,
        depth_scale=depth_scale,
        history=history,
    )
