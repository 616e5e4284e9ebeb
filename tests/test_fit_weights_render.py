"""Landmark fit on synthetic heads; weights integrity; renderer conventions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import DEVICES, synthetic_face

from recon3d.camera import Camera
from recon3d.errors import CorruptedWeightsError, MissingWeightsError
from recon3d.fitting.head_fit import fit_head
from recon3d.models.head import HeadModel, interpolate_surface
from recon3d.render.renderer import render_mesh
from recon3d.weights import load_arrays, verified_path, weights_dir

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return HeadModel.from_pretrained()


def _procrustes_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean vertex distance after the similarity transform that best aligns a to b."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, s, vt = np.linalg.svd(a0.T @ b0)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1, 1, d]) @ vt
    scale = (s * [1, 1, d]).sum() / (a0**2).sum()
    return float(np.linalg.norm(scale * a0 @ rot - b0, axis=1).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_a_synthetic_head(model, seed):
    camera = Camera.from_image_size(640, 640)
    landmarks, truth = synthetic_face(model, seed, camera)
    fit = fit_head(model, landmarks, camera.K)
    with torch.no_grad():
        verts = model.vertices(
            torch.from_numpy(fit.identity)[None], torch.from_numpy(fit.expression)[None]
        )[0].numpy()
    fitted = verts @ fit.rotation.T + fit.translation
    assert fit.reprojection_error_px < 1.0
    # Shape after similarity alignment: within 3.5 mm on average (landmarks constrain the face,
    # the priors the rest of the skull; the mean shape is ~4.8 mm off).
    assert _procrustes_error(fitted, truth) < 0.0035
    # The mean shape alone is measurably worse: the fit does recover identity.
    mean_shape = model.mean_vertices.numpy()
    assert _procrustes_error(fitted, truth) < _procrustes_error(mean_shape, truth)
    assert ((fit.expression >= 0) & (fit.expression <= 1)).all()


def test_model_vertices_shapes_and_errors(model):
    v = model.vertices(torch.zeros(2, model.num_identity), torch.zeros(2, model.num_expression))
    assert v.shape == (2, model.num_vertices, 3)
    with pytest.raises(ValueError, match=r"\(B, 60\)"):
        model.vertices(torch.zeros(2, 5), torch.zeros(2, model.num_expression))
    assert len(model.expression_labels) == model.num_expression == 52


def test_mean_head_is_symmetric_and_upright(model):
    v = model.mean_vertices.numpy()
    # Face looks towards -z, y points down: the nose tip is the most forward point, near x = 0,
    # and sits above the chin.
    nose = v[np.argmin(v[:, 2])]
    assert abs(nose[0]) < 0.005
    ib = interpolate_surface(v, model.faces, model.landmarks["ibug68"])
    assert ib[8, 1] > ib[30, 1]  # chin below nose (y down)
    assert ib[36, 0] < ib[45, 0]  # eye 36 on the viewer's left when facing the camera


def test_weights_manifest_lists_every_file_with_its_hash():
    folder = weights_dir()
    path = verified_path("head_model.safetensors")
    assert path.parent == folder


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(weights_dir(), folder)
    monkeypatch.setenv("RECON3D_WEIGHTS", str(folder))
    return folder


def test_corrupted_weights_are_refused(weights_copy):
    target = weights_copy / "head_model.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptedWeightsError, match="sha256.*git checkout"):
        load_arrays("head_model.safetensors")


def test_truncated_weights_are_refused(weights_copy):
    target = weights_copy / "head_model.safetensors"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(CorruptedWeightsError, match="truncated"):
        verified_path("head_model.safetensors")


def test_missing_weights_are_reported(weights_copy):
    (weights_copy / "head_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="head_model.safetensors"):
        verified_path("head_model.safetensors")
    (weights_copy / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptedWeightsError, match="JSON"):
        verified_path("head_model.safetensors")


@pytest.mark.parametrize("principal_offset", [(0.0, 0.0), (30.0, -25.0), (-12.0, 40.0)])
def test_renderer_matches_opencv_projection(principal_offset):
    """The rasterised triangle covers exactly the pixel centres inside its OpenCV projection,
    also with a principal point away from the image centre."""
    camera = Camera.from_image_size(320, 240)
    K = camera.K.copy()
    K[:2, 2] += principal_offset
    camera = Camera(K=K, width=320, height=240)
    tri = np.array([[-0.05, -0.04, 1.0], [0.06, -0.02, 1.0], [0.0, 0.05, 1.0]])
    # Counter-clockwise as seen by the camera in OpenGL's y-up frame: a front face.
    white = np.full((3, 3), 255, np.uint8)
    out = render_mesh(
        tri, np.array([[0, 2, 1]]), camera.K, (320, 240), vertex_colors=white, background=(0, 0, 0)
    )
    a, b, c = camera.project(tri)
    ys, xs = np.mgrid[0:240, 0:320]
    p = np.stack([xs, ys], -1).astype(np.float64)

    def side(p0, p1):
        return (p1[0] - p0[0]) * (p[..., 1] - p0[1]) - (p1[1] - p0[1]) * (p[..., 0] - p0[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    exact = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    # Colour is resolved over the multisample pattern: a pixel is drawn when half covered. (The
    # depth buffer holds one sub-sample, up to ~0.4 px off the pixel centre.)
    drawn = out.color.mean(-1) > 127
    # Edge pixels may differ (multisampling); the interior must agree.
    assert (drawn != exact).sum() <= 0.06 * exact.sum()
    # A half-pixel convention error would move the centroid by 0.5 px.
    np.testing.assert_allclose(np.argwhere(drawn).mean(0), np.argwhere(exact).mean(0), atol=0.1)
    np.testing.assert_allclose(out.depth[out.depth > 0], 1.0, atol=1e-4)


@pytest.mark.parametrize("shift", [(0.0, 0.0, 2.0), (0.25, -0.2, 2.0), (0.0, 0.0, 0.5)])
def test_depth_rendered_in_the_mesh_window_equals_the_whole_frame(shift):
    """The texture's visibility depth is rendered only where the mesh projects; there it holds
    the whole frame's depth and elsewhere nothing. Shifts: centred, near a corner, and so close
    that the mesh overflows the frame (the window is clipped to it)."""
    import trimesh

    from recon3d.texture.projection import _depth_in_window

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
    vertices = sphere.vertices + np.asarray(shift)
    camera = Camera.from_image_size(320, 240)
    whole = render_mesh(vertices, sphere.faces, camera.K, (320, 240), depth_only=True).depth
    window = _depth_in_window(vertices, sphere.faces, camera)
    assert window.shape == whole.shape
    assert (window > 0).sum() > 100
    same = (window > 0) == (whole > 0)
    assert (~same).sum() <= 0.01 * (whole > 0).sum()
    both = (window > 0) & (whole > 0)
    np.testing.assert_allclose(window[both], whole[both], rtol=1e-4)


def test_depth_window_falls_back_to_the_whole_frame_behind_the_camera():
    """A mesh reaching behind the camera projects anywhere: the whole frame is rendered."""
    import trimesh

    from recon3d.texture.projection import _depth_in_window

    # A long box beside the camera, from behind it to 3.5 m ahead; its near side faces it.
    box = trimesh.creation.box(extents=(0.5, 0.5, 4.0))
    vertices = box.vertices + np.array([0.6, 0.0, 1.5])
    camera = Camera.from_image_size(320, 240)
    whole = render_mesh(vertices, box.faces, camera.K, (320, 240), depth_only=True).depth
    assert (whole > 0).sum() > 100
    np.testing.assert_array_equal(_depth_in_window(vertices, box.faces, camera), whole)


def test_fit_refines_from_an_initial_estimate(model):
    """The path a trained network will use: start from an estimate, refine with the same energy."""
    camera = Camera.from_image_size(640, 640)
    landmarks, truth = synthetic_face(model, 7, camera)
    first = fit_head(model, landmarks, camera.K)
    refined = fit_head(model, landmarks, camera.K, init=first)
    assert refined.reprojection_error_px <= first.reprojection_error_px + 0.05
    np.testing.assert_allclose(refined.translation, first.translation, atol=0.01)


@pytest.mark.parametrize("device", DEVICES)
def test_pipeline_runs_on_device(device):
    from recon3d.pipeline import HeadReconstructionPipeline

    pipe = HeadReconstructionPipeline.from_pretrained(device=device)
    assert pipe.device.type == device
    rec = pipe(DATA / "astronaut.png")
    assert rec.vertices.dtype == np.float32 and np.isfinite(rec.vertices).all()
    assert rec.params["reprojection_error_px"] < 3.0
