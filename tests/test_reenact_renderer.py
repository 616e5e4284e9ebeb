"""The re-rendering networks, their training and the Reposer API (tiny random networks on tiny
synthetic frame sets; the real, trained run is the slow test at the end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import DEVICES
from torch import nn

from recon3d.errors import CorruptedWeightsError, MissingWeightsError, UnsupportedTargetError
from recon3d.reenact.face import crop_boxes, face_boxes, paste_boxes
from recon3d.reenact.networks import (
    FaceGenerator,
    GlobalGenerator,
    LocalEnhancer,
    RendererConfig,
    build_generator,
)
from recon3d.reenact.poses import PoseSequence
from recon3d.train.reenact import (
    MultiscaleDiscriminator,
    PerceptualLoss,
    ReenactTrainConfig,
    feature_matching_loss,
    gan_loss,
    prepare_data,
    rewind_to_body_end,
    train_reposer,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"ngf": 4, "n_blocks": 1, "face_ngf": 4, "face_blocks": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one thread (with two, every small op waits on a thread barrier, which
    takes long when the cores are busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- stand-ins ----------------------------------------------------------------------------------
def _skeleton(t: float, size: int) -> np.ndarray:
    """(18, 2) a standing person, arms swinging with t, filling a size x size frame."""
    s = size / 64.0
    x = np.array(
        [32, 32, 26, 23, 21, 38, 41, 43, 28, 28, 28, 36, 36, 36, 31, 33, 29, 35], np.float32
    )
    y = np.array([10, 16, 16, 24, 31, 16, 24, 31, 34, 45, 56, 34, 45, 56, 9, 9, 10, 10], np.float32)
    x[[3, 4]] -= 3 * np.sin(t)
    x[[6, 7]] += 3 * np.sin(t)
    y[[9, 10]] -= 2 * t
    y[[12, 13]] -= 2 * t
    return np.stack([x, y], -1) * s


def _poses(n: int, size: int) -> PoseSequence:
    body = np.stack([_skeleton(0.3 * i, size) for i in range(n)])
    return PoseSequence(
        body=body, body_confidence=np.ones((n, 18), np.float32), image_size=(size, size)
    )


def _frame_set(n: int = 6, size: int = 32, sequences: int = 2):
    """A FrameSet-like stand-in: frames are coloured discs around the keypoints."""
    import cv2

    poses = _poses(n, size)
    frames = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        for j, (x, y) in enumerate(poses.body[i]):
            colour = (40 + 12 * j, 200 - 9 * j, 90 + 5 * j)
            cv2.circle(frames[i], (int(x), int(y)), max(1, size // 20), colour, -1)
    sequence = np.repeat(np.arange(sequences), int(np.ceil(n / sequences)))[:n]
    return SimpleNamespace(
        frames=frames, poses=poses, sequence=sequence, face_boxes=face_boxes(poses)
    )


class _TinyFeatures(nn.Module):
    """A random, frozen two-map feature network standing in for MobileNetV2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a = nn.Conv2d(3, 4, 3, 2, 1)
        self.b = nn.Conv2d(4, 8, 3, 2, 1)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = torch.relu(self.a(x))
        return [a, torch.relu(self.b(a))]


# -- networks -----------------------------------------------------------------------------------
def test_generators_shapes_and_range() -> None:
    g = GlobalGenerator(6, ngf=4, n_downsample=3, n_blocks=1)
    out = g(torch.randn(2, 6, 32, 48))
    assert out.shape == (2, 3, 32, 48) and out.abs().max() <= 1
    local = LocalEnhancer(3, ngf=4, n_downsample=2, n_blocks=1, n_blocks_local=1)
    assert local(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="multiples of 8"):
        g(torch.randn(1, 6, 36, 36))
    with pytest.raises(ValueError, match=r"\(B, 6, H, W\)"):
        g(torch.randn(1, 3, 32, 32))
    assert isinstance(build_generator(RendererConfig(size=512, **TINY)), LocalEnhancer)
    assert isinstance(build_generator(RendererConfig(size=256, **TINY)), GlobalGenerator)
    assert RendererConfig(temporal=False).in_channels == 3
    assert RendererConfig(temporal=True).in_channels == 6
    with pytest.raises(ValueError):
        RendererConfig(size=100)


