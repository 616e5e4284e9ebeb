"""Driving poses: the keypoint sequences that the re-renderer is conditioned on.

Every source of motion ends up as a :class:`PoseSequence`: OpenPose's COCO-18 body layout
(:data:`BODY18`), the iBUG-68 face and two 21-point hands, in the pixels of a frame of
``image_size``, one row per frame.

Sources (:func:`load_driving`):

* a video file: MediaPipe pose, face mesh and hands per frame (:func:`detect_poses`), smoothed
  over time;
* OpenPose JSON files, one per frame (BODY_25 or COCO-18, detected from the number of points;
  :func:`load_openpose`);
* a DeepMimic motion-capture clip, retargeted onto the body model and seen through a virtual
  camera (:func:`poses_from_mocap`);
* body-model pose parameters (axis-angle, :func:`poses_from_body_model`).

Temporal smoothing (:func:`smooth_keypoints`): a *centred, confidence-weighted Gaussian* over
time (normalised convolution). Driving videos are processed offline, so a zero-lag, symmetric
filter is possible and preferable to a causal one (a One-Euro filter lags on fast motion, which
shows as limbs trailing the music); weighting each sample by its detection confidence keeps a
missed or low-confidence detection from pulling its neighbours and fills one- or two-frame
dropouts, while gaps longer than the kernel stay missing.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recon3d.errors import NoPersonFound, PoseFileError
from recon3d.io._files import read_regular_file

__all__ = [
    "BODY18",
    "BODY18_FROM_BODY25",
    "BODY18_FROM_MEDIAPIPE33",
    "DEFAULT_SMOOTHING",
    "MAX_OPENPOSE_FILE_BYTES",
    "PoseSequence",
    "detect_poses",
    "face68_from_mediapipe478",
    "load_driving",
    "load_openpose",
    "parse_openpose",
    "poses_from_body_model",
    "poses_from_mocap",
    "smooth_keypoints",
]

logger = logging.getLogger(__name__)

#: OpenPose COCO-18 body keypoints, in order.
BODY18: tuple[str, ...] = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
)
#: BODY18 row -> BODY_25 row (BODY_25 adds MidHip (8) and six foot points (19-24)).
BODY18_FROM_BODY25 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
#: BODY18 row -> MediaPipe pose row (33 landmarks); -1 for the neck (mid-shoulders).
BODY18_FROM_MEDIAPIPE33 = (0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
#: BODY18 row -> COCO-17 row of :data:`recon3d.models.body.COCO17`; -1 for the neck.
BODY18_FROM_COCO17 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)

DEFAULT_SMOOTHING = 0.025
"""Default temporal smoothing: Gaussian sigma in seconds (0.75 frames at 30 fps). Chosen with
``benchmarks/bench_smoothing.py``: on mocap keypoints with 1-2 px of added noise it lowered the
error on every clip (dances, a kick, a walk), where 0.05 s already blurred the fast dance moves
beyond the noise it removed."""
MAX_OPENPOSE_FILE_BYTES = 16 << 20
"""Largest OpenPose JSON file accepted."""
MAX_OPENPOSE_FILES = 200_000
_MAX_COORDINATE = 1e6


# -- the sequence -----------------------------------------------------------------------------
@dataclass
class PoseSequence:
    """Keypoints of one person over T frames, in the pixels of a frame of ``image_size``.

    Attributes:
        body: (T, 18, 2) float32 x, y in pixels, :data:`BODY18` order.
        body_confidence: (T, 18) float32 in [0, 1]; 0 means missing.
        face: (T, 68, 2) float32 iBUG-68 points in pixels, or None.
        face_confidence: (T, 68) float32 in [0, 1], or None.
        hands: (T, 2, 21, 2) float32 (right, left) hands in OpenPose/MediaPipe 21-point order,
            or None.
        hands_confidence: (T, 2, 21) float32 in [0, 1], or None.
        image_size: (height, width) of the frame the pixels refer to.
        fps: frames per second.
    """

    body: np.ndarray
    body_confidence: np.ndarray
    face: np.ndarray | None = None
    face_confidence: np.ndarray | None = None
    hands: np.ndarray | None = None
    hands_confidence: np.ndarray | None = None
    image_size: tuple[int, int] = (256, 256)
    fps: float = 30.0

    def __post_init__(self) -> None:
        self.body = np.asarray(self.body, np.float32)
        self.body_confidence = np.asarray(self.body_confidence, np.float32)
        t = self.body.shape[0] if self.body.ndim == 3 else -1
        _check_shape(self.body, (t, 18, 2), "body")
        _check_shape(self.body_confidence, (t, 18), "body_confidence")
        for name, shape in (("face", (t, 68, 2)), ("hands", (t, 2, 21, 2))):
            points, conf = getattr(self, name), getattr(self, f"{name}_confidence")
            if (points is None) != (conf is None):
                raise ValueError(f"{name} and {name}_confidence must both be given or both None")
            if points is not None:
                points = np.asarray(points, np.float32)
                conf = np.asarray(conf, np.float32)
                _check_shape(points, shape, name)
                _check_shape(conf, shape[:-1], f"{name}_confidence")
                setattr(self, name, points)
                setattr(self, f"{name}_confidence", conf)
        h, w = (int(v) for v in self.image_size)
        if h <= 0 or w <= 0:
            raise ValueError(f"image_size must be positive (height, width), got {self.image_size}")
        self.image_size = (h, w)
        self.fps = float(self.fps)
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    def __len__(self) -> int:
        return int(self.body.shape[0])

    def __getitem__(self, index: int | slice) -> PoseSequence:
        """Frames ``index`` as a new sequence (an int gives a one-frame sequence)."""
        if isinstance(index, (int, np.integer)):
            n = len(self)
            i = int(index) + n if index < 0 else int(index)
            if not 0 <= i < n:
                raise IndexError(f"frame {index} of a {n}-frame sequence")
            index = slice(i, i + 1)
        if not isinstance(index, slice):
            raise TypeError(f"index must be an int or a slice, got {type(index).__name__}")

        def take(a):
            return None if a is None else a[index].copy()

        return replace(
            self,
            body=take(self.body),
            body_confidence=take(self.body_confidence),
            face=take(self.face),
            face_confidence=take(self.face_confidence),
            hands=take(self.hands),
            hands_confidence=take(self.hands_confidence),
        )

    def resized(self, image_size: tuple[int, int]) -> PoseSequence:
        """The same poses in a frame of ``image_size`` (height, width): coordinates scaled by
        the ratio of the sizes along each axis (the frame is stretched, as a resize would)."""
        h, w = (int(v) for v in image_size)
        sy, sx = h / self.image_size[0], w / self.image_size[1]
        scale = np.array([sx, sy], np.float32)

        def scaled(a):
            return None if a is None else a * scale

        return replace(
            self,
            body=scaled(self.body),
            face=scaled(self.face),
            hands=scaled(self.hands),
            image_size=(h, w),
            body_confidence=self.body_confidence.copy(),
            face_confidence=None if self.face_confidence is None else self.face_confidence.copy(),
            hands_confidence=(
                None if self.hands_confidence is None else self.hands_confidence.copy()
            ),
        )

    def transformed(self, scale: np.ndarray, offset: np.ndarray) -> PoseSequence:
        """Every point ``p`` of frame t mapped to ``scale[t] * p + offset[t]``.

        Args:
            scale: (T,) or (T, 2) per-frame scale; offset: (T, 2) per-frame offset in pixels.
        """
        scale = np.asarray(scale, np.float32).reshape(len(self), -1)
        offset = np.asarray(offset, np.float32).reshape(len(self), 2)

        def moved(a):
            if a is None:
                return None
            shape = (len(self),) + (1,) * (a.ndim - 2) + (-1,)
            return a * scale.reshape(shape) + offset.reshape(shape[:-1] + (2,))

        return replace(self, body=moved(self.body), face=moved(self.face), hands=moved(self.hands))


def _check_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if array.shape != shape and not (array.ndim == len(shape) and shape[0] == -1):
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")


def _empty(t: int, image_size: tuple[int, int], fps: float, face=True, hands=True):
    return PoseSequence(
        body=np.zeros((t, 18, 2), np.float32),
        body_confidence=np.zeros((t, 18), np.float32),
        face=np.zeros((t, 68, 2), np.float32) if face else None,
        face_confidence=np.zeros((t, 68), np.float32) if face else None,
        hands=np.zeros((t, 2, 21, 2), np.float32) if hands else None,
        hands_confidence=np.zeros((t, 2, 21), np.float32) if hands else None,
        image_size=image_size,
        fps=fps,
    )


# -- MediaPipe 478 -> iBUG 68 -----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _face68_map(k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(68, k) MediaPipe indices and (68, k) convex weights such that each iBUG-68 point is
    the weighted mean of its k nearest MediaPipe-478 points, fitted on the head model's mean
    face (which carries both schemes as surface points of one mesh)."""
    from scipy.optimize import nnls

    from recon3d.models.head import HeadModel
    from recon3d.models.landmarks import interpolate_surface

    head = HeadModel.from_pretrained()
    mean = head.mean_vertices.cpu().numpy().astype(np.float64)
    mp = interpolate_surface(mean, head.faces, head.landmarks["mediapipe478"])
    ibug = interpolate_surface(mean, head.faces, head.landmarks["ibug68"])
    index = np.zeros((68, k), np.int64)
    weight = np.zeros((68, k), np.float64)
    for i, p in enumerate(ibug):
        nearest = np.argsort(np.linalg.norm(mp - p, axis=1))[:k]
        # Non-negative weights summing to one (the sum is enforced by a heavily weighted row).
        a = np.vstack([mp[nearest].T, 100.0 * np.ones(k)])
        w, _ = nnls(a, np.r_[p, 100.0])
        index[i], weight[i] = nearest, w / w.sum()
    return index, weight


