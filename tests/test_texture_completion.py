"""Texture completion (issue 5): the network, its inputs, the UV maps, the data engine, the
differentiable mesh renders and the trainer (tiny random-weight networks; the shipped weights
are exercised through the pipelines)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import DEVICES

from recon3d.metrics import psnr, ssim
from recon3d.texture.completion import (
    BASELINE,
    IN_CHANNELS,
    LOCAL,
    NETWORK_SIZE,
    NUM_PARTS,
    GatedConv2d,
    TextureCompleter,
    TextureCompletionNet,
    layout_maps,
    local_fill,
    network_inputs,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MOBILENET = pathlib.Path("/work/shared/data/models/mobilenet_v2-b0353104.pth")


@pytest.fixture(scope="module")
def head_geometry():
    from recon3d.train.texture_data import head_geometry

    return head_geometry()


# ----------------------------------------------------------------------------- network
def test_gated_conv_cardinality() -> None:
    layer = GatedConv2d(5, 7, 3, stride=2)
    assert layer(torch.zeros(2, 5, 16, 16)).shape == (2, 7, 8, 8)


def test_network_cardinality_and_gradients() -> None:
    net = TextureCompletionNet(width=8)
    x = torch.randn(2, IN_CHANNELS, 64, 64, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 3, 64, 64)
    assert float(y.detach().abs().max()) <= 1.0
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    "shape", [(2, IN_CHANNELS - 1, 64, 64), (IN_CHANNELS, 64, 64), (1, IN_CHANNELS, 60, 64)]
)
def test_network_rejects_bad_shapes(shape) -> None:
    with pytest.raises(ValueError, match="expected|multiple of 8"):
        TextureCompletionNet(width=8)(torch.zeros(shape))


@pytest.mark.parametrize("logit, fill", [(-40.0, BASELINE), (40.0, LOCAL)])
def test_blend_weight_selects_a_fill(logit, fill) -> None:
    """Zero correction: the output is the fill the blend weight selects."""
    net = TextureCompletionNet(width=8)
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.constant_(net.out.bias, 0.0)
    net.out.bias.data[3] = logit
    x = torch.rand(1, IN_CHANNELS, 32, 32) * 2 - 1
    torch.testing.assert_close(net(x), x[:, fill])


def test_local_fill_keeps_seen_and_fills_holes() -> None:
    observed = np.zeros((64, 64, 3), np.uint8)
    observed[:, :32] = (200, 100, 50)
    observed[:, 32:] = (20, 40, 60)
    conf = np.ones((64, 64), np.float32)
    conf[20:40, 24:40] = 0  # a hole across the edge between two colours
    holes = observed.copy()
    holes[conf == 0] = 0
    filled = local_fill(holes, conf)
    np.testing.assert_allclose(filled[conf > 0], observed[conf > 0], atol=1e-3)
    # Across the hole, the fill goes from one side's colour to the other's.
    np.testing.assert_allclose(filled[30, 24], (200, 100, 50), atol=6)
    np.testing.assert_allclose(filled[30, 39], (20, 40, 60), atol=30)
    assert (np.diff(filled[30, 24:40, 0]) <= 1e-3).all()
    # Larger than max_size: filled at max_size, seen texels exact at full size.
    big = local_fill(
        np.kron(holes, np.ones((2, 2, 1), np.uint8)), np.kron(conf, np.ones((2, 2))), max_size=64
    )
    assert big.shape == (128, 128, 3)
    np.testing.assert_allclose(
        big[np.kron(conf, np.ones((2, 2))) > 0],
        np.kron(observed, np.ones((2, 2, 1)))[np.kron(conf, np.ones((2, 2))) > 0],
    )


# ------------------------------------------------------------------------------ UV maps
@pytest.mark.parametrize("kind", ["head", "body"])
def test_layout_maps(kind) -> None:
    maps = layout_maps(kind)
    r = NETWORK_SIZE
    assert maps.used.shape == (r, r) and maps.parts.shape == (r, r)
    assert (maps.parts[maps.used] >= 0).all() and (maps.parts[~maps.used] == -1).all()
    assert maps.static_channels.shape == (1 + NUM_PARTS, r, r)
    # Part one-hot: exactly one label on every used texel.
    np.testing.assert_array_equal(maps.static_channels[1:].sum(0), maps.used.astype(np.float32))
    has = np.flatnonzero(maps.mirror >= 0)
    assert len(has) > 0.5 * maps.used.sum()
    # The mirror of a texel lands on a used texel, and mirroring twice mostly comes back nearby.
    assert maps.used.ravel()[maps.mirror[has]].all()
    back = maps.mirror[maps.mirror[has]]
    ok = back >= 0
    dy = np.abs(back[ok] // r - has[ok] // r)
    dx = np.abs(back[ok] % r - has[ok] % r)
    assert np.mean((dy <= 1) & (dx <= 1)) > 0.9


def test_head_layout_level_mirror_maps_mirrored_points() -> None:
    # A lower geometry level of the head takes its mirror map from the full one: a texel and
    # its mirror lie at mirrored points of the mean head (x -> -x).
    from recon3d.models.head import HeadModel

    head = HeadModel.from_pretrained()
    level = head.layout_level(256)
    assert level.size == 256 and level.coarse is None
    mirror = level.mirror[level.used]
    has = mirror >= 0
    assert has.mean() > 0.9
    mean = head.mean_vertices.cpu().numpy()
    texel_face = level.texel_face.ravel()

    def point(flat: np.ndarray) -> np.ndarray:
        index = np.searchsorted(level.used, flat)
        bary = level.used_bary[index]
        return np.einsum("nk,nkd->nd", bary, mean[head.faces[texel_face[flat]]])

    source = level.used[has]
    gap = np.linalg.norm(point(source) * (-1, 1, 1) - point(mirror[has]), axis=1)
    assert np.median(gap) < 0.005


def test_network_inputs_channels(head_geometry) -> None:
    maps = head_geometry.maps
    size = head_geometry.size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    conf = np.zeros((size, size), np.float32)
    conf[: size // 2] = 1.0
    observed = np.where(conf[..., None] > 0, texture, 0).astype(np.uint8)
    x = network_inputs(texture, observed, conf, maps)
    assert x.shape == (IN_CHANNELS, NETWORK_SIZE, NETWORK_SIZE) and x.dtype == np.float32
    conf_r = x[3]
    assert conf_r[~maps.used].max() == 0
    # The mirrored confidence is the confidence at the mirror texel.
    has = np.flatnonzero(maps.mirror >= 0)
    np.testing.assert_allclose(x[7].ravel()[has], conf_r.ravel()[maps.mirror[has]])
    with pytest.raises(ValueError, match="one size"):
        network_inputs(texture, observed, conf[:-1], maps)


@pytest.mark.parametrize("device", DEVICES)
def test_completer_keeps_seen_texels(head_geometry, device) -> None:
    """Whatever the network predicts, well-seen texels keep the photo's colours exactly."""
    torch.manual_seed(0)
    completer = TextureCompleter(TextureCompletionNet(width=8), head_geometry.maps, device)
    size = head_geometry.size
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    conf = np.zeros((size, size), np.float32)
    conf[:, : size // 3] = 0.5
    observed = np.where(conf[..., None] > 0, texture, 0).astype(np.uint8)
    out = completer(texture, observed, conf)
    assert out.shape == texture.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[conf >= 0.25], texture[conf >= 0.25])
    assert (out[conf == 0] != texture[conf == 0]).any()
    if device != "cpu":  # the same network on the CPU: the same texture, float rounding apart
        on_cpu = completer.to("cpu")(texture, observed, conf)
        assert np.abs(out.astype(int) - on_cpu.astype(int)).max() <= 2


