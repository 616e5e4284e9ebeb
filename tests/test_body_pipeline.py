"""Full-body reconstruction of real photos: silhouette, keypoints, target choice, rig export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import glb_json
from test_exchange import _validate, gltf_validator  # noqa: F401 - the fixture is used below

from recon3d import NoPersonFound, reconstruct
from recon3d.metrics import keypoint_pck, landmark_error, silhouette_iou

DATA = Path(__file__).resolve().parent / "data"
BODY_PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png")


@pytest.fixture(scope="session")
def body_reconstructions() -> dict:
    return {name: reconstruct(DATA / name, target="body") for name in BODY_PHOTOS}


@pytest.mark.parametrize("name", BODY_PHOTOS)
def test_silhouette_and_keypoints(body_reconstructions, name) -> None:
    rec = body_reconstructions[name]
    assert rec.target == "body"
    iou = silhouette_iou(rec)
    pck = keypoint_pck(rec, 0.1)
    print(f"{name}: silhouette IoU {iou:.3f}, PCK@0.1 {pck:.3f}")
    assert iou >= 0.80
    assert pck >= 0.90


@pytest.mark.parametrize("name", BODY_PHOTOS)
def test_result_cardinality(body_reconstructions, name) -> None:
    rec = body_reconstructions[name]
    h, w = rec.image.shape[:2]
    assert rec.vertices.shape == (13718, 3) and rec.vertices.dtype == np.float32
    assert rec.uv.shape == (len(rec.faces), 3, 2)
    assert rec.texture.shape == (2048, 2048, 3) and rec.texture.dtype == np.uint8
    assert rec.texture_confidence.shape == (2048, 2048)
    assert rec.keypoints.shape == (33, 3)
    assert rec.person_mask.shape == (h, w)
    assert rec.landmarks_2d().shape == (17, 2)  # coco17 by default for bodies
    assert rec.landmarks_3d("coco_wholebody23").shape == (23, 3)
    assert rec.skeleton is not None and len(rec.skeleton.names) == 104
    assert 1.4 < rec.params["height_m"] < 2.1
    assert set(rec.timings) >= {"decode", "front end", "fit", "texture"}
    # In front of the camera, a few metres away.
    assert 1.0 < np.median(rec.vertices[:, 2]) < 15.0
    with pytest.raises(ValueError, match="landmark scheme"):
        rec.landmarks_2d("ibug68")


def test_texture_reproduces_the_photo(body_reconstructions) -> None:
    """The textured mesh seen from the photo's camera looks like the photo inside the person
    (mean absolute difference over the mask), and most texels of the front are seen."""
    rec = body_reconstructions["obama3.jpg"]
    import cv2

    rendered = rec.overlay(alpha=1.0, shading="texture")
    h, w = rendered.shape[:2]
    photo = cv2.resize(rec.image, (w, h), interpolation=cv2.INTER_AREA).astype(float)
    mask = cv2.resize(rec.person_mask, (w, h)) > 0.9
    mask = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    covered = mask & (np.abs(rendered.astype(float) - 255).sum(-1) > 0)
    diff = np.abs(rendered.astype(float) - photo).mean(-1)[covered]
    assert np.median(diff) < 12
    assert (rec.texture_confidence > 0).mean() > 0.15


def test_upper_body_photo_gives_a_standing_body() -> None:
    rec = reconstruct(DATA / "astronaut.png", target="body")
    kp = rec.landmarks_3d("coco17")
    hips = kp[11:13].mean(0)
    ankles = kp[15:17].mean(0)
    leg = ankles - hips
    # Legs hang: the ankles are ~0.8 m below the hips, along the image's down direction.
    assert 0.6 < np.linalg.norm(leg) < 1.1
    assert leg[1] / np.linalg.norm(leg) > 0.9
    assert keypoint_pck(rec) >= 0.9
    # An adult's height, though the photo does not show it (the network alone guessed 1.3 m).
    assert 1.5 < rec.params["height_m"] < 2.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("obama3.jpg", "body"), ("astronaut.png", "head"), ("obama2.jpg", "head")],
)
def test_auto_target(name, expected) -> None:
    rec = reconstruct(DATA / name)
    assert rec.target == expected
    assert "front end" in rec.timings


def test_no_person_raises() -> None:
    blank = np.full((400, 300, 3), 127, np.uint8)
    with pytest.raises(NoPersonFound):
        reconstruct(blank, target="body")


def test_person_index_out_of_range() -> None:
    with pytest.raises(NoPersonFound, match="person_index=3"):
        reconstruct(DATA / "biden.jpg", target="body", person_index=3)


def test_landmark_error_for_bodies(body_reconstructions) -> None:
    px, fraction = landmark_error(body_reconstructions["obama3.jpg"])
    assert 0 < px and fraction < 0.08


@pytest.mark.parametrize("name", ["obama3.jpg", "biden.jpg"])
def test_face_mesh_pulls_the_head(body_reconstructions, name) -> None:
    """With the face visible, the body's face-mesh points land on MediaPipe's within 6 % of the
    face size (about 12 % without the face term)."""
    rec = body_reconstructions[name]
    face = rec.params["face_landmarks"]
    assert face is not None and face.shape == (478, 3)
    error = np.linalg.norm(rec.landmarks_2d("mediapipe478") - face[:, :2], axis=1).mean()
    assert error / np.ptp(face[:, :2], axis=0).max() < 0.06


def test_glb_export_carries_the_rig(body_reconstructions, tmp_path, gltf_validator) -> None:  # noqa: F811
    rec = body_reconstructions["biden.jpg"]
    (path,) = rec.export(tmp_path / "body.glb")
    gltf = glb_json(path)
    (skin,) = gltf["skins"]
    assert len(skin["joints"]) == 104
    names = [gltf["nodes"][j]["name"] for j in skin["joints"]]
    assert names[0] == "root" and "lowerarm01.L" in names
    attributes = gltf["meshes"][0]["primitives"][0]["attributes"]
    assert {"JOINTS_0", "WEIGHTS_0", "POSITION", "TEXCOORD_0"} <= set(attributes)
    issues = _validate(path, gltf_validator)
    assert issues["numErrors"] == 0


def test_obj_export_round_trip(body_reconstructions, tmp_path) -> None:
    rec = body_reconstructions["camera.png"]
    written = rec.export(tmp_path / "body.obj")
    assert [p.suffix for p in written] == [".obj", ".mtl", ".png"]
    loaded = trimesh.load(written[0], process=False, force="mesh")
    mesh = rec.to_trimesh()
    assert len(loaded.faces) == len(rec.faces)
    np.testing.assert_allclose(
        np.sort(loaded.vertices, axis=0), np.sort(mesh.vertices, axis=0), atol=1e-5
    )


def test_keypoint_error_is_the_fits_own_and_measures_the_network_alone(
    body_reconstructions,
) -> None:
    from recon3d.fitting.body_fit import keypoint_error
    from recon3d.pipeline import default_body_pipeline

    pipe = default_body_pipeline()
    rec = body_reconstructions["camera.png"]
    person = pipe.detect(rec.image)
    error, scale = keypoint_error(
        pipe.model,
        rec.vertices,
        person,
        rec.camera.K,
        hands=rec.params["hand_landmarks"],
        options=pipe.refine_options,
    )
    assert error == rec.params["keypoint_error_px"]
    assert scale == rec.params["torso_length_px"]
    alone = pipe(DATA / "camera.png", refine=False, texture=False)
    # The detectors only the fit uses do not run for the network's estimate alone.
    assert alone.params["face_landmarks"] is None and alone.params["hand_landmarks"] is None
    assert rec.params["face_landmarks"] is not None
    assert np.isfinite(alone.params["keypoint_error_px"])
    assert alone.params["torso_length_px"] == scale
    # The refinement fits the keypoints; the network alone lands near them too.
    assert error < alone.params["keypoint_error_px"] < 0.2 * scale
    with pytest.raises(ValueError, match=r"vertices of shape"):
        keypoint_error(pipe.model, rec.vertices[:10], person, rec.camera.K)
    with pytest.raises(ValueError, match=r"K of shape"):
        keypoint_error(pipe.model, rec.vertices, person, np.eye(4))