def face68_from_mediapipe478(points: np.ndarray) -> np.ndarray:
    """iBUG-68 face landmarks from MediaPipe's 478-point face mesh.

    Each iBUG point is a fixed convex combination of its 4 nearest MediaPipe points, derived
    from the head model, whose mesh carries both landmark schemes (mean error 0.04 % of the
    outer-eye-corner distance on random identities and expressions of the head model).

    Args:
        points: (..., 478, D) MediaPipe points, D = 2 or 3.
    Returns:
        (..., 68, D) iBUG-68 points, same dtype.
    """
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2] != 478:
        raise ValueError(f"expected (..., 478, D) MediaPipe points, got {points.shape}")
    index, weight = _face68_map()
    out = np.einsum("nk,...nkd->...nd", weight, points[..., index, :])
    return out.astype(points.dtype if np.issubdtype(points.dtype, np.floating) else np.float32)


# -- smoothing --------------------------------------------------------------------------------
def smooth_keypoints(
    points: np.ndarray, confidence: np.ndarray, sigma_frames: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centred, confidence-weighted Gaussian smoothing over time (normalised convolution).

    ``x'(t) = sum_s g(t - s) c(s) x(s) / sum_s g(t - s) c(s)`` and
    ``c'(t) = sum_s g(t - s) c(s) / sum_s g(t - s)`` (the kernel truncated at 3 sigma and at the
    ends of the sequence). A point missing in one frame (c = 0) is filled from its neighbours
    with a lowered confidence; where no neighbour within the kernel is confident it stays
    missing.

    Args:
        points: (T, ..., 2) keypoints; confidence: (T, ...) in [0, 1].
        sigma_frames: Gaussian standard deviation in frames; <= 0 returns copies.
    Returns:
        (points, confidence) smoothed, same shapes.
    """
    points = np.asarray(points, np.float64)
    confidence = np.asarray(confidence, np.float64)
    if sigma_frames <= 0 or len(points) < 2:
        return points.astype(np.float32), confidence.astype(np.float32)
    radius = max(1, int(math.ceil(3 * sigma_frames)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_frames) ** 2)
    t = len(points)
    num = np.zeros_like(points)
    den = np.zeros_like(confidence)
    norm = np.zeros(t)
    for k, o in zip(kernel, offsets, strict=True):
        lo, hi = max(0, -o), min(t, t - o)  # target frames whose source frame t + o exists
        if lo >= hi:
            continue
        c = confidence[lo + o : hi + o]
        num[lo:hi] += k * c[..., None] * points[lo + o : hi + o]
        den[lo:hi] += k * c
        norm[lo:hi] += k
    ok = den > 1e-8
    out = np.where(ok[..., None], num / np.maximum(den, 1e-8)[..., None], points)
    conf = den / norm.reshape((t,) + (1,) * (den.ndim - 1))
    return out.astype(np.float32), np.clip(conf, 0.0, 1.0).astype(np.float32)


def _smoothed(poses: PoseSequence, sigma_seconds: float | None) -> PoseSequence:
    if not sigma_seconds or sigma_seconds <= 0:
        return poses
    sigma = sigma_seconds * poses.fps
    out = {}
    for name in ("body", "face", "hands"):
        points = getattr(poses, name)
        if points is not None:
            out[name], out[f"{name}_confidence"] = smooth_keypoints(
                points, getattr(poses, f"{name}_confidence"), sigma
            )
    return replace(poses, **out)


# -- video: MediaPipe per frame ---------------------------------------------------------------
class _Detectors:
    """The existing MediaPipe front ends (pose, face mesh, hands), created once per call."""

    def __init__(self, face: bool, hands: bool, tracking: bool = True) -> None:
        from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector

        self.pose = MediaPipePoseDetector(video=tracking)
        self.face = None
        self.hands = None
        if face:
            from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

            self.face = MediaPipeFaceDetector(max_faces=4)
        if hands:
            from recon3d.keypoints.mediapipe_hands import MediaPipeHandDetector

            self.hands = MediaPipeHandDetector()

    def close(self) -> None:
        for d in (self.pose, self.face, self.hands):
            if d is not None:
                d.close()


def _frame_keypoints(det: _Detectors, image: np.ndarray) -> dict[str, np.ndarray]:
    """Raw keypoints of the most prominent person in one RGB frame (zeros where missing)."""
    h, w = image.shape[:2]
    out = {
        "body": np.zeros((18, 2), np.float32),
        "body_confidence": np.zeros(18, np.float32),
        "face": np.zeros((68, 2), np.float32),
        "face_confidence": np.zeros(68, np.float32),
        "hands": np.zeros((2, 21, 2), np.float32),
        "hands_confidence": np.zeros((2, 21), np.float32),
    }
    person = None
    try:
        person = det.pose.detect(image)
    except NoPersonFound:
        pass
    if person is not None:
        pts, vis = person.points, person.visibility
        rows = np.array(BODY18_FROM_MEDIAPIPE33)
        body = pts[np.maximum(rows, 0)].copy()
        conf = vis[np.maximum(rows, 0)].copy()
        body[1] = 0.5 * (pts[11] + pts[12])
        conf[1] = min(vis[11], vis[12])
        inside = (body[:, 0] >= 0) & (body[:, 0] < w) & (body[:, 1] >= 0) & (body[:, 1] < h)
        out["body"] = body
        out["body_confidence"] = np.where(inside, np.clip(conf, 0, 1), 0).astype(np.float32)
        if det.hands is not None:
            found = det.hands.detect(image, person)
            for slot, side in enumerate(("right", "left")):
                hand = found.get(side)
                if hand is not None:
                    out["hands"][slot] = hand
                    out["hands_confidence"][slot] = 1.0
    if det.face is not None:
        faces = det.face.detect(image)
        if faces:
            face = faces[0]
            if person is not None and out["body_confidence"][0] > 0.5 and len(faces) > 1:
                # The face nearest the pose's nose belongs to the tracked person.
                nose = out["body"][0]
                face = min(
                    faces,
                    key=lambda f: np.hypot(*(0.5 * (f.box[:2] + f.box[2:]) - nose)),
                )
            out["face"] = face68_from_mediapipe478(face.points[:, :2]).astype(np.float32)
            out["face_confidence"][:] = float(np.clip(face.score, 0.0, 1.0))
    return out


def detect_poses(
    frames: Iterable[np.ndarray],
    *,
    fps: float = 30.0,
    smoothing: float | None = DEFAULT_SMOOTHING,
    progress: bool = True,
    face: bool = True,
    hands: bool = True,
    tracking: bool = True,
) -> PoseSequence:
    """Keypoints of the most prominent person in each frame, smoothed over time.

    Per frame: MediaPipe pose (33 landmarks -> :data:`BODY18`, the neck being the middle of the
    shoulders, confidence = MediaPipe's visibility, 0 outside the frame), the face mesh (478
    points -> iBUG-68 with :func:`face68_from_mediapipe478`; the face nearest the pose's nose
    when there are several) and the hands near the pose's wrists, through the front ends of
    :mod:`recon3d.keypoints`. Frames without a person get zero confidence.

    Args:
        frames: (H, W, 3) uint8 RGB frames, all of one size.
        fps: frame rate of the frames.
        smoothing: Gaussian sigma in seconds of :func:`smooth_keypoints` (None or 0: raw).
        progress: show a progress bar.
        face, hands: also detect the face / the hands (otherwise those fields are None).
        tracking: the frames are consecutive frames of one video: the pose runs in MediaPipe's
            video mode (the person is tracked from frame to frame, about 40 % faster; see
            :class:`~recon3d.keypoints.mediapipe_pose.MediaPipePoseDetector`). False treats
            every frame as an unrelated photo.
    Returns:
        A :class:`PoseSequence` in the frames' pixels.
    Raises:
        InvalidImageError: a frame that is not (H, W, 3) uint8, or frames of differing size.
        ValueError: no frames.
    """
    from tqdm.auto import tqdm

    from recon3d.errors import InvalidImageError

    det = _Detectors(face=face, hands=hands, tracking=tracking)
    rows: list[dict[str, np.ndarray]] = []
    size = None
    try:
        for i, image in enumerate(tqdm(frames, desc="poses", unit="frame", disable=not progress)):
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise InvalidImageError(
                    f"frame {i} is {image.dtype} {image.shape}, expected (H, W, 3) uint8 RGB"
                )
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                raise InvalidImageError(f"frame {i} is {image.shape[:2]}, frame 0 is {size}")
            rows.append(_frame_keypoints(det, np.ascontiguousarray(image)))
    finally:
        det.close()
    if not rows:
        raise ValueError("no frames")
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    if not face:
        stacked["face"] = stacked["face_confidence"] = None
    if not hands:
        stacked["hands"] = stacked["hands_confidence"] = None
    poses = PoseSequence(**stacked, image_size=(int(size[0]), int(size[1])), fps=fps)
    return _smoothed(poses, smoothing)


# -- OpenPose JSON ----------------------------------------------------------------------------
def _numbers(value, name: str, where: str, counts: tuple[int, ...]) -> np.ndarray | None:
    """A flat OpenPose keypoint list as (N, 3); None for an empty list (part not enabled)."""
    if not isinstance(value, list):
        raise PoseFileError(f"{where}: {name} is {type(value).__name__}, expected a list")
    if not value:
        return None
    if len(value) % 3 or len(value) // 3 not in counts:
        raise PoseFileError(
            f"{where}: {name} holds {len(value)} numbers, expected 3 x one of {list(counts)}"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise PoseFileError(f"{where}: {name} holds values that are not numbers")
    try:
        array = np.asarray(value, np.float64).reshape(-1, 3)
    except OverflowError as exc:  # ints too large for a float
        raise PoseFileError(f"{where}: {name} holds a number out of range") from exc
    if not np.all(np.isfinite(array)):
        raise PoseFileError(f"{where}: {name} holds a non-finite number")
    if np.any(np.abs(array[:, :2]) > _MAX_COORDINATE):
        raise PoseFileError(f"{where}: {name} holds a coordinate beyond {_MAX_COORDINATE:g}")
    if np.any(array[:, 2] < 0) or np.any(array[:, 2] > 1.5):
        raise PoseFileError(f"{where}: {name} holds a confidence outside [0, 1]")
    array[:, 2] = np.clip(array[:, 2], 0.0, 1.0)
    return array


def parse_openpose(data: bytes | str, where: str = "<openpose>") -> list[dict[str, np.ndarray]]:
    """Every person of one OpenPose JSON frame, converted to recon3d's layouts.

    Args:
        data: the file's bytes (UTF-8) or text.
        where: the file name used in error messages.
    Returns:
        One dict per person: ``"body"`` (18, 3) x, y, confidence in :data:`BODY18` order (from
        BODY_25, 25 points, or COCO-18, 18 points), and where present ``"face"`` (68, 3) (the
        two pupil points of OpenPose's 70 dropped) and ``"hand_right"`` / ``"hand_left"``
        (21, 3).
    Raises:
        PoseFileError: not UTF-8 JSON, not an object with a ``"people"`` list, a person that is
            not an object or lacks ``pose_keypoints_2d``, a keypoint list of the wrong length,
            non-numbers, non-finite numbers, absurd coordinates or negative confidences.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > MAX_OPENPOSE_FILE_BYTES:
            raise PoseFileError(f"{where}: over the {MAX_OPENPOSE_FILE_BYTES}-byte limit")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PoseFileError(f"{where}: not UTF-8 text: {exc}") from exc
    elif len(data) > MAX_OPENPOSE_FILE_BYTES:
        raise PoseFileError(f"{where}: over the {MAX_OPENPOSE_FILE_BYTES}-character limit")
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise PoseFileError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PoseFileError(f'{where}: expected a JSON object with a "people" list')
    people = doc.get("people")
    if not isinstance(people, list):
        raise PoseFileError(f'{where}: expected a "people" list')
    out = []
    for i, person in enumerate(people):
        at = f"{where}: person {i}"
        if not isinstance(person, dict):
            raise PoseFileError(f"{at} is {type(person).__name__}, expected an object")
        if "pose_keypoints_2d" not in person:
            raise PoseFileError(f"{at} has no pose_keypoints_2d")
        body = _numbers(person["pose_keypoints_2d"], "pose_keypoints_2d", at, (25, 18))
        parsed: dict[str, np.ndarray] = {}
        if body is None:
            parsed["body"] = np.zeros((18, 3))
        elif len(body) == 25:
            parsed["body"] = body[list(BODY18_FROM_BODY25)]
        else:
            parsed["body"] = body
        if "face_keypoints_2d" in person:
            face = _numbers(person["face_keypoints_2d"], "face_keypoints_2d", at, (70, 68))
            if face is not None:
                parsed["face"] = face[:68]
        for side in ("right", "left"):
            key = f"hand_{side}_keypoints_2d"
            if key in person:
                hand = _numbers(person[key], key, at, (21,))
                if hand is not None:
                    parsed[f"hand_{side}"] = hand
        out.append(parsed)
    return out


def _pick_person(
    people: list[dict[str, np.ndarray]], previous: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray] | None:
    """The person to follow in one frame.

    Without ``previous`` (until someone was chosen): the most prominent person, largest extent
    of confident body points times total confidence. With ``previous``: the person whose
    confident body points lie closest to the previous choice's (mean distance over points
    confident in both), as long as that is within half the previous person's extent; otherwise
    the most prominent one again. So the same dancer is followed when a second person walks by.
    """
    best, best_score = None, 0.0
    for person in people:
        body = person["body"]
        ok = body[:, 2] > 0.05
        if not ok.any():
            continue
        span = np.ptp(body[ok, :2], axis=0) if ok.sum() > 1 else np.zeros(2)
        score = (1.0 + float(np.hypot(*span))) * float(body[:, 2].sum())
        if score > best_score:
            best, best_score = person, score
    if previous is None or best is None:
        return best
    ref = previous["body"]
    ref_ok = ref[:, 2] > 0.05
    if ref_ok.sum() < 2:
        return best
    reach = 0.5 * float(np.hypot(*np.ptp(ref[ref_ok, :2], axis=0)))
    nearest, nearest_d = None, np.inf
    for person in people:
        both = ref_ok & (person["body"][:, 2] > 0.05)
        if not both.any():
            continue
        d = float(np.linalg.norm(person["body"][both, :2] - ref[both, :2], axis=1).mean())
        if d < nearest_d:
            nearest, nearest_d = person, d
    return nearest if nearest is not None and nearest_d <= reach else best


def load_openpose(
    files: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    image_size: tuple[int, int] | None = None,
    fps: float = 30.0,
) -> PoseSequence:
    """OpenPose ``--write_json`` output (one file per frame) as a :class:`PoseSequence`.

    Args:
        files: a folder (every ``*.json`` in it, in name order) or a list of files in frame
            order.
        image_size: (height, width) of the video the keypoints were detected on. OpenPose's JSON
            does not record it; when None, the smallest frame from (0, 0) holding every
            confident point plus a 5 % margin is used.
        fps: frame rate of that video.
    Returns:
        One person followed through the frames (the most prominent one, then the nearest to
        the previous frame's choice; see :func:`_pick_person`); frames without people have
        zero confidence everywhere. ``face`` and
        ``hands`` are None when no file holds any.
    Raises:
        PoseFileError: a missing or unreadable file, an empty folder, or any file
            :func:`parse_openpose` rejects (the message names the file).
    """
    if isinstance(files, (str, os.PathLike)):
        folder = pathlib.Path(files)
        if not folder.is_dir():
            raise PoseFileError(f"{folder}: not a folder of OpenPose JSON files")
        paths = sorted(folder.glob("*.json"))
        if not paths:
            raise PoseFileError(f"{folder}: no .json files")
    else:
        paths = [pathlib.Path(p) for p in files]
        if not paths:
            raise PoseFileError("no OpenPose files given")
    if len(paths) > MAX_OPENPOSE_FILES:
        raise PoseFileError(f"{len(paths)} files is over the {MAX_OPENPOSE_FILES}-frame limit")
    frames: list[dict[str, np.ndarray] | None] = []
    previous = None
    for path in paths:
        data = read_regular_file(path, MAX_OPENPOSE_FILE_BYTES)
        chosen = _pick_person(parse_openpose(data, str(path)), previous)
        frames.append(chosen)
        previous = chosen if chosen is not None else previous
    return _sequence_from_people(frames, image_size, fps)


def _sequence_from_people(
    frames: list[dict[str, np.ndarray] | None], image_size: tuple[int, int] | None, fps: float
) -> PoseSequence:
    t = len(frames)
    has_face = any(f is not None and "face" in f for f in frames)
    has_hands = any(f is not None and ("hand_right" in f or "hand_left" in f) for f in frames)
    seq = _empty(t, (1, 1), fps, face=has_face, hands=has_hands)
    for i, person in enumerate(frames):
        if person is None:
            continue
        seq.body[i], seq.body_confidence[i] = person["body"][:, :2], person["body"][:, 2]
        if has_face and "face" in person:
            seq.face[i], seq.face_confidence[i] = person["face"][:, :2], person["face"][:, 2]
        for slot, side in enumerate(("right", "left")):
            hand = person.get(f"hand_{side}") if has_hands else None
            if hand is not None:
                seq.hands[i, slot], seq.hands_confidence[i, slot] = hand[:, :2], hand[:, 2]
    if image_size is None:
        extent = np.zeros(2)
        for name in ("body", "face", "hands"):
            points = getattr(seq, name)
            if points is not None:
                ok = getattr(seq, f"{name}_confidence") > 0
                if ok.any():
                    extent = np.maximum(extent, points[ok].max(0))
        w, h = (int(math.ceil(max(v * 1.05, 16.0))) for v in extent)
        image_size = (h, w)
    seq.image_size = (int(image_size[0]), int(image_size[1]))
    return seq


# -- mocap and body-model parameters ----------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _body_model():
    from recon3d.models.body import BodyModel

    return BodyModel.from_pretrained()


_FINGERS = (("finger1-1", "finger1-2", "finger1-3"),) + tuple(
    (f"finger{i}-1", f"finger{i}-2", f"finger{i}-3") for i in range(2, 6)
)


@functools.lru_cache(maxsize=2)
def _hand_tips(model, side: str) -> np.ndarray:
    """(5,) vertex index of each fingertip of hand ``side`` ("L"/"R"): the rest-pose vertex
    skinned mostly to a finger's last bone that lies farthest along that bone."""
    rest = model.mean_vertices.cpu().numpy()
    joints = model.mean_joints.cpu().numpy()
    skin = model.skin_matrix.cpu().numpy()
    owner = skin.argmax(1)
    tips = []
    for chain in _FINGERS:
        last = model.bone(f"{chain[2]}.{side}")
        prev = model.bone(f"{chain[1]}.{side}")
        direction = joints[last] - joints[prev]
        members = np.flatnonzero(owner == last)
        if members.size == 0:
            members = np.arange(len(rest))
        along = (rest[members] - joints[last]) @ direction
        tips.append(int(members[np.argmax(along)]))
    return np.array(tips)


def _hands_21(model, out, vertices: np.ndarray) -> np.ndarray:
    """(B, 2, 21, 3) right and left hands in MediaPipe/OpenPose order from posed joints:
    wrist, then per finger its three joint heads and the fingertip vertex (the thumb's first
    joint, ``finger1-1``, is the CMC)."""
    joints = out.joints.cpu().numpy()
    hands = np.zeros((joints.shape[0], 2, 21, 3), np.float32)
    for slot, side in enumerate(("R", "L")):
        hands[:, slot, 0] = joints[:, model.bone(f"wrist.{side}")]
        tips = _hand_tips(model, side)
        for f, chain in enumerate(_FINGERS):
            for k, bone in enumerate(chain):
                hands[:, slot, 1 + 4 * f + k] = joints[:, model.bone(f"{bone}.{side}")]
            hands[:, slot, 4 + 4 * f] = vertices[:, tips[f]]
    return hands


def _posed_keypoints(
    pose: np.ndarray, translation: np.ndarray, shape: np.ndarray | None, batch: int = 32
) -> dict[str, np.ndarray]:
    """3D keypoints (model frame, metres) of the posed body: ``body`` (T, 18, 3) in BODY18
    order, ``face`` (T, 68, 3), ``hands`` (T, 2, 21, 3), ``vertices`` (T, V, 3) float32 and
    ``floor`` (the soles' y)."""
    import torch

    from recon3d.models.landmarks import interpolate_surface

    model = _body_model()
    n = len(pose)
    shape_t = torch.zeros(1, model.num_shape) if shape is None else torch.as_tensor(shape)
    shape_t = shape_t.float().reshape(1, model.num_shape)
    coco = model.landmarks["coco17"].weights
    rows = np.array(BODY18_FROM_COCO17)
    body = np.zeros((n, 18, 3), np.float32)
    face = np.zeros((n, 68, 3), np.float32)
    hands = np.zeros((n, 2, 21, 3), np.float32)
    vertices = np.zeros((n, model.num_vertices, 3), np.float32)
    with torch.no_grad():
        rest_vertices, _ = model.rest(shape_t)
        floor = float(rest_vertices[0, :, 1].max())
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            out = model(
                shape_t.expand(stop - start, -1),
                torch.as_tensor(pose[start:stop], dtype=torch.float32),
                torch.as_tensor(translation[start:stop], dtype=torch.float32),
            )
            v = out.vertices.cpu().numpy().astype(np.float64)
            vertices[start:stop] = v
            kp = np.einsum("kv,bvd->bkd", coco, v)
            b = kp[:, np.maximum(rows, 0)]
            b[:, 1] = 0.5 * (kp[:, 5] + kp[:, 6])
            body[start:stop] = b
            mp = np.stack([interpolate_surface(x, model.faces, model.face_points) for x in v])
            face[start:stop] = face68_from_mediapipe478(mp)
            hands[start:stop] = _hands_21(model, out, v)
    return {
        "body": body,
        "face": face,
        "hands": hands,
        "vertices": vertices,
        "floor": np.float32(floor),
    }


def _virtual_camera_projection(
    points3d: dict[str, np.ndarray],
    image_size: tuple[int, int],
    fps: float,
    *,
    height_fraction: float = 0.8,
    distance: float = 5.0,
) -> PoseSequence:
    """Project posed keypoints with a fixed pinhole camera looking at the person's front.

    The camera (OpenCV axes = the model's axes: x right, y down, z forward) stands ``distance``
    metres in front of the clip's mean position, at the height of the middle of the body; its
    focal length makes a standing person ``height_fraction`` of the frame height, reduced when
    needed so that every keypoint of the clip stays inside the frame (5 % margin).

    Confidences follow what a camera would see (the rules of the training renders in
    ``recon3d.train.reenact_data``, so driving and training pose maps agree): the nose, eyes and
    ears are kept when they face the camera (the nose up to a little past profile); face and hand
    points when the posed mesh's depth buffer (``recon3d.render``, rendered at the frame size)
    holds nothing more than 3 cm (face) / 5 cm (hands) in front of them, and face points only
    while the nose is seen. Without an OpenGL backend the depth test is skipped (all face points
    follow the nose, all hand points are kept) and a warning is logged.
    """
    h, w = image_size
    body, face, hands = points3d["body"], points3d["face"], points3d["hands"]
    floor = float(points3d["floor"])
    everything = np.concatenate([body.reshape(-1, 3), face.reshape(-1, 3), hands.reshape(-1, 3)])
    top = float(np.percentile(body[:, :, 1], 1))
    stature = max(floor - float(body[0, :, 1].min()), 1e-3) * 1.08  # nose/eyes -> top of head
    centre = np.array(
        [
            0.5 * (everything[:, 0].min() + everything[:, 0].max()),
            0.5 * (floor + top),
            float(body[:, :, 2].mean()),
        ]
    )
    camera = centre - np.array([0.0, 0.0, distance])
    rel = everything - camera
    if np.any(rel[:, 2] < 0.2):  # a clip that comes within 0.2 m of the camera: step back
        camera[2] -= 0.2 - rel[:, 2].min()
        rel = everything - camera
    focal = height_fraction * h * distance / stature
    # Fit the whole clip into the frame (5 % margin).
    ux = np.abs(rel[:, 0] / rel[:, 2]).max()
    uy = np.abs(rel[:, 1] / rel[:, 2]).max()
    focal = min(focal, 0.45 * w / max(ux, 1e-6), 0.45 * h / max(uy, 1e-6))

    def project(p: np.ndarray) -> np.ndarray:
        q = p - camera
        return np.stack(
            [focal * q[..., 0] / q[..., 2] + w / 2, focal * q[..., 1] / q[..., 2] + h / 2], -1
        ).astype(np.float32)

    seq = PoseSequence(
        body=project(body),
        body_confidence=_head_facing(body, camera),
        face=project(face),
        face_confidence=np.zeros(face.shape[:2], np.float32),
        hands=project(hands),
        hands_confidence=np.ones(hands.shape[:3], np.float32),
        image_size=(h, w),
        fps=fps,
    )
    k = np.array([[focal, 0.0, w / 2], [0.0, focal, h / 2], [0.0, 0.0, 1.0]])
    _depth_visibility(seq, points3d, camera, k)
    return seq


#: BODY18 head rows and the cosine between their outward direction (from the middle of the ears)
#: and the view ray below which they count as hidden.
_HEAD_FACING = ((0, -0.3), (14, 0.0), (15, 0.0), (16, 0.0), (17, 0.0))
_FACE_DEPTH_TOLERANCE = 0.03
_HAND_DEPTH_TOLERANCE = 0.05


def _head_facing(body: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(T, 18) confidences: 1, except head points turned away from the camera."""
    conf = np.ones(body.shape[:2], np.float32)
    centre = 0.5 * (body[:, 16] + body[:, 17])
    for i, threshold in _HEAD_FACING:
        outward = body[:, i] - centre
        view = camera - body[:, i]
        cosine = np.einsum("td,td->t", outward, view) / (
            np.linalg.norm(outward, axis=1) * np.linalg.norm(view, axis=1) + 1e-9
        )
        conf[cosine < threshold, i] = 0.0
    return conf


def _depth_visibility(seq: PoseSequence, points3d: dict, camera: np.ndarray, k: np.ndarray):
    """Set ``seq``'s face and hand confidences from depth tests (see
    :func:`_virtual_camera_projection`)."""
    from recon3d.errors import RendererUnavailableError
    from recon3d.render.renderer import render_mesh

    nose_seen = seq.body_confidence[:, 0] > 0
    h, w = seq.image_size
    faces = _body_model().faces
    for t in range(len(seq)):
        try:
            depth = render_mesh(
                points3d["vertices"][t] - camera, faces, k, (w, h), depth_only=True
            ).depth
        except RendererUnavailableError as exc:
            logger.warning("no depth test for driving keypoints (%s); keeping them all", exc)
            seq.face_confidence[:] = nose_seen[:, None]
            return
        face = _visible(points3d["face"][t] - camera, seq.face[t], depth, _FACE_DEPTH_TOLERANCE)
        seq.face_confidence[t] = face & nose_seen[t]
        hands = points3d["hands"][t].reshape(-1, 3) - camera
        seen = _visible(hands, seq.hands[t].reshape(-1, 2), depth, _HAND_DEPTH_TOLERANCE)
        seq.hands_confidence[t] = seen.reshape(2, 21)


def _visible(points: np.ndarray, pixels: np.ndarray, depth: np.ndarray, tolerance: float):
    """(N,) bool: inside the frame and nothing in ``depth`` more than ``tolerance`` metres in
    front of each camera-frame point."""
    h, w = depth.shape
    px = np.round(pixels).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    d = np.zeros(len(points))
    d[inside] = depth[px[inside, 1], px[inside, 0]]
    front = np.where(d > 0, d, np.inf)
    return inside & (points[:, 2] - front < tolerance)


def _checked_shape(shape) -> np.ndarray | None:
    """``shape`` as (num_shape,) float32, or None; ValueError when it is not that."""
    if shape is None:
        return None
    model = _body_model()
    array = np.asarray(shape, np.float32).reshape(-1)
    if array.shape != (model.num_shape,) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"shape must be {model.num_shape} finite body-model shape coefficients, got "
            f"{np.shape(shape)}"
        )
    return array


def poses_from_body_model(
    pose: np.ndarray,
    *,
    translation: np.ndarray | None = None,
    shape: np.ndarray | None = None,
    image_size: tuple[int, int] = (512, 512),
    fps: float = 30.0,
) -> PoseSequence:
    """Keypoints of the body model posed by ``pose``, seen by a virtual camera.

    Args:
        pose: (T, J, 3) axis-angle bone rotations of :class:`recon3d.models.body.BodyModel`
            (J = its ``num_joints``, Anny's local-ref convention).
        translation: (T, 3) metres (default zeros).
        shape: (num_shape,) shape coefficients (default: the average body).
        image_size: (height, width) of the virtual frame.
        fps: frame rate of the sequence.
    Returns:
        A :class:`PoseSequence` with body, face (zero confidence in frames where the face turns
        away from the camera) and hands (from the finger bones), projected as described in
        :func:`_virtual_camera_projection`.
    Raises:
        PoseFileError: ``pose`` of the wrong shape or with non-finite values.
    """
    model = _body_model()
    shape = _checked_shape(shape)
    pose = np.asarray(pose, np.float32)
    if pose.ndim != 3 or pose.shape[1:] != (model.num_joints, 3) or len(pose) == 0:
        raise PoseFileError(
            f"expected body-model pose parameters of shape (T, {model.num_joints}, 3), got "
            f"{pose.shape}"
        )
    if not np.all(np.isfinite(pose)):
        raise PoseFileError("the pose parameters hold non-finite values")
    if translation is None:
        translation = np.zeros((len(pose), 3), np.float32)
    translation = np.asarray(translation, np.float32)
    if translation.shape != (len(pose), 3) or not np.all(np.isfinite(translation)):
        raise PoseFileError(f"translation must be finite, shape ({len(pose)}, 3)")
    points = _posed_keypoints(pose, translation, shape)
    return _virtual_camera_projection(points, image_size, fps)


def poses_from_mocap(
    path: str | os.PathLike,
    *,
    shape: np.ndarray | None = None,
    image_size: tuple[int, int] = (512, 512),
    fps: float | None = None,
) -> PoseSequence:
    """A DeepMimic clip retargeted onto the body model and projected by a virtual camera.

    Args:
        path: a DeepMimic motion file (``humanoid3d_*.txt``).
        shape: body-model shape coefficients (default: the average body).
        image_size: (height, width) of the virtual frame.
        fps: resample the clip to this rate (nearest frame in time); default: the clip's own.
    Raises:
        PoseFileError: the file is not a valid DeepMimic clip.
    """
    from recon3d.io.mocap import load_deepmimic, retarget_to_body

    shape = _checked_shape(shape)
    clip = load_deepmimic(path)
    motion = retarget_to_body(clip, _body_model(), shape)
    poses, translation, rate = motion.poses, motion.translation, clip.fps
    if fps is not None and fps > 0 and abs(fps - rate) > 1e-6:
        times = clip.times
        wanted = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
        index = np.clip(np.searchsorted(times, wanted), 0, len(times) - 1)
        poses, translation, rate = poses[index], translation[index], float(fps)
    return poses_from_body_model(
        poses, translation=translation, shape=shape, image_size=image_size, fps=rate
    )


# -- the front door ---------------------------------------------------------------------------
def _resampled(poses: PoseSequence, fps: float | None) -> PoseSequence:
    """Nearest-frame resampling in time to ``fps``."""
    if fps is None or fps <= 0 or abs(fps - poses.fps) < 1e-6 or len(poses) < 2:
        return poses if fps is None or fps <= 0 else replace(poses, fps=float(fps))
    duration = len(poses) / poses.fps
    index = np.minimum(np.round(np.arange(0.0, duration, 1.0 / fps) * poses.fps), len(poses) - 1)
    index = index.astype(np.int64)

    def take(a):
        return None if a is None else a[index]

    return replace(
        poses,
        body=take(poses.body),
        body_confidence=take(poses.body_confidence),
        face=take(poses.face),
        face_confidence=take(poses.face_confidence),
        hands=take(poses.hands),
        hands_confidence=take(poses.hands_confidence),
        fps=float(fps),
    )


def _looks_like_deepmimic(path: pathlib.Path) -> bool:
    """A DeepMimic clip saved with a .json name: a "Frames" key near the start of the file."""
    try:
        head = read_regular_file(path, MAX_OPENPOSE_FILE_BYTES)[:4096]
    except PoseFileError:
        return False
    return b'"Frames"' in head


def load_driving(
    driving,
    *,
    image_size: tuple[int, int] | None = None,
    fps: float | None = None,
    progress: bool = True,
    shape: np.ndarray | None = None,
) -> PoseSequence:
    """Driving poses from any supported source.

    Args:
        driving: one of
            * a :class:`PoseSequence` (returned as is, unless ``image_size`` / ``fps`` ask for
              a change);
            * a video file (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``, ``.gif``, ...):
              :func:`detect_poses` on its frames;
            * a folder of OpenPose JSON files, one ``.json`` file, or a list of them
              (:func:`load_openpose`);
            * a DeepMimic clip (``.txt``, or ``.json`` holding a ``"Frames"`` list;
              :func:`poses_from_mocap`);
            * body-model pose parameters, an (T, J, 3) axis-angle array
              (:func:`poses_from_body_model`).
        image_size: (height, width) of the output frame: videos and OpenPose keypoints are
            rescaled to it (OpenPose's own frame size is inferred, see :func:`load_openpose`);
            the virtual camera of mocap and pose parameters renders at it (default 512 x 512).
        fps: resample to this frame rate (nearest frame); default: the source's rate (30 for
            OpenPose files and pose parameters).
        progress: progress bar for video pose detection.
        shape: body-model shape coefficients (num_shape,) for mocap clips and pose parameters
            (default: the average body), e.g. a body reconstruction's ``params["shape"]``.
    Raises:
        PoseFileError: a bad or missing pose file, an unrecognised input.
        InvalidImageError: an unreadable video (ImageTooLargeError: frames too large).
    """
    if isinstance(driving, PoseSequence):
        out = driving if image_size is None else driving.resized(image_size)
        return _resampled(out, fps)
    if isinstance(driving, np.ndarray):
        return poses_from_body_model(
            driving, shape=shape, image_size=tuple(image_size or (512, 512)), fps=fps or 30.0
        )
    if isinstance(driving, (list, tuple)):
        seq = load_openpose(list(driving), fps=fps or 30.0)
        return seq if image_size is None else seq.resized(image_size)
    if not isinstance(driving, (str, os.PathLike)):
        raise PoseFileError(
            f"unsupported driving input {type(driving).__name__}: expected a PoseSequence, a "
            "video, OpenPose JSON files, a DeepMimic clip or an (T, J, 3) pose array"
        )
    from recon3d.io.video import VIDEO_SUFFIXES, read_video

    path = pathlib.Path(os.fsdecode(os.fspath(driving)))
    suffix = path.suffix.lower()
    if path.is_dir():
        seq = load_openpose(path, fps=fps or 30.0)
        return seq if image_size is None else seq.resized(image_size)
    if suffix == ".json":
        try:
            seq = load_openpose([path], fps=fps or 30.0)
        except PoseFileError:
            if not _looks_like_deepmimic(path):
                raise
            return poses_from_mocap(
                path, shape=shape, image_size=tuple(image_size or (512, 512)), fps=fps
            )
        return seq if image_size is None else seq.resized(image_size)
    if suffix == ".txt":
        return poses_from_mocap(
            path, shape=shape, image_size=tuple(image_size or (512, 512)), fps=fps
        )
    if suffix in VIDEO_SUFFIXES:
        frames, rate = read_video(path)
        seq = detect_poses(frames, fps=rate, progress=progress)
        if image_size is not None:
            seq = seq.resized(image_size)
        return _resampled(seq, fps)
    if not path.exists():
        raise PoseFileError(f"{path}: no such file or folder")
    raise PoseFileError(
        f"{path}: unrecognised driving input (expected a video, OpenPose .json files or a "
        "folder of them, or a DeepMimic .txt clip)"
    )
