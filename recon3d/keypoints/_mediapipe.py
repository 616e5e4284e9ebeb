"""Shared pieces of the MediaPipe front ends: the import with a clear error, and square crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon3d.errors import MissingDependencyError


def import_mediapipe(purpose: str):
    """``mediapipe``, or MissingDependencyError naming what needed it."""
    try:
        import mediapipe as mp
    except ImportError as exc:  # pragma: no cover - mediapipe is a hard dependency
        raise MissingDependencyError(
            f"{purpose} needs mediapipe==0.10.21 (`pip install mediapipe==0.10.21`)"
        ) from exc
    return mp


def detection_boxes(detections, width: int, height: int) -> list[tuple[np.ndarray, float]]:
    """MediaPipe face detections as ((4,) x0, y0, x1, y1 pixel box, score) pairs."""
    out = []
    for det in detections or []:
        rel = det.location_data.relative_bounding_box
        box = np.array(
            [rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height], dtype=np.float64
        ) * (width, height, width, height)
        out.append((box, float(det.score[0])))
    return out


@dataclass(frozen=True)
class SquareCrop:
    """An axis-aligned square of ``side`` image pixels around ``centre`` (x, y), resampled to
    ``size`` x ``size`` (border replicated, so crops at the image edge keep their shape)."""

    centre: tuple[float, float]
    side: float
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    @property
    def affine(self) -> np.ndarray:
        """(2, 3) image -> crop pixel map."""
        s, (cx, cy) = self.scale, self.centre
        return np.array([[s, 0, self.size / 2 - s * cx], [0, s, self.size / 2 - s * cy]])

    def warp(self, image: np.ndarray) -> np.ndarray:
        """(size, size, ...) crop of an (H, W, ...) image."""
        import cv2

        return cv2.warpAffine(
            image,
            self.affine,
            (self.size, self.size),
            flags=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) crop pixels -> image pixels."""
        affine = self.affine
        return (points - affine[:, 2]) / self.scale
