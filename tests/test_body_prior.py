"""The adversarial pose prior: the discriminator's shapes and errors, its trainer, and its term in
the body refinement."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.models.body import axis_angle_to_matrix
from recon3d.models.body_prior import PoseDiscriminator
from recon3d.train.pose_prior import random_bone_negatives

ROOT = Path(__file__).resolve().parents[1]


def _rotations(b: int, j: int = 19, seed: int = 0, spread: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(b, j, 3, generator=g) * spread)


def test_discriminator_shapes_and_errors() -> None:
    disc = PoseDiscriminator()
    logits = disc(_rotations(4), torch.zeros(4, 16))
    assert logits.shape == (4, 19 + 2)
    assert disc.pose_loss(_rotations(3)).shape == (3,)
    with pytest.raises(ValueError, match=r"rotations must be \(B, 19, 3, 3\), got \(4, 18, 3, 3\)"):
        disc(_rotations(4, 18), torch.zeros(4, 16))
    with pytest.raises(ValueError, match=r"shape must be \(4, 16\), got \(4, 10\)"):
        disc(_rotations(4), torch.zeros(4, 10))
    small = PoseDiscriminator(num_bones=5, num_shape=3)
    assert small(_rotations(2, 5), torch.zeros(2, 3)).shape == (2, 7)
    assert small.config() == {"num_bones": 5, "num_shape": 3}


def test_pose_loss_gradcheck() -> None:
    torch.manual_seed(0)
    disc = PoseDiscriminator(num_bones=4, num_shape=2).double()
    pose = (torch.randn(2, 4, 3, dtype=torch.float64) * 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: disc.pose_loss(axis_angle_to_matrix(p)), (pose,))


def test_random_bone_negatives_turn_one_to_three_bones_but_never_the_root() -> None:
    real = _rotations(500, seed=1)
    fake, turned = random_bone_negatives(real, torch.Generator().manual_seed(0))
    changed = (fake - real).abs().amax((-2, -1)) > 1e-6
    assert torch.equal(changed, turned)
    assert not changed[:, 0].any()
    counts = changed.sum(1)
    assert counts.min() == 1 and counts.max() == 3
    assert set(counts.tolist()) == {1, 2, 3}
    eye = torch.eye(3).expand(500, 19, 3, 3)
    torch.testing.assert_close(fake @ fake.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(fake), torch.ones(500, 19), atol=1e-5, rtol=0)
    # Uniform over SO(3): the mean rotation angle is pi/2 + 2/pi.
    angles = torch.arccos(((fake[changed].diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    assert abs(angles.mean().item() - (np.pi / 2 + 2 / np.pi)) < 0.1


def test_trained_prior_is_deterministic_and_loads(tmp_path) -> None:
    """A tiny run on random shards: the file loads into a discriminator, carries its config, and
    a second run with the same seed writes the same weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from test_body_net import _random_shard

    from recon3d.models.body_net import BodyRegressor
    from recon3d.train.pose_prior import PriorConfig, train_pose_prior

    data = tmp_path / "data"
    data.mkdir()
    _random_shard(data / "body_s1_00000.npz", 8)
    torch.manual_seed(0)
    net = BodyRegressor(width=16)
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"), {"config": '{"width": 16}'})
    config = PriorConfig(
        data=str(data),
        out=str(tmp_path / "a"),
        network=str(tmp_path / "net.safetensors"),
        prior_samples=64,
        steps=20,
        batch_size=16,
    )
    first = train_pose_prior(config)
    second = train_pose_prior(dataclasses.replace(config, out=str(tmp_path / "b")))
    a, b = load_file(str(first)), load_file(str(second))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    with safe_open(str(first), framework="pt") as f:
        assert f.metadata()["config"] == '{"num_bones": 19, "num_shape": 16}'
    PoseDiscriminator().load_state_dict(a)


def test_fit_needs_the_prior_it_weighs() -> None:
    from recon3d.fitting.body_fit import BodyFitOptions, fit_body
    from recon3d.models.body import BodyModel

    model = BodyModel.from_pretrained()
    options = BodyFitOptions(adversarial_weight=0.1)
    with pytest.raises(ValueError, match="adversarial_weight is set but no prior was given"):
        fit_body(model, _upright_person(), np.eye(3), options=options)


