"""MediaPipe 0.10.21 body front end: 33 pose landmarks with visibility, metric world landmarks
and a person segmentation mask, for one chosen person.

MediaPipe's pose model follows one person per image. To choose among several people, faces are
detected first (full-range model); with two or more faces, the pose model runs on a crop around
each person (from the face downwards), so ``person_index`` follows face size. With one face or
none (a person seen from behind), the whole image is used and the person is MediaPipe's own
choice, the most prominent one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recon3d.errors import NoPersonFound
from recon3d.keypoints._mediapipe import detection_boxes, import_mediapipe

NUM_POINTS = 33
#: MediaPipe pose landmark names, in order.
POSE_LANDMARKS = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
_MAX_POSE_SIDE = 1024


@dataclass(frozen=True)
class BodyLandmarks:
    """One person's pose.

    Attributes:
        points: (33, 2) float32 landmark positions in image pixels (MediaPipe pose order,
            :data:`POSE_LANDMARKS`).
        visibility: (33,) float32 in [0, 1]: likelihood of being visible (not occluded).
        world: (33, 3) float32 metric 3D landmarks, origin between the hips, axes of the
            camera (x right, y down, z away).
        mask: (H, W) float32 person segmentation in [0, 1], image size.
        box: (4,) float32 x0, y0, x1, y1 of the person mask (> 0.5) in pixels.
    """

    points: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    mask: np.ndarray
    box: np.ndarray

    def visible(self, threshold: float = 0.5) -> np.ndarray:
        """(33,) bool: visible and inside the image."""
        return self.inside(self.points) & (self.visibility > threshold)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """(...,) bool: which of ``points`` (..., 2), in image pixels, lie inside the image."""
        h, w = self.mask.shape
        x, y = points[..., 0], points[..., 1]
        return (x >= 0) & (x < w) & (y >= 0) & (y < h)


class MediaPipePoseDetector:
    """Pose landmarks + segmentation of one person. Safe to share between threads (calls are
    serialised: MediaPipe graphs are not re-entrant).

    Args:
        min_detection_confidence: threshold of the pose detector.
        video: MediaPipe's video mode for consecutive frames of one video (all of one size, in
            order): the person found in one frame is tracked into the next and the pose
            detector only runs when tracking is lost (about 40 % less time per frame). The
            whole frame is searched (no face-based choice among people; ``person_index`` must
            be 0), so the tracked person stays the same one.
    """

    num_points = NUM_POINTS

    def __init__(self, min_detection_confidence: float = 0.5, *, video: bool = False) -> None:
        mp = import_mediapipe("the body front end")
        self._lock = threading.Lock()
        self.video = video
        # model_complexity=1 is the only pose model bundled in the 0.10.21 wheel.
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=not video,
            model_complexity=1,
            enable_segmentation=True,
            min_detection_confidence=min_detection_confidence,
        )
        self._faces = (
            None
            if video
            else mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5
            )
        )

    def close(self) -> None:
        self._pose.close()
        if self._faces is not None:
            self._faces.close()

    def detect(self, image: np.ndarray, person_index: int = 0) -> BodyLandmarks:
        """The pose of person ``person_index`` (by decreasing face size) in an (H, W, 3) uint8
        RGB image.

        Raises:
            NoPersonFound: nobody, or fewer than ``person_index + 1`` people.
        """
        h, w = image.shape[:2]
        if self.video:
            if person_index != 0:
                raise NoPersonFound(f"video mode follows one person; person_index={person_index}")
            with self._lock:
                found = self._pose_in_box(image, np.array([0.0, 0.0, w, h]))
            if found is None:
                raise NoPersonFound(f"no person found in the {w}x{h} frame")
            return found
        with self._lock:
            faces = self._face_boxes(image)
            if len(faces) <= 1:
                if person_index != 0:
                    raise NoPersonFound(
                        f"found {len(faces)} person(s) by face; person_index={person_index}"
                    )
                crop_box = np.array([0.0, 0.0, w, h])
            else:
                if not 0 <= person_index < len(faces):
                    raise NoPersonFound(
                        f"found {len(faces)} people by face; person_index={person_index}"
                    )
                crop_box = _person_crop(faces[person_index], w, h)
            found = self._pose_in_box(image, crop_box)
        if found is None:
            raise NoPersonFound(f"no person found in the {w}x{h} image")
        return found

    def _face_boxes(self, image: np.ndarray) -> list[np.ndarray]:
        h, w = image.shape[:2]
        found = self._faces.process(image).detections
        boxes = [box for box, _ in detection_boxes(found, w, h)]
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        return boxes

    def _pose_in_box(self, image: np.ndarray, box: np.ndarray) -> BodyLandmarks | None:
        import cv2

        h, w = image.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        crop = image[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        scale = min(1.0, _MAX_POSE_SIDE / max(ch, cw))
        small = (
            cv2.resize(crop, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_AREA)
            if scale < 1.0
            else crop
        )
        result = self._pose.process(np.ascontiguousarray(small))
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        points = np.array([[p.x * cw + x0, p.y * ch + y0] for p in lm], np.float32)
        visibility = np.array([p.visibility for p in lm], np.float32)
        world = np.array(
            [[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], np.float32
        )
        mask = np.zeros((h, w), np.float32)
        if result.segmentation_mask is not None:
            seg = cv2.resize(result.segmentation_mask, (cw, ch), interpolation=cv2.INTER_LINEAR)
            mask[y0:y1, x0:x1] = seg
        mask = clean_person_mask(mask, points, visibility)
        ys, xs = np.nonzero(mask > 0.5)
        if len(xs) == 0:
            return None
        box_out = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        return BodyLandmarks(points, visibility, world, mask, box_out)


# Skeleton drawn to decide which mask pixels belong to the person (MediaPipe indices).
_SKELETON = (
    (11, 12),
    (11, 23),
    (12, 24),
    (23, 24),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (23, 25),
    (25, 27),
    (24, 26),
    (26, 28),
    (0, 11),
    (0, 12),
    (7, 8),
    (15, 19),
    (16, 20),
    (27, 31),
    (28, 32),
)


def clean_person_mask(
    mask: np.ndarray, points: np.ndarray, visibility: np.ndarray, reach: float = 0.9
) -> np.ndarray:
    """The person's part of a segmentation mask: segmentation models also pick up person-like
    background (statues, bright buildings, a second person). Keeps the blobs (mask > 0.5) that
    touch a visible landmark, then only their pixels within ``reach`` torso lengths of the
    visible skeleton.

    Args:
        mask: (H, W) float32 segmentation in [0, 1].
        points: (33, 2) landmark pixels; visibility: (33,).
    Returns:
        (H, W) float32, zero outside the person.
    """
    import cv2

    h, w = mask.shape
    vis = (visibility > 0.5) & (points[:, 0] >= 0) & (points[:, 0] < w)
    vis &= (points[:, 1] >= 0) & (points[:, 1] < h)
    binary = (mask > 0.5).astype(np.uint8)
    n, labels = cv2.connectedComponents(binary)
    # Clipped: a point in the last half pixel (x > w - 0.5) would round to w.
    pts = np.clip(np.round(points[vis]).astype(int), 0, [w - 1, h - 1])
    hit = np.unique(labels[pts[:, 1], pts[:, 0]]) if len(pts) else np.zeros(0, int)
    hit = hit[hit > 0]
    if len(hit) == 0:
        return mask
    keep = np.isin(labels, hit)
    torso = 0.5 * (
        np.linalg.norm(points[11] - points[23]) + np.linalg.norm(points[12] - points[24])
    )
    if vis[[11, 12, 23, 24]].all() and torso > 2:
        skeleton = np.zeros((h, w), np.uint8)
        for a, b in _SKELETON:
            if vis[a] and vis[b]:
                pa = tuple(int(v) for v in np.round(points[a]))
                pb = tuple(int(v) for v in np.round(points[b]))
                cv2.line(skeleton, pa, pb, 1, 1)
        distance = cv2.distanceTransform(1 - skeleton, cv2.DIST_L2, 3)
        keep &= distance <= reach * torso
    # Soft values near kept pixels survive, so edges stay anti-aliased.
    keep = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.where(keep, mask, 0.0).astype(np.float32)


def _person_crop(face: np.ndarray, w: int, h: int) -> np.ndarray:
    """A box around the person below a face: 3.5 face widths to each side, from one face height
    above the face to 9 face heights below it (a standing adult), clipped to the image."""
    fw, fh = face[2] - face[0], face[3] - face[1]
    cx = (face[0] + face[2]) / 2
    return np.array(
        [
            max(0.0, cx - 3.5 * fw),
            max(0.0, face[1] - fh),
            min(float(w), cx + 3.5 * fw),
            min(float(h), face[3] + 9 * fh),
        ]
    )
