"""Training and test frames for the reposer (Everybody Dance Now): a person seen in many poses,
with the keypoints the pose maps are drawn from.

Two sources, one result type (:class:`FrameSet`):

* :func:`render_reposed` — from one photo: the body :class:`~recon3d.reconstruction.Reconstruction`
  (its shape, per-part clothing offsets and texture) is posed with retargeted motion-capture clips
  and random valid poses (linear blend skinning in torch) and rendered with pyrender by a fixed
  virtual camera, as if filmed dancing on a stage. Keypoints come from the posed mesh, so they
  are exact: BODY18 (OpenPose COCO-18) from the body model's COCO-17 regressor with the neck at
  mid-shoulders, the 68 iBUG face points from the face-mesh points on the head, and 21 points per
  hand from the finger joints. Points the camera cannot see get confidence 0 (outside the frame,
  a face turned away, hidden behind the body).
* :func:`video_frames` — from a real video of the person (the paper's setting): frames
  centre-cropped (or padded) to a square and resized, keypoints from
  :func:`recon3d.reenact.poses.detect_poses` (MediaPipe).

The stage (:func:`render_reposed`): the camera looks horizontally from ``CAMERA_HEIGHT`` above a
flat floor; the person stands on the floor between ``DEPTH_RANGE`` metres away and at most
``LATERAL`` metres to either side, so the ankles are lower in the image when the person is close
and higher when far, which is what the paper's pose normalisation maps between. Each clip is
rendered with a random facing (mostly towards the camera) and a random place on the stage; its
travel is shrunk where it would leave the stage (walks, runs). Random poses come in short,
smoothly interpolated sequences (so consecutive frames are temporally adjacent too).
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from recon3d.reenact.poses import PoseSequence

log = logging.getLogger(__name__)

__all__ = [
    "CAMERA_HEIGHT",
    "DEPTH_RANGE",
    "FOV_DEG",
    "TEST_CLIPS",
    "TRAIN_CLIPS",
    "FrameSet",
    "ReposedBody",
    "render_reposed",
    "stage_camera",
    "video_frames",
]

#: Mocap clips the reposer trains on, and the clips held out for the test set.
TRAIN_CLIPS = (
    "walk",
    "run",
    "jump",
    "kick",
    "spin",
    "spinkick",
    "cartwheel",
    "backflip",
    "crawl",
    "roll",
    "getup_faceup",
    "getup_facedown",
)
TEST_CLIPS = ("dance_a", "dance_b", "punch")
#: Frame rate the clips are resampled to.
FPS = 30.0
#: Vertical field of view of the virtual camera, degrees.
FOV_DEG = 40.0
#: Height of the camera above the floor, metres (about hip height: the person stays centred).
CAMERA_HEIGHT = 0.95
#: Nearest and farthest distance of the person from the camera, metres.
DEPTH_RANGE = (3.0, 4.5)
#: Largest sideways offset of the person, metres.
LATERAL = 0.3
#: Texture side used for rendering (the model's 2048² texture is downsampled once).
TEXTURE_SIDE = 1024

# BODY18 (OpenPose COCO-18) rows as COCO-17 rows; the neck (row 1) is mid-shoulders.
_BODY18_FROM_COCO17 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
_NOSE, _R_EYE, _L_EYE, _R_EAR, _L_EAR = 0, 14, 15, 16, 17
# 21-point hand (MediaPipe / OpenPose order) from the body model's finger bones: the wrist, then
# per finger (thumb .. little) its three joint heads and the fingertip vertex (the definition of
# recon3d.reenact.poses, so mocap driving poses and these training poses agree).
_FINGERS = ("finger1", "finger2", "finger3", "finger4", "finger5")
# Depth tolerances (metres) of the visibility tests: face points lie on the surface, hand
# joints inside fingers and palm.
_FACE_DEPTH_TOLERANCE = 0.03
_HAND_DEPTH_TOLERANCE = 0.05


@dataclass
class FrameSet:
    """Frames of one person with their keypoints.

    Attributes:
        frames: (N, H, W, 3) uint8 ground-truth frames.
        poses: N frames of keypoints for those frames (what the pose maps are drawn from).
        sequence: (N,) int sequence id; consecutive frames with equal id are temporally adjacent.
        face_boxes: (N, 4) int x0, y0, x1, y1 square face crop per frame, inside the frame
            (:func:`recon3d.reenact.face.face_boxes` of ``poses``: the crop the reposer's
            FaceGAN uses at render time).
    """

    frames: np.ndarray
    poses: PoseSequence
    sequence: np.ndarray
    face_boxes: np.ndarray

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __getitem__(self, index: slice) -> FrameSet:
        """The frames of a slice (``frame_set[10:20]``)."""
        if not isinstance(index, slice):
            raise TypeError("FrameSet supports slices only, e.g. frame_set[10:20]")
        return FrameSet(
            self.frames[index], self.poses[index], self.sequence[index], self.face_boxes[index]
        )

    def pairs(self) -> np.ndarray:
        """(P,) indices ``i`` where frames ``i`` and ``i + 1`` are temporally adjacent."""
        return np.flatnonzero(self.sequence[1:] == self.sequence[:-1])

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Write an ``.npz`` (numeric arrays only, no pickles), atomically."""
        import io

        from recon3d.exchange.atomic import write_atomic

        arrays = {
            "frames": self.frames,
            "sequence": self.sequence,
            "face_boxes": self.face_boxes,
            "image_size": np.asarray(self.poses.image_size, np.int64),
            "fps": np.asarray(self.poses.fps, np.float64),
            "body": self.poses.body,
            "body_confidence": self.poses.body_confidence,
        }
        for name in ("face", "face_confidence", "hands", "hands_confidence"):
            value = getattr(self.poses, name)
            if value is not None:
                arrays[name] = value
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FrameSet:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        poses = PoseSequence(
            body=arrays["body"],
            body_confidence=arrays["body_confidence"],
            face=arrays.get("face"),
            face_confidence=arrays.get("face_confidence"),
            hands=arrays.get("hands"),
            hands_confidence=arrays.get("hands_confidence"),
            image_size=tuple(int(x) for x in arrays["image_size"]),
            fps=float(arrays["fps"]),
        )
        return cls(arrays["frames"], poses, arrays["sequence"], arrays["face_boxes"])