def test_face_generator_starts_as_identity_and_learns_a_residual() -> None:
    f = FaceGenerator(ngf=4, n_blocks=1)
    pose, body = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(f(pose, body), body)
    loss = (f(pose, body) - 1).abs().mean()
    loss.backward()
    assert f.residual.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="must match"):
        f(pose, body[:, :, :16])


def test_face_boxes_crop_and_paste() -> None:
    poses = _poses(3, 64)
    boxes = face_boxes(poses)
    assert boxes.shape == (3, 4)
    assert (boxes[:, 2] - boxes[:, 0] == boxes[:, 3] - boxes[:, 1]).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()
    nose = poses.body[0, 0]
    assert boxes[0, 0] <= nose[0] < boxes[0, 2] and boxes[0, 1] <= nose[1] < boxes[0, 3]
    # Twice the frame size: boxes scale with it.
    np.testing.assert_allclose(face_boxes(poses, size=(128, 128)), 2 * boxes, atol=2)
    # Cropping a box and pasting the crop back differences is exact inside the box.
    image = torch.rand(1, 3, 64, 64)
    box = torch.tensor([[8, 16, 40, 48]])
    crop = crop_boxes(image, box, 32)
    torch.testing.assert_close(crop, image[:, :, 16:48, 8:40], atol=1e-5, rtol=0)
    pasted = paste_boxes(image, torch.ones(1, 3, 8, 8), box)
    torch.testing.assert_close(pasted[:, :, 16:48, 8:40], image[:, :, 16:48, 8:40] + 1)
    torch.testing.assert_close(pasted[:, :, :16], image[:, :, :16])


def test_face_visibility_and_feathered_paste() -> None:
    from recon3d.reenact.face import face_visible

    poses = _poses(3, 64)
    assert face_visible(poses).all()
    poses.body_confidence[1, [0, 14, 15]] = 0  # seen from behind: no nose, no eyes
    assert face_visible(poses).tolist() == [True, False, True]
    image = torch.zeros(1, 1, 32, 32)
    pasted = paste_boxes(
        image, torch.ones(1, 1, 16, 16), torch.tensor([[8, 8, 24, 24]]), feather=0.25
    )
    assert float(pasted[0, 0, 16, 16]) == 1.0  # full strength in the middle
    assert 0 < float(pasted[0, 0, 8, 16]) < 0.5  # faded at the border
    assert float(pasted[0, 0, 4, 4]) == 0.0


def test_multiscale_discriminator_features() -> None:
    d = MultiscaleDiscriminator(12, ndf=4, n_layers=3, num_d=3)
    out = d(torch.randn(2, 12, 64, 64))
    assert len(out) == 3 and all(len(scale) == 5 for scale in out)
    assert all(scale[-1].shape[:2] == (2, 1) for scale in out)
    # Each scale sees the input at half the previous resolution.
    assert out[0][0].shape[-1] > out[1][0].shape[-1] > out[2][0].shape[-1]


def test_gan_losses_values() -> None:
    ones = [[torch.ones(1, 1, 2, 2)]]
    zeros = [[torch.zeros(1, 1, 2, 2)]]
    assert float(gan_loss(ones, True)) == 0 and float(gan_loss(zeros, True)) == 1
    assert float(gan_loss(zeros, False)) == 0
    assert float(gan_loss(ones, True, kind="hinge")) == 0
    assert float(gan_loss(ones, False, kind="hinge")) == 2
    assert float(gan_loss(ones, True, kind="hinge", generator=True)) == -1


