"""The evaluation scripts of the networks: the hidden-part evaluations
(scripts/eval_body_occlusion.py, scripts/eval_head_occlusion.py; cases, covers and summary
statistics) and the paired real-image summary (scripts/eval_body_real.py), on hand-made inputs
(no detection, no reconstruction)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from helpers import load_repo_module


@pytest.fixture(scope="module")
def script():
    return load_repo_module("scripts", "eval_body_occlusion")


def _person(visible: set[str]):
    """A standing person in a 200x400 image: every landmark at a distinct place, ``visible``
    ones with visibility 0.9, the rest 0.1."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS
    from recon3d.metrics import COCO17_FROM_MEDIAPIPE

    points = np.stack([np.full(33, 100.0), np.linspace(20, 380, 33)], 1).astype(np.float32)
    # Shoulders and hips set a torso length of 100 px.
    for name, xy in {
        "left_shoulder": (130, 100),
        "right_shoulder": (70, 100),
        "left_hip": (130, 200),
        "right_hip": (70, 200),
        "left_elbow": (150, 150),
        "left_wrist": (155, 195),
    }.items():
        points[POSE_LANDMARKS.index(name)] = xy
    visibility = np.array([0.9 if n in visible else 0.1 for n in POSE_LANDMARKS], np.float32)
    person = types.SimpleNamespace(points=points, visibility=visibility)
    coco = np.c_[points, visibility][list(COCO17_FROM_MEDIAPIPE)]
    return person, coco


def test_cases_only_for_joints_the_uncovered_photo_sees(script) -> None:
    core = {"left_shoulder", "right_shoulder", "left_hip", "right_hip"}
    person, coco = _person(core | {"left_elbow", "left_wrist"})
    image = np.zeros((400, 200, 3), np.uint8)
    cases = {name: (joints, box) for name, joints, box in script.cases_for(image, person, coco)}
    assert set(cases) == {"left forearm", "left hand", "left elbow"}
    joints, box = cases["left elbow"]
    assert joints == (7,)
    # The elbow at (150, 150) padded by 0.15 torso lengths (15 px) on each side.
    assert box == (135, 135, 165, 165)


def test_cover_replaces_only_the_box(script) -> None:
    image = np.zeros((40, 30, 3), np.uint8)
    patch = np.full((8, 8, 3), 200, np.uint8)
    covered = script.cover(image, (5, 10, 15, 30), patch)
    assert (covered[10:30, 5:15] == 200).all()
    covered[10:30, 5:15] = 0
    assert not covered.any() and not image.any()


def test_box_iou(script) -> None:
    assert script.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert script.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert script.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_summary_pairs_cases_and_resamples_sources(script) -> None:
    rows = []
    for source in ("a.jpg", "b.jpg", "c.jpg"):
        for photo in (source, source + " (mirrored)"):
            for method, error in (("optimisation", 0.4), ("network", 0.3)):
                rows.append(
                    {
                        "source": source,
                        "photo": photo,
                        "person": 0,
                        "case": "left elbow",
                        "method": method,
                        "errors": [error],
                        "box_iou": 0.5,
                    }
                )
    summary = script.summarise(rows, ["optimisation", "network"])
    assert summary["network"]["cases"] == 6
    assert summary["network"]["joint_error"] == pytest.approx(0.3)
    assert summary["network"]["beats_optimisation"] == "6/6"
    # Every resample of a constant difference is that difference.
    np.testing.assert_allclose(summary["network"]["change_from_optimisation"], [-0.1] * 3)
    np.testing.assert_allclose(summary["optimisation"]["change_from_optimisation"], [0.0] * 3)


def test_head_regions_and_covered_box() -> None:
    head = load_repo_module("scripts", "eval_head_occlusion")
    regions = head.regions()
    assert set(regions) == {"left eye", "right eye", "nose", "mouth"}
    # MediaPipe's contour sets: disjoint eyes, every index a face-mesh point.
    assert not set(regions["left eye"]) & set(regions["right eye"])
    assert all(0 <= i < 478 for r in regions.values() for i in r)
    points = np.array([[40.0, 50.0], [60.0, 70.0]])
    size = head.face_size(np.array([[0.0, 0.0], [200.0, 100.0]]))
    assert size == 200.0
    # Padded by 5 % of the face size (10 px), clipped to the (80, 65) image.
    assert head.covered_box(points, (80, 65, 3), size) == (30, 40, 65, 80)


