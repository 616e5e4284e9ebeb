"""The rigged body model, its UV layout and the body fit on synthetic data (no MediaPipe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import DEVICES

from recon3d.fitting.body_fit import FREE_BONES, BodyFitOptions, fit_body
from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks
from recon3d.models.body import BodyModel, axis_angle_to_matrix
from recon3d.texture.layout import mirror_texels, rasterize_uv
from recon3d.train.synthetic import exact_person


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_pretrained()


def _free(model: BodyModel) -> tuple[int, ...]:
    return tuple(sorted(model.bone(n) for n in FREE_BONES))


# -- smoke and cardinality --------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_zero_pose_is_the_rest_mesh(body, device) -> None:
    model = BodyModel.from_pretrained().to(device)
    shape = torch.randn(2, model.num_shape, device=device) * 0.5
    out = model(shape, torch.zeros(2, model.num_joints, 3, device=device))
    rest_v, rest_j = model.rest(shape)
    assert out.vertices.shape == (2, model.num_vertices, 3)
    assert out.joints.shape == (2, model.num_joints, 3)
    torch.testing.assert_close(out.vertices, rest_v, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints, rest_j, atol=1e-5, rtol=0)


def test_sizes_and_names(body) -> None:
    assert body.num_joints == 104 and body.num_vertices == 13718 and body.num_shape == 16
    assert body.bone_labels[0] == "root"
    assert (body.parents[1:] < np.arange(1, body.num_joints)).all()
    assert body.keypoint_regressor.shape == (len(body.keypoint_labels), body.num_vertices)
    np.testing.assert_allclose(body.keypoint_regressor.sum(1).numpy(), 1.0, atol=1e-3)
    assert set(body.landmarks) == {"coco17", "coco_wholebody23", "mediapipe478"}
    # The average body stands about 1.6-1.8 m tall, feet down (+y), face towards -z.
    height = body.height(np.zeros(body.num_shape))
    assert 1.5 < height < 1.9
    nose = body.keypoints(body.mean_vertices[None])[0, body.keypoint("nose")]
    ankle = body.keypoints(body.mean_vertices[None])[0, body.keypoint("left_ankle")]
    assert nose[1] < ankle[1] - 1.2
    assert nose[2] < body.mean_joints[0, 2]


def test_with_height_sets_the_standing_height_with_the_smallest_change(body) -> None:
    shape = np.random.default_rng(0).normal(0, 1, body.num_shape).astype(np.float32)
    taller = body.with_height(shape, 1.80)
    assert body.height(taller) == pytest.approx(1.80, abs=1e-4)
    # The smallest change is along the height's gradient, in the coefficients' units.
    change = (taller - shape).astype(np.float64)
    gradient = body.height_from_shape[:-1]
    cosine = change @ gradient / np.linalg.norm(change) / np.linalg.norm(gradient)
    assert cosine == pytest.approx(1.0, abs=1e-4)
    # The rest mesh measures that height, head to soles.
    with torch.no_grad():
        rest, _ = body.rest(torch.as_tensor(taller)[None])
    extent = float(rest[0, :, 1].max() - rest[0, :, 1].min())
    assert extent == pytest.approx(1.80, abs=0.03)


def test_collapsed_skeleton_matches_full(body) -> None:
    """Posing only the fitted bones through the collapsed skeleton equals the full rig with
    every other bone at rest."""
    free = _free(body)
    generator = torch.Generator().manual_seed(0)
    shape = torch.randn(1, body.num_shape, generator=generator)
    small = torch.randn(1, len(free), 3, generator=generator) * 0.4
    full = torch.zeros(1, body.num_joints, 3)
    full[:, list(free)] = small
    a = body(shape, small, bones=free)
    b = body(shape, full)
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.joints, b.joints[:, list(free)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_posed_keypoints_match_the_full_mesh(device) -> None:
    """The keypoints posed on the regressor's pruned vertex subset agree with the full mesh's
    to a fraction of a millimetre, clothing offsets included; joints and rotations are the
    full rig's."""
    model = BodyModel.from_pretrained().to(device)
    generator = torch.Generator().manual_seed(1)
    shape = torch.randn(4, model.num_shape, generator=generator).to(device)
    pose = (torch.randn(4, model.num_joints, 3, generator=generator) * 0.3).to(device)
    offsets = (torch.rand(4, model.num_vertices, generator=generator) * 0.05).to(device)
    keypoints, out = model.posed_keypoints(shape, pose, normal_offsets=offsets)
    full = model(shape, pose, normal_offsets=offsets)
    assert keypoints.shape == (4, len(model.keypoint_labels), 3)
    assert out.vertices.shape[1] < model.num_vertices / 5
    error = (keypoints - model.keypoints(full.vertices)).norm(dim=-1).max()
    assert error < 5e-4, float(error)
    torch.testing.assert_close(out.joints, full.joints)
    torch.testing.assert_close(out.rotations, full.rotations)
    with pytest.raises(ValueError, match="expected pose of shape"):
        model.posed_keypoints(shape, pose[:, :5])