def test_feature_matching_and_perceptual_losses_backpropagate() -> None:
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(3, ndf=4, n_layers=2, num_d=2)
    fake = torch.rand(1, 3, 32, 32, requires_grad=True)
    real = torch.rand(1, 3, 32, 32)
    fm = feature_matching_loss(d(fake), d(real))
    p = PerceptualLoss(_TinyFeatures())(fake, real)
    assert fm > 0 and p > 0
    (g_fm,) = torch.autograd.grad(fm, fake, retain_graph=True)
    (g_p,) = torch.autograd.grad(p, fake)
    for g in (g_fm, g_p):
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    # Identical images: zero losses.
    with torch.no_grad():
        assert float(PerceptualLoss(_TinyFeatures())(real, real)) == 0
        assert float(feature_matching_loss(d(real), d(real))) == 0


# -- training -----------------------------------------------------------------------------------
def _train(
    tmp_path=None, *, steps=2, face_steps=1, temporal=True, face=True, data=None, device="cpu", **kw
):
    renderer = RendererConfig(size=32, temporal=temporal, face=face, **TINY)
    config = ReenactTrainConfig(
        steps=steps, face_steps=face_steps, ndf=4, face_ndf=4, checkpoint_every=2, **kw
    )
    data = data or prepare_data(_frame_set(), 32)
    return train_reposer(
        data,
        renderer,
        config,
        perceptual=_TinyFeatures(),
        device=device,
        checkpoint_dir=tmp_path,
        progress=False,
        resume=tmp_path is not None,
    )


def test_prepare_data() -> None:
    data = prepare_data(_frame_set(n=6, size=64, sequences=2), 32)
    assert data.frames.shape == data.pose_maps.shape == (6, 3, 32, 32)
    assert data.frames.dtype == torch.uint8
    assert data.pose_maps.float().sum() > 0
    # Pairs never cross a sequence boundary (sequences 0,0,0 | 1,1,1).
    assert data.pairs.tolist() == [1, 2, 4, 5]
    assert data.boxes.shape == (6, 4)
    assert data.stats is not None and data.stats.image_size == (32, 32)


@pytest.mark.parametrize("device", DEVICES)
def test_trainer_runs_three_steps_with_every_component(tmp_path, device) -> None:
    result = _train(tmp_path, steps=2, face_steps=1, device=device)
    # Trained where asked, returned on the CPU.
    assert next(result.generator.parameters()).device.type == "cpu"
    assert len(result.history) == 3
    assert {"g_gan", "g_fm", "g_perceptual", "d", "l1"} <= set(result.history[0])
    assert {"face_gan", "face_perceptual", "face_d"} <= set(result.history[2])
    assert all(np.isfinite(v) for h in result.history for v in h.values())
    assert (tmp_path / "checkpoint.safetensors").exists()
    assert isinstance(result.face_generator, FaceGenerator)
    assert result.steps_per_second > 0


def test_overfits_one_frame() -> None:
    """30 steps on one frame: the reconstruction losses fall."""
    fs = _frame_set(n=1, size=32, sequences=1)
    result = _train(
        steps=30, face_steps=0, temporal=False, face=False, data=prepare_data(fs, 32),
        learning_rate=2e-3,
    )  # fmt: skip
    p = [h["g_perceptual"] for h in result.history]
    l1 = [h["l1"] for h in result.history]
    assert np.mean(p[-5:]) < 0.7 * np.mean(p[:5])
    assert np.mean(l1[-5:]) < 0.7 * np.mean(l1[:5])


def test_checkpoint_resume_continues_exactly(tmp_path) -> None:
    data = prepare_data(_frame_set(), 32)
    straight = _train(tmp_path / "a", steps=3, face_steps=2, data=data)
    # Interrupted after 3 body steps (face_steps=0 then), resumed for the FaceGAN steps.
    (tmp_path / "b").mkdir()
    _train(tmp_path / "b", steps=3, face_steps=0, data=data)
    resumed = _train(tmp_path / "b", steps=3, face_steps=2, data=data)
    assert [h["step"] for h in resumed.history] == [0, 1, 2, 3, 4]
    for a, b in [
        (straight.generator, resumed.generator),
        (straight.face_generator, resumed.face_generator),
    ]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, msg=name)
    assert straight.history == resumed.history


