"""MediaPipe 0.10.21 face front end: full-range face detection, then the 478-point face mesh
(with refined eyes, irises and lips) on a crop around each detected face.

Running the mesh on a crop rather than on the whole image keeps small faces (full-body photos,
group photos) at the resolution the mesh model expects, and lets the caller choose among faces.
"""

from __future__ import annotations

import threading

import numpy as np

from recon3d.keypoints._mediapipe import SquareCrop, detection_boxes, import_mediapipe
from recon3d.keypoints.base import FaceLandmarks

NUM_POINTS = 478
_CROP_SIZE = 512


class MediaPipeFaceDetector:
    """Face detection + face mesh. Instances are safe to share between threads (calls are
    serialised: MediaPipe graphs are not re-entrant).

    Args:
        min_detection_confidence: threshold of the face detector.
        max_faces: most faces returned per image.
    """

    num_points = NUM_POINTS

    def __init__(self, min_detection_confidence: float = 0.5, max_faces: int = 8) -> None:
        mp = import_mediapipe("the face front end")
        self.max_faces = max_faces
        self._lock = threading.Lock()
        # model_selection=1: the full-range model, for faces up to ~5 m from the camera.
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=0.3,
        )

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        """All faces found in an (H, W, 3) uint8 RGB image, largest first."""
        h, w = image.shape[:2]
        with self._lock:
            found = self._detector.process(image).detections
            boxes = detection_boxes(found, w, h)[: self.max_faces]
            if not boxes:
                # The detector misses some very large or tightly cropped faces that the mesh
                # model (which has its own short-range detector) still finds on the whole image.
                boxes = [(np.array([0, 0, w, h], dtype=np.float64), 0.0)]
            faces = [f for f in (self._mesh_in_box(image, b, s) for b, s in boxes) if f is not None]
        faces.sort(key=lambda f: -f.size)
        return _drop_duplicates(faces)

    def _mesh_in_box(
        self, image: np.ndarray, box: np.ndarray, score: float
    ) -> FaceLandmarks | None:
        h, w = image.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * 2.2
        side = min(max(side, 32.0), 2.0 * max(h, w))
        crop_box = SquareCrop((cx, cy), side, _CROP_SIZE)
        crop = crop_box.warp(image)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([[p.x, p.y, p.z] for p in lm], dtype=np.float64) * _CROP_SIZE
        # Back to input-image pixels; z shares the x scale.
        pts[:, :2] = crop_box.to_image(pts[:, :2])
        pts[:, 2] = pts[:, 2] / crop_box.scale
        lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
        return FaceLandmarks(
            points=pts.astype(np.float32),
            box=np.r_[lo, hi].astype(np.float32),
            score=score if score > 0 else 0.5,
        )


def _drop_duplicates(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    """Two detections whose meshes overlap mostly are the same face (keep the first)."""
    kept: list[FaceLandmarks] = []
    for face in faces:
        if all(_iou(face.box, k.box) < 0.5 for k in kept):
            kept.append(face)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