def test_skinning_matches_a_direct_reference(body) -> None:
    """Vertices and keypoints equal linear blend skinning written out bone by bone, in float64:
    world rotation R_j = R_parent L_j, joint p_j = p_parent + R_parent (r_j - r_parent), vertex
    sum_j w_vj (R_j (x_v - r_j) + p_j), keypoints the regressor times the vertices."""
    generator = torch.Generator().manual_seed(3)
    shape = torch.randn(2, body.num_shape, generator=generator)
    pose = torch.randn(2, body.num_joints, 3, generator=generator) * 0.3
    translation = torch.randn(2, 3, generator=generator)
    out = body(shape, pose, translation)
    rest_vertices, rest_joints = (t.double().numpy() for t in body.rest(shape))
    local = axis_angle_to_matrix(pose.double()).numpy()
    skin = body.skin_matrix.double().numpy()
    for b in range(2):
        world = np.zeros((body.num_joints, 3, 3))
        joints = np.zeros((body.num_joints, 3))
        for j, parent in enumerate(body.parents):  # parents come before their children
            if parent < 0:
                world[j], joints[j] = local[b, j], rest_joints[b, j]
            else:
                world[j] = world[parent] @ local[b, j]
                joints[j] = joints[parent] + world[parent] @ (
                    rest_joints[b, j] - rest_joints[b, parent]
                )
        per_bone = np.einsum("jik,vjk->vji", world, rest_vertices[b][:, None] - rest_joints[b])
        vertices = np.einsum("vj,vji->vi", skin, per_bone + joints) + translation[b].numpy()
        np.testing.assert_allclose(out.vertices[b].numpy(), vertices, atol=2e-5)
        np.testing.assert_allclose(
            out.joints[b].numpy(), joints + translation[b].numpy(), atol=2e-5
        )
        # Float32 sums over 13,718 vertices: a looser tolerance.
        keypoints = body.keypoint_regressor.double().numpy() @ vertices
        np.testing.assert_allclose(body.keypoints(out.vertices)[b].numpy(), keypoints, atol=1e-4)


def test_posing_gradcheck(body) -> None:
    """Gradients of the keypoints of the fitted bones' skeleton with respect to pose, shape and
    translation match finite differences (float64)."""
    model = BodyModel.from_pretrained().to(torch.float64)
    free = _free(model)
    generator = torch.Generator().manual_seed(4)
    shape = torch.randn(1, model.num_shape, generator=generator, dtype=torch.float64) * 0.5
    pose = torch.randn(1, len(free), 3, generator=generator, dtype=torch.float64) * 0.3
    translation = torch.tensor([[0.1, -0.2, 3.0]], dtype=torch.float64)

    def keypoints(shape, pose, translation):
        return model.keypoints(model(shape, pose, translation, bones=free).vertices)

    inputs = tuple(t.requires_grad_(True) for t in (shape, pose, translation))
    assert torch.autograd.gradcheck(keypoints, inputs, eps=1e-6, atol=1e-5)


def test_rotating_a_bone_moves_only_its_skin(body) -> None:
    shape = torch.zeros(1, body.num_shape)
    pose = torch.zeros(1, body.num_joints, 3)
    elbow = body.bone("lowerarm01.L")
    pose[0, elbow] = torch.tensor([0.0, 0.0, 1.2])
    moved = (body(shape, pose).vertices - body(shape, torch.zeros_like(pose)).vertices)[0]
    moved = moved.norm(dim=-1) > 1e-6
    # Bones at or below the elbow.
    below = np.zeros(body.num_joints, bool)
    for j in range(body.num_joints):
        a = j
        while a >= 0 and a != elbow:
            a = body.parents[a]
        below[j] = a == elbow
    influenced = (body.skin_matrix[:, torch.as_tensor(below)].sum(1) > 0).numpy()
    assert moved.any()
    assert not (moved.numpy() & ~influenced).any()
    # The elbow joint itself stays put; the wrist moves.
    out = body(shape, pose)
    rest = body(shape, torch.zeros_like(pose))
    torch.testing.assert_close(out.joints[0, elbow], rest.joints[0, elbow])
    assert (out.joints[0, body.bone("wrist.L")] - rest.joints[0, body.bone("wrist.L")]).norm() > 0.1