def test_time_limit_ends_each_stage(tmp_path) -> None:
    result = _train(tmp_path, steps=500, face_steps=500, time_limit=0.3)
    steps = [h["step"] for h in result.history]
    assert 0 < len(steps) < 1000
    assert any(s < 500 for s in steps) and any(s >= 500 for s in steps)
    # The checkpoint holds the final state: a resumed run goes on from the last step made.
    again = _train(tmp_path, steps=500, face_steps=500, time_limit=0.3)
    assert again.history[: len(steps)] == result.history
    assert again.history[len(steps)]["step"] == steps[-1] + 1


def test_rewind_extends_a_time_limited_body_stage(tmp_path) -> None:
    data = prepare_data(_frame_set(), 32)
    # A run whose body stage a time limit ended, then a FaceGAN stage on that body generator.
    first = _train(tmp_path / "a", steps=100, face_steps=2, data=data, time_limit=0.2)
    body = [h for h in first.history if h["step"] < 100]
    assert 0 < len(body) < 100 and len(first.history) > len(body)
    made = rewind_to_body_end(
        tmp_path / "a/checkpoint.safetensors", tmp_path / "b/checkpoint.safetensors"
    )
    assert made == len(body)
    # Resumed with a larger body target: the body stage goes on, then a fresh FaceGAN stage.
    more = _train(tmp_path / "b", steps=made + 2, face_steps=1, data=data)
    assert more.history[:made] == body
    assert [h["step"] for h in more.history[made:]] == [made, made + 1, made + 2]
    assert "face_l1" not in more.history[made + 1] and "face_l1" in more.history[made + 2]


def test_temporal_training_needs_consecutive_frames() -> None:
    data = prepare_data(_frame_set(n=3, sequences=3), 32)
    with pytest.raises(ValueError, match="consecutive"):
        _train(data=data)
    with pytest.raises(ValueError, match="gan_loss"):
        ReenactTrainConfig(gan_loss="wgan")


# -- Reposer ------------------------------------------------------------------------------------
def _reposer(temporal=True, face=True):
    from recon3d.reenact.normalize import ankle_stats
    from recon3d.reenact.reposer import Reposer

    torch.manual_seed(0)
    config = RendererConfig(size=32, temporal=temporal, face=face, **TINY)
    g = build_generator(config)
    f = FaceGenerator(config.face_ngf, n_blocks=config.face_blocks) if face else None
    if f is not None:  # a non-zero residual, so the FaceGAN's effect is visible
        nn.init.normal_(f.residual.weight, std=0.1)
    return Reposer(g, f, config, ankle_stats(_poses(8, 32)), info={"note": "test"})


def test_render_is_lazy_and_temporal() -> None:
    reposer = _reposer()
    driving = _poses(4, 64)
    frames = reposer.render(driving, progress=False)
    assert not isinstance(frames, list)
    frames = list(frames)
    assert len(frames) == 4
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)
    # The previous frame is an input: the same pose gives another frame after another one.
    same = PoseSequence(
        body=np.repeat(driving.body[:1], 2, 0),
        body_confidence=np.ones((2, 18), np.float32),
        image_size=(64, 64),
    )
    a, b = reposer.render(same, progress=False)
    assert not np.array_equal(a, b)
    # Without normalisation the driving frame is fitted into the output square.
    prepared = reposer.prepare_poses(driving, normalize=False)
    np.testing.assert_allclose(prepared.body, driving.body / 2, atol=1e-5)


def test_save_load_round_trip_gives_identical_frames(tmp_path) -> None:
    from recon3d.reenact.reposer import Reposer

    reposer = _reposer()
    driving = _poses(3, 32)
    before = list(reposer.render(driving, progress=False))
    path = reposer.save(tmp_path / "person.safetensors")
    assert path.exists() and (tmp_path / "person.json").exists()
    sidecar = json.loads((tmp_path / "person.json").read_text())
    assert sidecar["renderer"]["size"] == 32 and sidecar["target_stats"]["image_size"] == [32, 32]
    loaded = Reposer.load(path)
    assert loaded.config == reposer.config and loaded.target_stats == reposer.target_stats
    after = list(loaded.render(driving, progress=False))
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)
    # A flipped byte, a missing sidecar, a wrong extension.
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(CorruptedWeightsError, match="sha256"):
        Reposer.load(path)
    (tmp_path / "person.json").unlink()
    with pytest.raises(MissingWeightsError):
        Reposer.load(path)
    with pytest.raises(ValueError):
        reposer.save(tmp_path / "person.pt")
    assert not (tmp_path / "person.pt").exists()