def _upright_person():
    """MediaPipe-like landmarks of a person standing in a 300 x 200 photo, left arm raised."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks

    at = {
        "nose": (100, 40),
        "left_ear": (110, 38),
        "right_ear": (90, 38),
        "left_shoulder": (125, 75),
        "right_shoulder": (75, 75),
        "left_elbow": (150, 50),
        "right_elbow": (65, 120),
        "left_wrist": (160, 20),
        "right_wrist": (62, 160),
        "left_hip": (115, 160),
        "right_hip": (85, 160),
        "left_knee": (117, 215),
        "right_knee": (83, 215),
        "left_ankle": (118, 270),
        "right_ankle": (82, 270),
    }
    points = np.full((33, 2), 100.0, np.float32)
    visibility = np.zeros(33, np.float32)
    world = np.zeros((33, 3), np.float32)
    for name, xy in at.items():
        i = POSE_LANDMARKS.index(name)
        points[i] = xy
        visibility[i] = 0.99
        world[i] = ((xy[0] - 100) / 170, (xy[1] - 160) / 170, 0.0)
    mask = np.zeros((300, 200), np.float32)
    mask[25:280, 55:170] = 1.0
    return BodyLandmarks(
        points=points,
        visibility=visibility,
        world=world,
        mask=mask,
        box=np.array([55, 25, 170, 280], np.float32),
    )


def test_prior_term_moves_the_refinement_towards_what_it_finds_plausible() -> None:
    """A prior trained in a few hundred steps to prefer small rotations: the fit with its term
    ends with a lower prior loss than the same fit without it, and the term shows in the fit's
    energy."""
    from recon3d.fitting.body_fit import FREE_BONES, BodyFitOptions, fit_body
    from recon3d.models.body import BodyModel

    torch.manual_seed(0)
    disc = PoseDiscriminator()
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        real = _rotations(64, seed=int(torch.randint(1 << 30, (1,), generator=g)), spread=0.15)
        fake, _ = random_bone_negatives(real, g)
        loss = ((disc(real, torch.zeros(64, 16)) - 1) ** 2).mean() + (
            disc(fake, torch.zeros(64, 16)) ** 2
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    disc.eval().requires_grad_(False)

    model = BodyModel.from_pretrained()
    K = np.array([[400.0, 0, 100], [0, 400.0, 150], [0, 0, 1]])
    person = _upright_person()
    base = BodyFitOptions(torso_iterations=5, pose_iterations=15, silhouette_iterations=10)
    free = sorted(model.bone(n) for n in FREE_BONES)
    scores = {}
    for weight in (0.0, 1.0):
        options = dataclasses.replace(base, adversarial_weight=weight)
        fit = fit_body(model, person, K, options=options, prior=disc)
        rotations = axis_angle_to_matrix(torch.as_tensor(fit.pose[free], dtype=torch.float32))
        scores[weight] = float(disc.pose_loss(rotations[None])[0])
        assert ("adversarial" in fit.losses) == bool(weight), fit.losses.keys()
    assert scores[1.0] < scores[0.0], scores


def test_pipeline_hands_its_prior_to_the_refinement_only(monkeypatch) -> None:
    """The default refinement weighs the shipped, hash-checked prior; the fit from scratch
    weighs none and gets none; the refinement's term shows in its energy."""
    from recon3d import body_pipeline
    from recon3d.body_pipeline import REFINE_OPTIONS, BodyReconstructionPipeline
    from recon3d.weights import read_manifest

    assert REFINE_OPTIONS.adversarial_weight > 0
    assert "body_prior.safetensors" in read_manifest()["files"]
    calls = []
    fit_body = body_pipeline.fit_body

    def spy(*args, prior=None, **kwargs):
        fit = fit_body(*args, prior=prior, **kwargs)
        calls.append((kwargs["init"] is not None, prior, fit.losses))
        return fit

    monkeypatch.setattr(body_pipeline, "fit_body", spy)
    photo = ROOT / "tests" / "data" / "obama2.jpg"
    for use_network in (True, False):
        pipe = BodyReconstructionPipeline.from_pretrained(use_network=use_network)
        pipe(photo, complete_texture=False)
    (refined, refine_prior, refine_losses), (scratch, scratch_prior, scratch_losses) = calls
    assert refined and isinstance(refine_prior, PoseDiscriminator)
    assert "adversarial" in refine_losses and np.isfinite(refine_losses["adversarial"])
    assert not scratch and scratch_prior is None and "adversarial" not in scratch_losses


def test_shipped_prior_ranks_plausible_poses_above_broken_ones() -> None:
    """The shipped prior, hash-checked: random valid poses of the pose generator against the
    same poses with one bone turned 5-30 % past its anatomical range (the measure of
    scripts/eval_body_prior.py, which gives 0.944 on held-out motion capture)."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from eval_body_prior import auc, broken_copies

    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import free_bone_indices, random_pose

    model = BodyModel.from_pretrained()
    prior = PoseDiscriminator.from_pretrained()
    rng = np.random.default_rng(0)
    poses = np.stack([random_pose(model, rng) for _ in range(200)])
    broken = broken_copies(model, poses, rng)
    free = free_bone_indices(model)
    with torch.no_grad():
        loss = [
            prior.pose_loss(axis_angle_to_matrix(torch.as_tensor(p[:, free], dtype=torch.float32)))
            for p in (poses, broken)
        ]
    assert auc(-loss[0].numpy(), -loss[1].numpy()) > 0.85