# -- exceptions ---------------------------------------------------------------------------------
def test_bad_shapes_raise(body) -> None:
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        body.rest(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="pose of shape"):
        body(torch.zeros(1, 16), torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="increasing"):
        body(torch.zeros(1, 16), torch.zeros(1, 2, 3), bones=(5, 0))
    with pytest.raises(ValueError, match="unknown bone"):
        body.bone("tail")


def _blank_person() -> BodyLandmarks:
    """Every landmark at the origin with visibility 0.9, an 8x8 all-person mask."""
    return BodyLandmarks(
        np.zeros((33, 2), np.float32),
        np.full(33, 0.9, np.float32),
        np.zeros((33, 3), np.float32),
        np.ones((8, 8), np.float32),
        np.array([0, 0, 8, 8], np.float32),
    )


def test_unknown_optimiser_raises(body) -> None:
    person = _blank_person()
    with pytest.raises(ValueError, match="optimiser must be one of"):
        fit_body(body, person, np.eye(3), options=BodyFitOptions(optimiser="sgd"))


def test_negative_warmup_raises(body) -> None:
    person = _blank_person()
    with pytest.raises(ValueError, match="warmup_iterations must be >= 0"):
        fit_body(body, person, np.eye(3), options=BodyFitOptions(warmup_iterations=-1))


# -- gradcheck ----------------------------------------------------------------------------------
def test_axis_angle_gradcheck_and_values() -> None:
    import cv2

    x = (torch.randn(6, 3, dtype=torch.float64) * 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (x,))
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (zero,))
    for v in x.detach().numpy():
        np.testing.assert_allclose(
            axis_angle_to_matrix(torch.as_tensor(v)).numpy(), cv2.Rodrigues(v)[0], atol=1e-10
        )


# -- UV layout ----------------------------------------------------------------------------------
def test_hair_thickens_the_scalp_and_moves_no_keypoint(body) -> None:
    """The "head" clothing part is hair on the scalp: 5 cm of it lifts the crown by 5 cm and
    moves the nose, eyes and ears by less than half a millimetre (on the whole head it moved
    them by about 4 cm)."""
    weights, names = body.part_weights()
    hair = torch.zeros(len(names))
    hair[names.index("head")] = 0.05
    shape, pose = torch.zeros(1, body.num_shape), torch.zeros(1, body.num_joints, 3)
    with torch.no_grad():
        naked = body(shape, pose).vertices
        dressed = body(shape, pose, normal_offsets=(weights @ hair)[None]).vertices
    moved = (dressed - naked)[0].norm(dim=-1)
    assert abs(float(moved.max()) - 0.05) < 1e-3
    assert int((body.scalp > 0.5).sum()) > 200
    face = [body.keypoint(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    shift = (body.keypoints(dressed) - body.keypoints(naked))[0, face].norm(dim=-1)
    assert float(shift.max()) < 5e-4, shift


def test_rasterize_uv_two_triangles() -> None:
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    face, bary = rasterize_uv(uv, faces, 16)
    assert (face >= 0).all()
    np.testing.assert_allclose(bary.sum(-1), 1.0, atol=1e-5)
    # Texel (row 0, col 15) is at u=15.5/16, v=1-0.5/16: under the first triangle's edge? The
    # diagonal u = v splits them: u > v is triangle 0.
    assert face[15, 15] == 0 and face[0, 0] == 1
    # Barycentrics reproduce the texel centre.
    rows, cols = np.mgrid[0:16, 0:16]
    centre = np.stack([(cols + 0.5) / 16, 1 - (rows + 0.5) / 16], -1)
    recon = np.einsum("hwk,hwkd->hwd", bary, uv[faces[face]])
    np.testing.assert_allclose(recon, centre, atol=1e-5)


def test_barycentric_matrix_interpolates_and_splats() -> None:
    from recon3d.texture.projection import TextureLayout

    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    face, bary = rasterize_uv(uv, faces, 16)
    face[:2] = -1  # some empty texels
    layout = TextureLayout(face, bary[..., :2], None)
    matrix = layout.barycentric_matrix(faces, 5)  # a fifth vertex no triangle uses
    assert matrix.shape == (len(layout.used), 5)
    values = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    corners = faces[layout.used_face]
    expected = np.einsum("nk,nkd->nd", layout.used_bary, values[corners])
    np.testing.assert_allclose(matrix @ values, expected, atol=1e-5)
    weights = np.random.default_rng(1).random(len(layout.used))
    splat = np.bincount(corners.ravel(), (layout.used_bary * weights[:, None]).ravel(), 5)
    np.testing.assert_allclose(matrix.T @ weights, splat, atol=1e-5)
    assert layout.barycentric_matrix(faces, 5) is matrix  # cached
    assert layout.barycentric_matrix(faces[:, ::-1].copy(), 5) is not matrix


def test_vertex_graphs_are_the_mesh_laplacians_and_cached() -> None:
    """The harmonic fill's graphs: the mesh Laplacian, the within-part one and its components,
    cached for the same faces and rebuilt for others."""
    from recon3d.texture.projection import TextureLayout

    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], np.float64)
    faces = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    face, bary = rasterize_uv(uv, faces, 8)
    part = np.array([0, 0, 1, 1, 0])
    layout = TextureLayout(face, bary[..., :2], None, vertex_part=part)
    laplacian, within, components = layout.vertex_graphs(faces, 6)  # vertex 5 is unused
    dense = laplacian.toarray()
    np.testing.assert_allclose(dense.sum(1), 0.0)  # rows of a Laplacian sum to zero
    assert dense[4, 4] == 4 and dense[0, 2] == 0 and dense[0, 1] == -1 and dense[5, 5] == 0
    within_dense = within.toarray()
    assert within_dense[1, 2] == 0 and within_dense[2, 3] == -1  # edge 1-2 crosses parts
    assert components[0] == components[1] == components[4] != components[2] == components[3]
    assert layout.vertex_graphs(faces, 6)[0] is laplacian  # cached
    assert layout.vertex_graphs(faces[:, ::-1].copy(), 6)[0] is not laplacian