def test_fit_on_a_frame_set(tmp_path) -> None:
    from recon3d.reenact.reposer import Reposer

    reposer = Reposer.fit(
        _frame_set(), size=32, steps=2, face_steps=1, progress=False, checkpoint_dir=tmp_path,
        **{k: v for k, v in TINY.items() if k in ("ngf", "n_blocks")},
    )  # fmt: skip
    assert reposer.info["perceptual"] == "none" and reposer.info["frames"] == 6
    assert reposer.info["body_steps_done"] == 2 and reposer.info["face_steps_done"] == 1
    assert set(reposer.info["final_losses"]) >= {"l1", "face_l1"}
    frames = list(reposer.render(_poses(2, 32), progress=False))
    assert len(frames) == 2
    body_only = reposer.without_face()
    assert body_only.face_generator is None and not body_only.config.face
    assert len(list(body_only.render(_poses(2, 32), progress=False))) == 2


def test_repose_needs_a_body_reconstruction() -> None:
    from recon3d.camera import Camera
    from recon3d.reconstruction import Reconstruction

    def rec(target):
        return Reconstruction(
            vertices=np.zeros((3, 3), np.float32),
            faces=np.zeros((1, 3), np.int64),
            uv=np.zeros((1, 3, 2), np.float32),
            texture=np.zeros((4, 4, 3), np.uint8),
            texture_confidence=np.zeros((4, 4), np.float32),
            camera=Camera(K=np.eye(3), width=32, height=32),
            params={},
            target=target,
            image=np.zeros((32, 32, 3), np.uint8),
            keypoints=np.zeros((33, 3), np.float32),
        )

    with pytest.raises(UnsupportedTargetError, match="body"):
        rec("head").repose(_poses(2, 32))
    frames = rec("body").repose(_poses(2, 32), reposer=_reposer(), progress=False)
    assert isinstance(frames, list) and len(frames) == 2


# -- command line -------------------------------------------------------------------------------
def _openpose_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    for i, body in enumerate(_poses(n, 64).body):
        keypoints = np.c_[body, np.ones(18)].reshape(-1).tolist()
        person = {"pose_keypoints_2d": keypoints}
        (folder / f"f_{i:04d}_keypoints.json").write_text(json.dumps({"people": [person]}))
    return folder


