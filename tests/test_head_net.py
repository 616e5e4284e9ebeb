"""The head network: shapes and input checks, the synthetic data engine (a shard regenerates
byte-identical), training and resuming a tiny network, its estimate as a HeadFit, the pipeline's
network path; slow: the shipped weights on held-out renders and DDP with 2 CPU processes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.models.head_net import HeadRegressor, network_inputs, predict_head_fit

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
TEXTURES = ROOT / "data" / "texture" / "partials"


@pytest.fixture(scope="module")
def model():
    from recon3d.models.head import HeadModel

    return HeadModel.from_pretrained()


@pytest.fixture(scope="module")
def detector():
    from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

    return MediaPipeFaceDetector()


@pytest.fixture(scope="module")
def obama_face(detector):
    from recon3d.camera import Camera
    from recon3d.io import load_image_with_metadata

    loaded = load_image_with_metadata(DATA / "obama.jpg")
    h, w = loaded.pixels.shape[:2]
    return detector.detect(loaded.pixels)[0], Camera.from_image_size(w, h).K


def _texture() -> np.ndarray:
    """One real head texture when the training partials are present, else a skin-toned one
    with features (the shard test only needs a face MediaPipe can find)."""
    from recon3d.train.synthetic_head import load_textures

    paths = sorted((TEXTURES / "train").glob("*_head.npz"))[:1]
    if not paths:
        pytest.skip("data/texture/partials not generated (scripts/generate_texture_data.py)")
    return load_textures(paths, side=256)[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, model, detector):
    """The same tiny shard generated twice, with an expression bank."""
    from recon3d.train.synthetic_head import HeadRenderer, generate_shard

    renderer = HeadRenderer(model, [_texture()])
    folders = []
    for name in ("a", "b"):
        folder = tmp_path_factory.mktemp(name)
        path = generate_shard(model, detector, renderer, [], folder, seed=7, index=0, size=6)
        assert path is not None and path.name == "head_s7_00000.npz"
        # A second call skips the existing shard (resumable runs).
        assert generate_shard(model, detector, renderer, [], folder, 7, 0, 6) is None
        folders.append(folder)
    bank = folders[0] / "bank.npz"
    np.savez(bank, expression=np.random.default_rng(0).uniform(0, 0.3, (5, 52)).astype("f4"))
    return folders, bank


def test_forward_shapes_and_ranges() -> None:
    net = HeadRegressor(width=32)
    out = net(torch.randn(3, 478, 3) * 0.3)
    assert out["identity"].shape == (3, 60) and out["expression"].shape == (3, 52)
    assert out["rotation"].shape == (3, 3, 3) and out["camera"].shape == (3, 3)
    assert (out["expression"] >= 0).all() and (out["expression"] <= 1).all()
    eye = torch.eye(3).expand(3, 3, 3)
    torch.testing.assert_close(out["rotation"] @ out["rotation"].transpose(1, 2), eye)
    # Initialised near a frontal, neutral, mean face.
    assert (out["rotation"] - eye).abs().max() < 0.2 and out["expression"].max() < 0.2


def test_bad_inputs_raise() -> None:
    net = HeadRegressor(width=16)
    with pytest.raises(ValueError, match=r"\(B, 478, 3\)"):
        net(torch.zeros(2, 468, 3))
    with pytest.raises(ValueError, match=r"\(B, 478, 3\)"):
        net(torch.zeros(478, 3))
    with pytest.raises(ValueError, match=r"\(478, 3\)"):
        network_inputs(np.zeros((68, 2)), np.array([0, 0, 10, 10]))


def test_network_inputs_are_box_normalised() -> None:
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(100, 300, (478, 2)), rng.normal(0, 20, 478)]
    box = np.r_[points[:, :2].min(0), points[:, :2].max(0)]
    a = network_inputs(points, box)
    # Moving and scaling the face in the image leaves the inputs unchanged.
    b = network_inputs(points * 2 + (50, -30, 7), box * 2 + (50, -30, 50, -30))
    np.testing.assert_allclose(a["landmarks"], b["landmarks"], atol=1e-5)
    assert np.abs(a["landmarks"][:, :2]).max() <= 0.5 + 1e-6
    assert abs(float(a["landmarks"][:, 2].mean())) < 1e-5


def test_shard_regenerates_byte_identical(shards) -> None:
    (a, b), _ = shards
    with np.load(a / "head_s7_00000.npz") as x, np.load(b / "head_s7_00000.npz") as y:
        assert x.files == y.files
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key])
        assert int(x["attempted"]) == 6
        kept = 6 - int(x["missed"])
        assert kept >= 3, "MediaPipe should find most rendered faces"
        assert x["landmarks"].shape == (kept, 478, 3) and x["identity"].shape == (kept, 60)


def test_tiny_network_trains_and_resumes(shards, tmp_path, caplog) -> None:
    import logging

    from safetensors import safe_open
    from safetensors.torch import load_file

    from recon3d.train.head_net import TrainConfig, train

    (data, _), bank = shards
    config = TrainConfig(
        data=str(data), out=str(tmp_path), epochs=2, batch_size=4, bank=str(bank), width=32
    )
    with caplog.at_level(logging.INFO):
        path = train(config)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["epoch"] == "1"
    before = load_file(str(path))
    config.epochs = 3
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train(config)
    assert "resumed from epoch 1" in caplog.text and "epoch 2" in caplog.text
    after = load_file(str(path))
    assert any(not torch.equal(before[k], after[k]) for k in before), "no step was taken"
    HeadRegressor(width=32).load_state_dict(after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_on_cuda_matches_the_cpu(tmp_path) -> None:
    """A shard of random values (the trainer's plumbing, not learning): two epochs on a GPU
    take the CPU run's steps, float rounding apart; the checkpoint loads on the CPU. Without
    the adversarial term, whose real samples are drawn on the device."""
    from safetensors.torch import load_file

    from recon3d.train.head_net import TrainConfig, train

    rng = np.random.default_rng(0)
    n = 16
    K = np.array([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]], np.float32)
    np.savez(
        tmp_path / "head_s1_00000.npz",
        landmarks=rng.normal(0, 0.2, (n, 478, 3)).astype(np.float32),
        crop=np.tile(np.array([128, 128, 150], np.float32), (n, 1)),
        identity=rng.normal(0, 1, (n, 60)).astype(np.float32),
        expression=rng.uniform(0, 0.5, (n, 52)).astype(np.float32),
        rotation=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        translation=np.tile(np.array([0, 0, 0.6], np.float32), (n, 1)),
        camera=rng.normal(0, 0.1, (n, 3)).astype(np.float32),
        K=np.tile(K, (n, 1, 1)),
    )
    bank = tmp_path / "bank.npz"
    np.savez(bank, expression=rng.uniform(0, 0.3, (5, 52)).astype("f4"))
    config = TrainConfig(
        data=str(tmp_path),
        epochs=2,
        batch_size=4,
        bank=str(bank),
        width=32,
        learning_rate=1e-4,
        adversarial_weight=0.0,
    )
    cpu = load_file(str(train(dataclasses.replace(config, out=str(tmp_path / "c"), device="cpu"))))
    gpu = load_file(str(train(dataclasses.replace(config, out=str(tmp_path / "g"), device="cuda"))))
    torch.manual_seed(config.seed)  # as train() does before it builds the network
    initial = HeadRegressor(width=32).state_dict()
    for name, value in cpu.items():
        assert gpu[name].device.type == "cpu"
        moved = (value - initial[name]).norm()
        assert (gpu[name] - value).norm() <= 0.2 * moved + 1e-6, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_head_fits_on_cuda_match_the_cpu() -> None:
    """The shipped head network's estimate and the default refinement, and the fit from scratch,
    run with the model and the network on a GPU, as ``HeadReconstructionPipeline.to("cuda")``
    runs them, and agree with the CPU's."""
    from helpers import synthetic_face

    from recon3d.camera import Camera
    from recon3d.fitting.head_fit import fit_head
    from recon3d.models.head import HeadModel
    from recon3d.pipeline import REFINE_OPTIONS

    camera = Camera.from_image_size(640, 640)
    face, _ = synthetic_face(HeadModel.from_pretrained(), 0, camera)
    fits = {}
    for device in ("cpu", "cuda"):
        model = HeadModel.from_pretrained().to(device)
        net = HeadRegressor.from_pretrained().to(device).eval()
        start = predict_head_fit(net, model, face, camera.K)
        fits[device] = {
            "refined": fit_head(model, face, camera.K, options=REFINE_OPTIONS, init=start),
            "from scratch": fit_head(model, face, camera.K),
        }
    for name, cpu in fits["cpu"].items():
        gpu = fits["cuda"][name]
        assert cpu.reprojection_error_px < 5.0, name  # px in a 640-pixel photo: a sane fit
        assert abs(gpu.reprojection_error_px - cpu.reprojection_error_px) < 0.05, name
        np.testing.assert_allclose(gpu.identity, cpu.identity, atol=1e-2)
        np.testing.assert_allclose(gpu.expression, cpu.expression, atol=1e-2)
        np.testing.assert_allclose(gpu.translation, cpu.translation, atol=1e-3)


def test_predict_head_fit_is_a_valid_init(model, obama_face) -> None:
    from recon3d.fitting.head_fit import HeadFit, HeadFitOptions, fit_head

    torch.manual_seed(0)
    net = HeadRegressor(width=32).eval()
    face, K = obama_face
    for align in ("pnp", "none"):
        fit = predict_head_fit(net, model, face, K, align=align)
        assert isinstance(fit, HeadFit)
        assert fit.identity.shape == (60,) and fit.expression.shape == (52,)
        assert ((fit.expression >= 0) & (fit.expression <= 1)).all()
        np.testing.assert_allclose(fit.rotation @ fit.rotation.T, np.eye(3), atol=1e-6)
        assert fit.translation.shape == (3,) and fit.translation[2] > 0
        assert np.isfinite(fit.reprojection_error_px)
    # PnP places even an untrained network's face on the detected one.
    pnp = predict_head_fit(net, model, face, K)
    assert pnp.reprojection_error_px < 0.1 * face.size
    refined = fit_head(model, face, K, options=HeadFitOptions(iterations=2), init=pnp)
    assert refined.reprojection_error_px < pnp.reprojection_error_px
    with pytest.raises(ValueError, match="align"):
        predict_head_fit(net, model, face, K, align="torso")


def test_pipeline_network_path(model, detector) -> None:
    from recon3d.pipeline import HeadReconstructionPipeline

    torch.manual_seed(0)
    net = HeadRegressor(width=32).eval()
    pipe = HeadReconstructionPipeline(model, detector=detector, network=net)
    alone = pipe(DATA / "obama.jpg", refine=False, complete_texture=False)
    refined = pipe(DATA / "obama.jpg", complete_texture=False)
    assert np.isfinite(alone.vertices).all() and (alone.vertices[:, 2] > 0).all()
    # refine=False is the network's estimate: its expression is the network's output.
    inputs = network_inputs(
        alone.keypoints, np.r_[alone.keypoints[:, :2].min(0), alone.keypoints[:, :2].max(0)]
    )
    with torch.no_grad():
        expected = net(torch.as_tensor(inputs["landmarks"])[None])["expression"][0].numpy()
    got = np.array(list(alone.params["expression"].values()), np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert refined.params["reprojection_error_px"] < alone.params["reprojection_error_px"]


@pytest.mark.slow
def test_shipped_network_on_heldout_renders(model, detector) -> None:
    """The shipped weights, on fresh held-out renders (seed 2, held-out textures): the network
    alone and refined stay under bars set from a measurement, and beat the optimisation alone
    (measured on these 12 renders: network 4.66 mm, refined 5.16 mm, optimisation 6.62 mm)."""
    from recon3d.fitting.head_fit import fit_head
    from recon3d.metrics import procrustes_error
    from recon3d.pipeline import REFINE_OPTIONS
    from recon3d.train.synthetic_head import (
        HeadRenderer,
        head_vertices,
        load_textures,
        random_sample,
    )

    paths = sorted((TEXTURES / "test").glob("*_head.npz"))
    if not paths:
        pytest.skip("data/texture/partials not generated")
    net = HeadRegressor.from_pretrained()
    renderer = HeadRenderer(model, load_textures(paths, side=256))
    rng = np.random.default_rng([2, 999])
    errors = {"net": [], "refined": [], "optimisation": []}
    while len(errors["net"]) < 12:
        sample = random_sample(model, rng)
        image = renderer.render(head_vertices(model, sample), sample.K, rng, [])
        faces = detector.detect(image)
        if not faces:
            continue
        gt = model.vertices(
            torch.as_tensor(sample.identity, dtype=torch.float32)[None],
            torch.as_tensor(sample.expression, dtype=torch.float32)[None],
        )[0].numpy()
        fit = predict_head_fit(net, model, faces[0], sample.K)
        refined = fit_head(model, faces[0], sample.K, options=REFINE_OPTIONS, init=fit)
        optimised = fit_head(model, faces[0], sample.K)
        for key, f in (("net", fit), ("refined", refined), ("optimisation", optimised)):
            with torch.no_grad():
                pred = model.vertices(
                    torch.as_tensor(f.identity)[None], torch.as_tensor(f.expression)[None]
                )[0].numpy()
            errors[key].append(1000 * procrustes_error(pred.astype(np.float64), gt))
    mean = {k: float(np.mean(v)) for k, v in errors.items()}
    assert mean["net"] < PVE_BAR_MM and mean["refined"] < REFINED_PVE_BAR_MM, mean
    assert mean["refined"] < mean["optimisation"], mean


# About 1.2x the means measured on these renders (network 4.66 mm, refined 5.16 mm with the
# default pull 1e-5); on 200 held-out renders the means are 5.33 and 5.97 mm against 7.68 mm
# for the optimisation (docs/head_network.md).
PVE_BAR_MM = 5.5
REFINED_PVE_BAR_MM = 6.2


@pytest.mark.slow
def test_torchrun_two_processes_train_and_resume(shards, tmp_path) -> None:
    (data, _), bank = shards
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        str(ROOT / "scripts" / "train_head_net.py"),
        "--data",
        str(data),
        "--out",
        str(run),
        "--batch-size",
        "2",
        "--width",
        "32",
        "--bank",
        str(bank),
    ]
    first = subprocess.run(
        [*command, "--epochs", "1"], env=env, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert (run / "head_net.safetensors").exists() and "epoch 0" in first.stderr
    second = subprocess.run(
        [*command, "--epochs", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from epoch 0" in second.stderr and "epoch 1" in second.stderr
    from safetensors.torch import load_file

    HeadRegressor(width=32).load_state_dict(load_file(str(run / "head_net.safetensors")))


def test_surface_basis_cache_follows_the_buffers() -> None:
    from recon3d.models.head import HeadModel

    model = HeadModel.from_pretrained()  # its own instance: the buffers are changed below
    first = model.surface_basis("mediapipe478")
    assert model.surface_basis("mediapipe478") is first
    for cached, fresh in zip(first, model._restricted_basis("mediapipe478"), strict=True):
        torch.testing.assert_close(cached, fresh, rtol=0, atol=0)
    with torch.no_grad():
        model.mean_vertices += 0.01  # in place: same storage, a new version
    moved = model.surface_basis("mediapipe478")
    torch.testing.assert_close(moved[0], first[0] + 0.01)
    double = model.to(torch.float64).surface_basis("mediapipe478")
    assert all(t.dtype == torch.float64 for t in double)
    assert model.surface_basis("ibug68")[0].shape == (68, 3)
