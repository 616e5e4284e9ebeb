"""Real photos with a limb hidden: how well each method completes what the camera did not see.

There is no 3D ground truth for real photos, and on the unaltered photo the optimisation fits
exactly the evidence a 2D measure would score (MediaPipe's keypoints and person mask), so such a
measure rewards it by construction. This script holds evidence out instead: a real-photo patch
(a crop of a street scene from ``vtest.avi``) covers a forearm, a hand, an elbow, a knee or a
lower leg (:data:`CASES`), every method reconstructs the covered photo (the same MediaPipe
result on the covered photo for all), and each result is scored against what MediaPipe found on
the *uncovered* photo at the hidden joints, which no method saw:

* hidden-joint error: distance between the projected model joint (COCO-17, Anny's regressor)
  and the uncovered photo's MediaPipe keypoint, in torso lengths (mean shoulder-to-hip
  distance of the uncovered detection), over the hidden joints MediaPipe saw there
  (visibility > 0.5);
* PCK@0.2 of the same joints;
* silhouette IoU against the uncovered photo's person mask inside the covered box.

Each photo is used as is and mirrored, with up to ``--max-people`` people each. A case is
skipped when the uncovered detection does not see the joints to hide (visibility > 0.5), or when
MediaPipe no longer finds the person once covered.

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_body_occlusion.py \
        --photos ../shared/data/photos/{obama3.jpg,biden.jpg,obama.jpg,obama2.jpg} \
            ../shared/data/photos/{grace_hopper.jpg,astronaut.png,camera.png,sample1.jpg} \
        --occluder ../shared/data/video/vtest.avi \
        [--ablation data/body_net_noadv/body_net.safetensors] [--pictures DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


log = logging.getLogger("eval_body_occlusion")

#: Hidden region -> (COCO-17 joints scored, MediaPipe landmarks whose box is covered).
#: COCO-17: 7/8 elbows, 9/10 wrists, 13/14 knees, 15/16 ankles (left/right of the person).
CASES = {
    "left forearm": (
        (7, 9),
        ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb"),
    ),
    "right forearm": (
        (8, 10),
        ("right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb"),
    ),
    "left hand": ((9,), ("left_wrist", "left_pinky", "left_index", "left_thumb")),
    "right hand": ((10,), ("right_wrist", "right_pinky", "right_index", "right_thumb")),
    "left elbow": ((7,), ("left_elbow",)),
    "right elbow": ((8,), ("right_elbow",)),
    "left knee": ((13,), ("left_knee",)),
    "right knee": ((14,), ("right_knee",)),
    "left lower leg": ((13, 15), ("left_knee", "left_ankle", "left_heel", "left_foot_index")),
    "right lower leg": (
        (14, 16),
        ("right_knee", "right_ankle", "right_heel", "right_foot_index"),
    ),
}
# Padding of the covered box around the hidden landmarks, in torso lengths.
_PAD = 0.15
_PCK = 0.2


def torso_length(points: np.ndarray) -> float:
    """Mean shoulder-to-hip distance of COCO-17 keypoints (N, >=2)."""
    return 0.5 * float(
        np.linalg.norm(points[5, :2] - points[11, :2])
        + np.linalg.norm(points[6, :2] - points[12, :2])
    )


def cover(image: np.ndarray, box: tuple[int, int, int, int], occluder: np.ndarray) -> np.ndarray:
    """``image`` with ``box`` (x0, y0, x1, y1) replaced by ``occluder`` resized to fit."""
    import cv2

    x0, y0, x1, y1 = box
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.resize(occluder, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return out


def occluder_patch(video: pathlib.Path) -> np.ndarray:
    """A street-scene crop (people, pavement) from the first frame of ``video``, RGB."""
    from recon3d.io.video import read_video

    frames, _ = read_video(video)
    frame = next(iter(frames))
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[h // 3 :, w // 4 : 3 * w // 4])


def cases_for(image: np.ndarray, person, coco: np.ndarray):
    """(name, scored COCO joints, covered box) for each case the uncovered detection sees."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    h, w = image.shape[:2]
    torso = torso_length(coco)
    visible = person.visibility > 0.5
    for name, (joints, landmarks) in CASES.items():
        if not all(coco[j, 2] > 0.5 for j in joints):
            continue
        idx = [POSE_LANDMARKS.index(n) for n in landmarks]
        pts = person.points[idx][visible[idx]]
        pad = _PAD * torso
        x0, y0 = np.floor(pts.min(0) - pad).astype(int)
        x1, y1 = np.ceil(pts.max(0) + pad).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        yield name, joints, (int(x0), int(y0), int(x1), int(y1))


