"""Quality measures of a reconstruction against its own photo, shared by tests, docs and
benchmarks so that every reported number has one definition."""

from __future__ import annotations

import numpy as np

from recon3d.reconstruction import Reconstruction

# MediaPipe pose landmarks in COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles; left before right).
COCO17_FROM_MEDIAPIPE = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def landmark_error(rec: Reconstruction) -> tuple[float, float]:
    """Mean distance between the projected model landmarks and the detected ones.

    Heads: the 478 face-mesh points, as a fraction of the face size (the larger side of the
    detected landmarks' bounding box). Bodies: the COCO-17 keypoints that MediaPipe sees
    (visibility > 0.5, inside the image), as a fraction of the torso length (shoulders to hips).

    Returns:
        (pixels, fraction).
    """
    if rec.target == "head":
        detected = rec.keypoints[:, :2]
        error = float(np.linalg.norm(rec.landmarks_2d("mediapipe478") - detected, axis=1).mean())
        return error, error / float(np.ptp(detected, axis=0).max())
    distances, torso, seen = _body_keypoint_distances(rec)
    error = float(distances[seen].mean()) if seen.any() else float("nan")
    return error, error / torso


def keypoint_pck(rec: Reconstruction, threshold: float = 0.1) -> float:
    """PCK of a body reconstruction: the fraction of MediaPipe's visible COCO-17 keypoints
    (visibility > 0.5, inside the image) within ``threshold`` x torso length (mean
    shoulder-to-hip distance of the detected keypoints) of the projected model keypoints."""
    distances, torso, seen = _body_keypoint_distances(rec)
    if not seen.any():
        return float("nan")
    return float((distances[seen] <= threshold * torso).mean())