def test_frames_of_one_video_are_one_source(script) -> None:
    assert script.source_of("carphone.mp4 frame 30") == "carphone.mp4"
    assert script.source_of("obama.jpg") == "obama.jpg"


def test_real_image_eval_pairs_methods_per_image() -> None:
    """scripts/eval_body_real.py's summary: per-method means, the paired difference from the
    reference with its bootstrap interval, and better/worse counts with each measure's sense
    (larger IoU and PCK, smaller keypoint error and share of implausible poses); an image
    without a PCK is left out of it; measures the rows lack are not summarised."""
    script = load_repo_module("scripts", "eval_body_real")
    rows = {
        "a": {"iou": [0.80, 0.70, 0.90], "pck": [1.0, 0.5, np.nan], "kp_error": [0.03, 0.05, 0.02]},
        "c": {"iou": [0.85, 0.70, 0.80], "pck": [1.0, 1.0, np.nan], "kp_error": [0.02, 0.06, 0.02]},
    }
    assert "implausible" not in script.paired_summary(rows, "a")["c"]
    rows["a"]["implausible"] = [1.0, 0.0, 0.0]
    rows["c"]["implausible"] = [0.0, 0.0, 0.0]
    summary = script.paired_summary(rows, "a")
    implausible = summary["c"]["implausible"]
    assert implausible["diff"] == pytest.approx(-1 / 3)
    assert (implausible["better"], implausible["worse"]) == (1, 0)
    assert summary["a"]["iou"] == {"mean": pytest.approx(0.8)}
    iou = summary["c"]["iou"]
    assert iou["diff"] == pytest.approx((0.05 + 0.0 - 0.10) / 3)
    assert iou["low"] <= iou["diff"] <= iou["high"]
    assert (iou["better"], iou["worse"]) == (1, 1)
    kp = summary["c"]["kp_error"]
    assert (kp["better"], kp["worse"]) == (1, 1)  # 0.02 < 0.03 is better, 0.06 > 0.05 worse
    pck = summary["c"]["pck"]
    assert pck["mean"] == pytest.approx(1.0) and pck["diff"] == pytest.approx(0.25)
    assert (pck["better"], pck["worse"]) == (1, 0)


def test_two_real_image_runs_are_paired_by_input() -> None:
    """``eval_body_real.py --compare``: the second run's paired difference from the first per
    method, over the inputs both scored (an input only one run has is left out), with each
    measure's sense; and summaries in another measure's sense (``better_sign``)."""
    script = load_repo_module("scripts", "eval_body_real")

    def image(name, iou, kp_error):
        values = {"iou": iou, "pck": 1.0, "kp_error": kp_error, "implausible": 0.0}
        return {"input": name, "whole_body": True, "network + refine": values}

    reference = {"images": [image("a", 0.8, 0.03), image("b", 0.9, 0.02), image("x", 0.1, 0.9)]}
    other = {"images": [image("b", 0.8, 0.01), image("a", 0.9, 0.03)]}
    result = script.compare_runs(reference, other)
    assert result["inputs"] == 2
    iou = result["network + refine"]["iou"]
    assert iou["mean"] == pytest.approx(0.85) and iou["diff"] == pytest.approx(0.0)
    assert (iou["better"], iou["worse"]) == (1, 1)
    kp = result["network + refine"]["kp_error"]
    assert kp["diff"] == pytest.approx(-0.005) and (kp["better"], kp["worse"]) == (1, 0)
    # A method only one run scored (an extra refinement variant) is left out, not an error.
    reference["images"][0]["refine 0/0/20"] = reference["images"][0]["network + refine"]
    assert set(script.compare_runs(reference, other)) == {"inputs", "network + refine"}
    assert set(script.compare_runs(other, reference)) == {"inputs", "network + refine"}
    rows = {"a": {"pve": [100.0, 120.0]}, "c": {"pve": [90.0, 125.0]}}
    pve = script.paired_summary(rows, "a", better_sign={"pve": -1.0})["c"]["pve"]
    assert pve["diff"] == pytest.approx(-2.5) and (pve["better"], pve["worse"]) == (1, 1)


