"""The closed-form clothing estimate (recon3d.fitting.clothing): smoke, exception, recovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.fitting.body_fit import CLOTHING_MAX
from recon3d.fitting.clothing import clothing_membership, estimate_clothing

PARTS = list(CLOTHING_MAX)


@pytest.fixture(scope="module")
def model():
    from recon3d.models.body import BodyModel

    return BodyModel.from_pretrained()


def _posed(model, clothing: np.ndarray | None, yaw: float = 0.0) -> np.ndarray:
    """(V, 3) camera-frame vertices of the mean body in an A pose, 3.2 m in front of the camera."""
    pose = torch.zeros(1, model.num_joints, 3)
    pose[0, 0, 1] = yaw
    for side, sign in (("L", 1.0), ("R", -1.0)):
        pose[0, model.bone(f"upperarm01.{side}"), 2] = sign * 0.9
    # The model's y axis points up and its front faces +z; the camera looks along +z with y
    # down: turn it half a turn about x.
    pose[0, 0, 0] = np.pi
    offsets = None
    if clothing is not None:
        weights, _ = model.part_weights()
        offsets = (weights @ torch.as_tensor(clothing, dtype=weights.dtype))[None]
    with torch.no_grad():
        out = model(
            torch.zeros(1, model.num_shape),
            pose,
            torch.tensor([[0.0, 0.0, 3.2]]),
            normal_offsets=offsets,
        )
    return out.vertices[0].numpy().astype(np.float64)


def _camera(size=(480, 640)) -> np.ndarray:
    h, w = size
    return np.array([[700.0, 0, w / 2], [0, 700.0, h / 2], [0, 0, 1]])


def _mask(vertices, faces, K, size=(480, 640)) -> np.ndarray:
    from recon3d.render.renderer import render_mesh

    h, w = size
    return (render_mesh(vertices, faces, K, (w, h), depth_only=True).depth > 0).astype(np.float32)


def _estimate(model, naked, mask, K) -> np.ndarray:
    return estimate_clothing(naked, model.faces, model.vertex_part, model.part_names, mask, K)


def test_naked_body_gets_no_clothing(model) -> None:
    K = _camera()
    naked = _posed(model, None)
    clothing = _estimate(model, naked, _mask(naked, model.faces, K), K)
    assert clothing.shape == (len(PARTS),) and clothing.dtype == np.float32
    # One working pixel at 3.2 m is about 6 mm; the median outline vertex sits inside it.
    assert np.all(clothing <= 0.006), dict(zip(PARTS, clothing, strict=True))


def test_clothes_in_the_mask_are_recovered(model) -> None:
    K = _camera()
    true = np.array(
        [
            CLOTHING_MAX[p] * f
            for p, f in zip(PARTS, (0.6, 0.0, 0.6, 0.6, 0, 0.8, 0.5, 0), strict=True)
        ]
    )
    naked = _posed(model, None)
    clothing = _estimate(model, naked, _mask(_posed(model, true), model.faces, K), K)
    for name in ("torso", "upperarm", "forearm", "thigh", "shin"):
        index = PARTS.index(name)
        assert abs(clothing[index] - true[index]) < 0.012, (name, clothing[index], true[index])
    # Never beyond the fit's own bounds.
    assert np.all(clothing <= np.array([CLOTHING_MAX[p] for p in PARTS]) + 1e-6)


def test_hair_is_read_off_the_scalp_alone(model) -> None:
    """Hair thickens the scalp only, so only the scalp's outline votes for it: with the
    membership the rendered hair is recovered; letting the naked face and neck vote as well
    halves the estimate."""
    K = _camera()
    true = np.zeros(len(PARTS))
    true[PARTS.index("head")] = 0.025
    naked = _posed(model, None)
    mask = _mask(_posed(model, true), model.faces, K)
    membership = clothing_membership(model)
    assert membership.shape == (len(naked),)
    assert 0.0 <= membership.min() <= membership.max() <= 1 + 1e-6
    hair = PARTS.index("head")
    with_membership = estimate_clothing(
        naked,
        model.faces,
        model.vertex_part,
        model.part_names,
        mask,
        K,
        vertex_weight=membership,
    )[hair]
    everyone = _estimate(model, naked, mask, K)[hair]
    assert abs(with_membership - 0.025) < 0.012, with_membership
    assert everyone < 0.5 * with_membership, (everyone, with_membership)


def test_parts_left_out_and_empty_masks(model) -> None:
    K = _camera()
    naked = _posed(model, None)
    full = np.ones((480, 640), np.float32)
    # A mask filling the frame: every part's outline lies deep inside it, so each estimate is
    # clamped to its bound (or 0 for parts with too few outline vertices, as the hands in an A
    # pose); with every vertex left out nothing votes.
    bounds = np.array([CLOTHING_MAX[p] for p in PARTS], np.float32)
    out = _estimate(model, naked, full, K)
    assert np.all(np.isclose(out, bounds) | (out == 0)), dict(zip(PARTS, out, strict=True))
    assert np.isclose(out[PARTS.index("torso")], bounds[PARTS.index("torso")])
    none_seen = np.zeros(len(naked), bool)
    out = estimate_clothing(
        naked, model.faces, model.vertex_part, model.part_names, full, K, seen_vertex=none_seen
    )
    assert np.all(out == 0)
    # An empty mask: every outline vertex lies outside it, so no part is thicker than naked.
    assert np.all(_estimate(model, naked, np.zeros((480, 640), np.float32), K) == 0)


def test_vertices_behind_the_camera_do_not_vote(model) -> None:
    K = _camera()
    naked = _posed(model, None)
    behind = naked.copy()
    legs = np.isin(np.asarray(model.part_names)[model.vertex_part], ["shin.L", "shin.R"])
    behind[legs, 2] = -1.0
    out = _estimate(model, behind, _mask(naked, model.faces, K), K)
    assert out[PARTS.index("shin")] == 0 and np.isfinite(out).all()


def test_bad_shapes_raise(model) -> None:
    K = _camera()
    naked = _posed(model, None)
    mask = np.zeros((480, 640), np.float32)
    parts = model.vertex_part
    names = model.part_names
    with pytest.raises(ValueError, match=r"vertices must be \(V, 3\)"):
        estimate_clothing(naked[:, :2], model.faces, parts, names, mask, K)
    with pytest.raises(ValueError, match=r"faces must be \(F, 3\)"):
        estimate_clothing(naked, model.faces[:, :2], parts, names, mask, K)
    with pytest.raises(ValueError, match="vertex_part"):
        estimate_clothing(naked, model.faces, parts[:-1], names, mask, K)
    with pytest.raises(ValueError, match=r"mask must be \(H, W\)"):
        estimate_clothing(naked, model.faces, parts, names, mask[..., None], K)
    with pytest.raises(ValueError, match=r"K must be \(3, 3\)"):
        estimate_clothing(naked, model.faces, parts, names, mask, K[:2])
    with pytest.raises(ValueError, match="vertex_weight"):
        estimate_clothing(naked, model.faces, parts, names, mask, K, vertex_weight=mask[0])
    with pytest.raises(ValueError, match="unknown clothing parts"):
        estimate_clothing(naked, model.faces, parts, names, mask, K, parts=["cape"])


def test_only_the_asked_parts_are_estimated(model) -> None:
    K = _camera()
    naked = _posed(model, None)
    full = np.ones((480, 640), np.float32)
    out = estimate_clothing(
        naked, model.faces, model.vertex_part, model.part_names, full, K, parts=["torso"]
    )
    assert out[PARTS.index("torso")] > 0 and np.count_nonzero(out) == 1