def score(rec, joints: tuple[int, ...], reference: np.ndarray, torso: float, box, mask) -> dict:
    """Hidden-joint error (torso lengths), PCK and IoU inside the covered box of one result."""
    from recon3d.render.renderer import render_mesh

    predicted = rec.landmarks_2d("coco17")[list(joints)]
    error = np.linalg.norm(predicted - reference[list(joints), :2], axis=1) / torso
    h, w = rec.image.shape[:2]
    alpha = render_mesh(rec.vertices, rec.faces, rec.camera.K, (w, h), depth_only=True).depth > 0
    x0, y0, x1, y1 = box
    a, m = alpha[y0:y1, x0:x1], mask[y0:y1, x0:x1] > 0.5
    return {
        "errors": [round(float(e), 4) for e in error],
        "box_iou": round(float((a & m).sum() / max((a | m).sum(), 1)), 4),
    }


def picture(
    covered: np.ndarray, box, coco: np.ndarray, joints, results: dict, context: float | None = None
):
    """One tile per method: the covered photo (box outlined), the mesh overlaid, the hidden
    joints of the uncovered detection (green) and of the method (red). With ``context``, each
    tile is cropped to the covered box plus that many torso lengths around it."""
    import cv2
    from PIL import Image

    from recon3d.render.renderer import render_mesh

    h, w = covered.shape[:2]
    x0, y0, x1, y1 = box
    window = (0, 0, w, h)
    if context is not None:
        pad = int(context * torso_length(coco))
        window = (max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h))
    thick = max(2, (window[3] - window[1]) // 200)
    tiles = []
    for method, rec in results.items():
        alpha = render_mesh(rec.vertices, rec.faces, rec.camera.K, (w, h), depth_only=True).depth
        tile = covered.copy()
        shade = alpha > 0
        tile[shade] = (0.55 * tile[shade] + 0.45 * np.array([90, 140, 255])).astype(np.uint8)
        cv2.rectangle(tile, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), thick)
        predicted = rec.landmarks_2d("coco17")
        for j in joints:
            ref = tuple(int(v) for v in coco[j, :2])
            est = tuple(int(v) for v in predicted[j])
            cv2.line(tile, ref, est, (255, 255, 255), thick)
            cv2.circle(tile, ref, 3 * thick, (0, 220, 0), -1)
            cv2.circle(tile, est, 3 * thick, (230, 30, 30), -1)
        tile = tile[window[1] : window[3], window[0] : window[2]]
        scale = 480 / tile.shape[0]
        tile = cv2.resize(tile, (round(tile.shape[1] * scale), 480), interpolation=cv2.INTER_AREA)
        (tw, th), _ = cv2.getTextSize(method, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        cv2.rectangle(tile, (0, 0), (tw + 12, th + 14), (0, 0, 0), -1)
        cv2.putText(tile, method, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        tiles.append(tile)
    return Image.fromarray(np.concatenate(tiles, axis=1))


def same_person(detector, image: np.ndarray, box, max_people: int = 4):
    """MediaPipe pose of the person in ``image`` whose box overlaps ``box`` (x0, y0, x1, y1)
    most (intersection over union > 0.5), or None: covering a limb may change which person
    is the most prominent one."""
    from recon3d.errors import NoPersonFound

    best, best_iou = None, 0.5
    for index in range(max_people):
        try:
            candidate = detector.detect(image, index)
        except NoPersonFound:
            break
        iou = box_iou(candidate.box, box)
        if iou > best_iou:
            best, best_iou = candidate, iou
    return best


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def case_row(name: str, label: str, person: int, case: str, method: str) -> dict:
    """The identity of one result row, as :func:`summarise` pairs and resamples them: its
    bootstrap source, the image (``label``: the name, marked when mirrored), the person or
    face index in it, the hidden region and the method."""
    return {
        "source": source_of(name),
        "photo": label,
        "person": person,
        "case": case,
        "method": method,
    }


def source_of(name: str) -> str:
    """The source of an input for the bootstrap: the photo, or the whole video for its frames
    (consecutive frames of one person are not independent samples)."""
    return name.split(" frame ")[0]


def inputs(paths: list[pathlib.Path], video_every: int):
    """(name, (H, W, 3) uint8 RGB) of each photo and of every ``video_every``-th video frame."""
    from recon3d.io.image import load_image
    from recon3d.io.video import read_video

    for path in paths:
        if path.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
            frames, _ = read_video(path)
            for i, frame in enumerate(frames):
                if i % video_every == 0:
                    yield f"{path.name} frame {i}", frame
        else:
            yield path.name, load_image(path)


def picture_arguments(description: str, argv=None) -> argparse.Namespace:
    """Arguments of the docs-picture scripts of both occlusion evaluations: ``--out``, the
    shared photos and the occluder video."""
    shared = ROOT.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument("--photos", type=pathlib.Path, default=shared / "photos")
    parser.add_argument("--occluder", type=pathlib.Path, default=shared / "video" / "vtest.avi")
    return parser.parse_args(argv)


def compared_methods(pipeline_class, labels: tuple[str, str, str]) -> dict:
    """label -> (pipeline, refine) for optimisation only, the network alone and the network +
    refinement, in that order, from ``pipeline_class.from_pretrained``."""
    plain = pipeline_class.from_pretrained(use_network=False)
    with_net = pipeline_class.from_pretrained(use_network=True)
    return dict(zip(labels, ((plain, True), (with_net, False), (with_net, True)), strict=True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--photos", type=pathlib.Path, nargs="+", required=True, help="photos and videos"
    )
    parser.add_argument(
        "--video-every", type=int, default=100, help="take every N-th frame of a video"
    )
    parser.add_argument("--occluder", type=pathlib.Path, required=True)
    parser.add_argument("--max-people", type=int, default=3, help="people per image")
    parser.add_argument(
        "--net", type=pathlib.Path, default=ROOT / "weights" / "body_net.safetensors"
    )
    parser.add_argument("--ablation", type=pathlib.Path, default=None)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument(
        "--pictures", type=pathlib.Path, default=None, help="save a picture per case here"
    )
    parser.add_argument(
        "--refine-variants",
        nargs="*",
        default=[],
        help="more refinements of the network's estimate, as t/p/s/w[/h][+legs][+netheight] "
        "(sweep_body_refine.py)",
    )
    parser.add_argument(
        "--regions",
        nargs="*",
        default=sorted({case.split(" ", 1)[1] for case in CASES}),
        help="hidden regions to score (default: all)",
    )
    from eval_body_net import add_prior_arguments

    add_prior_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from eval_body_net import load_net, load_prior, prior_refinements
    from sweep_body_refine import estimating, refine_options

    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.errors import NoPersonFound
    from recon3d.metrics import COCO17_FROM_MEDIAPIPE
    from recon3d.models.body import BodyModel

    model = BodyModel.from_pretrained()
    nets = {"network": load_net(args.net)}
    if args.ablation:
        nets["no-prior network"] = load_net(args.ablation)
    methods = {"optimisation": (BodyReconstructionPipeline(model), True)}
    variants = {}  # method -> its refinement variant, which may change the estimate
    prior = load_prior(args.prior)
    for name, net in nets.items():
        pipe = BodyReconstructionPipeline(model, network=net, prior=prior)
        methods[f"{name} only"] = (pipe, False)
        if name == "network":  # the ablation's own refinement adds little; time is short
            methods[f"{name} + refine"] = (pipe, True)
            for variant in args.refine_variants:
                other = BodyReconstructionPipeline(
                    model, network=net, refine_options=refine_options(variant), prior=prior
                )
                methods[f"{name} + refine {variant}"] = (other, True)
                variants[f"{name} + refine {variant}"] = variant
            for method, options in prior_refinements(args.prior_weights).items():
                other = BodyReconstructionPipeline(
                    model, network=net, refine_options=options, prior=prior
                )
                methods[f"{name} {method}"] = (other, True)
    detector = methods["optimisation"][0]
    patch = occluder_patch(args.occluder)

    rows, skipped = [], []
    for name, base in inputs(args.photos, args.video_every):
        for mirrored, image in ((False, base), (True, np.ascontiguousarray(base[:, ::-1]))):
            label = name + (" (mirrored)" if mirrored else "")
            for index in range(args.max_people):
                try:
                    person = detector.detect(image, index)
                except NoPersonFound:
                    break
                coco = np.c_[person.points, person.visibility][list(COCO17_FROM_MEDIAPIPE)]
                torso = torso_length(coco)
                for case, joints, box in cases_for(image, person, coco):
                    if case.split(" ", 1)[1] not in args.regions:
                        continue
                    covered = cover(image, box, patch)
                    covered_person = same_person(detector, covered, person.box)
                    if covered_person is None:
                        log.info("%s #%d %s: person lost once covered, skipped", label, index, case)
                        skipped.append((label, index, case))
                        continue
                    results = {}
                    for method, (pipe, refine) in methods.items():
                        row = case_row(name, label, index, case, method)
                        with estimating(variants.get(method, "")):
                            rec = pipe(
                                covered,
                                refine=refine,
                                person=covered_person,
                                complete_texture=False,
                            )
                        row.update(score(rec, joints, coco, torso, box, person.mask))
                        results[method] = rec
                        rows.append(row)
                        log.info("%s", row)
                    if args.pictures:
                        args.pictures.mkdir(parents=True, exist_ok=True)
                        stem = f"{label}_{index}_{case}".replace(" ", "_")
                        stem = stem.replace("(", "").replace(")", "")
                        picture(covered, box, coco, joints, results).save(
                            args.pictures / f"{stem}.jpg"
                        )
    summary = summarise(rows, list(methods))
    print(f"{len(skipped)} cases skipped: MediaPipe lost the person once covered")
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "summary": summary, "skipped": skipped}, indent=2)
        )
    return 0