def test_head_and_shoulders_framing_puts_the_head_at_the_top_centre() -> None:
    """The video-call framing (of eval_body_net.py's held-out set and of training shards): the
    nose near the frame's horizontal centre,
    the crown near its top, the shoulders inside the frame, and the head large (a fifth of
    the frame's height or more, where a whole-body framing makes it about a tenth), for any
    pose."""
    import torch

    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import frame_head_and_shoulders, random_sample

    model = BodyModel.from_pretrained()
    rng = np.random.default_rng(0)
    for _ in range(10):
        sample = frame_head_and_shoulders(model, random_sample(model, rng), rng)
        with torch.no_grad():
            out = model(
                torch.as_tensor(sample.shape, dtype=torch.float32)[None],
                torch.as_tensor(sample.pose, dtype=torch.float32)[None],
            )
        keypoints = model.keypoints(out.vertices)[0].numpy() + sample.translation
        verts = out.vertices[0].numpy() + sample.translation
        w, h = 2 * sample.K[0, 2] + 1, 2 * sample.K[1, 2] + 1

        def project(points, K=sample.K):
            uv = points @ K.T
            return uv[..., :2] / uv[..., 2:]

        nose = project(keypoints[model.keypoint("nose")])
        assert 0.3 * w < nose[0] < 0.7 * w
        head = project(verts[model.vertex_part == model.part_names.index("head")])
        assert 0.0 <= head[:, 1].min() < 0.2 * h
        assert np.ptp(head[:, 1]) > 0.2 * h
        shoulders = project(
            keypoints[[model.keypoint("left_shoulder"), model.keypoint("right_shoulder")]]
        )
        assert 0.0 < shoulders[:, 1].mean() < h


def test_refinement_variants_spell_the_prior_weight() -> None:
    """sweep_body_refine.py's variant grammar: "~w" weighs the pose prior (0 without it), and
    the other suffixes still parse around it."""
    from recon3d.body_pipeline import REFINE_OPTIONS

    script = load_repo_module("scripts", "sweep_body_refine")
    default = script.refine_options("10/10/40/0/0.5+legs+keepbelow+uncut+pnp+clothes+hair~0.3")
    for field in ("torso_iterations", "pose_iterations", "silhouette_iterations"):
        assert getattr(default, field) == getattr(REFINE_OPTIONS, field)
    assert default.adversarial_weight == REFINE_OPTIONS.adversarial_weight == 0.3
    assert default.trust_knees_outside_frame and default.choose_unseen_legs
    assert default.pull_cut_bones == REFINE_OPTIONS.pull_cut_bones
    assert not default.pull_cut_bones
    assert script.refine_options("0/20/40/0/0.5+legs+keepbelow+pnp").pull_cut_bones
    assert script.refine_options("0/20/40/0/0.5+legs").adversarial_weight == 0.0
    other = script.refine_options("0/10/20/0/0.5+legs@0.02:lbfgs~1")
    assert (other.learning_rate, other.optimiser, other.adversarial_weight) == (0.02, "lbfgs", 1.0)
    assert other.warmup_iterations == 0
    warm = script.refine_options("0/0/30/0/0.5+legs+rays+pnp+clothes+hair@0.06~0.3^5")
    assert (warm.learning_rate, warm.adversarial_weight, warm.warmup_iterations) == (0.06, 0.3, 5)
    assert script.estimate_options("0/0/30/0/0.5+rays+pnp+clothes+hair^5") == {
        "limbs": "image",
        "rigid": "photo",
        "clothing": "mask",
        "hair": True,
    }
    assert script.estimate_options("0/20/40/0/0.5+pnp+clothes~0.3") == {
        "rigid": "photo",
        "clothing": "mask",
        "hair": False,
    }
