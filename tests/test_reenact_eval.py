"""Measures of the reposer evaluation: SSIM, pose distance, flicker, and the eval script's
generation loop and tables on tiny random-weight reposers."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_repo_module


def _poses(t: int = 4, size: int = 64, seed: int = 0):
    from recon3d.reenact.poses import PoseSequence

    rng = np.random.default_rng(seed)
    body = rng.uniform(16, 48, (t, 18, 2))
    face = rng.uniform(24, 40, (t, 68, 2))
    hands = rng.uniform(10, 54, (t, 2, 21, 2))
    return PoseSequence(
        body=body,
        body_confidence=np.ones((t, 18)),
        face=face,
        face_confidence=np.ones((t, 68)),
        hands=hands,
        hands_confidence=np.ones((t, 2, 21)),
        image_size=(size, size),
        fps=30.0,
    )


def test_ssim_identical_constant_and_symmetric():
    from recon3d.metrics import ssim

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    # Constant images: variances and covariance vanish, SSIM = (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 100.0, 150.0, (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert expected == pytest.approx(0.923092, abs=1e-6)
    value = ssim(np.full((32, 32), a), np.full((32, 32), b))
    assert value == pytest.approx(expected, abs=1e-9)
    y = np.clip(x.astype(int) + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    assert ssim(x, y) == pytest.approx(ssim(y, x), abs=1e-12)
    assert 0.5 < ssim(x, y) < 0.99
    # An inverted image is anti-correlated: negative SSIM.
    assert ssim(x, 255 - x) < 0


def test_pose_distance_and_detection_rate():
    import dataclasses

    from recon3d.metrics import pose_distance

    driving = _poses()
    detected = dataclasses.replace(
        driving,
        body=driving.body + np.array([3.0, 4.0]),  # 5 px off everywhere
        face_confidence=np.where(np.arange(68) < 34, 1.0, 0.0)[None].repeat(4, 0),
        hands=None,
        hands_confidence=None,
    )
    result = pose_distance(detected, driving)
    assert result["body"]["distance_px"] == pytest.approx(5.0)
    assert result["body"]["detection_rate"] == 1.0 and result["body"]["points"] == 72
    assert result["face"]["distance_px"] == pytest.approx(0.0)
    assert result["face"]["detection_rate"] == pytest.approx(0.5)
    assert result["hands"]["detection_rate"] == 0.0 and np.isnan(result["hands"]["distance_px"])
    with pytest.raises(ValueError):
        pose_distance(detected[:2], driving)


def test_temporal_flicker_counts_pairs_within_sequences():
    from recon3d.metrics import temporal_flicker

    frames = np.zeros((4, 8, 8, 3), np.uint8)
    frames[1] = 10
    frames[2] = 250  # a jump across the sequence boundary (1 -> 2) is not flicker
    frames[3] = 254
    assert temporal_flicker(frames) == pytest.approx((10 + 240 + 4) / 3)
    assert temporal_flicker(frames, np.array([0, 0, 1, 1])) == pytest.approx((10 + 4) / 2)
    with pytest.raises(ValueError):
        temporal_flicker(frames, np.arange(4))


def test_eval_script_generation_boxes_and_tables(tmp_path):
    import torch

    from recon3d.reenact.networks import FaceGenerator, RendererConfig, build_generator
    from recon3d.reenact.reposer import Reposer
    from recon3d.train.reenact_data import FrameSet

    ev = load_repo_module("scripts", "eval_reposer")
    torch.manual_seed(0)
    config = RendererConfig(size=64, ngf=4, n_blocks=1, temporal=True, face=True)
    face = FaceGenerator(config.face_ngf, n_blocks=config.face_blocks)
    reposer = Reposer(build_generator(config), face, config, None)
    poses = _poses(t=5)
    frames = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3)).astype(np.uint8)
    fs = FrameSet(frames, poses, np.array([0, 0, 0, 1, 1]), np.zeros((5, 4), np.int64))
    out, seconds = ev.generate(reposer, fs)
    assert out.shape == frames.shape and out.dtype == np.uint8 and seconds > 0
    again, _ = ev.generate(reposer, fs)
    assert np.array_equal(out, again)  # the previous frame is reset per sequence: deterministic
    # Sequence 1 restarts from a blank previous frame: its first frame equals a fresh start.
    alone, _ = ev.generate(reposer, fs[3:])
    assert np.array_equal(alone[0], out[3])
    boxes = ev.body_boxes(poses)
    assert np.all(boxes[:, 2] - boxes[:, 0] == boxes[:, 3] - boxes[:, 1])
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 64)
    lo = np.minimum(poses.body.min(1), poses.hands.reshape(5, -1, 2).min(1))
    assert np.all(boxes[:, :2] <= np.floor(lo))
    row = {
        "name": "+ FaceGAN",
        "body": {"ssim": 0.5, "perceptual": 0.25},
        "face": {"ssim": 0.4, "perceptual": 0.3},
        "pose": {
            p: {"distance_px": 2.0, "detection_rate": 0.9, "points": 3}
            for p in ("body", "face", "hands")
        },
        "flicker": 3.0,
        "flicker_excess": 1.0,
    }
    text = ev.markdown(
        {
            "setting": "reposed",
            "frames": 5,
            "sequences": 2,
            "size": 64,
            "rows": [row],
            "ground_truth": {"pose": row["pose"], "flicker": 2.0},
        }
    )
    assert "| + FaceGAN | 0.500 | 0.250 |" in text and "| + FaceGAN | 3.00 | +1.00 |" in text


def test_paired_difference_block_bootstrap():
    """A constant improvement has a zero-width interval; zero-mean noise gives an interval
    around 0; blocks never straddle two sequences."""
    ev = load_repo_module("scripts", "eval_reposer")
    rng = np.random.default_rng(0)
    sequence = np.repeat([0, 1, 2], 60)
    a = rng.uniform(0.5, 0.9, 180)
    d = ev.paired_difference(a, a + 0.01, sequence)
    assert d["mean"] == pytest.approx(0.01) and d["low"] == pytest.approx(0.01)
    assert d["high"] == pytest.approx(0.01)
    noise = ev.paired_difference(a, a + rng.normal(0, 0.05, 180), sequence)
    assert noise["low"] < 0 < noise["high"] and noise["high"] - noise["low"] < 0.05
    # Only sequence 1 differs: every block comes from one sequence, so no block mixes its
    # offset with another's, and the interval spans 0 (all blocks in 0 or 2) to 0.3 (all in 1).
    offset = np.where(sequence == 1, 0.3, 0.0)
    mixed = ev.paired_difference(a, a + offset, sequence, resamples=500)
    assert mixed["mean"] == pytest.approx(0.1)
    assert 0.0 <= mixed["low"] < 0.1 < mixed["high"] <= 0.3
