"""Quality measures of a reconstruction against its own photo, shared by tests, docs and
benchmarks so that every reported number has one definition."""

from __future__ import annotations

import numpy as np

from recon3d.reconstruction import Reconstruction


def landmark_error(rec: Reconstruction) -> tuple[float, float]:
    """Mean distance between the projected model landmarks and the detected ones.

    Returns:
        (pixels, fraction of the face size), the face size being the larger side of the
        detected landmarks' bounding box.
    """
    scheme = "mediapipe478" if rec.target == "head" else "coco17"
    detected = rec.keypoints[:, :2]
    error = float(np.linalg.norm(rec.landmarks_2d(scheme) - detected, axis=1).mean())
    return error, error / float(np.ptp(detected, axis=0).max())


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
