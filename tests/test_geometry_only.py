"""Geometry-only reconstruction (``texture=False``): the same mesh, no texture stages, and every
consumer of a result either works without a texture or says clearly that it needs one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import glb_json
from test_exchange import _validate, gltf_validator  # noqa: F401 - the fixture is used below

from recon3d import reconstruct
from recon3d.batch import reconstruct_many
from recon3d.errors import UnsupportedTargetError
from recon3d.pipeline import GEOMETRY_STAGES, STAGES

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def head_geometry():
    return reconstruct(DATA / "grace_hopper.jpg", target="head", texture=False)


@pytest.fixture(scope="module")
def body_pair():
    """The network-only body of one photo with and without its texture."""
    return tuple(
        reconstruct(DATA / "biden.jpg", target="body", refine=False, texture=texture)
        for texture in (True, False)
    )


def test_head_geometry_is_the_textured_mesh(grace, head_geometry) -> None:
    assert grace.has_texture and not head_geometry.has_texture
    assert head_geometry.texture is None and head_geometry.texture_confidence is None
    np.testing.assert_array_equal(head_geometry.vertices, grace.vertices)
    np.testing.assert_array_equal(head_geometry.faces, grace.faces)
    assert tuple(head_geometry.timings) == GEOMETRY_STAGES
    assert tuple(grace.timings) == STAGES
    assert "texture=None" in repr(head_geometry)


def test_body_geometry_is_the_textured_mesh(body_pair) -> None:
    textured, geometry = body_pair
    np.testing.assert_array_equal(geometry.vertices, textured.vertices)
    np.testing.assert_array_equal(geometry.skeleton.joints, textured.skeleton.joints)
    assert geometry.texture is None and set(geometry.timings) == set(GEOMETRY_STAGES)
    assert geometry.person_mask is not None


def test_refined_body_geometry_is_the_textured_mesh() -> None:
    textured = reconstruct(DATA / "camera.png", target="body")
    geometry = reconstruct(DATA / "camera.png", target="body", texture=False)
    np.testing.assert_array_equal(geometry.vertices, textured.vertices)


def test_auto_target_passes_texture_through() -> None:
    rec = reconstruct(DATA / "obama.jpg", texture=False)
    assert rec.target == "head" and rec.texture is None


@pytest.mark.parametrize("ext", [".obj", ".glb", ".ply"])
def test_export_round_trip_without_texture(head_geometry, tmp_path, ext) -> None:
    written = head_geometry.export(tmp_path / f"head{ext}")
    assert [p.name for p in written] == [f"head{ext}"]  # no .mtl or .png beside an OBJ
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"head{ext}"]
    loaded = trimesh.load(written[0], force="mesh", process=False)
    # Not split at UV seams: the model's own vertices and faces.
    assert len(loaded.vertices) == len(head_geometry.vertices)
    expected = head_geometry.vertices.astype(np.float64)
    if ext == ".glb":  # exported in glTF's y-up frame
        expected = expected * [1, -1, -1]
    np.testing.assert_allclose(loaded.vertices, expected, atol=1e-5)
    np.testing.assert_array_equal(loaded.faces, head_geometry.faces)
    assert not isinstance(loaded.visual, trimesh.visual.TextureVisuals) or (
        getattr(loaded.visual.material, "image", None) is None
        and getattr(loaded.visual.material, "baseColorTexture", None) is None
    )


def test_untextured_body_glb_carries_the_rig(body_pair, tmp_path, gltf_validator) -> None:  # noqa: F811
    _, geometry = body_pair
    (path,) = geometry.export(tmp_path / "body.glb")
    gltf = glb_json(path)
    attributes = gltf["meshes"][0]["primitives"][0]["attributes"]
    assert {"JOINTS_0", "WEIGHTS_0", "POSITION"} <= set(attributes)
    assert "TEXCOORD_0" not in attributes and not gltf.get("images")
    assert len(gltf["skins"][0]["joints"]) == len(geometry.skeleton.names)
    assert _validate(path, gltf_validator)["numErrors"] == 0


def test_pictures_without_texture(head_geometry) -> None:
    view = head_geometry.render(yaw=30, size=96)
    np.testing.assert_array_equal(view, head_geometry.render(yaw=30, size=96, shading="geometry"))
    assert (view < 250).any(axis=2).mean() > 0.1
    strip = head_geometry.preview(size=64)
    assert strip.shape == (64, 5 * 64, 3)


@pytest.mark.parametrize("call", ["render", "overlay"])
def test_texture_shading_needs_a_texture(head_geometry, call) -> None:
    with pytest.raises(UnsupportedTargetError, match="texture=False"):
        getattr(head_geometry, call)(shading="texture")


def test_overlay_rejects_unknown_shading(grace) -> None:
    with pytest.raises(ValueError, match="shading"):
        grace.overlay(shading="wireframe")


def test_reposing_needs_a_texture(body_pair) -> None:
    _, geometry = body_pair
    with pytest.raises(UnsupportedTargetError, match="textured"):
        geometry.repose(np.zeros((1, 3)), progress=False)


def test_cli_no_texture(tmp_path) -> None:
    from recon3d.cli import main

    out = tmp_path / "head.obj"
    argv = ["reconstruct", str(DATA / "obama.jpg"), "-o", str(out), "--target", "head", "-q"]
    assert main([*argv, "--no-texture"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.obj"]
    out.unlink()
    assert main([*argv, "--no-texture", "--raw-texture"]) == 2
    assert not any(tmp_path.iterdir())


def test_batch_without_texture(tmp_path) -> None:
    result = reconstruct_many(
        [DATA / "obama.jpg"], output_dir=tmp_path, target="head", texture=False
    )
    assert result.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obama.obj"]
