"""Pinhole camera of the input photo.

Focal-length assumption: when the photo's EXIF has ``FocalLengthIn35mmFilm``, the focal length in
pixels is ``f_35mm / 36 mm × long side``; otherwise a 50 mm-equivalent lens (the classic portrait
"normal" lens, ~40° across the long side) is assumed: ``f = 50 / 36 × long side`` ≈ 1.39 × the
long side in pixels. The principal point is the image centre. A wrong focal length mostly changes
the distance of the head from the camera (the fit keeps the projection right), and slightly its
perspective depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FOCAL_35MM = 50.0
_FILM_LONG_SIDE_MM = 36.0


@dataclass(frozen=True)
class Camera:
    """``K`` (3, 3) intrinsics in pixels of an image of ``width`` x ``height``; pixel centres at
    integer coordinates; the camera frame is OpenCV's (x right, y down, z forward)."""

    K: np.ndarray
    width: int
    height: int

    @classmethod
    def from_image_size(cls, width: int, height: int, focal_35mm: float | None = None) -> Camera:
        """Camera for a photo of this size (see the module docstring for the focal assumption)."""
        f35 = focal_35mm if focal_35mm and 8.0 <= focal_35mm <= 800.0 else DEFAULT_FOCAL_35MM
        f = f35 / _FILM_LONG_SIDE_MM * max(width, height)
        K = np.array(
            [[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64
        )
        return cls(K=K, width=int(width), height=int(height))

    def bounded(self, max_side: int) -> Camera:
        """The same camera for the image resized so its long side is at most ``max_side``
        (itself when already small enough); pixel centres stay at integer coordinates."""
        scale = min(1.0, max_side / max(self.width, self.height))
        if scale == 1.0:
            return self
        K = self.K.copy()
        K[:2, :2] *= scale
        K[:2, 2] = (self.K[:2, 2] + 0.5) * scale - 0.5
        width = max(int(round(self.width * scale)), 1)
        height = max(int(round(self.height * scale)), 1)
        return Camera(K=K, width=width, height=height)

    def resize_image(self, image: np.ndarray) -> np.ndarray:
        """``image`` resized to this camera's size (area filter when shrinking)."""
        import cv2

        if image.shape[1] == self.width and image.shape[0] == self.height:
            return image
        return cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)

    @property
    def focal(self) -> float:
        return float(self.K[0, 0])

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates of (N, 3) camera-frame points (z > 0)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"expected points of shape (N, 3), got {points.shape}")
        z = np.maximum(points[:, 2:3], 1e-9)
        return points[:, :2] / z * self.K[[0, 1], [0, 1]] + self.K[:2, 2]
