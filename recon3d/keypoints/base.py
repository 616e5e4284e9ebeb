"""Detector-independent types of the keypoint front end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class FaceLandmarks:
    """Dense face landmarks of one face, in the pixels of the input image.

    Attributes:
        points: (478, 3) float32: x, y in pixels; z relative depth in pixels (MediaPipe's
            convention: same scale as x, smaller is closer to the camera, origin near the face
            centre). z is only defined up to scale and offset.
        box: (4,) float32 face bounding box x0, y0, x1, y1 in pixels (from the landmarks).
        score: detection confidence in [0, 1].
    """

    points: np.ndarray
    box: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """Face size in pixels: the diagonal of the landmark bounding box."""
        return float(np.hypot(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@runtime_checkable
class FaceLandmarkDetector(Protocol):
    """What the head pipeline needs from a face front end; another detector can implement it
    as long as its points follow MediaPipe's 478-point face-mesh topology."""

    num_points: int

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        """All faces in an (H, W, 3) uint8 RGB image, largest first."""
        ...