def test_body_layout_and_mirror(body) -> None:
    face, bary = rasterize_uv(body.uv, body.face_uv, 256)
    used = face >= 0
    assert 0.5 < used.mean() < 0.75
    mirror = mirror_texels(face, bary, body.uv, body.face_uv, body.face_mirror, body.corner_mirror)
    has = mirror.ravel() >= 0
    assert has.sum() > 0.95 * used.sum()
    # A texel and its mirror lie at mirrored 3D points of the average body.
    verts = body.mean_vertices.numpy()
    flat_face, flat_bary = face.ravel(), bary.reshape(-1, 3)
    src = np.flatnonzero(has)
    dst = mirror.ravel()[src]

    def point(i):
        return np.einsum("nk,nkd->nd", flat_bary[i], verts[body.faces[flat_face[i]]])

    gap = np.linalg.norm(point(src) * (-1, 1, 1) - point(dst), axis=1)
    assert np.median(gap) < 0.01


def test_layout_level_covers_the_same_islands(body) -> None:
    # A geometry level is the same layout at a lower resolution: its used texels are where
    # the finer level's are, up to the islands' borders, and it carries a mirror map.
    fine, coarse = body.layout_level(256), body.layout_level(128)
    fine_used = (fine.texel_face >= 0).reshape(128, 2, 128, 2).mean((1, 3))
    coarse_used = coarse.texel_face >= 0
    agree = (fine_used >= 0.5) == coarse_used
    assert agree.mean() > 0.97
    assert (coarse.mirror[coarse.used] >= 0).mean() > 0.95
    assert coarse.vertex_part is body.vertex_part


# -- the fit on a synthetic person ------------------------------------------------------------
def _synthetic_person(model: BodyModel, pose: np.ndarray, shape: np.ndarray, K, size):
    """Perfect landmarks and mask of a posed body, as MediaPipe would report them."""
    from recon3d.render.renderer import render_mesh

    with torch.no_grad():
        out = model(torch.as_tensor(shape)[None], torch.as_tensor(pose)[None])
    verts = out.vertices[0].numpy().astype(np.float64) + (0, 0, 4.0)
    exact = exact_person(model, verts, K, size)
    points, visibility, world = exact.points, exact.visibility, exact.world
    mask = render_mesh(verts, model.faces, K, size, depth_only=True).depth > 0
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    person = BodyLandmarks(points, visibility, world, mask.astype(np.float32), box)
    return person, verts


def test_exact_person_silhouette_matches_the_render(body) -> None:
    """``exact_person``'s silhouette (projected triangles filled by OpenCV) is the rendered one
    up to edge pixels, its landmarks are the projected keypoints, and a body outside the photo
    is refused."""
    from recon3d.render.renderer import render_mesh

    size = (400, 600)
    K = np.array([[700.0, 0, 199.5], [0, 700.0, 299.5], [0, 0, 1]])
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.R")] = (0.0, 0.0, 0.8)
    with torch.no_grad():
        out = body(torch.zeros(1, body.num_shape), torch.as_tensor(pose)[None])
    verts = out.vertices[0].numpy().astype(np.float64) + (0, 0, 4.0)
    person = exact_person(body, verts, K, size)
    rendered = render_mesh(verts, body.faces, K, size, depth_only=True).depth > 0
    mask = person.mask > 0.5
    assert (mask & rendered).sum() / (mask | rendered).sum() > 0.93  # 0.95: edge pixels
    nose = POSE_LANDMARKS.index("nose")
    keypoints = body.keypoints(torch.as_tensor(verts, dtype=torch.float32)[None])[0].numpy()
    projected = K @ keypoints[body.keypoint("nose")]
    np.testing.assert_allclose(person.points[nose], projected[:2] / projected[2], atol=1e-3)
    assert person.visibility[nose] > 0.5 and person.world.shape == (33, 3)
    with pytest.raises(ValueError, match="outside the photo"):
        exact_person(body, verts + (50.0, 0, 0), K, size)