def stage_camera(size: int) -> np.ndarray:
    """(3, 3) intrinsics of the virtual camera for ``size`` x ``size`` frames."""
    from recon3d.render.renderer import look_at_intrinsics

    return look_at_intrinsics(size, size, fov_deg=FOV_DEG)


class ReposedBody:
    """The body of a reconstruction, ready to pose and render.

    Args:
        rec: a body :class:`~recon3d.reconstruction.Reconstruction` (``rec.params`` holds the
            fitted ``shape`` and per-part ``clothing`` offsets; ``rec.texture`` its texture).
        model: the body model (default: the shipped one).
        device: torch device for the skinning (default CPU).
    """

    def __init__(self, rec, model=None, device: str | torch.device | None = None) -> None:
        import cv2

        from recon3d.models.body import BodyModel

        if rec.target != "body":
            raise ValueError(f"render_reposed needs a body reconstruction, got {rec.target!r}")
        self.model = model if model is not None else BodyModel.from_pretrained()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model.to(self.device)
        self.shape = np.asarray(rec.params["shape"], np.float32)
        part_w, part_names = self.model.part_weights()
        clothing = rec.params.get("clothing") or {}
        values = torch.tensor([float(clothing.get(p, 0.0)) for p in part_names])
        self.offsets = (part_w.cpu() @ values).float()  # (V,) metres along the rest normals
        # Split vertices at UV seams (as Reconstruction.to_trimesh) for per-vertex UVs.
        corner_uv = self.model.uv[self.model.face_uv].reshape(-1, 2)
        corner_vertex = self.model.faces.reshape(-1)
        key = np.c_[corner_vertex, np.round(corner_uv * 1e6).astype(np.int64)]
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        self.render_vertices = corner_vertex[first]
        self.render_uv = corner_uv[first]
        self.render_faces = inverse.reshape(-1, 3)
        side = min(TEXTURE_SIDE, rec.texture.shape[0])
        self.texture = cv2.resize(rec.texture, (side, side), interpolation=cv2.INTER_AREA)
        landmarks = self.model.landmarks
        self.coco = torch.as_tensor(landmarks["coco17"].weights, dtype=torch.float32)
        self.face_points = landmarks["mediapipe478"]
        with torch.no_grad():
            _, rest_joints = self.model.rest(torch.as_tensor(self.shape)[None].to(self.device))
        self.rest_root = rest_joints[0, 0].double().cpu().numpy()
        bone = self.model.bone
        from recon3d.reenact.poses import _hand_tips

        self.hand_tips = np.stack([_hand_tips(self.model, s) for s in ("R", "L")])  # (2, 5)
        self.hand_bones = np.array(
            [
                [bone(f"wrist.{s}")] + [bone(f"{f}-{k}.{s}") for f in _FINGERS for k in (1, 2, 3)]
                for s in ("R", "L")
            ]
        )  # (2, 16): wrist, then 3 joints per finger

    def pose(
        self, poses: np.ndarray, translation: np.ndarray, chunk: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posed vertices (T, V, 3) and joints (T, J, 3), float32, model frame, for axis-angle
        ``poses`` (T, J, 3) and ``translation`` (T, 3)."""
        verts, joints = [], []
        shape = torch.as_tensor(self.shape)[None].to(self.device)
        offsets = self.offsets[None].to(self.device)
        with torch.no_grad():
            for start in range(0, len(poses), chunk):
                p = torch.as_tensor(poses[start : start + chunk], dtype=torch.float32)
                t = torch.as_tensor(translation[start : start + chunk], dtype=torch.float32)
                n = p.shape[0]
                out = self.model(
                    shape.expand(n, -1),
                    p.to(self.device),
                    t.to(self.device),
                    normal_offsets=offsets.expand(n, -1),
                )
                verts.append(out.vertices.cpu().numpy())
                joints.append(out.joints.cpu().numpy())
        return np.concatenate(verts), np.concatenate(joints)


def render_reposed(
    rec,
    *,
    clips: Sequence[str | os.PathLike] = TRAIN_CLIPS,
    random_poses: int = 300,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
    passes: int = 1,
    random_length: int = 6,
    supersample: int = 1,
    background: tuple[int, int, int] = (255, 255, 255),
    mocap_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> FrameSet:
    """Frames of the reconstructed person reposed with mocap clips and random valid poses.

    Args:
        rec: a body reconstruction (``reconstruct(photo, target="body")``).
        clips: DeepMimic clips: names (``"dance_a"``, looked up as ``humanoid3d_<name>.txt`` in
            ``mocap_dir``) or paths. Default :data:`TRAIN_CLIPS`; :data:`TEST_CLIPS` are held out.
        random_poses: number of frames in random valid poses (in sequences of
            ``random_length`` frames interpolated between two random poses).
        size: frames are ``size`` x ``size`` pixels.
        seed: everything random (facing, place on the stage, random poses) follows it.
        progress: show a progress bar.
        passes: each clip is rendered this many times, each with a new facing and place.
        random_length: frames per random-pose sequence.
        supersample: render at this multiple of ``size`` and downsample (pyrender already
            draws with 4x multisampling; 2 halves the speed for slightly softer edges).
        background: RGB of the empty stage.
        mocap_dir: folder of the clips given by name (default ``$RECON3D_MOCAP`` or
            ``/work/shared/data/mocap``).
        device: torch device for the skinning (default CPU).
    Returns:
        :class:`FrameSet`: clip frames first (clip by clip, pass by pass, resampled to
        :data:`FPS`), then the random-pose sequences; one sequence id per clip pass and per
        random sequence.
    """
    from recon3d.io.mocap import load_deepmimic, retarget_to_body

    rng = np.random.default_rng(seed)
    body = ReposedBody(rec, device=device)
    folder = pathlib.Path(mocap_dir or os.environ.get("RECON3D_MOCAP", "/work/shared/data/mocap"))
    sequences: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    for clip_ref in clips:
        path = pathlib.Path(clip_ref)
        if path.suffix != ".txt":
            path = folder / f"humanoid3d_{clip_ref}.txt"
        clip = load_deepmimic(path)
        retargeted = retarget_to_body(clip, body.model, body.shape)
        poses, translation = _resample(retargeted.poses, retargeted.translation, clip.times, FPS)
        for _ in range(passes):
            p, t = _place_clip(poses, translation, body.rest_root, rng)
            t = t + np.array([0.0, CAMERA_HEIGHT - retargeted.floor, 0.0], np.float32)
            sequences.append((p, t, None))
    sequences += _random_sequences(body, random_poses, random_length, rng)
    return _render_sequences(body, sequences, size, supersample, background, progress)


def _resample(
    poses: np.ndarray, translation: np.ndarray, times: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poses (T', J, 3) and translations (T', 3) at ``fps``: rotations interpolated along the
    shortest arc between the two nearest frames, translations linearly."""
    if len(times) < 2 or times[-1] <= 0:
        return poses, translation
    new_times = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    i = np.clip(np.searchsorted(times, new_times, side="right") - 1, 0, len(times) - 2)
    alpha = np.clip((new_times - times[i]) / np.maximum(times[i + 1] - times[i], 1e-9), 0, 1)
    j = poses.shape[1]
    r0 = Rotation.from_rotvec(poses[i].reshape(-1, 3))
    r1 = Rotation.from_rotvec(poses[i + 1].reshape(-1, 3))
    step = (r0.inv() * r1).as_rotvec() * np.repeat(alpha, j)[:, None]
    out = (r0 * Rotation.from_rotvec(step)).as_rotvec().reshape(-1, j, 3)
    trans = translation[i] + alpha[:, None] * (translation[i + 1] - translation[i])
    return out.astype(np.float32), trans.astype(np.float32)


def _random_yaw(rng: np.random.Generator) -> float:
    """Facing: mostly towards the camera (within 60°), a quarter of the time any direction."""
    if rng.random() < 0.25:
        return float(rng.uniform(-np.pi, np.pi))
    return float(rng.uniform(-np.pi / 3, np.pi / 3))


def _place_clip(
    poses: np.ndarray, translation: np.ndarray, rest_root: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a clip about the vertical axis and move it to a random place on the stage.

    A vertex ``v = R_root (x - r0) + r0 + t`` turned by ``R_yaw`` about the clip's mean root
    position ``c`` and moved to ``c'`` is ``R_yaw R_root (x - r0) + R_yaw (r0 + t - c) + c'``:
    the root rotation becomes ``R_yaw R_root`` and the translation
    ``R_yaw (r0 + t - c) + c' - r0``. Horizontal travel beyond the stage is scaled down."""
    yaw = Rotation.from_rotvec([0.0, _random_yaw(rng), 0.0])
    poses = poses.copy()
    poses[:, 0] = (yaw * Rotation.from_rotvec(poses[:, 0])).as_rotvec()
    root = rest_root[None] + translation
    centre = root.mean(0) * np.array([1.0, 0.0, 1.0])
    travel = yaw.apply(root - centre)
    extent_x, extent_z = np.ptp(travel[:, 0]), np.ptp(travel[:, 2])
    travel[:, 0] *= min(1.0, 1.2 * LATERAL / max(extent_x, 1e-6))
    travel[:, 2] *= min(1.0, 0.6 * (DEPTH_RANGE[1] - DEPTH_RANGE[0]) / max(extent_z, 1e-6))
    travel[:, [0, 2]] -= 0.5 * (travel[:, [0, 2]].max(0) + travel[:, [0, 2]].min(0))
    half_x, half_z = 0.5 * np.ptp(travel[:, 0]), 0.5 * np.ptp(travel[:, 2])
    x0 = rng.uniform(-max(LATERAL - half_x, 0.0), max(LATERAL - half_x, 0.0))
    z0 = rng.uniform(DEPTH_RANGE[0] + half_z, max(DEPTH_RANGE[1] - half_z, DEPTH_RANGE[0] + half_z))
    new_translation = travel + np.array([x0, 0.0, z0]) - rest_root * np.array([1.0, 0.0, 1.0])
    new_translation[:, 1] = translation[:, 1]
    return poses.astype(np.float32), new_translation.astype(np.float32)


def _random_sequences(
    body: ReposedBody, frames: int, length: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Sequences of ``length`` frames moving from one random valid pose to another (the second
    keeps the first's facing within ±20°), placed at a random spot of the stage; the lowest
    point of the body touches the floor in every frame (marked by ``None`` floor offsets,
    resolved after posing)."""
    from recon3d.train.synthetic import random_pose

    out = []
    length = max(int(length), 1)
    for _ in range(int(np.ceil(frames / length)) if frames > 0 else 0):
        a = random_pose(body.model, rng)
        b = random_pose(body.model, rng)
        turn = Rotation.from_rotvec([0.0, rng.uniform(-0.35, 0.35), 0.0])
        b[0] = (turn * Rotation.from_rotvec(a[0])).as_rotvec()
        alpha = np.linspace(0.0, 1.0, length) if length > 1 else np.zeros(1)
        ra, rb = Rotation.from_rotvec(a), Rotation.from_rotvec(b)
        step = (ra.inv() * rb).as_rotvec()
        poses = np.stack([(ra * Rotation.from_rotvec(s * step)).as_rotvec() for s in alpha])
        place = np.array([rng.uniform(-LATERAL, LATERAL), 0.0, rng.uniform(*DEPTH_RANGE)])
        translation = np.tile(place - body.rest_root * np.array([1.0, 0.0, 1.0]), (length, 1))
        out.append((poses.astype(np.float32), translation.astype(np.float32), np.zeros(length)))
    if frames > 0:
        # The last sequence is cut so that the total is exactly ``frames``.
        extra = len(out) * length - frames
        if extra:
            p, t, f = out[-1]
            out[-1] = (p[: length - extra], t[: length - extra], f[: length - extra])
    return out


def _render_sequences(
    body: ReposedBody,
    sequences: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    size: int,
    supersample: int,
    background: tuple[int, int, int],
    progress: bool,
) -> FrameSet:
    import cv2
    from tqdm.auto import tqdm

    from recon3d.models.landmarks import interpolate_surface
    from recon3d.reenact.face import face_boxes
    from recon3d.reenact.poses import face68_from_mediapipe478
    from recon3d.render.renderer import TexturedMeshRenderer

    ss = max(int(supersample), 1)
    K = stage_camera(size)
    K_ss = K.copy()
    K_ss[:2, :2] *= ss
    K_ss[:2, 2] = (K[:2, 2] + 0.5) * ss - 0.5
    renderer = TexturedMeshRenderer(body.render_faces, body.render_uv, body.texture)
    total = sum(len(s[0]) for s in sequences)
    frames = np.empty((total, size, size, 3), np.uint8)
    body18 = np.zeros((total, 18, 2), np.float32)
    body_conf = np.zeros((total, 18), np.float32)
    face = np.zeros((total, 68, 2), np.float32)
    face_conf = np.zeros((total, 68), np.float32)
    hands = np.zeros((total, 2, 21, 2), np.float32)
    hands_conf = np.zeros((total, 2, 21), np.float32)
    sequence_id = np.zeros(total, np.int64)
    index = 0
    with tqdm(total=total, desc="render reposed", unit="frame", disable=not progress) as bar:
        for seq, (poses, translation, floor) in enumerate(sequences):
            verts, joints = body.pose(poses, translation)
            if floor is not None:
                # Random poses: the lowest point of each frame on the floor.
                lift = CAMERA_HEIGHT - verts[..., 1].max(1)
            else:
                lift = np.zeros(len(verts), np.float32)
            verts[..., 1] += lift[:, None]
            joints[..., 1] += lift[:, None]
            coco = np.einsum("kv,tvd->tkd", body.coco.numpy(), verts)
            for k in range(len(verts)):
                v = verts[k].astype(np.float64)
                out = renderer.render(
                    v[body.render_vertices], K_ss, (size * ss,) * 2, background=background
                )
                color = out.color
                if ss > 1:
                    color = cv2.resize(color, (size, size), interpolation=cv2.INTER_AREA)
                frames[index] = color
                depth = out.depth
                keypoints = _frame_keypoints(
                    body,
                    v,
                    joints[k].astype(np.float64),
                    coco[k],
                    K,
                    ss,
                    depth,
                    size,
                    interpolate_surface,
                    face68_from_mediapipe478,
                )
                (
                    body18[index],
                    body_conf[index],
                    face[index],
                    face_conf[index],
                    hands[index],
                    hands_conf[index],
                ) = keypoints
                sequence_id[index] = seq
                index += 1
                bar.update(1)
    poses = PoseSequence(
        body=body18,
        body_confidence=body_conf,
        face=face,
        face_confidence=face_conf,
        hands=hands,
        hands_confidence=hands_conf,
        image_size=(size, size),
        fps=FPS,
    )
    return FrameSet(frames, poses, sequence_id, face_boxes(poses))


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 2) pixels of (N, 3) camera-frame points."""
    z = np.maximum(points[:, 2:3], 1e-6)
    return (points[:, :2] / z) * np.diag(K)[:2] + K[:2, 2]


def _depth_visible(
    points: np.ndarray, pixels: np.ndarray, depth: np.ndarray, ss: int, tolerance: float
) -> np.ndarray:
    """(N,) bool: nothing lies more than ``tolerance`` metres in front of each point in the
    (supersampled) depth buffer; points outside the frame are not visible."""
    h, w = depth.shape
    px = np.round((pixels + 0.5) * ss - 0.5).astype(np.int64)
    inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    d = np.zeros(len(points))
    d[inside] = depth[px[inside, 1], px[inside, 0]]
    front = np.where(d > 0, d, np.inf)  # an empty pixel hides nothing
    return inside & (points[:, 2] - front < tolerance)


def _frame_keypoints(body, verts, joints, coco, K, ss, depth, size, surface, face68):
    """BODY18, face-68 and hand keypoints (pixels) with their confidences."""
    inside = lambda p: (p[:, 0] >= 0) & (p[:, 0] < size) & (p[:, 1] >= 0) & (p[:, 1] < size)  # noqa: E731
    points18 = np.array(
        [coco[i] if i >= 0 else 0.5 * (coco[5] + coco[6]) for i in _BODY18_FROM_COCO17]
    )
    b18 = _project(points18, K)
    conf18 = inside(b18).astype(np.float32)
    # Nose, eyes and ears: seen when they face the camera (outward from the head's centre).
    centre = 0.5 * (points18[_R_EAR] + points18[_L_EAR])
    # The nose stays visible a little past a profile view.
    for i, threshold in ((_NOSE, -0.3), (_R_EYE, 0.0), (_L_EYE, 0.0), (_R_EAR, 0.0), (_L_EAR, 0.0)):
        outward = points18[i] - centre
        view = -points18[i]
        cosine = outward @ view / (np.linalg.norm(outward) * np.linalg.norm(view) + 1e-9)
        if cosine < threshold:
            conf18[i] = 0.0
    mp = surface(verts, body.model.faces, body.face_points)
    f3 = face68(mp)
    f2 = _project(f3, K)
    fconf = _depth_visible(f3, f2, depth, ss, _FACE_DEPTH_TOLERANCE).astype(np.float32)
    if conf18[_NOSE] == 0:
        fconf[:] = 0.0
    hand3 = np.zeros((2, 21, 3))
    for s in range(2):
        j = joints[body.hand_bones[s]]  # (16, 3): wrist, 3 joints per finger
        hand3[s, 0] = j[0]
        for f in range(5):
            hand3[s, 1 + 4 * f : 4 + 4 * f] = j[1 + 3 * f : 4 + 3 * f]
            hand3[s, 4 + 4 * f] = verts[body.hand_tips[s, f]]
    h2 = _project(hand3.reshape(-1, 3), K)
    hconf = _depth_visible(hand3.reshape(-1, 3), h2, depth, ss, _HAND_DEPTH_TOLERANCE)
    return (
        b18,
        conf18,
        f2,
        fconf,
        h2.reshape(2, 21, 2),
        hconf.reshape(2, 21).astype(np.float32),
    )


def video_frames(
    path_or_frames: str | os.PathLike | Iterable[np.ndarray],
    *,
    size: int = 256,
    start: int = 0,
    stop: int | None = None,
    progress: bool = True,
    fit: str = "crop",
    fps: float | None = None,
) -> FrameSet:
    """Frames of a real video of the person, with MediaPipe keypoints.

    Args:
        path_or_frames: a video file, or an iterable of (H, W, 3) uint8 RGB frames.
        size: frames are ``size`` x ``size`` pixels.
        start, stop: frame range (Python slice semantics, ``stop=None`` to the end).
        progress: show progress bars.
        fit: ``"crop"`` cuts the longer side to a centred square, ``"pad"`` pads the shorter
            side with black.
        fps: frame rate of a frame iterable (a file's own rate is used for paths; default 30).
    Returns:
        :class:`FrameSet` with one sequence (id 0).
    Raises:
        InvalidImageError: the video cannot be read.
    """
    import itertools

    import cv2

    from recon3d.reenact.face import face_boxes
    from recon3d.reenact.poses import detect_poses

    if fit not in ("crop", "pad"):
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    if isinstance(path_or_frames, (str, os.PathLike)):
        from recon3d.io.video import read_video

        source, file_fps = read_video(path_or_frames, max_frames=stop)
        fps = file_fps if fps is None else fps
    else:
        source = iter(path_or_frames)
    fps = 30.0 if fps is None else float(fps)
    frames = []
    for frame in itertools.islice(source, start, stop):
        frames.append(_square(np.asarray(frame), size, fit, cv2))
    if not frames:
        raise ValueError("no frames in the requested range")
    stack = np.stack(frames)
    poses = detect_poses(list(stack), fps=fps, progress=progress)
    return FrameSet(stack, poses, np.zeros(len(stack), np.int64), face_boxes(poses))


def _square(frame: np.ndarray, size: int, fit: str, cv2) -> np.ndarray:
    h, w = frame.shape[:2]
    if fit == "crop":
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        square = frame[y0 : y0 + side, x0 : x0 + side]
    else:
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        y0, x0 = (side - h) // 2, (side - w) // 2
        square[y0 : y0 + h, x0 : x0 + w] = frame[..., :3]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(
        np.ascontiguousarray(square[..., :3]), (size, size), interpolation=interpolation
    )
