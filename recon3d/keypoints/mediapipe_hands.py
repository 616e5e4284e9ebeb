"""MediaPipe 0.10.21 hand landmarks (21 per hand) for a person whose pose is known.

The hand model runs on a square crop around each visible wrist of the pose, so small hands in
full-body photos are seen at the resolution the model expects; each found hand is assigned to
the nearer wrist (MediaPipe's own handedness label is unreliable on crops and mirrored views).
"""

from __future__ import annotations

import threading

import numpy as np

from recon3d.keypoints._mediapipe import SquareCrop, import_mediapipe
from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks

#: MediaPipe hand landmark names, in order.
HAND_LANDMARKS = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_dip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "ring_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)
_CROP = 256


class MediaPipeHandDetector:
    """Hand landmarks near a person's wrists. Safe to share between threads (calls are
    serialised: MediaPipe graphs are not re-entrant)."""

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        mp = import_mediapipe("hand landmarks")
        self._lock = threading.Lock()
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=True,
            max_num_hands=1,
            model_complexity=1,
            min_detection_confidence=min_detection_confidence,
        )

    def close(self) -> None:
        self._hands.close()

    def detect(self, image: np.ndarray, person: BodyLandmarks) -> dict[str, np.ndarray]:
        """Hands of ``person`` in an (H, W, 3) uint8 RGB image.

        Returns:
            ``{"left": (21, 2), "right": (21, 2)}`` float32 pixel positions (MediaPipe hand
            order, :data:`HAND_LANDMARKS`) for each hand found near the person's wrist of that
            side; sides without a hand are absent.
        """
        found: dict[str, np.ndarray] = {}
        seen = person.visible()
        torso = 0.5 * (
            np.linalg.norm(person.points[11] - person.points[23])
            + np.linalg.norm(person.points[12] - person.points[24])
        )
        with self._lock:
            for side in ("left", "right"):
                wrist = POSE_LANDMARKS.index(f"{side}_wrist")
                elbow = POSE_LANDMARKS.index(f"{side}_elbow")
                if not seen[wrist]:
                    continue
                forearm = np.linalg.norm(person.points[wrist] - person.points[elbow])
                side_px = max(1.2 * max(forearm, 0.35 * torso), 24.0)
                # Centre past the wrist, along the forearm, where the hand is.
                direction = person.points[wrist] - person.points[elbow]
                direction /= max(np.linalg.norm(direction), 1e-6)
                centre = person.points[wrist] + 0.35 * side_px * direction
                points = self._hand_in_box(image, centre, side_px)
                if points is None:
                    continue
                # The hand must start at this wrist, not at the other hand.
                if np.linalg.norm(points[0] - person.points[wrist]) > 0.5 * side_px:
                    continue
                found[side] = points
        return found

    def _hand_in_box(self, image: np.ndarray, centre: np.ndarray, side: float):
        crop_box = SquareCrop((float(centre[0]), float(centre[1])), side, _CROP)
        result = self._hands.process(crop_box.warp(image))
        if not result.multi_hand_landmarks:
            return None
        lm = result.multi_hand_landmarks[0].landmark
        pts = np.array([[p.x, p.y] for p in lm], np.float64) * _CROP
        return crop_box.to_image(pts).astype(np.float32)