def test_fit_recovers_a_synthetic_pose(body) -> None:
    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[0] = (0.0, 0.5, 0.0)  # turned 30° to the side
    pose[body.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    pose[body.bone("lowerarm01.R")] = (0.0, -0.9, 0.6)
    pose[body.bone("upperleg01.R")] = (-0.4, 0.0, 0.0)
    pose[body.bone("lowerleg01.R")] = (0.6, 0.0, 0.0)
    shape = np.zeros(body.num_shape, np.float32)
    shape[:3] = (0.8, -0.5, 0.3)
    person, verts = _synthetic_person(body, pose, shape, K, size)
    fit = fit_body(body, person, K, options=BodyFitOptions())
    torso = fit.keypoint_scale_px
    assert fit.keypoint_error_px < 0.03 * torso
    from recon3d.render.renderer import render_mesh

    with torch.no_grad():
        w, names = body.part_weights()
        out = body(
            torch.as_tensor(fit.shape)[None],
            torch.as_tensor(fit.pose)[None],
            torch.as_tensor(fit.translation)[None],
            normal_offsets=(w @ torch.as_tensor(fit.clothing))[None],
        )
    fitted = render_mesh(out.vertices[0].numpy(), body.faces, K, size, depth_only=True).depth > 0
    mask = person.mask > 0.5
    assert (fitted & mask).sum() / (fitted | mask).sum() > 0.85


def test_lbfgs_brings_the_keypoints_closer_than_adam_in_as_many_evaluations(body) -> None:
    """From the true body with every fitted bone turned by about 0.15 rad and the translation
    5 cm off, 20 energy evaluations of each optimiser: all bring the keypoints closer, Adam and
    L-BFGS at least 2x, and L-BFGS closest (a line search on a smooth least-squares problem)."""
    from recon3d.fitting.body_fit import BodyFit

    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    pose[body.bone("lowerleg01.R")] = (0.6, 0.0, 0.0)
    shape = np.zeros(body.num_shape, np.float32)
    person, _ = _synthetic_person(body, pose, shape, K, size)
    rng = np.random.default_rng(5)
    start_pose = pose.copy()
    free = list(_free(body))
    start_pose[free] += rng.normal(0.0, 0.15 / np.sqrt(3), (len(free), 3)).astype(np.float32)
    start = BodyFit(shape, start_pose, np.array([0.05, 0, 4.0], np.float32), 0.0, 1.0)
    still = BodyFitOptions(torso_iterations=0, pose_iterations=1, silhouette_iterations=0)
    before = fit_body(body, person, K, options=still, init=start).keypoint_error_px
    after = {}
    for optimiser in ("adam", "lbfgs", "lbfgs-pose"):
        options = BodyFitOptions(
            torso_iterations=0, pose_iterations=10, silhouette_iterations=10, optimiser=optimiser
        )
        after[optimiser] = fit_body(body, person, K, options=options, init=start).keypoint_error_px
    assert max(after.values()) < before
    assert after["adam"] < before / 2
    assert after["lbfgs"] < after["adam"]


def test_warmup_keeps_a_start_that_already_agrees_with_the_photo(body) -> None:
    """Adam's first step moves every parameter by about its learning rate, however small its
    gradient: from the true body, one silhouette iteration turns some fitted bone by nearly
    the learning rate; with a 10-iteration warm-up no bone turns by more than a tenth of it,
    and the keypoints stay closer to the photo."""
    from recon3d.fitting.body_fit import BodyFit

    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    shape = np.zeros(body.num_shape, np.float32)
    person, _ = _synthetic_person(body, pose, shape, K, size)
    truth = BodyFit(shape, pose, np.array([0, 0, 4.0], np.float32), 0.0, 1.0)
    free = list(_free(body))
    turned, error = {}, {}
    for warmup in (0, 10):
        options = BodyFitOptions(
            torso_iterations=0, pose_iterations=0, silhouette_iterations=1, warmup_iterations=warmup
        )
        fit = fit_body(body, person, K, options=options, init=truth)
        turned[warmup] = float(np.abs(fit.pose[free] - pose[free]).max())
        error[warmup] = fit.keypoint_error_px
    rate = BodyFitOptions.learning_rate
    assert turned[0] > 0.9 * rate
    assert turned[10] <= 0.1 * rate + 1e-6
    assert error[10] < error[0]


def test_unseen_ends_weigh_only_limbs_whose_end_is_hidden() -> None:
    from recon3d.fitting.body_fit import _unseen_ends

    bones = ["root", "upperarm01.L", "lowerarm01.L", "wrist.L", "lowerarm01.R", "lowerleg01.R"]
    person = _blank_person()
    person.visibility[POSE_LANDMARKS.index("left_wrist")] = 0.2
    person.visibility[POSE_LANDMARKS.index("right_wrist")] = 0.1
    person.visibility[POSE_LANDMARKS.index("right_ankle")] = 0.6  # seen: above the threshold
    unseen = _unseen_ends(person, bones, {"right": np.zeros((21, 2))}, threshold=0.5)
    # Only the left forearm: its wrist is hidden and no hand was found on that side (the right
    # hand model's wrist stands in for the pose model's).
    np.testing.assert_allclose(unseen, [0, 0, 0.8, 0, 0, 0], atol=1e-6)


def test_bones_cut_by_the_photo_edge_can_go_unpulled() -> None:
    """A head-and-shoulders framing: both elbows below the photo and unseen. The left upper
    arm starts in the photo (the edge cuts it), the right one's shoulder is outside too, and
    the left forearm lies wholly below the photo."""
    from recon3d.fitting.body_fit import _unseen_ends

    bones = ["upperarm01.L", "upperarm01.R", "lowerarm01.L"]
    person = _blank_person()
    for name, point, visibility in (
        ("left_shoulder", (2, 6), 1.0),
        ("left_elbow", (2, 11), 0.2),  # below the 8x8 photo
        ("right_shoulder", (6, 9), 0.3),  # also below
        ("right_elbow", (6, 13), 0.1),
        ("left_wrist", (3, 12), 0.2),
    ):
        index = POSE_LANDMARKS.index(name)
        person.points[index] = point
        person.visibility[index] = visibility
    pulled = _unseen_ends(person, bones, None, threshold=0.5)
    np.testing.assert_allclose(pulled, [0.8, 0.9, 0.8], atol=1e-6)
    # Without the cut bones' pull: the left upper arm goes free; the right one lies wholly
    # outside the photo and the forearm starts outside it, so both stay pulled.
    uncut = _unseen_ends(person, bones, None, threshold=0.5, pull_cut_bones=False)
    np.testing.assert_allclose(uncut, [0.0, 0.9, 0.8], atol=1e-6)


def _arm_moved_by_short_refinements(body, pose, hide, landmarks_below, bone, variants):
    """How far (rad) a short refinement (10 pose + 20 silhouette iterations) turns ``bone`` away
    from a start that has it at rest, on the synthetic person posed ``pose``, with the landmarks
    ``hide`` reported at visibility 0.05 (and, with ``landmarks_below``, placed below the
    photo); one distance per ``BodyFitOptions`` overrides in ``variants`` (name -> dict)."""
    from recon3d.fitting.body_fit import BodyFit

    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    shape = np.zeros(body.num_shape, np.float32)
    person, _ = _synthetic_person(body, pose, shape, K, size)
    for name in hide:
        index = POSE_LANDMARKS.index(name)
        person.visibility[index] = 0.05
        if landmarks_below:
            person.points[index, 1] = size[1] + 40.0
    start_pose = pose.copy()
    start_pose[body.bone(bone)] = (0.0, 0.0, 0.0)  # the start's (a network's) guess
    # The translation that puts the model where _synthetic_person rendered it.
    start = BodyFit(shape, start_pose, np.array([0, 0, 4.0], np.float32), 0.0, 1.0)
    moved = {}
    for name, overrides in variants.items():
        options = BodyFitOptions(
            torso_iterations=0, pose_iterations=10, silhouette_iterations=20, **overrides
        )
        fit = fit_body(body, person, K, options=options, init=start)
        moved[name] = float(np.linalg.norm(fit.pose[body.bone(bone)] - start_pose[body.bone(bone)]))
    return moved


def test_hidden_limb_stays_near_the_starting_estimate(body) -> None:
    """A forearm whose wrist MediaPipe does not see: with the hidden-limb pull the short
    refinement keeps the start's (a network's) forearm; without it the silhouette moves it."""
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    pose[body.bone("lowerarm01.L")] = (0.0, -0.9, 0.6)
    hand = ("left_wrist", "left_index", "left_pinky", "left_thumb")
    variants = {weight: {"hidden_init_weight": weight} for weight in (0.0, 2.0)}
    moved = _arm_moved_by_short_refinements(body, pose, hand, False, "lowerarm01.L", variants)
    assert moved[2.0] < 0.05
    assert moved[0.0] > 2 * moved[2.0]


def test_upper_arm_cut_by_the_frame_follows_the_mask_without_the_cut_pull(body) -> None:
    """An upper arm whose elbow MediaPipe places below the photo (a head-and-shoulders
    framing), its shoulder inside: the hidden-limb pull holds it at the start's guess, and
    with ``pull_cut_bones=False`` the silhouette moves it towards the mask."""
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    arm = ("left_elbow", "left_wrist", "left_index", "left_pinky", "left_thumb")
    variants = {cut: {"hidden_init_weight": 2.0, "pull_cut_bones": cut} for cut in (True, False)}
    moved = _arm_moved_by_short_refinements(body, pose, arm, True, "upperarm01.L", variants)
    assert moved[True] < 0.1
    assert moved[False] > 3 * moved[True]


def test_unseen_leg_starts_from_the_guess_that_lies_in_the_mask(body) -> None:
    """A leg MediaPipe does not see stays frozen at its start: with ``choose_unseen_legs`` the
    start is the rest pose where that puts more of it inside the mask, else the guess."""
    from recon3d.fitting.body_fit import BodyFit

    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    shape = np.zeros(body.num_shape, np.float32)
    thigh = body.bone("upperleg01.L")
    one_step = dict(torso_iterations=0, pose_iterations=1, silhouette_iterations=0)

    def fitted_thigh(
        true_swing: float,
        guess_swing: float,
        choose: bool,
        covered: bool = False,
        knee_below_frame: bool = False,
        trust_outside_frame: bool = False,
        knee_visibility: float = 0.05,
    ) -> float:
        pose = np.zeros((body.num_joints, 3), np.float32)
        pose[thigh] = (0.0, 0.0, true_swing)  # sideways, in the image plane
        person, _ = _synthetic_person(body, pose, shape, K, size)
        if covered:  # something in front of the legs: the mask stops at the hips
            hip = person.points[POSE_LANDMARKS.index("left_hip"), 1]
            person.mask[int(hip) :] = 0
        for name in ("left_ankle", "left_heel", "left_foot_index"):
            person.visibility[POSE_LANDMARKS.index(name)] = 0.05
        person.visibility[POSE_LANDMARKS.index("left_knee")] = knee_visibility
        if knee_below_frame:  # MediaPipe's guess for a knee under the photo's bottom edge
            person.points[POSE_LANDMARKS.index("left_knee"), 1] = size[1] + 20
        start_pose = pose.copy()
        start_pose[thigh] = (0.0, 0.0, guess_swing)
        start = BodyFit(shape, start_pose, np.array([0, 0, 4.0], np.float32), 0.0, 1.0)
        options = BodyFitOptions(
            **one_step, choose_unseen_legs=choose, trust_knees_outside_frame=trust_outside_frame
        )
        return float(fit_body(body, person, K, options=options, init=start).pose[thigh, 2])

    # Standing person, leg guessed far out: the rest pose lies in the mask, it wins.
    assert fitted_thigh(0.0, 1.2, choose=True) == pytest.approx(0.0, abs=1e-6)
    # Leg out to the side in the photo, guessed right: the guess lies in the mask, it stays.
    assert fitted_thigh(0.6, 0.6, choose=True) == pytest.approx(0.6, abs=1e-6)
    # Legs covered: neither lies in the mask, a tie; the guess stays.
    assert fitted_thigh(0.0, 0.6, choose=True, covered=True) == pytest.approx(0.6, abs=1e-6)
    # Off by default: the start is kept whatever the mask says.
    assert fitted_thigh(0.0, 1.2, choose=False) == pytest.approx(1.2, abs=1e-6)
    # The knee placed below the photo: standing, whatever the mask says...
    assert fitted_thigh(0.6, 0.6, choose=True, knee_below_frame=True) == pytest.approx(0.0)
    # ...also when trusted, if MediaPipe does not see the knee (an upper-body portrait)...
    below = dict(choose=True, knee_below_frame=True, trust_outside_frame=True)
    assert fitted_thigh(0.6, 0.6, **below) == pytest.approx(0.0)
    # ...but a knee it reports visible just past the edge is left to the mask test.
    assert fitted_thigh(0.6, 0.6, **below, knee_visibility=0.9) == pytest.approx(0.6, abs=1e-6)
    assert fitted_thigh(0.0, 1.2, **below, knee_visibility=0.9) == pytest.approx(0.0, abs=1e-6)


def test_landmarks_outside_the_frame_count_when_asked(body) -> None:
    """A person cut above the knees whose knees MediaPipe still reports visible past the
    bottom edge: by default that leg counts as unseen and stays at its start; with
    ``landmarks_outside_frame`` the knee pulls the thigh back towards the truth."""
    from recon3d.fitting.body_fit import BodyFit

    size = (600, 900)
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    pose = np.zeros((body.num_joints, 3), np.float32)
    shape = np.zeros(body.num_shape, np.float32)
    person, _ = _synthetic_person(body, pose, shape, K, size)
    knee_y = person.points[POSE_LANDMARKS.index("left_knee"), 1]
    cut = int(knee_y) - 20  # the photo ends 20 px above the knees
    person = BodyLandmarks(
        person.points, person.visibility, person.world, person.mask[:cut], person.box
    )
    thigh = body.bone("upperleg01.L")
    start_pose = pose.copy()
    start_pose[thigh] = (0.0, 0.0, 0.4)
    start = BodyFit(shape, start_pose, np.array([0, 0, 4.0], np.float32), 0.0, 1.0)
    off = {}
    for outside in (False, True):
        options = BodyFitOptions(
            torso_iterations=0,
            pose_iterations=30,
            silhouette_iterations=0,
            landmarks_outside_frame=outside,
        )
        fit = fit_body(body, person, K, options=options, init=start)
        off[outside] = float(np.linalg.norm(fit.pose[thigh] - pose[thigh]))
    assert off[False] == pytest.approx(0.4, abs=1e-6)
    assert off[True] < 0.6 * off[False]


def test_hand_detector_finds_a_rendered_hand(body) -> None:
    """MediaPipe's hand model, run on crops around the pose's wrists, finds the hands of a
    rendered body (one arm held out sideways, one hanging), and each hand's wrist and index
    knuckle land near the model's own points of that side."""
    import cv2

    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL, rotation_between
    from recon3d.keypoints.mediapipe_hands import HAND_LANDMARKS, MediaPipeHandDetector
    from recon3d.render.renderer import render_mesh

    size = (640, 640)
    K = np.array([[900.0, 0, 319.5], [0, 900.0, 319.5], [0, 0, 1]])
    rest = body.keypoints(body.mean_vertices[None])[0].numpy()
    arm = rest[body.keypoint("left_wrist")] - rest[body.keypoint("left_shoulder")]
    pose = np.zeros((body.num_joints, 3), np.float32)
    pose[body.bone("upperarm01.L")] = cv2.Rodrigues(rotation_between(arm, np.array([1.0, 0, 0])))[
        0
    ].ravel()
    person, verts = _synthetic_person(body, pose, np.zeros(body.num_shape, np.float32), K, size)
    verts = verts - (0, 0, 2.0)  # 2 m from the camera: hands a few dozen pixels wide
    kp = body.keypoints(torch.as_tensor(verts, dtype=torch.float32)[None])[0].numpy()
    projected = {}
    for mp_name, model_name in MEDIAPIPE_TO_MODEL.items():
        p = K @ kp[body.keypoint(model_name)]
        projected[model_name] = p[:2] / p[2]
        person.points[POSE_LANDMARKS.index(mp_name)] = p[:2] / p[2]
    skin = np.tile([[205, 165, 145]], (len(verts), 1)).astype(np.uint8)
    image = render_mesh(
        verts, body.faces, K, size, vertex_colors=skin, lit=True, background=(60, 90, 120)
    ).color
    hands = MediaPipeHandDetector().detect(image, person)
    assert set(hands) == {"left", "right"}
    for side, points in hands.items():
        assert points.shape == (len(HAND_LANDMARKS), 2)
        scale = np.ptp(points, axis=0).max()
        assert np.linalg.norm(points[0] - projected[f"{side}_wrist"]) < 0.35 * scale
        assert np.linalg.norm(points[5] - projected[f"{side}_index"]) < 0.5 * scale


def test_clean_person_mask_takes_landmarks_in_the_last_half_pixel() -> None:
    # A landmark at x = W - 0.3 rounds to W: it must still pick its blob, not index past the
    # image (found on a real photo with a covered forearm).
    from recon3d.keypoints.mediapipe_pose import clean_person_mask

    mask = np.zeros((40, 30), np.float32)
    mask[10:30, 20:30] = 1.0  # the person, touching the right border
    mask[0:5, 0:5] = 1.0  # a person-like blob elsewhere
    points = np.full((33, 2), -1.0, np.float32)
    visibility = np.zeros(33, np.float32)
    points[0] = (29.7, 20.0)
    visibility[0] = 1.0
    cleaned = clean_person_mask(mask, points, visibility)
    assert cleaned[20, 25] == 1.0 and cleaned[2, 2] == 0.0
