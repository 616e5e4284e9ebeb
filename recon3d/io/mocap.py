"""DeepMimic motion-capture clips and their retargeting onto the body model's skeleton.

A DeepMimic clip (pybullet's ``pybullet_data/data/motions/humanoid3d_*.txt``) is JSON
``{"Loop": ..., "Frames": [[...], ...]}``; each frame holds 44 numbers: the frame duration, the
root position (3, metres), the root rotation quaternion (w, x, y, z), then per joint of
``humanoid.urdf`` a quaternion (w, x, y, z) for spherical joints or one angle (radians, about the
joint's local z axis) for the revolute knees and elbows, in the order of :data:`JOINT_NAMES`.

The humanoid (frame "H"): Y up, it faces +X, its right side is +Z. Its rest pose (all rotations
identity) stands upright with the arms hanging straight down and the feet flat. Every joint frame
of ``humanoid.urdf`` is aligned with its parent link's frame at rest (all ``rpy`` are zero), so a
joint quaternion is the child's rotation relative to its parent, in the parent's axes, and the
root quaternion is the pelvis orientation in world axes.

The body model (frame "B", :mod:`recon3d.models.body`): x to the person's left, y down, z away
from the viewer, the person faces -z; rest pose is an A-pose. :data:`H_TO_B` maps H vectors into
B so that the humanoid's forward, up and right become the body's forward (-z), up (-y) and right
(-x); rotations map by conjugation ``M R M^T``.

Retargeting (:func:`retarget_to_body`) works on world rotations: for every mapped body bone it
builds the bone's world rotation ``W`` (relative to the body's rest pose) from the humanoid
link's world rotation ``G`` (relative to the humanoid's rest pose, mapped into B):

* torso and feet (root, spine, neck, head, feet), whose rest orientations agree (upright, facing
  forward, feet flat): ``W = G``;
* limbs (thighs, shins, upper arms, forearms): ``W = G @ A`` where ``A`` is the minimal rotation
  taking the body bone's rest direction (its head to the head of the next mapped bone down the
  limb) onto the humanoid segment's rest direction (straight down). So the posed body limb points
  exactly along the posed humanoid segment (``W d_body = G d_humanoid``), the A-pose vs arms-down
  rest difference is removed, and the twist about the limb comes from the humanoid's frame.

The pose of a body bone is then its rotation relative to its nearest posed ancestor,
``R(pose_c) = W_parent^T W_c``; bones that are not mapped keep the rest rotation (zero).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from recon3d.errors import PoseFileError
from recon3d.io._files import read_regular_file

__all__ = [
    "BONE_MAP",
    "H_TO_B",
    "HUMANOID_LINKS",
    "JOINT_NAMES",
    "DeepMimicClip",
    "Retargeted",
    "humanoid_forward_kinematics",
    "load_deepmimic",
    "read_humanoid_urdf",
    "retarget_to_body",
]

#: Joints of ``humanoid.urdf`` in the order of a DeepMimic frame.
JOINT_NAMES = (
    "chest",
    "neck",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_shoulder",
    "right_elbow",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_shoulder",
    "left_elbow",
)
REVOLUTE = frozenset({"right_knee", "right_elbow", "left_knee", "left_elbow"})
FRAME_LENGTH = 1 + 3 + 4 + sum(1 if j in REVOLUTE else 4 for j in JOINT_NAMES)  # 44
MAX_FILE_BYTES = 64 << 20
#: Largest magnitude accepted for any number of a clip (metres, radians, quaternion parts,
#: seconds); larger values are nonsense and would overflow in the quaternion norms.
MAX_ABS_VALUE = 1e6

#: ``humanoid.urdf`` scaled by pybullet's ``globalScaling=0.25`` (the clips are in metres).
HUMANOID_SCALE = 0.25
#: Links of the humanoid: (parent, joint origin in the parent's frame, segment end in the link's
#: own frame), urdf units (see :data:`HUMANOID_SCALE`). The segment end is the next joint down the
#: chain; for the neck the head's centre and for the ankle the foot box's centre.
HUMANOID_LINKS: dict[str, tuple[str | None, tuple[float, float, float], tuple[float, float, float]]]
HUMANOID_LINKS = {
    "root": (None, (0.0, 0.0, 0.0), (0.0, 0.944604, 0.0)),
    "chest": ("root", (0.0, 0.944604, 0.0), (0.0, 0.895576, 0.0)),
    "neck": ("chest", (0.0, 0.895576, 0.0), (0.0, 0.7, 0.0)),
    "right_hip": ("root", (0.0, 0.0, 0.339548), (0.0, -1.686184, 0.0)),
    "right_knee": ("right_hip", (0.0, -1.686184, 0.0), (0.0, -1.63948, 0.0)),
    "right_ankle": ("right_knee", (0.0, -1.63948, 0.0), (0.18, -0.09, 0.0)),
    "right_shoulder": ("chest", (-0.0962, 0.974, 0.73244), (0.0, -1.099152, 0.0)),
    "right_elbow": ("right_shoulder", (0.0, -1.099152, 0.0), (0.0, -1.035788, 0.0)),
    "left_hip": ("root", (0.0, 0.0, -0.339548), (0.0, -1.686184, 0.0)),
    "left_knee": ("left_hip", (0.0, -1.686184, 0.0), (0.0, -1.63948, 0.0)),
    "left_ankle": ("left_knee", (0.0, -1.63948, 0.0), (0.18, -0.09, 0.0)),
    "left_shoulder": ("chest", (-0.0962, 0.974, -0.73244), (0.0, -1.099152, 0.0)),
    "left_elbow": ("left_shoulder", (0.0, -1.099152, 0.0), (0.0, -1.035788, 0.0)),
}
#: Height of the humanoid's soles below its ankle joints at rest (foot box centre 0.09 below the
#: ankle, box 0.22 tall), urdf units.
_ANKLE_TO_SOLE = 0.2

#: Humanoid frame H (Y up, faces +X, right = +Z) -> body frame B (y down, faces -z, right = -x):
#: columns are the images of H's x (forward -> -z), y (up -> -y) and z (right -> -x).
H_TO_B = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])

#: Body bone -> (humanoid link, body bone whose head ends the limb segment or None for a full
#: rotation copy). ``spine04``/``spine02`` share the chest rotation, ``neck01``/``head`` the neck's.
BONE_MAP: dict[str, tuple[str, str | None]] = {
    "root": ("root", None),
    "spine04": ("chest", None),
    "spine02": ("chest", None),
    "neck01": ("neck", None),
    "head": ("neck", None),
    "upperleg01.L": ("left_hip", "lowerleg01.L"),
    "lowerleg01.L": ("left_knee", "foot.L"),
    "foot.L": ("left_ankle", None),
    "upperleg01.R": ("right_hip", "lowerleg01.R"),
    "lowerleg01.R": ("right_knee", "foot.R"),
    "foot.R": ("right_ankle", None),
    "upperarm01.L": ("left_shoulder", "lowerarm01.L"),
    "lowerarm01.L": ("left_elbow", "wrist.L"),
    "upperarm01.R": ("right_shoulder", "lowerarm01.R"),
    "lowerarm01.R": ("right_elbow", "wrist.R"),
}
#: Bones that take half of their link's rotation relative to its parent (the other half goes to
#: the bone listed first for that link).
_HALF = {"spine04": "chest", "neck01": "neck"}


@dataclass(frozen=True)
class DeepMimicClip:
    """One DeepMimic clip in the humanoid's frame (Y up, metres).

    Attributes:
        name: file stem (e.g. ``"humanoid3d_walk"``).
        loop: the file's ``"Loop"`` mode (``"wrap"`` or ``"none"``).
        durations: (T,) seconds from each frame to the next (the last is usually 0).
        root_position: (T, 3) root (pelvis) position, metres.
        root_rotation: (T, 3, 3) root orientation in world axes.
        joint_rotations: (T, 12, 3, 3) rotation of each joint of :data:`JOINT_NAMES` relative
            to its parent link (revolute joints as rotations about their local z axis).
    """

    name: str
    loop: str
    durations: np.ndarray
    root_position: np.ndarray
    root_rotation: np.ndarray
    joint_rotations: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.durations.shape[0])

    @property
    def fps(self) -> float:
        """Frames per second (from the median positive frame duration)."""
        positive = self.durations[self.durations > 0]
        return float(1.0 / np.median(positive)) if positive.size else 30.0

    @property
    def times(self) -> np.ndarray:
        """(T,) time of each frame in seconds, starting at 0."""
        return np.concatenate([[0.0], np.cumsum(self.durations[:-1])])


class Retargeted(NamedTuple):
    """``poses`` (T, J, 3) float32 axis-angle bone rotations of the body model (local-ref
    convention) and ``translation`` (T, 3) float32 metres for ``BodyModel.forward``; the ground
    is the plane ``y = floor`` (the soles of the rest pose)."""

    poses: np.ndarray
    translation: np.ndarray
    floor: float


# -- loading ----------------------------------------------------------------------------------
def _quaternions(values: np.ndarray, where: str) -> np.ndarray:
    """(..., 4) (w, x, y, z) -> (..., 3, 3) rotation matrices; rejects zero quaternions."""
    norm = np.linalg.norm(values, axis=-1)
    if np.any(norm < 1e-6):
        frame = int(np.argwhere(norm < 1e-6)[0][0])
        raise PoseFileError(f"{where}: zero quaternion in frame {frame}")
    xyzw = np.concatenate([values[..., 1:], values[..., :1]], -1) / norm[..., None]
    flat = Rotation.from_quat(xyzw.reshape(-1, 4)).as_matrix()
    return flat.reshape(*values.shape[:-1], 3, 3)


def load_deepmimic(path: str | os.PathLike) -> DeepMimicClip:
    """Read a DeepMimic motion file (parsed as JSON, nothing else).

    Raises:
        PoseFileError: unreadable, not a regular file, over :data:`MAX_FILE_BYTES`, not JSON
            (also: brackets nested too deep, integers of over 4300 digits), no ``Frames`` list,
            a frame that is not :data:`FRAME_LENGTH` numbers, non-finite numbers, negative
            durations or a zero quaternion, or a number beyond :data:`MAX_ABS_VALUE`.
    """
    path = pathlib.Path(path)
    raw = read_regular_file(path, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoseFileError(f"{path}: cannot read the motion file: {exc}") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError: bad JSON, or an integer of more than 4300 digits; RecursionError: deeply
        # nested brackets.
        raise PoseFileError(f"{path}: not JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Frames"), list):
        raise PoseFileError(f'{path}: expected a JSON object with a "Frames" list')
    frames = data["Frames"]
    if not frames:
        raise PoseFileError(f"{path}: no frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != FRAME_LENGTH:
            got = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise PoseFileError(f"{path}: frame {i} has {got} values, expected {FRAME_LENGTH}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame):
            raise PoseFileError(f"{path}: frame {i} holds values that are not numbers")
    try:
        values = np.asarray(frames, dtype=np.float64)
    except OverflowError as exc:  # a JSON integer beyond the float range (1e309 and up)
        raise PoseFileError(f"{path}: a number beyond {MAX_ABS_VALUE:g}: {exc}") from exc
    if not np.all(np.isfinite(values)):
        frame = int(np.argwhere(~np.isfinite(values))[0][0])
        raise PoseFileError(f"{path}: non-finite number in frame {frame}")
    if np.any(np.abs(values) > MAX_ABS_VALUE):
        frame = int(np.argwhere(np.abs(values) > MAX_ABS_VALUE)[0][0])
        raise PoseFileError(f"{path}: a number beyond {MAX_ABS_VALUE:g} in frame {frame}")
    durations = values[:, 0]
    if np.any(durations < 0):
        raise PoseFileError(f"{path}: negative frame duration")

    where = str(path)
    root_rotation = _quaternions(values[:, 4:8], where)
    joints = np.empty((len(values), len(JOINT_NAMES), 3, 3))
    column = 8
    for j, name in enumerate(JOINT_NAMES):
        if name in REVOLUTE:
            angle = values[:, column]
            joints[:, j] = Rotation.from_rotvec(angle[:, None] * [0.0, 0.0, 1.0]).as_matrix()
            column += 1
        else:
            joints[:, j] = _quaternions(values[:, column : column + 4], f"{where} ({name})")
            column += 4
    loop = data.get("Loop", "none")
    return DeepMimicClip(
        name=path.stem,
        loop=str(loop),
        durations=durations,
        root_position=values[:, 1:4].copy(),
        root_rotation=root_rotation,
        joint_rotations=joints,
    )


def read_humanoid_urdf(path: str | os.PathLike) -> dict[str, tuple[str, str, np.ndarray]]:
    """Joints of a DeepMimic ``humanoid.urdf``: name -> (parent link, type, (3,) origin xyz).

    Used to check :data:`HUMANOID_LINKS` against the file; rotations in the file (``rpy``) are
    all zero for this humanoid.
    """
    raw = pathlib.Path(path).read_bytes().replace(b"\x00", b"")
    try:
        robot = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise PoseFileError(f"{path}: not a URDF: {exc}") from exc
    joints: dict[str, tuple[str, str, np.ndarray]] = {}
    for joint in robot.iter("joint"):
        parent = joint.find("parent")
        origin = joint.find("origin")
        xyz = origin.get("xyz", "0 0 0") if origin is not None else "0 0 0"
        joints[joint.get("name", "")] = (
            parent.get("link", "") if parent is not None else "",
            joint.get("type", ""),
            np.array([float(v) for v in xyz.split()]),
        )
    return joints


# -- humanoid kinematics ----------------------------------------------------------------------
def _link_rotations(clip: DeepMimicClip) -> dict[str, np.ndarray]:
    """World rotation (T, 3, 3) of every humanoid link, frame H, relative to the rest pose."""
    world = {"root": clip.root_rotation}
    for name, (parent, _, _) in HUMANOID_LINKS.items():
        if parent is not None:
            local = clip.joint_rotations[:, JOINT_NAMES.index(name)]
            world[name] = world[parent] @ local
    return world


def humanoid_forward_kinematics(clip: DeepMimicClip) -> dict[str, np.ndarray]:
    """Posed humanoid points in frame H, metres: each link's joint position (T, 3) under its
    link name, plus ``"<link>_end"`` (T, 3) for its segment end (next joint, head centre, foot
    centre)."""
    world = _link_rotations(clip)
    points: dict[str, np.ndarray] = {"root": clip.root_position.copy()}
    for name, (parent, origin, end) in HUMANOID_LINKS.items():
        if parent is not None:
            offset = HUMANOID_SCALE * np.asarray(origin)
            points[name] = points[parent] + world[parent] @ offset
        points[f"{name}_end"] = points[name] + world[name] @ (HUMANOID_SCALE * np.asarray(end))
    return points


# -- retargeting ------------------------------------------------------------------------------
def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``a`` onto direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        ortho = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(ortho) < 1e-6:
            ortho = np.cross(a, [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(math.pi * ortho / np.linalg.norm(ortho)).as_matrix()
    return Rotation.from_rotvec(axis / s * math.atan2(s, c)).as_matrix()


def _half(rotation: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations of half the angle about the same axes."""
    return Rotation.from_rotvec(Rotation.from_matrix(rotation).as_rotvec() / 2).as_matrix()


