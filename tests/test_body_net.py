"""The body network: shapes, rotation representation, camera round trip, and distributed
training on a tiny synthetic shard (torchrun, 2 CPU processes, gloo)."""

from __future__ import annotations

import dataclasses
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
    mirror_person,
    mirror_pose,
    predict_fit,
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


def test_image_branch_shapes_and_errors() -> None:
    """A network built with an image crop reads (B, 3, S, S) and says what it expects."""
    net = BodyRegressor(width=16, image_size=32)
    inputs = (torch.zeros(2, 33, 3), torch.zeros(2, 33, 3), torch.zeros(2, 1, 32, 32))
    out = net(*inputs, torch.rand(2, 3, 32, 32))
    assert out["rotations"].shape == (2, 19, 3, 3) and out["shape"].shape == (2, 16)
    assert net.config()["image_size"] == 32 and "image_size" not in BodyRegressor().config()
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\), got None"):
        net(*inputs)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\), got \(2, 3, 64, 64\)"):
        net(*inputs, torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="reads no image"):
        BodyRegressor(width=16)(*inputs, torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 16"):
        BodyRegressor(image_size=40)


def test_image_crop_is_the_square_of_the_mask() -> None:
    """The image crop and the mask crop cover the same square: a photo painted white where the
    mask is gives a crop that agrees with the mask crop."""
    import cv2

    from recon3d.models.body_net import network_inputs

    person = _person(3)
    image = np.repeat((person.mask * 255).astype(np.uint8)[..., None], 3, -1)
    inputs = network_inputs(person, image, 64)
    assert inputs["image"].shape == (64, 64, 3) and inputs["image"].dtype == np.uint8
    assert "image" not in network_inputs(person)
    mask = cv2.resize(inputs["mask"], (64, 64), interpolation=cv2.INTER_LINEAR) / 255.0
    crop = inputs["image"][..., 0] / 255.0
    assert np.abs(crop - mask).mean() < 0.05
    with pytest.raises(ValueError, match="mask's size"):
        network_inputs(person, image[:-1], 64)


def test_image_network_estimate_is_mirror_equivariant_and_needs_the_photo() -> None:
    """With an image crop the mirror augmentation still gives the mirrored estimate for the
    mirrored photo (the mirrored pass sees the mirrored crop), and the crop matters."""
    import cv2

    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import network_inputs

    torch.manual_seed(0)
    model = BodyModel.from_pretrained()
    net = BodyRegressor(image_size=32).eval()
    with torch.no_grad():
        net.head.weight.mul_(1000)  # the initial head is nearly constant by design
    person = _person(2)
    noise = np.random.default_rng(0).uniform(0, 255, (*person.mask.shape, 3)).astype(np.float32)
    image = np.clip(cv2.GaussianBlur(noise, (0, 0), 6) * 4 - 384, 0, 255).astype(np.uint8)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    crop = network_inputs(person, image, 32)["image"].astype(np.float32)
    crop_of_mirror = network_inputs(mirror_person(person), mirrored, 32)["image"]
    assert np.abs(crop[:, ::-1] - crop_of_mirror).max() <= 1  # rounding to uint8 alone
    K = np.array([[150.0, 0, 45], [0, 150.0, 60], [0, 0, 1]])
    options = {"align": "none", "limbs": "network"}
    fit = predict_fit(net, model, person, K, image=image, **options)
    fit_of_mirror = predict_fit(net, model, mirror_person(person), K, image=mirrored, **options)
    np.testing.assert_allclose(mirror_pose(model, fit.pose), fit_of_mirror.pose, atol=1e-5)
    np.testing.assert_allclose(fit.shape, fit_of_mirror.shape, atol=1e-5)
    other = predict_fit(net, model, person, K, image=255 - image, **options)
    assert np.abs(other.pose - fit.pose).max() > 1e-4
    with pytest.raises(ValueError, match="pass the photo"):
        predict_fit(net, model, person, K, **options)


def _person(seed: int):
    from recon3d.keypoints.mediapipe_pose import BodyLandmarks

    rng = np.random.default_rng(seed)
    mask = np.zeros((120, 90), np.float32)
    mask[10:110, 20:60] = 1.0
    return BodyLandmarks(
        points=rng.uniform([20, 10], [60, 110], (33, 2)).astype(np.float32),
        visibility=rng.uniform(0, 1, 33).astype(np.float32),
        world=rng.normal(0, 0.4, (33, 3)).astype(np.float32),
        mask=mask,
        box=np.array([20, 10, 60, 110], np.float32),
    )


def test_mirror_person_is_an_involution_and_exchanges_sides() -> None:
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    person = _person(0)
    mirrored = mirror_person(person)
    left, right = POSE_LANDMARKS.index("left_wrist"), POSE_LANDMARKS.index("right_wrist")
    assert mirrored.points[left, 0] == pytest.approx(90 - person.points[right, 0])
    assert mirrored.world[left, 0] == pytest.approx(-person.world[right, 0])
    np.testing.assert_array_equal(mirrored.box, [30, 10, 70, 110])
    twice = mirror_person(mirrored)
    for field in ("points", "visibility", "world", "mask", "box"):
        np.testing.assert_allclose(getattr(twice, field), getattr(person, field), atol=1e-5)


def test_mirror_pose_gives_the_mirror_image_of_the_posed_body() -> None:
    """Posing with the mirrored pose gives the reflection (x -> -x) of the posed mesh, vertex
    for vertex (the mesh is left-right symmetric; the twin of a vertex is its reflection's
    nearest neighbour)."""
    from scipy.spatial import cKDTree

    from recon3d.fitting.body_fit import FREE_BONES
    from recon3d.models.body import BodyModel

    model = BodyModel.from_pretrained()
    rest = model.mean_vertices.numpy()
    _, twin = cKDTree(rest).query(rest * [-1, 1, 1])
    rng = np.random.default_rng(1)
    pose = np.zeros((model.num_joints, 3), np.float32)
    for name in FREE_BONES:
        pose[model.bone(name)] = rng.normal(0, 0.5, 3)
    shape = torch.as_tensor(rng.normal(0, 1, (1, model.num_shape)), dtype=torch.float32)
    with torch.no_grad():
        posed = model(shape, torch.as_tensor(pose)[None]).vertices[0].numpy()
        mirrored = model(shape, torch.as_tensor(mirror_pose(model, pose))[None]).vertices[0]
    np.testing.assert_allclose(mirrored.numpy()[twin] * [-1, 1, 1], posed, atol=1e-3)
    np.testing.assert_allclose(mirror_pose(model, mirror_pose(model, pose)), pose)


def test_mirror_averaged_estimate_is_mirror_equivariant() -> None:
    """With the mirror test-time augmentation, the estimate for the mirrored person is the
    mirror of the estimate (any weights, here random ones)."""
    from recon3d.models.body import BodyModel

    torch.manual_seed(0)
    model = BodyModel.from_pretrained()
    net = BodyRegressor().eval()
    person = _person(2)
    K = np.array([[150.0, 0, 45], [0, 150.0, 60], [0, 0, 1]])
    fit = predict_fit(net, model, person, K, align="none", limbs="network")
    fit_of_mirror = predict_fit(net, model, mirror_person(person), K, align="none", limbs="network")
    np.testing.assert_allclose(mirror_pose(model, fit.pose), fit_of_mirror.pose, atol=1e-4)
    np.testing.assert_allclose(fit.shape, fit_of_mirror.shape, atol=1e-5)
    single = predict_fit(net, model, person, K, align="none", limbs="network", mirror=False)
    assert not np.allclose(single.pose, fit.pose, atol=1e-4)


def _landmarks_of(model, shape, pose, person):
    """``person`` with world landmarks taken from the body posed with ``pose``."""
    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    with torch.no_grad():
        out = model(torch.as_tensor(shape)[None], torch.as_tensor(pose)[None])
    kp = model.keypoints(out.vertices)[0].numpy()
    world = person.world.copy()
    for name, target in MEDIAPIPE_TO_MODEL.items():
        world[POSE_LANDMARKS.index(name)] = kp[model.keypoint(target)]
    return dataclasses.replace(person, world=world)


def _projected_keypoints(model, shape, pose, translation, K) -> np.ndarray:
    """(K, 2) pixels of the model's keypoints for ``pose`` placed at ``translation``."""
    with torch.no_grad():
        out = model(torch.as_tensor(shape)[None], torch.as_tensor(pose)[None])
    uv = (model.keypoints(out.vertices)[0].numpy().astype(np.float64) + translation) @ K.T
    return uv[:, :2] / uv[:, 2:]


def _photo_landmarks(model, projected: np.ndarray) -> np.ndarray:
    """(33, 2) MediaPipe landmarks at the projected model keypoints they correspond to."""
    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    points = np.zeros((33, 2), np.float32)
    for name, target in MEDIAPIPE_TO_MODEL.items():
        points[POSE_LANDMARKS.index(name)] = projected[model.keypoint(target)]
    return points


def test_align_limbs_points_seen_limbs_along_the_landmarks() -> None:
    """Seen limbs end up along MediaPipe's world directions; a limb with an unseen end keeps
    its pose; the twist about the bone axis is kept (the swing is the smallest rotation)."""
    from recon3d.fitting.body_fit import FREE_BONES, MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import align_limbs

    model = BodyModel.from_pretrained()
    rng = np.random.default_rng(3)
    pose = np.zeros((model.num_joints, 3), np.float32)
    truth = np.zeros((model.num_joints, 3), np.float32)
    for name in FREE_BONES:
        pose[model.bone(name)] = rng.normal(0, 0.3, 3)
        truth[model.bone(name)] = pose[model.bone(name)]
    for name in ("upperarm01.L", "lowerarm01.R", "upperleg01.L"):
        truth[model.bone(name)] = rng.normal(0, 0.6, 3)
    for side in "LR":  # knees bent forwards, as knees do
        truth[model.bone(f"lowerleg01.{side}")] = [0.9, 0.0, 0.0]
    shape = np.zeros(model.num_shape, np.float32)
    visibility = np.ones(33, np.float32)
    visibility[POSE_LANDMARKS.index("right_ankle")] = 0.1  # the right shin is unseen
    person = dataclasses.replace(
        _landmarks_of(model, shape, truth, _person(4)), visibility=visibility
    )
    aligned = align_limbs(model, person, shape, pose)

    def keypoints(p):
        with torch.no_grad():
            out = model(torch.as_tensor(shape)[None], torch.as_tensor(p)[None])
        return model.keypoints(out.vertices)[0].numpy().astype(np.float64)

    kp = keypoints(aligned)
    for a, b in (
        ("left_shoulder", "left_elbow"),
        ("right_elbow", "right_wrist"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
    ):
        posed = (
            kp[model.keypoint(MEDIAPIPE_TO_MODEL[b])] - kp[model.keypoint(MEDIAPIPE_TO_MODEL[a])]
        )
        target = person.world[POSE_LANDMARKS.index(b)] - person.world[POSE_LANDMARKS.index(a)]
        cosine = posed @ target / np.linalg.norm(posed) / np.linalg.norm(target)
        # Keypoints are vertex regressors: the forearm moves the elbow keypoint a little.
        assert cosine > 0.99, (a, b, cosine)
    shin = model.bone("lowerleg01.R")
    np.testing.assert_allclose(aligned[shin], pose[shin])
    # Twist kept: the swing of the upper arm (whose parent does not move) is a rotation about
    # an axis perpendicular to the posed limb.
    import cv2

    with torch.no_grad():
        before = model(torch.as_tensor(shape)[None], torch.as_tensor(pose)[None]).rotations[0]
        after = model(torch.as_tensor(shape)[None], torch.as_tensor(aligned)[None]).rotations[0]
    arm = model.bone("upperarm01.L")
    swing = cv2.Rodrigues((after[arm] @ before[arm].T).numpy().astype(np.float64))[0].ravel()
    # The limb as the alignment sees it: keypoints posed on the regressor's vertex subset.
    with torch.no_grad():
        kp_before = model.posed_keypoints(torch.as_tensor(shape)[None], torch.as_tensor(pose)[None])
    kp_before = kp_before[0][0].numpy().astype(np.float64)
    limb = (
        kp_before[model.keypoint(MEDIAPIPE_TO_MODEL["left_elbow"])]
        - kp_before[model.keypoint(MEDIAPIPE_TO_MODEL["left_shoulder"])]
    )
    assert np.linalg.norm(swing) > 0.1
    assert abs(swing @ limb) / np.linalg.norm(swing) / np.linalg.norm(limb) < 1e-4


def test_align_limbs_never_bends_a_knee_backwards() -> None:
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import align_limbs

    model = BodyModel.from_pretrained()
    shape = np.zeros(model.num_shape, np.float32)
    pose = np.zeros((model.num_joints, 3), np.float32)
    shin = model.bone("lowerleg01.L")
    pose[shin] = [0.2, 0.0, 0.0]
    hyperextended = pose.copy()
    hyperextended[shin] = [-0.5, 0.0, 0.0]
    person = dataclasses.replace(
        _landmarks_of(model, shape, hyperextended, _person(5)), visibility=np.ones(33, np.float32)
    )
    aligned = align_limbs(model, person, shape, pose)
    np.testing.assert_allclose(aligned[shin], pose[shin])
    bent = pose.copy()
    bent[shin] = [0.7, 0.0, 0.0]
    person = _landmarks_of(model, shape, bent, person)
    assert align_limbs(model, person, shape, pose)[shin][0] > 0.6


def test_nearest_on_ray_sphere_takes_the_hit_nearer_the_limb() -> None:
    from recon3d.models.body_net import _nearest_on_ray_sphere

    centre = np.array([0.0, 0.0, 3.0])
    ray = np.array([0.05, 0.0, 1.0])  # meets the sphere of radius 0.3 twice
    for point in (np.array([0.0, 0.0, 2.7]), np.array([0.0, 0.0, 3.3])):
        hit = _nearest_on_ray_sphere(ray, centre, point)
        assert np.linalg.norm(hit - centre) == pytest.approx(0.3)
        assert np.linalg.norm(np.cross(hit, ray)) < 1e-9  # on the ray
        assert np.sign(hit[2] - 3.0) == np.sign(point[2] - 3.0)  # the nearer of the two
    # A ray that passes further than the limb reaches: the sphere's point nearest the ray.
    ray = np.array([0.5, 0.0, 1.0])
    far = _nearest_on_ray_sphere(ray, centre, np.array([0.3, 0.0, 3.0]))
    assert np.linalg.norm(far - centre) == pytest.approx(0.3)

    def to_ray(points):
        d = ray / np.linalg.norm(ray)
        return np.linalg.norm(points - (points @ d)[:, None] * d, axis=1)

    sphere = np.random.default_rng(0).normal(size=(2000, 3))
    sphere = centre + 0.3 * sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    assert to_ray(far[None])[0] <= to_ray(sphere).min() + 1e-9


def test_align_limbs_to_rays_puts_seen_limb_ends_on_their_landmarks() -> None:
    """Seen limb ends project onto their landmarks after the alignment, the limbs keep their
    lengths, and a limb whose end is unseen keeps its rotation."""
    from recon3d.fitting.body_fit import FREE_BONES, MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import align_limbs_to_rays

    model = BodyModel.from_pretrained()
    rng = np.random.default_rng(7)
    truth = np.zeros((model.num_joints, 3), np.float32)
    for name in FREE_BONES:
        truth[model.bone(name)] = rng.normal(0, 0.2, 3)
    for side in "LR":
        truth[model.bone(f"lowerleg01.{side}")] = [0.6, 0.0, 0.0]
    pose = truth.copy()
    for name in ("upperarm01.L", "lowerarm01.R", "upperleg01.L", "lowerleg01.R"):
        pose[model.bone(name)] += rng.normal(0, 0.25, 3).astype(np.float32)
    shape = np.zeros(model.num_shape, np.float32)
    translation = np.array([0.1, -0.2, 3.5])
    K = np.array([[1000.0, 0, 320], [0, 1000.0, 480], [0, 0, 1]])

    def keypoints(p):
        with torch.no_grad():
            out = model(torch.as_tensor(shape)[None], torch.as_tensor(p)[None])
        return model.keypoints(out.vertices)[0].numpy().astype(np.float64) + translation

    def project(points):
        uv = points @ K.T
        return uv[:, :2] / uv[:, 2:]

    points = _photo_landmarks(model, _projected_keypoints(model, shape, truth, translation, K))
    visibility = np.ones(33, np.float32)
    visibility[POSE_LANDMARKS.index("right_ankle")] = 0.1  # the right shin is unseen
    person = dataclasses.replace(_person(6), points=points, visibility=visibility)
    aligned = align_limbs_to_rays(model, person, shape, pose, translation, K)

    after, before = keypoints(aligned), keypoints(pose)
    for end in ("left_elbow", "right_wrist", "left_knee"):
        index = model.keypoint(MEDIAPIPE_TO_MODEL[end])
        error = np.linalg.norm(project(after[[index]])[0] - points[POSE_LANDMARKS.index(end)])
        missed = np.linalg.norm(project(before[[index]])[0] - points[POSE_LANDMARKS.index(end)])
        # Keypoints are vertex regressors: a lower limb moves its upper end a little.
        assert error < 1.5 < missed, (end, error, missed)
    for a, b in (("left_shoulder", "left_elbow"), ("left_hip", "left_knee")):
        ia, ib = (model.keypoint(MEDIAPIPE_TO_MODEL[n]) for n in (a, b))
        length = np.linalg.norm(after[ib] - after[ia])
        assert length == pytest.approx(np.linalg.norm(before[ib] - before[ia]), rel=0.02)
    shin = model.bone("lowerleg01.R")
    np.testing.assert_allclose(aligned[shin], pose[shin])


def test_align_limbs_to_rays_brings_the_shoulders_to_their_landmarks() -> None:
    """A clavicle turned away from the truth is turned back, so its shoulder projects onto its
    landmark; the turn and the clavicle's rotation stay within their bounds; with
    ``shoulders=False`` the clavicles keep their rotation."""
    from recon3d.fitting.body_fit import FREE_BONES, MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import (
        CLAVICLE_ANGLE_MAX,
        SHOULDER_SWING_MAX,
        align_limbs_to_rays,
    )

    model = BodyModel.from_pretrained()
    rng = np.random.default_rng(11)
    truth = np.zeros((model.num_joints, 3), np.float32)
    for name in FREE_BONES:
        truth[model.bone(name)] = rng.normal(0, 0.1, 3)
    left, right = model.bone("clavicle.L"), model.bone("clavicle.R")
    truth[[left, right]] = 0.0
    pose = truth.copy()
    pose[left] = [0.0, 0.0, 0.2]  # a small shrug: undone
    pose[right] = [0.0, 0.0, -0.45]  # further than one bounded turn
    far = pose.copy()
    far[right] = [0.0, 0.0, -0.9]  # beyond the clavicle's bound: brought within it
    shape = np.zeros(model.num_shape, np.float32)
    translation = np.array([0.0, -0.1, 3.0])
    K = np.array([[1000.0, 0, 320], [0, 1000.0, 480], [0, 0, 1]])

    def project_keypoints(p):
        return _projected_keypoints(model, shape, p, translation, K)

    points = _photo_landmarks(model, project_keypoints(truth))
    person = dataclasses.replace(_person(6), points=points, visibility=np.ones(33, np.float32))
    aligned = align_limbs_to_rays(model, person, shape, pose, translation, K)

    shoulder = model.keypoint(MEDIAPIPE_TO_MODEL["left_shoulder"])
    target = points[POSE_LANDMARKS.index("left_shoulder")]
    error = np.linalg.norm(project_keypoints(aligned)[shoulder] - target)
    missed = np.linalg.norm(project_keypoints(pose)[shoulder] - target)
    assert error < 1.5 < missed, (error, missed)
    for bone in (left, right):
        assert np.linalg.norm(aligned[bone]) <= CLAVICLE_ANGLE_MAX + 1e-6
    far_aligned = align_limbs_to_rays(model, person, shape, far, translation, K)
    assert np.linalg.norm(far_aligned[right]) <= CLAVICLE_ANGLE_MAX + 1e-6
    # The right clavicle's bounded turn: at most SHOULDER_SWING_MAX from where it was (its
    # parent, the upper spine, does not move), and towards the truth.
    import cv2

    turn = cv2.Rodrigues(
        cv2.Rodrigues(aligned[right].astype(np.float64))[0]
        @ cv2.Rodrigues(pose[right].astype(np.float64))[0].T
    )[0]
    assert 0.2 < np.linalg.norm(turn) <= SHOULDER_SWING_MAX + 0.05
    assert np.linalg.norm(aligned[right]) < np.linalg.norm(pose[right])
    kept = align_limbs_to_rays(model, person, shape, pose, translation, K, shoulders=False)
    np.testing.assert_allclose(kept[[left, right]], pose[[left, right]])


def test_solve_rigid_pose_turns_the_body_onto_its_landmarks() -> None:
    """From a start turned 25 degrees away and shifted, the keypoints reproject onto their
    landmarks again; only the root rotation changes, the body moves rigidly, and with fewer
    than five landmarks seen nothing is solved."""
    from scipy.spatial.transform import Rotation

    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import RIGID_LANDMARKS, solve_rigid_pose

    model = BodyModel.from_pretrained()
    rng = np.random.default_rng(3)
    shape = np.zeros(model.num_shape, np.float32)
    truth = np.zeros((model.num_joints, 3), np.float32)
    truth[model.bone("upperarm01.L")] = rng.normal(0, 0.3, 3)
    truth[model.bone("spine03")] = [0.2, 0.1, 0.0]
    translation = np.array([0.05, 0.1, 3.0])
    K = np.array([[1100.0, 0, 300], [0, 1100.0, 450], [0, 0, 1]])

    def keypoints(p, t):
        with torch.no_grad():
            out = model(torch.as_tensor(shape)[None], torch.as_tensor(p)[None])
        return model.keypoints(out.vertices)[0].numpy().astype(np.float64) + t

    def project(points):
        uv = points @ K.T
        return uv[:, :2] / uv[:, 2:]

    rigid = [model.keypoint(MEDIAPIPE_TO_MODEL[n]) for n in RIGID_LANDMARKS]
    seen = [POSE_LANDMARKS.index(n) for n in RIGID_LANDMARKS]
    points = np.full((33, 2), 5.0, np.float32)
    points[seen] = project(keypoints(truth, translation)[rigid])
    visibility = np.ones(33, np.float32)
    mask = np.zeros((900, 600), np.float32)
    person = dataclasses.replace(_person(2), points=points, visibility=visibility, mask=mask)

    start = truth.copy()
    turn = Rotation.from_rotvec(np.radians(25) * np.array([0.6, 0.8, 0.0]))
    start[0] = (turn * Rotation.from_rotvec(truth[0])).as_rotvec()
    start_t = translation + [0.1, -0.05, 0.3]
    before = np.linalg.norm(project(keypoints(start, start_t)[rigid]) - points[seen], axis=1)

    pose, solved_t = solve_rigid_pose(model, person, shape, start, start_t, K)
    after = np.linalg.norm(project(keypoints(pose, solved_t)[rigid]) - points[seen], axis=1)
    assert before.mean() > 20 and after.max() < 0.5, (before.mean(), after.max())
    np.testing.assert_allclose(pose[1:], start[1:])
    np.testing.assert_allclose(keypoints(pose, solved_t), keypoints(truth, translation), atol=1e-3)

    hidden = visibility.copy()
    hidden[seen[4:]] = 0.1
    unseen = dataclasses.replace(person, visibility=hidden)
    assert solve_rigid_pose(model, unseen, shape, start, start_t, K) is None


def test_checkpoints_keep_snapshots_every_n_epochs(tmp_path) -> None:
    """The last checkpoint is rewritten every epoch; ``snapshot_every`` also keeps every n-th
    epoch's network, loadable, with its epoch in the metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from recon3d.train.adversarial import resume, save_checkpoint
    from recon3d.train.body_net import PoseDiscriminator, TrainConfig

    net, disc = BodyRegressor(width=16), PoseDiscriminator()
    for epoch in range(5):
        save_checkpoint(tmp_path, "body_net.safetensors", epoch, net, disc, TrainConfig(), 2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "body_net.safetensors",
        "body_net_e001.safetensors",
        "body_net_e003.safetensors",
        "discriminator.safetensors",
    ]
    with safe_open(str(tmp_path / "body_net_e003.safetensors"), framework="pt") as f:
        assert f.metadata()["epoch"] == "3"
    BodyRegressor(width=16).load_state_dict(load_file(str(tmp_path / "body_net_e001.safetensors")))
    assert resume(tmp_path, "body_net.safetensors", BodyRegressor(width=16), disc) == 5
    # Each file carries its own module's config.
    assert BodyRegressor.from_file(tmp_path / "body_net.safetensors").trunk[0].out_features == 16
    PoseDiscriminator.from_file(tmp_path / "discriminator.safetensors")


def test_predict_fit_rejects_bad_options() -> None:
    from recon3d.models.body import BodyModel

    model = BodyModel.from_pretrained()
    net = BodyRegressor().eval()
    K = np.eye(3)
    with pytest.raises(ValueError, match="align must be one of"):
        predict_fit(net, model, _person(0), K, align="sideways")
    with pytest.raises(ValueError, match="limbs must be one of"):
        predict_fit(net, model, _person(0), K, limbs="guess")
    with pytest.raises(ValueError, match='needs align="torso"'):
        predict_fit(net, model, _person(0), K, align="none")
    with pytest.raises(ValueError, match="height must be one of"):
        predict_fit(net, model, _person(0), K, height="tall")
    with pytest.raises(ValueError, match="rigid must be one of"):
        predict_fit(net, model, _person(0), K, rigid="guess")
    with pytest.raises(ValueError, match="rigid='photo' needs align=\"torso\""):
        predict_fit(net, model, _person(0), K, align="none", limbs="network", rigid="photo")
    with pytest.raises(ValueError, match="clothing must be one of"):
        predict_fit(net, model, _person(0), K, clothing="coat")


def test_unseen_ankles_give_the_mean_height() -> None:
    """Without an ankle in the photo the estimate stands as tall as the mean body, keeping the
    rest of the network's shape; with one, the network's shape is kept whole."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.models.body import BodyModel

    torch.manual_seed(0)
    model = BodyModel.from_pretrained()
    net = BodyRegressor().eval()
    with torch.no_grad():  # a network that guesses a short person
        net.head.bias[net.num_bones * 6] = -1.5
    K = np.array([[150.0, 0, 45], [0, 150.0, 60], [0, 0, 1]])
    legs = [
        POSE_LANDMARKS.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")
    ]
    person = _person(3)
    person.visibility[legs] = 0.1
    guess = predict_fit(net, model, person, K, height="network")
    fit = predict_fit(net, model, person, K)
    mean_height = model.height(np.zeros(model.num_shape))
    assert model.height(guess.shape) < mean_height - 0.2
    assert model.height(fit.shape) == pytest.approx(mean_height, abs=1e-3)
    np.testing.assert_allclose(fit.shape, model.with_height(guess.shape, mean_height), atol=1e-6)
    for seen_landmark in legs[2:]:  # the ankles
        person.visibility[legs] = 0.1
        person.visibility[seen_landmark] = 0.9
        person.points[seen_landmark] = (40, 100)
        seen = predict_fit(net, model, person, K)
        kept = predict_fit(net, model, person, K, height="network")
        np.testing.assert_allclose(seen.shape, kept.shape)
        assert model.height(seen.shape) < mean_height - 0.2


def test_clothed_render_covers_the_body_and_is_deterministic() -> None:
    """A dressed person (clothes and hair with thickness) covers the bare body's pixels and
    more; the same generator gives the same render, and the outfit's masks are disjoint."""
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import random_sample, render_sample
    from recon3d.train.texture_data import dress_body

    model = BodyModel.from_pretrained()
    sample = random_sample(model, np.random.default_rng(4))
    bare = render_sample(model, sample, np.random.default_rng(1), [])[1]
    image, clothed = render_sample(model, sample, np.random.default_rng(1), [], clothed=True)
    again, _ = render_sample(model, sample, np.random.default_rng(1), [], clothed=True)
    np.testing.assert_array_equal(image, again)
    assert (clothed & bare).sum() >= 0.99 * bare.sum()
    assert clothed.sum() > 1.03 * bare.sum()

    part = np.asarray(model.part_names)[model.vertex_part]
    points = model.mean_vertices.numpy().astype(np.float64)
    outfit = dress_body(points, part, np.random.default_rng(2), np.full(3, 200.0), np.zeros(3))
    assert outfit.colour.shape == (model.num_vertices, 3)
    assert not (outfit.shirt & outfit.trousers).any()
    assert not (outfit.hair & (part != "head")).any()


def _random_shard(path: Path, n: int, image_size: int = 0) -> None:
    """A shard with the arrays of ``generate_shard`` filled with random values: for the
    trainer's plumbing, not for learning anything."""
    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]], np.float32)
    arrays = {
        "keypoints": rng.uniform(-0.5, 0.5, (n, 33, 3)).astype(np.float32),
        "world": rng.normal(0, 0.3, (n, 33, 3)).astype(np.float32),
        "mask": rng.integers(0, 256, (n, 32, 32), dtype=np.uint8),
        "crop": np.tile(np.array([128, 128, 200], np.float32), (n, 1)),
        "shape": rng.normal(0, 1, (n, 16)).astype(np.float32),
        "pose": rng.normal(0, 0.2, (n, 19, 3)).astype(np.float32),
        "translation": np.tile(np.array([0, 0, 3], np.float32), (n, 1)),
        "K": np.tile(K, (n, 1, 1)),
        "missed": np.array(0),
    }
    if image_size:
        arrays["image"] = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