def summarise(
    rows: list[dict],
    methods: list[str],
    seed: int = 0,
    *,
    unit: str = "torso lengths",
    pck: float | None = _PCK,
) -> dict:
    """Per method: mean and median hidden-point error, PCK at ``pck`` (unless None), mean IoU
    inside the box (where rows have one), the share of cases where it beats optimisation, and
    the change of the mean error from optimisation with a 95 % bootstrap interval that
    resamples sources (a photo and its mirror together, a video's frames together, as their
    cases are not independent)."""
    by_key = {(r["photo"], r["person"], r["case"], r["method"]): r for r in rows}
    keys = sorted({(r["photo"], r["person"], r["case"]) for r in rows})
    source = {(r["photo"], r["person"], r["case"]): r["source"] for r in rows}
    sources = sorted(set(source.values()))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sources), size=(2000, len(sources)))
    summary = {}
    print(
        f"\n{'method':<26}{'cases':>6}{'error':>10}{'median':>8}{'PCK':>9}"
        f"{'box IoU':>9}{'beats opt':>11}  change from optimisation [95 % CI]"
    )
    for method in methods:
        own = [by_key[k + (method,)] for k in keys]
        errors = np.array([e for r in own for e in r["errors"]])
        case_error = np.array([np.mean(r["errors"]) for r in own])
        base = np.array([np.mean(by_key[k + ("optimisation",)]["errors"]) for k in keys])
        diff = case_error - base
        source_index = np.array([sources.index(source[k]) for k in keys])
        # Per source: sum and count of the case differences, so a resample is a weighted mean.
        sums = np.bincount(source_index, diff, minlength=len(sources))
        counts = np.bincount(source_index, minlength=len(sources))
        boot = sums[draws].sum(1) / np.maximum(counts[draws].sum(1), 1)
        low, high = np.percentile(boot, [2.5, 97.5])
        ious = [r["box_iou"] for r in own if "box_iou" in r]
        s = {
            "cases": len(keys),
            "joints": int(errors.size),
            "joint_error": float(errors.mean()),
            "median_joint_error": float(np.median(errors)),
            "pck": float(np.mean(errors <= pck)) if pck is not None else float("nan"),
            "box_iou": float(np.mean(ious)) if ious else float("nan"),
            "beats_optimisation": f"{int((diff < 0).sum())}/{len(keys)}",
            "change_from_optimisation": [float(diff.mean()), float(low), float(high)],
        }
        summary[method] = s
        print(
            f"{method:<26}{s['cases']:>6}{s['joint_error']:>10.3f}"
            f"{s['median_joint_error']:>8.3f}{s['pck']:>9.2f}{s['box_iou']:>9.3f}"
            f"{s['beats_optimisation']:>11}  {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]"
        )
    threshold = f"; PCK at {pck} {unit}" if pck is not None else ""
    print(f"error in {unit} at the hidden points{threshold}; {len(sources)} source images")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