# ------------------------------------------------------------------------------- metrics
def test_ssim_and_psnr_known_values() -> None:
    a = np.full((32, 32, 3), 100.0)
    b = np.full((32, 32, 3), 120.0)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, rel=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255.0), rel=1e-9)
    mask = np.zeros((32, 32), bool)
    with pytest.raises(ValueError, match="no pixel"):
        psnr(a, b, mask)


# --------------------------------------------------------------------------- data engine
def test_procedural_texture_is_deterministic(head_geometry) -> None:
    from recon3d.train.texture_data import procedural_texture

    a = procedural_texture(head_geometry, np.random.default_rng(5))
    b = procedural_texture(head_geometry, np.random.default_rng(5))
    c = procedural_texture(head_geometry, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    used = head_geometry.layout.texel_face >= 0
    assert a[used].std() > 5


def test_extra_mask_coverage() -> None:
    from recon3d.train.texture_data import extra_mask

    rng = np.random.default_rng(0)
    mask = extra_mask(256, rng, 0.3)
    assert 0.3 <= mask.mean() < 0.6
    around = np.zeros((256, 256), bool)
    around[100:140, 100:140] = True
    mask = extra_mask(256, rng, 0.5, around=around)
    assert mask[around].mean() >= 0.5


def test_sample_from_synthetic_view(head_geometry) -> None:
    from recon3d.train.texture_data import procedural_texture, random_view, sample_from_partial

    rng = np.random.default_rng(3)
    texture = procedural_texture(head_geometry, rng)
    partial = random_view(head_geometry, texture, rng)
    assert 0.02 < (partial.confidence > 0).mean() < 0.5
    sample = sample_from_partial(partial, head_geometry, rng, truth=texture)
    assert sample.inputs.shape == (IN_CHANNELS, NETWORK_SIZE, NETWORK_SIZE)
    assert (sample.held_out <= sample.valid).all() and sample.held_out.any()
    assert (sample.valid <= head_geometry.maps.used).all()


# -------------------------------------------------------------- differentiable mesh renders
def test_uv_views_match_pyrender(head_geometry) -> None:
    """grid_sample through the rasterised UV maps reproduces pyrender's textured render."""
    from scipy.spatial.transform import Rotation

    from recon3d.models.head import HeadModel
    from recon3d.render.renderer import render_mesh
    from recon3d.train.texture_data import procedural_texture
    from recon3d.train.texture_gan import render_views, uv_views

    model = HeadModel.from_pretrained()
    g = head_geometry
    texture = procedural_texture(g, np.random.default_rng(3))
    size = 96
    views = uv_views(g.vertices, g.faces, model.uv, model.face_uv, n=1, size=size, seed=4)
    tex = torch.from_numpy(texture).permute(2, 0, 1)[None].float() / 127.5 - 1
    tex.requires_grad_(True)
    render = render_views(tex, views, torch.tensor([0]))
    render[:, :3].sum().backward()
    assert tex.grad.abs().sum() > 0  # differentiable with respect to the texture
    ours = ((render[0, :3].detach().permute(1, 2, 0).numpy() + 1) * 127.5).round()
    # The same view with pyrender's textured rasteriser (same random draws as uv_views).
    rng = np.random.default_rng(4)
    rotation = Rotation.from_euler(
        "yx", [rng.uniform(-180, 180), rng.uniform(-30, 30)], degrees=True
    ).as_matrix()
    focal = 2.5 * size
    extent = float(np.ptp(g.vertices, axis=0).max())
    posed = (g.vertices - g.vertices.mean(0)) @ rotation.T + [0, 0, focal * extent * 1.1 / size]
    K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]])
    corners = posed[g.faces].reshape(-1, 3)
    reference = render_mesh(
        corners,
        np.arange(len(corners)).reshape(-1, 3),
        K,
        (size, size),
        uv=model.uv[model.face_uv].reshape(-1, 2),
        texture=texture,
        background=(0, 0, 0),
    ).color
    inside = views.mask[0, 0].numpy() > 0
    assert inside.mean() > 0.1
    assert np.abs(ours[inside] - reference[inside]).mean() < 12