def test_training_with_image_crops_and_a_clear_error_without_them(tmp_path) -> None:
    """``image_size`` trains a network that reads the shards' image crops; shards without them
    are refused with the command that makes them."""
    from safetensors.torch import load_file

    from recon3d.train.body_net import TrainConfig, train

    data = tmp_path / "data"
    data.mkdir()
    _random_shard(data / "body_s1_00000.npz", 6, image_size=16)
    config = TrainConfig(
        data=str(data), out=str(tmp_path / "run"), epochs=1, batch_size=4, prior_samples=20
    )
    weights = train(dataclasses.replace(config, image_size=16))
    net = BodyRegressor(image_size=16)
    net.load_state_dict(load_file(str(weights)))
    _random_shard(data / "body_s1_00001.npz", 6)
    with pytest.raises(ValueError, match="body_s1_00001.npz has no 16-pixel image crops"):
        train(dataclasses.replace(config, image_size=16, out=str(tmp_path / "run2")))


def _projected_person(model, pose: np.ndarray, K: np.ndarray, size: tuple[int, int]):
    """Exact landmarks and silhouette of a posed mean body 4 m in front of the camera."""
    from recon3d.train.synthetic import exact_person

    with torch.no_grad():
        out = model(torch.zeros(1, model.num_shape), torch.as_tensor(pose)[None])
    return exact_person(model, out.vertices[0].numpy().astype(np.float64) + (0, 0, 4.0), K, size)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_body_fits_on_cuda_match_the_cpu() -> None:
    """The shipped network's estimate and the default refinement (with the pose prior), and the
    fit from scratch (optimisation only), run on a GPU, as ``BodyReconstructionPipeline.to
    ("cuda")`` runs them, and agree with the CPU: the estimate to float rounding, the fitted
    bodies within a few millimetres."""
    from recon3d.body_pipeline import REFINE_OPTIONS
    from recon3d.fitting.body_fit import fit_body
    from recon3d.models.body import BodyModel
    from recon3d.models.body_prior import PoseDiscriminator

    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    cpu_model = BodyModel.from_pretrained()
    pose = np.zeros((cpu_model.num_joints, 3), np.float32)
    pose[0] = (0.0, 0.4, 0.0)
    pose[cpu_model.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    pose[cpu_model.bone("lowerleg01.R")] = (0.5, 0.0, 0.0)
    person = _projected_person(cpu_model, pose, K, (600, 900))
    results = {}
    for device in ("cpu", "cuda"):
        model = BodyModel.from_pretrained().to(device)
        net = BodyRegressor.from_pretrained().to(device).eval()
        prior = PoseDiscriminator.from_pretrained().to(device)
        start = predict_fit(net, model, person, K)
        fits = {
            "refined": fit_body(model, person, K, options=REFINE_OPTIONS, init=start, prior=prior),
            "from scratch": fit_body(model, person, K),
        }
        vertices = {}
        for name, fit in fits.items():
            with torch.no_grad():
                out = model(
                    torch.as_tensor(fit.shape, device=device)[None],
                    torch.as_tensor(fit.pose, device=device)[None],
                    torch.as_tensor(fit.translation, device=device)[None],
                )
            vertices[name] = out.vertices[0].cpu().numpy()
        results[device] = (start, fits, vertices)
    (start_c, fits_c, verts_c), (start_g, fits_g, verts_g) = results["cpu"], results["cuda"]
    np.testing.assert_allclose(start_g.pose, start_c.pose, atol=1e-3)
    np.testing.assert_allclose(start_g.shape, start_c.shape, atol=1e-3)
    for name, fit_c in fits_c.items():
        fit_g = fits_g[name]
        assert fit_c.keypoint_error_px < 0.05 * fit_c.keypoint_scale_px, name
        assert abs(fit_g.keypoint_error_px - fit_c.keypoint_error_px) < 0.5, name
        assert np.linalg.norm(verts_g[name] - verts_c[name], axis=1).mean() < 0.005, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_on_cuda_matches_the_cpu(tmp_path) -> None:
    """On a GPU the trainer starts from the CPU run's weights, prior samples and batches (its
    random draws are made on the CPU), so two epochs end near the CPU run's weights; the
    checkpoint loads on the CPU."""
    from safetensors.torch import load_file

    from recon3d.train.body_net import TrainConfig, train

    data = tmp_path / "data"
    data.mkdir()
    _random_shard(data / "body_s1_00000.npz", 24)
    config = TrainConfig(
        data=str(data), epochs=2, batch_size=8, prior_samples=50, learning_rate=1e-4
    )
    cpu = load_file(
        str(train(dataclasses.replace(config, out=str(tmp_path / "cpu"), device="cpu")))
    )
    gpu = load_file(str(train(dataclasses.replace(config, out=str(tmp_path / "gpu")))))
    torch.manual_seed(config.seed)  # as train() does before it builds the network
    initial = BodyRegressor().state_dict()
    for name, value in cpu.items():
        assert gpu[name].device.type == "cpu"
        moved = (value - initial[name]).norm()
        # Float rounding apart (TF32 convolutions on the GPU), the runs take the same steps.
        assert (gpu[name] - value).norm() <= 0.2 * moved + 1e-6, name


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
    detector = MediaPipePoseDetector()
    shard = generate_shard(model, detector, [], data, seed=7, index=0, size=12, image_size=32)
    assert shard is not None
    with np.load(shard) as arrays:
        assert arrays["keypoints"].shape[1:] == (33, 3) and len(arrays["shape"]) >= 6
        assert arrays["image"].shape == (len(arrays["shape"]), 32, 32, 3)
    # Same seed and index: the same shard, byte for byte in its arrays.
    again = tmp_path / "again"
    again.mkdir()
    shard2 = generate_shard(model, detector, [], again, seed=7, index=0, size=12, image_size=32)
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


def test_network_alone_is_placed_on_a_waist_up_photo() -> None:
    """On a waist-up portrait MediaPipe's world torso pitches the body towards the camera; the
    network alone (refine=False) is placed on the photo's landmarks instead, so its head stays
    on the face (before: the nose 0.47 torso lengths low, PCK 0.18)."""
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import _body_keypoint_distances, keypoint_pck

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    alone = pipe(ROOT / "tests" / "data" / "obama2.jpg", refine=False, complete_texture=False)
    distances, torso, _ = _body_keypoint_distances(alone)
    assert distances[0] / torso < 0.1  # COCO 0: the nose
    assert keypoint_pck(alone) >= 0.8


def test_network_alone_wears_the_clothes_of_the_mask() -> None:
    """The network predicts a naked body; alone (refine=False) it takes each part's clothing
    from the person mask, so its silhouette covers a suit: a clearly higher IoU than the naked
    estimate, with the clothed body still placed on the landmarks."""
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.fitting.body_fit import CLOTHING_MAX
    from recon3d.metrics import keypoint_pck, silhouette_iou

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    for name in ("obama2.jpg", "obama3.jpg"):
        photo = ROOT / "tests" / "data" / name
        alone = pipe(photo, refine=False, complete_texture=False)
        clothing = np.array(list(alone.params["clothing"].values()))
        assert clothing.max() > 0.01 and np.all(clothing <= np.array(list(CLOTHING_MAX.values())))
        person = pipe.detect(alone.image)  # the same result: MediaPipe is deterministic
        naked_fit = predict_fit(
            pipe.network, pipe.model, person, alone.camera.K, limbs="image", rigid="photo"
        )
        naked = dataclasses.replace(alone, vertices=pipe._posed(naked_fit)[0].astype(np.float32))
        assert silhouette_iou(alone) > silhouette_iou(naked) + 0.05, name
        assert keypoint_pck(alone) >= 0.7, name


def test_refinement_starts_from_the_dressed_estimate_on_the_photo(monkeypatch) -> None:
    """The default refinement starts from the network's estimate placed on the photo's
    landmarks and wearing the clothes and hair read off the person mask (its limbs along
    MediaPipe's world landmarks), and the refined body keeps hair on its scalp."""
    from recon3d import body_pipeline
    from recon3d.body_pipeline import BodyReconstructionPipeline

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    starts = []
    fit_body = body_pipeline.fit_body

    def spy(*args, init=None, **kwargs):
        starts.append(init)
        return fit_body(*args, init=init, **kwargs)

    monkeypatch.setattr(body_pipeline, "fit_body", spy)
    rec = pipe(ROOT / "tests" / "data" / "obama2.jpg", complete_texture=False)
    (start,) = starts
    person = pipe.detect(rec.image)  # the same result: MediaPipe is deterministic
    expected = predict_fit(
        pipe.network, pipe.model, person, rec.camera.K, rigid="photo", clothing="mask"
    )
    np.testing.assert_allclose(start.pose, expected.pose, atol=1e-5)
    np.testing.assert_allclose(start.translation, expected.translation, atol=1e-5)
    np.testing.assert_allclose(start.clothing, expected.clothing, atol=1e-6)
    hair = list(rec.params["clothing"]).index("head")
    assert start.clothing[hair] > 0.005 and rec.params["clothing"]["head"] > 0.005


def test_samples_without_a_usable_camera_target_are_left_out(tmp_path, caplog) -> None:
    """A pelvis behind the camera (no log-depth) or projecting far outside the crop (a
    video-call framing) would blow up training: load_shards drops those samples and says so."""
    import logging

    from recon3d.models.body import BodyModel
    from recon3d.train.body_net import load_shards

    _random_shard(tmp_path / "body_s1_00000.npz", 6)
    with np.load(tmp_path / "body_s1_00000.npz") as shard:
        arrays = {k: shard[k].copy() for k in shard.files}
    arrays["translation"][1] = (0.0, 0.0, -3.0)  # behind the camera
    arrays["translation"][4] = (9.0, 0.0, 3.0)  # far to the side of its crop
    np.savez_compressed(tmp_path / "body_s1_00000.npz", **arrays)
    with caplog.at_level(logging.INFO, logger="recon3d.train.body_net"):
        data = load_shards(tmp_path, BodyModel.from_pretrained())
    assert len(data["camera"]) == len(data["keypoints"]) == 4
    assert torch.isfinite(data["camera"]).all()
    np.testing.assert_allclose(data["shape"].numpy(), arrays["shape"][[0, 2, 3, 5]])
    assert "dropped 2 of 6 samples" in caplog.text