def silhouettes(rec: Reconstruction, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool silhouettes of a body reconstruction: the mesh rendered with the photo's
    camera, and the person mask (> 0.5), at most ``max_side`` pixels on the long side."""
    import cv2

    from recon3d.render.renderer import render_mesh

    if rec.person_mask is None:
        raise ValueError("silhouettes need a body reconstruction (with a person mask)")
    small = rec.camera.bounded(max_side)
    body = (
        render_mesh(
            rec.vertices, rec.faces, small.K, (small.width, small.height), depth_only=True
        ).depth
        > 0
    )
    mask = cv2.resize(rec.person_mask, (small.width, small.height)) > 0.5
    return body, mask


def silhouette_iou(rec: Reconstruction, max_side: int = 1024) -> float:
    """Intersection over union of the mesh rendered with the photo's camera and the person mask
    of a body reconstruction (mask > 0.5), at most ``max_side`` pixels on the long side."""
    body, mask = silhouettes(rec, max_side)
    return float((body & mask).sum() / max((body | mask).sum(), 1))


def _body_keypoint_distances(rec: Reconstruction) -> tuple[np.ndarray, float, np.ndarray]:
    if rec.target != "body":
        raise ValueError("body keypoint measures need a body reconstruction")
    detected = rec.keypoints[list(COCO17_FROM_MEDIAPIPE)]
    h, w = rec.image.shape[:2]
    seen = (
        (detected[:, 2] > 0.5)
        & (detected[:, 0] >= 0)
        & (detected[:, 0] < w)
        & (detected[:, 1] >= 0)
        & (detected[:, 1] < h)
    )
    distances = np.linalg.norm(rec.landmarks_2d("coco17") - detected[:, :2], axis=1)
    # Torso length: shoulders (COCO 5, 6) to hips (11, 12), averaged over both sides.
    torso = 0.5 * (
        np.linalg.norm(detected[5, :2] - detected[11, :2])
        + np.linalg.norm(detected[6, :2] - detected[12, :2])
    )
    return distances, float(torso), seen


def face_region_psnr(rec: Reconstruction) -> float:
    """PSNR (dB) of the textured mesh rendered with the photo's camera against the photo, inside
    the convex hull of the detected face landmarks (eroded by 2 px to skip the hull's edge)."""
    import cv2

    rendered = rec.overlay(alpha=1.0, shading="texture")
    h, w = rendered.shape[:2]
    photo = cv2.resize(rec.image, (w, h), interpolation=cv2.INTER_AREA)
    hull = cv2.convexHull((rec.keypoints[:, :2] * (w / rec.image.shape[1])).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
    mse = np.mean((rendered[mask].astype(np.float64) - photo[mask].astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim_map(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel structural similarity (Wang et al. 2004, Gaussian window, K1=0.01, K2=0.03) of
    two (H, W) or (H, W, C) images in [0, 255]; channels are averaged. Returns (H, W) float64."""
    import cv2

    if a.shape != b.shape:
        raise ValueError(f"expected images of equal shape, got {a.shape} and {b.shape}")
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(-1) if s.ndim == 3 else s


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM of two images in [0, 255] (see :func:`ssim_map`), over ``mask`` (H, W) bool
    when given."""
    s = ssim_map(a, b)
    if mask is None:
        return float(s.mean())
    if not mask.any():
        raise ValueError("the SSIM mask selects no pixel")
    return float(s[mask].mean())


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of two images in [0, 255], over ``mask`` (H, W) bool when given."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if mask is not None:
        if not mask.any():
            raise ValueError("the PSNR mask selects no pixel")
        diff = diff[mask]
    mse = float(np.mean(diff**2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


# -- re-rendering (the "Everybody Dance Now" tables) -------------------------------------------
#: Parts of a pose sequence the pose distance is split into.
POSE_PARTS = ("body", "face", "hands")


def pose_distance(detected, driving, *, threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Keypoints detected on generated frames against the driving keypoints, per part.

    Args:
        detected, driving: :class:`recon3d.reenact.poses.PoseSequence` of the same length and
            image size (``body`` (T, 18, 2), ``face`` (T, 68, 2), ``hands`` (T, 2, 21, 2) with
            confidences).
        threshold: a keypoint counts when its confidence is above this.
    Returns:
        ``{part: {"distance_px", "detection_rate", "points"}}`` for ``body``, ``face`` and
        ``hands``: mean pixel distance over the points confident in both, the share of the
        driving's confident points that the detector also finds, and how many driving points
        count (``nan`` distance / rate where there are none).
    """
    if len(detected) != len(driving) or tuple(detected.image_size) != tuple(driving.image_size):
        raise ValueError("detected and driving poses must have the same length and image size")
    out: dict[str, dict[str, float]] = {}
    for part in POSE_PARTS:
        ref, ref_conf = getattr(driving, part), getattr(driving, f"{part}_confidence")
        if ref is None:
            out[part] = {"distance_px": float("nan"), "detection_rate": float("nan"), "points": 0}
            continue
        want = np.asarray(ref_conf) > threshold
        det, det_conf = getattr(detected, part), getattr(detected, f"{part}_confidence")
        got = want & (np.asarray(det_conf) > threshold) if det is not None else want & False
        distance = (
            float(np.linalg.norm(np.asarray(det)[got] - np.asarray(ref)[got], axis=-1).mean())
            if got.any()
            else float("nan")
        )
        rate = float(got.sum() / want.sum()) if want.any() else float("nan")
        out[part] = {"distance_px": distance, "detection_rate": rate, "points": int(want.sum())}
    return out


def temporal_flicker(frames: np.ndarray, sequence: np.ndarray | None = None) -> float:
    """Mean absolute difference (0-255 units, over pixels and channels) between consecutive
    frames of (N, H, W, 3) ``frames``, over the pairs in the same ``sequence`` (N,) id (all
    pairs when None). Compare generated frames with their ground truth: the excess is flicker.
    """
    frames = np.asarray(frames)
    if len(frames) < 2:
        raise ValueError("temporal flicker needs at least two frames")
    pairs = np.arange(1, len(frames))
    if sequence is not None:
        sequence = np.asarray(sequence)
        pairs = pairs[sequence[1:] == sequence[:-1]]
        if not pairs.size:
            raise ValueError("no two consecutive frames share a sequence id")
    total = 0.0
    for i in pairs:
        total += float(np.abs(frames[i].astype(np.int16) - frames[i - 1].astype(np.int16)).mean())
    return total / len(pairs)


def procrustes_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean distance (in the inputs' unit) between (N, 3) ``gt`` and (N, 3) ``pred`` after the
    best similarity transform (rotation, translation, scale) of ``pred`` onto ``gt``: the PVE /
    MPJPE convention of the network evaluations."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.ndim != 2 or pred.shape[1] != 3 or pred.shape != gt.shape:
        raise ValueError(f"expected two (N, 3) arrays, got {pred.shape} and {gt.shape}")
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1, 1, d]) @ vt
    scale = (s * [1, 1, d]).sum() / (p**2).sum()
    aligned = scale * p @ rot + mg
    return float(np.linalg.norm(aligned - gt, axis=1).mean())
