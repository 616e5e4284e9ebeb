"""DeepMimic clip loading and retargeting onto the body model (recon3d.io.mocap)."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon3d.errors import PoseFileError
from recon3d.io.mocap import (
    BONE_MAP,
    FRAME_LENGTH,
    H_TO_B,
    HUMANOID_LINKS,
    JOINT_NAMES,
    DeepMimicClip,
    humanoid_forward_kinematics,
    load_deepmimic,
    read_humanoid_urdf,
    retarget_to_body,
)
from recon3d.models.body import BodyModel

MOCAP = pathlib.Path(os.environ.get("RECON3D_MOCAP", "/work/shared/data/mocap"))
CLIPS = (
    "walk",
    "run",
    "jump",
    "kick",
    "punch",
    "spin",
    "spinkick",
    "cartwheel",
    "backflip",
    "crawl",
    "roll",
    "getup_faceup",
    "getup_facedown",
    "dance_a",
    "dance_b",
)
needs_data = pytest.mark.skipif(not MOCAP.is_dir(), reason=f"no mocap data at {MOCAP}")
LIMBS = [(bone, end) for bone, (_, end) in BONE_MAP.items() if end is not None]


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_pretrained()


def _clip(name: str) -> DeepMimicClip:
    return load_deepmimic(MOCAP / f"humanoid3d_{name}.txt")


def _pose(body: BodyModel, poses: np.ndarray, translation: np.ndarray):
    with torch.no_grad():
        return body(
            torch.zeros(len(poses), body.num_shape),
            torch.from_numpy(poses),
            torch.from_numpy(translation),
        )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# -- loading ----------------------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("name", CLIPS)
def test_load_all_clips(name: str) -> None:
    clip = _clip(name)
    t = clip.num_frames
    assert t >= 20
    assert clip.durations.shape == (t,) and clip.root_position.shape == (t, 3)
    assert clip.root_rotation.shape == (t, 3, 3)
    assert clip.joint_rotations.shape == (t, len(JOINT_NAMES), 3, 3)
    for array in (clip.durations, clip.root_position, clip.root_rotation, clip.joint_rotations):
        assert np.all(np.isfinite(array))
    rot = clip.joint_rotations
    np.testing.assert_allclose(
        rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9
    )
    assert 10 < clip.fps < 70 and clip.loop in ("wrap", "none")
    assert np.all(np.diff(clip.times) >= 0)


@needs_data
def test_humanoid_constants_match_the_urdf() -> None:
    joints = read_humanoid_urdf(MOCAP / "humanoid.urdf")
    for name, (parent, origin, _) in HUMANOID_LINKS.items():
        if parent is None:
            continue
        urdf_parent, kind, xyz = joints[name]
        assert urdf_parent == parent
        assert kind == ("revolute" if name.endswith(("knee", "elbow")) else "spherical")
        np.testing.assert_allclose(xyz, origin, atol=1e-6)
    for side in ("left", "right"):  # the wrist joint ends the forearm segment
        np.testing.assert_allclose(
            joints[f"{side}_wrist"][2], HUMANOID_LINKS[f"{side}_elbow"][2], atol=1e-6
        )


def _write(tmp_path: pathlib.Path, content: str) -> pathlib.Path:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    return path


def _frame() -> list[float]:
    frame = [0.0333, 0.0, 0.85, 0.0, 1.0, 0.0, 0.0, 0.0]
    for name in JOINT_NAMES:
        frame += [0.0] if name.endswith(("knee", "elbow")) else [1.0, 0.0, 0.0, 0.0]
    assert len(frame) == FRAME_LENGTH
    return frame


@pytest.mark.parametrize(
    "content",
    [
        "not json at all {",
        "",
        json.dumps([1, 2, 3]),
        json.dumps({"Loop": "wrap"}),
        json.dumps({"Loop": "wrap", "Frames": []}),
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:-1]]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame() + [0.0]]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame(), "frame"]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:5] + ["x"] + _frame()[6:]]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:5] + [None] + _frame()[6:]]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:2] + [float("nan")] + _frame()[3:]]}),
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:9] + [float("inf")] + _frame()[10:]]}),
        '{"Loop": "wrap", "Frames": [[' + ", ".join(["1e999"] * FRAME_LENGTH) + "]]}",
        json.dumps({"Loop": "wrap", "Frames": [_frame()[:4] + [0.0] * 4 + _frame()[8:]]}),
        json.dumps(
            {"Loop": "wrap", "Frames": [_frame(), _frame()[:8] + [0.0] * 4 + _frame()[12:]]}
        ),
        json.dumps({"Loop": "wrap", "Frames": [[-1.0] + _frame()[1:]]}),
    ],
)
def test_malformed_files_raise(tmp_path: pathlib.Path, content: str) -> None:
    with pytest.raises(PoseFileError):
        load_deepmimic(_write(tmp_path, content))


def test_binary_and_missing_files_raise(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "clip.pkl"
    path.write_bytes(b"\x80\x04\x95\xff\xfe pickle-ish \x00\x01")
    with pytest.raises(PoseFileError):
        load_deepmimic(path)
    with pytest.raises(PoseFileError):
        load_deepmimic(tmp_path / "missing.txt")


def test_valid_synthetic_file_loads(tmp_path: pathlib.Path) -> None:
    frames = [_frame(), _frame()]
    frames[1][4:8] = [2.0, 0.0, 0.0, 0.0]  # not unit: normalised
    clip = load_deepmimic(_write(tmp_path, json.dumps({"Loop": "none", "Frames": frames})))
    assert clip.num_frames == 2
    np.testing.assert_allclose(clip.root_rotation, np.broadcast_to(np.eye(3), (2, 3, 3)))


# -- retargeting ------------------------------------------------------------------------------
def _identity_clip(frames: int = 1) -> DeepMimicClip:
    """The humanoid's rest pose: standing upright, facing +X, arms straight down, hips at the
    rest height above the ground."""
    hip_height = 0.25 * (1.686184 + 1.63948 + 0.2)
    eye = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    return DeepMimicClip(
        name="identity",
        loop="none",
        durations=np.full(frames, 1 / 30),
        root_position=np.tile([0.0, hip_height, 0.0], (frames, 1)),
        root_rotation=eye,
        joint_rotations=np.broadcast_to(np.eye(3), (frames, len(JOINT_NAMES), 3, 3)).copy(),
    )


def test_identity_frame_gives_the_humanoid_rest_directions(body: BodyModel) -> None:
    """All-identity humanoid rotations (rest pose, facing +X) -> our body faces -z, upright,
    with every mapped limb (thigh: upperleg01 head -> lowerleg01 head, shin: lowerleg01 ->
    foot, upper arm: upperarm01 -> lowerarm01, forearm: lowerarm01 -> wrist) pointing straight
    down, +y, which is the humanoid's rest direction -Y mapped by H_TO_B; the torso, neck, head
    and feet keep their rest rotation, and the soles stand on the floor."""
    motion = retarget_to_body(_identity_clip(), body)
    np.testing.assert_allclose(H_TO_B @ [0.0, -1.0, 0.0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(H_TO_B @ [1.0, 0.0, 0.0], [0.0, 0.0, -1.0])  # facing
    np.testing.assert_allclose(H_TO_B @ [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0])  # right side
    out = _pose(body, motion.poses, motion.translation)
    joints = out.joints[0].numpy()
    for bone, end in LIMBS:
        direction = _unit(joints[body.bone(end)] - joints[body.bone(bone)])
        np.testing.assert_allclose(direction, [0.0, 1.0, 0.0], atol=1e-5, err_msg=bone)
    for bone in ("root", "spine04", "spine02", "neck01", "head", "foot.L", "foot.R"):
        world = out.rotations[0, body.bone(bone)].numpy()  # relative to the rest pose
        np.testing.assert_allclose(world, np.eye(3), atol=1e-5, err_msg=bone)
    unmapped = [j for j, name in enumerate(body.bone_labels) if name not in BONE_MAP]
    assert np.all(motion.poses[0, unmapped] == 0)
    soles = out.vertices[0, :, 1].max().item()
    assert abs(soles - motion.floor) < 0.03


@needs_data
def test_walk_first_frame_is_upright_with_sides_right(body: BodyModel) -> None:
    motion = retarget_to_body(_clip("walk"), body)
    out = _pose(body, motion.poses[:1], motion.translation[:1])
    joints = out.joints[0].numpy()
    kp = body.keypoints(out.vertices)[0].numpy()
    y = {name: kp[body.keypoint(name)][1] for name in body.keypoint_labels[:17]}
    hip_y = max(y["left_hip"], y["right_hip"])
    for part in ("knee", "ankle"):  # y down: below the hips is larger y
        assert y[f"left_{part}"] > hip_y + 0.2 and y[f"right_{part}"] > hip_y + 0.2
    assert joints[body.bone("head"), 1] < joints[body.bone("neck01"), 1] < hip_y - 0.3
    assert y["nose"] < min(y["left_shoulder"], y["right_shoulder"])
    for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        left, right = kp[body.keypoint(f"left_{name}")], kp[body.keypoint(f"right_{name}")]
        assert left[0] > 0.02 > -0.02 > right[0], name
    # On the ground: the lowest point of the feet within a few cm of the floor.
    assert abs(out.vertices[0, :, 1].max().item() - motion.floor) < 0.03


@needs_data
@pytest.mark.parametrize("name", ["walk", "cartwheel", "dance_a"])
def test_limbs_follow_the_humanoid_segments(body: BodyModel, name: str) -> None:
    """Every mapped body limb points along the posed humanoid segment (frame H -> B)."""
    clip = _clip(name)
    motion = retarget_to_body(clip, body)
    joints = _pose(body, motion.poses, motion.translation).joints.numpy()
    points = humanoid_forward_kinematics(clip)
    for bone, end in LIMBS:
        link = BONE_MAP[bone][0]
        ours = _unit(joints[:, body.bone(end)] - joints[:, body.bone(bone)])
        theirs = _unit((points[f"{link}_end"] - points[link]) @ H_TO_B.T)
        np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=bone)


@needs_data
@pytest.mark.parametrize("name", CLIPS)
def test_retarget_is_finite(body: BodyModel, name: str) -> None:
    clip = _clip(name)
    motion = retarget_to_body(clip, body)
    assert motion.poses.shape == (clip.num_frames, body.num_joints, 3)
    assert motion.translation.shape == (clip.num_frames, 3)
    assert np.all(np.isfinite(motion.poses)) and np.all(np.isfinite(motion.translation))
    assert np.all(np.linalg.norm(motion.poses, axis=-1) <= np.pi + 1e-5)


def _bend(joints, rotations, body, top, middle, end, forward) -> np.ndarray:
    """(T,) signed offset (m) of the ``end`` joint from the line top->middle, along the limb's
    forward axis (the rest ``forward`` direction carried by the top bone's world rotation,
    made perpendicular to the upper segment)."""
    a, b, c = (joints[:, body.bone(n)] for n in (top, middle, end))
    axis = _unit(b - a)
    fwd = rotations[:, body.bone(top)] @ np.asarray(forward)
    fwd = _unit(fwd - (fwd * axis).sum(-1, keepdims=True) * axis)
    return ((c - b) * fwd).sum(-1)


@needs_data
@pytest.mark.parametrize("name", ["walk", "run"])
def test_knees_and_elbows_never_bend_backwards(body: BodyModel, name: str) -> None:
    motion = retarget_to_body(_clip(name), body)
    out = _pose(body, motion.poses, motion.translation)
    joints, rotations = out.joints.numpy(), out.rotations.numpy()
    forward = [0.0, 0.0, -1.0]  # the body faces -z at rest
    for side in ("L", "R"):
        knee = _bend(
            joints,
            rotations,
            body,
            f"upperleg01.{side}",
            f"lowerleg01.{side}",
            f"foot.{side}",
            forward,
        )
        assert knee.max() < 0.03, f"ankle {knee.max():.3f} m in front of the {side} knee line"
        assert knee.min() < -0.05  # the knees do bend (backwards for the shin) in a gait
        elbow = _bend(
            joints,
            rotations,
            body,
            f"upperarm01.{side}",
            f"lowerarm01.{side}",
            f"wrist.{side}",
            forward,
        )
        assert elbow.min() > -0.03, f"wrist {elbow.min():.3f} m behind the {side} elbow line"


def test_train_module_reexports_io_mocap() -> None:
    import recon3d.io.mocap as io_mocap
    import recon3d.train.mocap as train_mocap

    for name in train_mocap.__all__:
        assert getattr(train_mocap, name) is getattr(io_mocap, name)


_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 0.0, 1.0, -0.0]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frames=st.lists(
        st.one_of(
            st.lists(_number, min_size=FRAME_LENGTH, max_size=FRAME_LENGTH),
            st.lists(_number, max_size=50),
            st.text(max_size=3),
            st.none(),
        ),
        max_size=4,
    ),
    loop=st.one_of(st.text(max_size=4), st.integers(), st.none()),
)
def test_arbitrary_frames_only_raise_pose_file_error(tmp_path: pathlib.Path, frames, loop) -> None:
    """Structured garbage (right-length frames of arbitrary numbers, zero quaternions, NaN,
    huge integers, wrong lengths, wrong types): a clip with finite values or PoseFileError."""
    path = tmp_path / "clip.txt"
    path.write_text(json.dumps({"Loop": loop, "Frames": frames}))
    try:
        clip = load_deepmimic(path)
    except PoseFileError:
        return
    assert np.all(np.isfinite(clip.joint_rotations)) and np.all(np.isfinite(clip.root_position))
    assert np.isfinite(clip.fps) and clip.fps > 0
