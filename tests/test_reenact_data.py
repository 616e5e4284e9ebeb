"""Training and test frames of the reposer: reposed, rendered reconstructions and video frames."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

MOCAP = pathlib.Path(os.environ.get("RECON3D_MOCAP", "/work/shared/data/mocap"))
VIDEO = pathlib.Path("/work/shared/data/video/carphone.mp4")
GREEN = (0, 255, 0)

needs_mocap = pytest.mark.skipif(not MOCAP.is_dir(), reason=f"no mocap data at {MOCAP}")


@pytest.fixture(scope="module")
def body_rec():
    """A body Reconstruction of the average body (no photo needed): a texture with a vertical
    colour gradient and no pure green, so a green stage separates the person exactly."""
    from recon3d.camera import Camera
    from recon3d.models.body import BodyModel
    from recon3d.reconstruction import Reconstruction

    model = BodyModel.from_pretrained()
    rows = np.linspace(40, 220, 256)
    texture = np.stack(np.broadcast_arrays(rows[:, None], 120.0, 255 - rows[:, None]), -1)
    texture = np.broadcast_to(texture, (256, 256, 3)).astype(np.uint8)
    _, part_names = model.part_weights()
    return Reconstruction(
        vertices=model.mean_vertices.numpy(),
        faces=model.faces,
        uv=model.uv[model.face_uv],
        texture=texture,
        texture_confidence=np.ones((256, 256), np.float32),
        camera=Camera.from_image_size(256, 256),
        params={
            "shape": np.zeros(model.num_shape, np.float32),
            "pose": np.zeros((model.num_joints, 3), np.float32),
            "translation": np.zeros(3, np.float32),
            "clothing": dict.fromkeys(part_names, 0.01),
        },
        target="body",
        image=np.zeros((256, 256, 3), np.uint8),
        keypoints=np.zeros((33, 3), np.float32),
    )


@pytest.fixture(scope="module")
def reposed(body_rec):
    from recon3d.train.reenact_data import render_reposed

    return render_reposed(
        body_rec,
        clips=("run",),
        random_poses=8,
        random_length=4,
        size=128,
        seed=3,
        progress=False,
        background=GREEN,
        mocap_dir=MOCAP,
    )


@needs_mocap
def test_render_reposed_keypoints_lie_on_the_person(reposed):
    import cv2

    fs = reposed
    n = len(fs)
    assert fs.frames.shape == (n, 128, 128, 3) and fs.frames.dtype == np.uint8
    assert fs.poses.body.shape == (n, 18, 2) and fs.poses.image_size == (128, 128)
    assert fs.poses.face.shape == (n, 68, 2) and fs.poses.hands.shape == (n, 2, 21, 2)
    inside, total, face_in, face_total = 0, 0, 0, 0
    for i in range(n):
        person = np.any(fs.frames[i] != GREEN, axis=-1).astype(np.uint8)
        assert person.mean() > 0.02  # somebody is in every frame
        person = cv2.dilate(person, np.ones((5, 5), np.uint8)).astype(bool)
        for points, conf in (
            (fs.poses.body[i], fs.poses.body_confidence[i]),
            (fs.poses.hands[i].reshape(-1, 2), fs.poses.hands_confidence[i].reshape(-1)),
        ):
            seen = conf > 0
            px = np.round(points[seen]).astype(int)
            inside += int(person[px[:, 1], px[:, 0]].sum())
            total += int(seen.sum())
        seen = fs.poses.face_confidence[i] > 0
        px = np.round(fs.poses.face[i][seen]).astype(int)
        face_in += int(person[px[:, 1], px[:, 0]].sum())
        face_total += int(seen.sum())
        # The face box is square, inside the frame and holds the visible face points.
        x0, y0, x1, y1 = fs.face_boxes[i]
        assert x1 - x0 == y1 - y0 > 0 and x0 >= 0 and y0 >= 0 and x1 <= 128 and y1 <= 128
        if seen.any():
            pts = fs.poses.face[i][seen]
            assert np.all((pts >= (x0 - 1, y0 - 1)) & (pts <= (x1 + 1, y1 + 1)))
    assert total > 0.7 * n * (18 + 42) and inside / total > 0.97
    assert face_total > 0 and face_in / face_total > 0.97
    # The neck is the middle of the shoulders (in 3D: up to perspective in the image).
    assert np.allclose(
        fs.poses.body[:, 1], 0.5 * (fs.poses.body[:, 2] + fs.poses.body[:, 5]), atol=0.5
    )


@needs_mocap
def test_render_reposed_sequences_and_determinism(body_rec, reposed):
    from recon3d.train.reenact_data import FPS, render_reposed

    seq = reposed.sequence
    run_frames = int(np.sum(seq == 0))
    # run: 25 frames at 30 fps = 0.8 s -> 25 frames at FPS; then two random sequences of 4.
    assert run_frames == pytest.approx(0.8 * FPS, abs=2)
    assert list(seq[run_frames:]) == [1] * 4 + [2] * 4
    assert np.all(np.diff(seq) >= 0)
    assert len(reposed.pairs()) == len(seq) - 3
    # Consecutive frames of a clip are close in pose; different sequences need not be.
    step = np.abs(np.diff(reposed.poses.body[:run_frames], axis=0)).max(axis=(1, 2))
    assert np.median(step) < 10
    again = render_reposed(
        body_rec, clips=(), random_poses=4, size=64, seed=3, progress=False, mocap_dir=MOCAP
    )
    twice = render_reposed(
        body_rec, clips=(), random_poses=4, size=64, seed=3, progress=False, mocap_dir=MOCAP
    )
    other = render_reposed(
        body_rec, clips=(), random_poses=4, size=64, seed=4, progress=False, mocap_dir=MOCAP
    )
    assert np.array_equal(again.frames, twice.frames)
    assert np.array_equal(again.poses.body, twice.poses.body)
    assert np.array_equal(again.face_boxes, twice.face_boxes)
    assert not np.allclose(again.poses.body, other.poses.body)


@needs_mocap
def test_frame_set_save_load_and_slices(reposed, tmp_path):
    from recon3d.train.reenact_data import FrameSet

    path = reposed.save(tmp_path / "set.npz")
    loaded = FrameSet.load(path)
    assert np.array_equal(loaded.frames, reposed.frames)
    assert np.array_equal(loaded.poses.hands_confidence, reposed.poses.hands_confidence)
    assert np.array_equal(loaded.sequence, reposed.sequence)
    assert loaded.poses.image_size == (128, 128) and loaded.poses.fps == reposed.poses.fps
    part = reposed[2:5]
    assert len(part) == 3 and len(part.poses) == 3
    assert np.array_equal(part.face_boxes, reposed.face_boxes[2:5])
    with pytest.raises(TypeError):
        reposed[3]


def test_render_reposed_needs_a_body(body_rec):
    import dataclasses

    from recon3d.train.reenact_data import render_reposed

    head = dataclasses.replace(body_rec, target="head")
    with pytest.raises(ValueError, match="body"):
        render_reposed(head, clips=(), random_poses=1, progress=False)


@pytest.mark.skipif(not VIDEO.is_file(), reason=f"no video at {VIDEO}")
def test_video_frames_on_a_real_video():
    from recon3d.train.reenact_data import video_frames

    fs = video_frames(VIDEO, size=128, start=2, stop=8, progress=False)
    assert fs.frames.shape == (6, 128, 128, 3) and fs.frames.dtype == np.uint8
    assert len(fs.poses) == 6 and fs.poses.image_size == (128, 128)
    assert list(fs.sequence) == [0] * 6
    assert fs.poses.face is not None
    seen = fs.poses.face_confidence > 0.5
    assert seen.mean() > 0.8  # a talking head: the face is found
    pts = fs.poses.face[seen]
    assert np.all((pts > -5) & (pts < 133))
    for (x0, y0, x1, y1), face, conf in zip(
        fs.face_boxes, fs.poses.face, fs.poses.face_confidence, strict=True
    ):
        assert x1 - x0 == y1 - y0 >= 8 and 0 <= x0 and x1 <= 128 and 0 <= y0 and y1 <= 128
        inner = face[conf > 0.5]
        centre = inner.mean(0)
        assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1
    # The same frames given as arrays (padded instead of cropped) give the same count.
    from recon3d.io.video import read_video

    frames, _ = read_video(VIDEO, max_frames=3)
    padded = video_frames(list(frames), size=64, fit="pad", progress=False)
    assert padded.frames.shape == (3, 64, 64, 3)
    # 176x144 padded to 176x176: black bars of (176 - 144) / 2 = 16 px -> 64 * 16 / 176 ~ 5.8.
    assert padded.frames[:, :4].max() == 0 and padded.frames[:, -4:].max() == 0