# -------------------------------------------------------------------------------- trainer
@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory, head_geometry):
    from recon3d.train.texture_data import (
        procedural_texture,
        random_view,
        sample_from_partial,
        save_shard,
    )

    folder = tmp_path_factory.mktemp("texture_shards")
    samples = []
    for i in range(2):
        rng = np.random.default_rng(i)
        texture = procedural_texture(head_geometry, rng)
        partial = random_view(head_geometry, texture, rng)
        samples.append(sample_from_partial(partial, head_geometry, rng, truth=texture))
    save_shard(folder / "shard_0000.npz", samples)
    return folder


def _train_command(data, out, steps: int, device: str = "cpu") -> list[str]:
    return [
        str(ROOT / "scripts" / "train_texture_net.py"),
        "--device",
        device,
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "1",
        "--width",
        "4",
        "--views",
        "2",
        "--view-size",
        "32",
        "--checkpoint-every",
        "2",
    ]


@pytest.mark.skipif(not MOBILENET.exists(), reason="needs the MobileNetV2 file in ../shared")
@pytest.mark.parametrize("device", DEVICES)
def test_train_checkpoint_and_resume(tiny_shards, tmp_path, device) -> None:
    from safetensors import safe_open

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    first = subprocess.run(
        [sys.executable, *_train_command(tiny_shards, out, 2, device)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "step 2" in first.stderr
    second = subprocess.run(
        [sys.executable, *_train_command(tiny_shards, out, 4, device)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from step 2" in second.stderr and "step 4" in second.stderr
    with safe_open(str(out / "texture_net.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "4"


@pytest.mark.slow
@pytest.mark.skipif(not MOBILENET.exists(), reason="needs the MobileNetV2 file in ../shared")
def test_torchrun_two_processes(tiny_shards, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            *_train_command(tiny_shards, out, 2),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "texture_net.safetensors").exists()


# ---------------------------------------------------------------------------- pipelines
def test_reconstruct_raw_texture_has_visibility_alpha(grace, data_dir) -> None:
    """``complete_texture=False``: RGBA projection; the default completes only what the photo
    did not see well, keeping the photo's colours where it did."""
    from recon3d import reconstruct

    raw = reconstruct(data_dir / "grace_hopper.jpg", target="head", complete_texture=False)
    assert raw.texture.shape == (*grace.texture.shape[:2], 4)
    assert grace.texture.shape[2] == 3
    alpha = raw.texture[..., 3]
    expected = np.round(np.minimum(raw.texture_confidence * 4, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(alpha, expected)
    assert (raw.texture[..., :3][raw.texture_confidence == 0] == 0).all()
    seen = alpha == 255
    assert 0.02 < seen.mean() < 0.6
    np.testing.assert_array_equal(grace.texture[seen], raw.texture[..., :3][seen])
    # The completed texture is not the raw one where nothing was seen.
    unseen = (alpha == 0) & (raw.texture_confidence == 0)
    assert grace.texture[unseen].mean() > 20