def test_cli_repose_with_a_saved_reposer(tmp_path, capsys) -> None:
    from recon3d.cli import main

    weights = _reposer().save(tmp_path / "r.safetensors")
    driving = _openpose_folder(tmp_path / "openpose")
    out = tmp_path / "out.gif"
    assert main(["repose", "--person", str(weights), "--driving", str(driving), "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    from PIL import Image

    with Image.open(out) as gif:
        assert gif.n_frames == 3 and gif.size == (32, 32)


def test_cli_repose_errors(tmp_path, capsys) -> None:
    from recon3d.cli import EXIT_ENVIRONMENT, EXIT_INPUT, EXIT_USAGE, main

    weights = _reposer().save(tmp_path / "r.safetensors")
    driving = _openpose_folder(tmp_path / "openpose")

    def run(*args):
        return main(["repose", *args, "-q"])

    out = str(tmp_path / "out.mp4")
    # Unknown output format, missing output folder: nothing is trained or written.
    assert run("--person", str(weights), "--driving", str(driving), "-o", "x.avi") == EXIT_USAGE
    missing_dir = str(tmp_path / "nope" / "out.mp4")
    assert run("--person", str(weights), "--driving", str(driving), "-o", missing_dir) == (
        EXIT_USAGE
    )
    # A bad driving file.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run("--person", str(weights), "--driving", str(bad), "-o", out) == EXIT_INPUT
    assert run("--person", str(weights), "--driving", str(tmp_path / "no.txt"), "-o", out) == (
        EXIT_INPUT
    )
    # Missing or corrupted reposer weights.
    assert run("--person", str(tmp_path / "none.safetensors"), "--driving", str(driving),
               "-o", out) == EXIT_ENVIRONMENT  # fmt: skip
    weights.write_bytes(weights.read_bytes()[:-10])
    assert run("--person", str(weights), "--driving", str(driving), "-o", out) == (EXIT_ENVIRONMENT)
    # An unreadable photo.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not an image")
    assert run("--person", str(photo), "--driving", str(driving), "-o", out) == EXIT_INPUT
    assert not Path(out).exists()
    assert "error:" in capsys.readouterr().err


# -- distributed --------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_two_processes(tmp_path) -> None:
    """2 gloo processes train a tiny reposer from a saved frame set, then resume."""
    from recon3d.train.reenact_data import FrameSet

    fs = _frame_set(n=8, size=32)
    FrameSet(fs.frames, fs.poses, fs.sequence, fs.face_boxes).save(tmp_path / "frames.npz")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        str(ROOT / "scripts" / "train_reposer.py"), "--frames", str(tmp_path / "frames.npz"),
        "--out", str(tmp_path / "r.safetensors"), "--size", "32", "--ngf", "4", "--n-blocks", "1",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "1", "--quiet",
    ]  # fmt: skip
    (tmp_path / "ckpt").mkdir()
    first = subprocess.run(
        [*command, "--steps", "2", "--face-steps", "0"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(
        [*command, "--steps", "2", "--face-steps", "1", "--resume"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from step 2" in second.stderr
    from recon3d.reenact.reposer import Reposer

    reposer = Reposer.load(tmp_path / "r.safetensors")
    assert reposer.info["frames"] == 8 and len(list(reposer.render(_poses(2, 32)))) == 2


# -- the real thing -----------------------------------------------------------------------------
MOCAP = Path(os.environ.get("RECON3D_MOCAP", "/work/shared/data/mocap"))
MOBILENET = Path(
    os.environ.get(
        "RECON3D_PERCEPTUAL_WEIGHTS", "/work/shared/data/models/mobilenet_v2-b0353104.pth"
    )
)


@pytest.mark.slow
@pytest.mark.skipif(not MOCAP.is_dir(), reason=f"no mocap data at {MOCAP}")
def test_end_to_end_photo_to_dance(tmp_path) -> None:
    """A body reconstruction of a real photo, a reposer trained on its renders (small budget,
    64 px), saved, loaded, and driven by a held-out mocap clip; then the same through the CLI
    with the saved reposer."""
    from recon3d import reconstruct
    from recon3d.cli import main
    from recon3d.reenact.reposer import Reposer

    rec = reconstruct(ROOT / "tests" / "data" / "obama3.jpg", target="body", progress=False)
    reposer = Reposer.fit(
        rec,
        size=64,
        steps=30,
        face_steps=10,
        perceptual_weights=MOBILENET if MOBILENET.is_file() else None,
        progress=False,
        data_options={"clips": ["walk"], "random_poses": 12, "mocap_dir": MOCAP},
    )
    assert reposer.target_stats is not None
    assert np.isfinite(list(reposer.info["final_losses"].values())).all()
    path = reposer.save(tmp_path / "obama3.safetensors")
    clip = MOCAP / "humanoid3d_dance_a.txt"
    frames = rec.repose(clip, reposer=Reposer.load(path), progress=False)
    assert len(frames) > 20 and frames[0].shape == (64, 64, 3)
    # Something moves, and the frames are not blank.
    assert np.abs(np.diff(np.stack(frames).astype(int), axis=0)).mean() > 0
    assert np.std(frames[0]) > 5
    out = tmp_path / "dance.gif"
    assert (
        main(["repose", "--person", str(path), "--driving", str(clip), "-o", str(out), "-q"]) == 0
    )
    assert out.stat().st_size > 1000