def retarget_to_body(clip: DeepMimicClip, model, shape: np.ndarray | None = None) -> Retargeted:
    """Poses of the body model that follow ``clip``.

    Args:
        clip: a clip from :func:`load_deepmimic`.
        model: a :class:`recon3d.models.body.BodyModel`.
        shape: (num_shape,) shape coefficients the translation is scaled for (default zeros).
    Returns:
        :class:`Retargeted`: ``poses`` (T, J, 3) axis-angle in the model's local-ref
        convention, ``translation`` (T, 3) metres in the model frame and the ground height
        ``floor``. The humanoid's root travel is scaled by the ratio of the legs' hip-to-sole
        heights, the humanoid's ground (y = 0) maps to the rest pose's soles and the hips'
        midpoint follows the humanoid's root; the person's facing is kept (humanoid +X, its
        rest facing, is the model's -z).
    """
    import torch

    if shape is None:
        shape = np.zeros(model.num_shape, np.float32)
    with torch.no_grad():
        rest_v, rest_j = model.rest(torch.as_tensor(shape, dtype=torch.float32)[None])
    rest_v = rest_v[0].double().cpu().numpy()
    rest_j = rest_j[0].double().cpu().numpy()

    m = H_TO_B
    links = {k: m @ v @ m.T for k, v in _link_rotations(clip).items()}  # in frame B
    n = clip.num_frames
    world: dict[str, np.ndarray] = {}
    for bone, (link, end) in BONE_MAP.items():
        if end is None:
            world[bone] = links[link]
        else:
            rest_dir = rest_j[model.bone(end)] - rest_j[model.bone(bone)]
            humanoid_dir = m @ np.asarray(HUMANOID_LINKS[link][2])
            world[bone] = links[link] @ _min_rotation(rest_dir, humanoid_dir)
    for bone, link in _HALF.items():
        parent_link = HUMANOID_LINKS[link][0]
        relative = np.swapaxes(links[parent_link], -1, -2) @ links[link]
        world[bone] = links[parent_link] @ _half(relative)

    poses = np.zeros((n, model.num_joints, 3))
    index = {model.bone(b): b for b in BONE_MAP}
    for j, bone in index.items():
        parent = int(model.parents[j])
        while parent >= 0 and parent not in index:
            parent = int(model.parents[parent])
        local = world[bone]
        if parent >= 0:
            local = np.swapaxes(world[index[parent]], -1, -2) @ local
        poses[:, j] = Rotation.from_matrix(local).as_rotvec()

    # Translation: the hips' midpoint (heads of the thighs) follows the humanoid root.
    floor = float(rest_v[:, 1].max())
    hips = 0.5 * (rest_j[model.bone("upperleg01.L")] + rest_j[model.bone("upperleg01.R")])
    humanoid_leg = HUMANOID_SCALE * (
        -HUMANOID_LINKS["left_knee"][1][1] - HUMANOID_LINKS["left_ankle"][1][1] + _ANKLE_TO_SOLE
    )
    scale = (floor - hips[1]) / humanoid_leg
    target = scale * clip.root_position @ m.T + np.array([0.0, floor, 0.0])
    root = rest_j[0]
    translation = target - root - world["root"] @ (hips - root)
    return Retargeted(poses.astype(np.float32), translation.astype(np.float32), floor)
