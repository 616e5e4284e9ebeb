"""The body network: shapes, rotation representation, camera round trip, and distributed
training on a tiny synthetic shard (torchrun, 2 CPU processes, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.models.body_net import (
    BodyRegressor,
    camera_to_root,
    root_to_camera,
    rotation_6d_to_matrix,
    solve_translation,
)

ROOT = Path(__file__).resolve().parents[1]


def test_forward_shapes_and_rest_start() -> None:
    net = BodyRegressor()
    out = net(torch.zeros(2, 33, 3), torch.zeros(2, 33, 3), torch.zeros(2, 1, 32, 32))
    assert out["rotations"].shape == (2, 19, 3, 3)
    assert out["shape"].shape == (2, 16) and out["camera"].shape == (2, 3)
    # Initialised near the rest pose: rotations close to identity.
    eye = torch.eye(3).expand(2, 19, 3, 3)
    assert (out["rotations"] - eye).abs().max() < 0.2


def test_bad_inputs_raise() -> None:
    net = BodyRegressor()
    with pytest.raises(ValueError, match=r"\(B, 33, 3\)"):
        net(torch.zeros(1, 17, 3), torch.zeros(1, 33, 3), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        net(torch.zeros(1, 33, 3), torch.zeros(1, 33, 3), torch.zeros(1, 32, 32))


def test_rotation_6d_is_a_rotation_and_differentiable() -> None:
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    r = rotation_6d_to_matrix(x)
    torch.testing.assert_close(
        r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3)
    )
    assert torch.allclose(torch.linalg.det(r), torch.ones(5, dtype=torch.float64))
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (x,))


def test_camera_round_trip() -> None:
    K = np.array([[1200.0, 0, 300], [0, 1180.0, 410], [0, 0, 1]])
    crop = np.array([320.0, 400.0, 500.0])
    root = np.array([0.3, -0.2, 4.5])
    np.testing.assert_allclose(camera_to_root(root_to_camera(root, crop, K), crop, K), root)


def test_solve_translation_recovers_the_camera_position() -> None:
    rng = np.random.default_rng(0)
    K = np.array([[900.0, 0, 320], [0, 880.0, 240], [0, 0, 1]])
    points = rng.normal(0, 0.4, (20, 3))
    truth = np.array([0.2, -0.1, 4.0])
    projected = (points + truth) @ K.T
    targets = projected[:, :2] / projected[:, 2:]
    weights = np.ones(20)
    weights[:5] = 0  # ignored: their targets are garbage
    targets[:5] = 1e4
    np.testing.assert_allclose(solve_translation(points, targets, weights, K), truth, atol=1e-9)
    assert solve_translation(points, targets, np.zeros(20), K) is None
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        solve_translation(points[:, :2], targets, weights, K)


@pytest.mark.slow
def test_torchrun_two_processes_train_and_resume(tmp_path) -> None:
    """A tiny shard of real synthetic data (MediaPipe on renders), then 1 epoch under torchrun
    with 2 gloo processes, then a resumed second epoch."""
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import generate_shard

    model = BodyModel.from_pretrained()
    data = tmp_path / "data"
    data.mkdir()
    shard = generate_shard(model, MediaPipePoseDetector(), [], data, seed=7, index=0, size=12)
    assert shard is not None
    with np.load(shard) as arrays:
        assert arrays["keypoints"].shape[1:] == (33, 3) and len(arrays["shape"]) >= 6
    # Same seed and index: the same shard, byte for byte in its arrays.
    again = tmp_path / "again"
    again.mkdir()
    shard2 = generate_shard(model, MediaPipePoseDetector(), [], again, seed=7, index=0, size=12)
    with np.load(shard) as a, np.load(shard2) as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        str(ROOT / "scripts" / "train_body_net.py"),
        "--data",
        str(data),
        "--out",
        str(run),
        "--batch-size",
        "4",
        "--prior-samples",
        "200",
    ]
    first = subprocess.run(
        [*command, "--epochs", "1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert (run / "body_net.safetensors").exists()
    assert "epoch 0" in first.stderr
    second = subprocess.run(
        [*command, "--epochs", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from epoch 0" in second.stderr and "epoch 1" in second.stderr
    from safetensors.torch import load_file

    state = load_file(str(run / "body_net.safetensors"))
    BodyRegressor().load_state_dict(state)


def test_pipeline_with_the_shipped_network() -> None:
    """Opt-in: the network's estimate alone (refine=False) is a complete, finite reconstruction
    made without the fit, and refining it runs the short fit."""
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import keypoint_pck

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    assert pipe.network is not None
    photo = ROOT / "tests" / "data" / "obama3.jpg"
    alone = pipe(photo, refine=False)
    assert np.isfinite(alone.vertices).all() and alone.skeleton is not None
    assert alone.timings["fit"] < 0.3
    # Placed in the camera by the closed-form alignment: it lines up with the detected keypoints.
    assert keypoint_pck(alone) >= 0.6
    refined = pipe(photo)
    assert keypoint_pck(refined) >= keypoint_pck(alone)
