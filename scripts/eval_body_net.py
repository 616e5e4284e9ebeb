"""Evaluate body reconstruction on held-out synthetic people: optimisation only, network only,
network + refinement (and the same for a network trained without the adversarial prior).

Held-out set: the synthetic generator with another seed (2), other motion-capture clips
(data/mocap_bank_test.npy: dance_b, kick, spinkick, crawl) and its own colours, backgrounds and
cameras. Each person is rendered, MediaPipe runs on the render, and every method starts from
MediaPipe's output. Errors after Procrustes (similarity) alignment, in mm:

* PVE: mean vertex error over the 13 718 vertices;
* MPJPE: mean error over the 17 COCO joints (Anny's regressor);

plus the share of implausible poses: a knee bent backwards by more than 10° or a bone rotated
beyond a generous anatomical range (:data:`ANATOMICAL_LIMITS`).

The network's estimates are made as the body pipeline makes them: the network-only result
with ``NETWORK_ONLY_*`` options and the refinement's start with ``REFINE_START_*`` options
(``recon3d.body_pipeline``); the main network also without the limb alignment and "raw"
(neither, and no mirror test-time augmentation).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_body_net.py --n 120 \
        --net weights/body_net.safetensors \
        [--ablation data/body_net_noadv/body_net.safetensors] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("eval_body_net")


def load_net(path: pathlib.Path):
    from recon3d.models.body_net import BodyRegressor

    return BodyRegressor.from_file(path)


def add_prior_arguments(parser: argparse.ArgumentParser) -> None:
    """``--prior`` (another pose prior than the shipped one for every refinement) and
    ``--prior-weights`` (also score the default refinement with the prior's term at each weight;
    0 is the refinement without the prior)."""
    parser.add_argument(
        "--prior",
        type=pathlib.Path,
        default=None,
        help="a pose prior (scripts/train_body_prior.py) instead of the shipped one",
    )
    parser.add_argument(
        "--prior-weights",
        type=float,
        nargs="*",
        default=[],
        help="also score the default refinement with the prior's term at these weights "
        "(0: without the prior)",
    )


def load_prior(path: pathlib.Path | None):
    """The pose prior in ``path`` (not hash-checked: for evaluating candidates), or the
    shipped one when ``path`` is None."""
    from recon3d.models.body_prior import PoseDiscriminator

    if path is None:
        return PoseDiscriminator.from_pretrained()
    return PoseDiscriminator.from_file(path)


def prior_refinements(weights: list[float]) -> dict:
    """Method name -> the default refinement options with the prior's term at each weight."""
    import dataclasses

    from recon3d.body_pipeline import REFINE_OPTIONS

    return {
        f"+ refine + prior {w:g}": dataclasses.replace(REFINE_OPTIONS, adversarial_weight=w)
        for w in weights
    }


# Largest rotation (radians, from the rest A-pose) a bone can take in a living body: generous
# anatomical ranges (clavicle elevation ~40°, trunk flexion per spine segment ~45°, ...).
ANATOMICAL_BONES = (
    "spine04",
    "spine02",
    "neck01",
    "upperarm01.L",
    "upperarm01.R",
    "lowerarm01.L",
    "lowerarm01.R",
    "upperleg01.L",
    "upperleg01.R",
    "lowerleg01.L",
    "lowerleg01.R",
)
ANATOMICAL_LIMITS = {
    "spine04": 0.8,
    "spine02": 0.8,
    "neck01": 0.9,
    "head": 1.2,
    "clavicle": 0.7,
    "upperarm01": 3.2,
    "lowerarm01": 2.7,
    "wrist": 1.6,
    "upperleg01": 2.6,
    "lowerleg01": 2.8,
    "foot": 1.0,
}


def out_of_range(model, pose: np.ndarray) -> list[str]:
    """The bones of ``pose`` (J, 3) rotated beyond their anatomical range
    (:data:`ANATOMICAL_LIMITS`), and the knees bent backwards by more than 10°."""
    broken = []
    for name, limit in ANATOMICAL_LIMITS.items():
        bones = [name] if name in model.bone_labels else [f"{name}.L", f"{name}.R"]
        broken += [b for b in bones if np.linalg.norm(pose[model.bone(b)]) > limit]
    for side in ("L", "R"):
        if pose[model.bone(f"lowerleg01.{side}"), 0] < -np.radians(10):
            broken.append(f"knee.{side} backwards")
    return broken


def implausible(model, pose: np.ndarray) -> bool:
    """A knee bent backwards by more than 10°, or a bone rotated beyond its anatomical range
    (:data:`ANATOMICAL_LIMITS`)."""
    return bool(out_of_range(model, pose))


#: How the network's estimate is made (``predict_fit`` options): the default (mirror test-time
#: augmentation, limbs MediaPipe sees swung onto its landmarks), and two ablations.
VARIANTS = (
    ("", {}),
    (" (no limb alignment)", {"limbs": "network"}),
    (" (raw)", {"limbs": "network", "mirror": False}),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--net", type=pathlib.Path, default=ROOT / "weights/body_net.safetensors")
    parser.add_argument(
        "--ablation",
        type=pathlib.Path,
        nargs="*",
        default=[],
        help="other networks to score beside --net (an ablation, another input...)",
    )
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_test.npy")
    parser.add_argument(
        "--train-bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_train.npy"
    )
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--photos", type=pathlib.Path, nargs="*", default=[])
    parser.add_argument(
        "--plausibility-inputs",
        type=pathlib.Path,
        nargs="*",
        default=[],
        help="real photos and videos on which the network-only poses are checked for "
        "plausibility (no ground truth needed): each photo and each video frame, also mirrored",
    )
    parser.add_argument(
        "--plausibility-refined",
        action="store_true",
        help="on the --plausibility-inputs also the default refinement (and those with --prior)",
    )
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--cut-off",
        type=float,
        default=0.0,
        help="share of held-out people framed as portraits (cut at the thighs or knees)",
    )
    parser.add_argument(
        "--head-and-shoulders",
        action="store_true",
        help="frame every held-out person on the head and shoulders (like a video call)",
    )
    parser.add_argument(
        "--ablation-label",
        nargs="*",
        default=["net_noadv"],
        help="names of the --ablation networks in tables, in their order",
    )
    parser.add_argument(
        "--clothed", action="store_true", help="held-out people dressed (clothes and hair)"
    )
    add_prior_arguments(parser)
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="only the default estimate, not the (raw) and (no limb alignment) variants",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from recon3d.body_pipeline import (
        NETWORK_ONLY_CLOTHING,
        NETWORK_ONLY_LIMBS,
        NETWORK_ONLY_RIGID,
        REFINE_OPTIONS,
        REFINE_START_CLOTHING,
        REFINE_START_LIMBS,
        REFINE_START_RIGID,
    )
    from recon3d.fitting.body_fit import fit_body
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import predict_fit

    torch.set_num_threads(1)
    model = BodyModel.from_pretrained()
    detector = MediaPipePoseDetector()
    bank = np.load(args.bank) if args.bank.exists() else None

    nets = {"net": load_net(args.net)}
    if len(args.ablation_label) < len(args.ablation):
        parser.error("give each --ablation network a --ablation-label")
    for label, path in zip(args.ablation_label, args.ablation, strict=False):
        nets[label] = load_net(path)
    refine = REFINE_OPTIONS
    prior = load_prior(args.prior)
    with_prior = prior_refinements(args.prior_weights)
    rng = np.random.default_rng([args.seed, 999])
    results: dict[str, dict[str, list[float]]] = {}

    def record(method: str, fit, gt_verts, gt_kp, seconds: float) -> None:
        pve, mpjpe = body_errors(model, fit, gt_verts, gt_kp)
        row = results.setdefault(method, {"pve": [], "mpjpe": [], "implausible": [], "s": []})
        row["pve"].append(pve)
        row["mpjpe"].append(mpjpe)
        row["implausible"].append(float(implausible(model, fit.pose)))
        row["s"].append(seconds)

    n = 0 if args.skip_synthetic else args.n
    people = heldout_people(
        model, detector, rng, bank, n, args.cut_off, args.clothed, args.head_and_shoulders
    )
    for done, (sample, person, gt_verts, gt_kp, image) in enumerate(people, 1):
        t = time.perf_counter()
        fit = fit_body(model, person, sample.K)
        record("optimisation", fit, gt_verts, gt_kp, time.perf_counter() - t)
        for name, net in nets.items():
            for suffix, options in VARIANTS[: 1 if args.default_only or name != "net" else None]:
                # The default estimates are made as the pipeline makes them: the network-only
                # result and the refinement's start each with the pipeline's options.
                only_options = {
                    "limbs": NETWORK_ONLY_LIMBS,
                    "rigid": NETWORK_ONLY_RIGID,
                    "clothing": NETWORK_ONLY_CLOTHING,
                }
                start_options = {
                    "limbs": REFINE_START_LIMBS,
                    "rigid": REFINE_START_RIGID,
                    "clothing": REFINE_START_CLOTHING,
                }
                alone = only_options if not options else options
                start = start_options if not options else options
                t = time.perf_counter()
                only = predict_fit(net, model, person, sample.K, image=image, **alone)
                estimate_s = time.perf_counter() - t
                record(f"{name} only{suffix}", only, gt_verts, gt_kp, estimate_s)
                # The refinement's time includes its estimate's, made once where they agree.
                t = time.perf_counter()
                if alone == start:
                    init, t = only, t - estimate_s
                else:
                    init = predict_fit(net, model, person, sample.K, image=image, **start)
                fit = fit_body(model, person, sample.K, options=refine, init=init, prior=prior)
                record(f"{name} + refine{suffix}", fit, gt_verts, gt_kp, time.perf_counter() - t)
                for method, options in with_prior.items() if not suffix else ():
                    t = time.perf_counter()
                    fit = fit_body(model, person, sample.K, options=options, init=init, prior=prior)
                    record(f"{name} {method}", fit, gt_verts, gt_kp, time.perf_counter() - t)
            if name == "net" and not args.default_only:
                # The network alone placed on MediaPipe's world torso, as before session 12.
                t = time.perf_counter()
                world = predict_fit(
                    net, model, person, sample.K, image=image, limbs=NETWORK_ONLY_LIMBS
                )
                seconds = time.perf_counter() - t
                record(f"{name} only (world placement)", world, gt_verts, gt_kp, seconds)
                # And without the clothing read off the mask, as before session 13.
                t = time.perf_counter()
                naked = predict_fit(
                    net,
                    model,
                    person,
                    sample.K,
                    image=image,
                    **{**only_options, "clothing": "none"},
                )
                seconds = time.perf_counter() - t
                record(f"{name} only (no clothing)", naked, gt_verts, gt_kp, seconds)
        if done % 20 == 0:
            log.info("%d/%d", done, args.n)

    summary = {
        method: {
            "PVE_mm": round(float(np.mean(r["pve"])), 1),
            "MPJPE_mm": round(float(np.mean(r["mpjpe"])), 1),
            "implausible_%": round(100 * float(np.mean(r["implausible"])), 1),
            "seconds": round(float(np.median(r["s"])), 3),
        }
        for method, r in results.items()
    }
    dressed = ", clothed" if args.clothed else ""
    print(f"held-out synthetic people: {n} (seed {args.seed}, clips {args.bank.name}{dressed})")
    print(f"{'method':<22}{'PVE mm':>9}{'MPJPE mm':>10}{'implausible %':>15}{'time s':>9}")
    for method, m in summary.items():
        print(
            f"{method:<22}{m['PVE_mm']:>9}{m['MPJPE_mm']:>10}{m['implausible_%']:>15}"
            f"{m['seconds']:>9}"
        )
    per_person = {
        m: {"pve": r["pve"], "mpjpe": r["mpjpe"], "implausible": r["implausible"]}
        for m, r in results.items()
    }
    if n:
        print_paired(per_person, list(nets))
        if with_prior:
            print_prior_paired(results, [f"net {m}" for m in with_prior])
    real = evaluate_photos(nets, args.photos) if args.photos else {}
    plausibility = {}
    if args.plausibility_inputs:
        refinements = None
        if args.plausibility_refined:
            refinements = {"net + refine": REFINE_OPTIONS}
            refinements.update({f"net {m}": o for m, o in with_prior.items()})
        plausibility = evaluate_plausibility(
            nets, args.plausibility_inputs, model, bank, refinements, prior
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "synthetic": summary,
                    "synthetic_per_person": per_person,
                    "photos": real,
                    "plausibility": plausibility,
                },
                indent=2,
            )
        )
    return 0


def paired_parts(stats: dict, digits: int = 1) -> str:
    """One line of :func:`eval_body_real.paired_summary` differences: per measure, the mean
    difference, its 95 % interval and the better / worse counts."""
    return "; ".join(
        f"{k} {v['diff']:+.{digits}f} [{v['low']:+.{digits}f}, {v['high']:+.{digits}f}] "
        f"better {v['better']} worse {v['worse']}"
        for k, v in stats.items()
    )


def print_paired(per_person: dict[str, dict[str, list[float]]], nets: list[str]) -> None:
    """Paired differences (mean and 95 % bootstrap interval over the people, better / worse
    counts) of each method from optimisation only, and of each further network's methods from
    the first network's."""
    from eval_body_real import paired_summary

    sign = {"pve": -1.0, "mpjpe": -1.0}

    def show(reference: str, methods: list[str]) -> None:
        rows = {m: per_person[m] for m in [reference, *methods] if m in per_person}
        for method, stats in paired_summary(rows, reference, better_sign=sign).items():
            if method != reference:
                print(f"  {method} - {reference}: {paired_parts(stats)}")

    print("paired differences, mm:")
    show("optimisation", [m for m in per_person if m != "optimisation"])
    for other in nets[1:]:
        for kind in (" only", " + refine"):
            show(nets[0] + kind, [other + kind])


def print_prior_paired(results: dict, methods: list[str]) -> None:
    """Paired differences of the refinements with the prior's term from the default one: PVE,
    MPJPE (mm) and the share of implausible poses."""
    from eval_body_real import paired_summary

    sign = {"pve": -1.0, "mpjpe": -1.0, "implausible": -1.0}
    rows = {m: {k: results[m][k] for k in sign} for m in ["net + refine", *methods]}
    print("the prior's term, paired with the default refinement:")
    for method, stats in paired_summary(rows, "net + refine", better_sign=sign).items():
        if method != "net + refine":
            print(f"  {method}: {paired_parts(stats, 3)}")


def heldout_people(
    model,
    detector,
    rng,
    bank,
    n: int,
    cut_off: float = 0.0,
    clothed: bool = False,
    head_and_shoulders: bool = False,
):
    """The held-out synthetic people, one by one: ``n`` draws of the synthetic generator that
    MediaPipe's pose model detects (the others are skipped), as (sample, person, ground-truth
    vertices (V, 3), ground-truth COCO joints (17, 3), the rendered RGB image). ``cut_off``:
    the share of portrait framings (cut at the thighs or knees), 0 for the whole body in every
    frame. ``clothed``: dressed people (clothes and hair with thickness) instead of flat part
    colours.
    ``head_and_shoulders``: each person re-framed by :func:`frame_head_and_shoulders`."""
    import torch

    from recon3d.train.synthetic import frame_head_and_shoulders, random_sample, render_sample

    done = 0
    while done < n:
        sample = random_sample(model, rng, bank, cut_off)
        if head_and_shoulders:
            sample = frame_head_and_shoulders(model, sample, rng)
        image, _ = render_sample(model, sample, rng, [], clothed)
        try:
            person = detector.detect(image)
        except Exception:  # noqa: BLE001 - MediaPipe missed the person: not part of the set
            continue
        with torch.no_grad():
            gt = model(
                torch.as_tensor(sample.shape, dtype=torch.float32)[None],
                torch.as_tensor(sample.pose, dtype=torch.float32)[None],
            )
        gt_verts = gt.vertices[0].numpy().astype(np.float64)
        gt_kp = model.keypoints(gt.vertices)[0].numpy().astype(np.float64)[:17]
        done += 1
        yield sample, person, gt_verts, gt_kp, image


def body_errors(model, fit, gt_verts: np.ndarray, gt_kp: np.ndarray) -> tuple[float, float]:
    """PVE and MPJPE (mm, after Procrustes) of a fit (with its clothing) against the ground
    truth."""
    import torch

    from recon3d.metrics import procrustes_error

    with torch.no_grad():
        w, _ = model.part_weights()
        offsets = None if fit.clothing is None else (w @ torch.as_tensor(fit.clothing))[None]
        out = model(
            torch.as_tensor(fit.shape)[None],
            torch.as_tensor(fit.pose)[None],
            normal_offsets=offsets,
        )
    verts = out.vertices[0].numpy().astype(np.float64)
    kp = model.keypoints(out.vertices)[0].numpy().astype(np.float64)[:17]
    return 1000 * procrustes_error(verts, gt_verts), 1000 * procrustes_error(kp, gt_kp)


def nearest_pose_angle(model, pose: np.ndarray, bank: np.ndarray) -> float:
    """Mean rotation angle (degrees) of the limb and spine bones between ``pose`` (J, 3) and its
    nearest pose in ``bank`` (N, J, 3), root excluded: how far a prediction is from every pose
    in a set of real motions that no network saw in training."""
    from scipy.spatial.transform import Rotation

    bones = [model.bone(n) for n in ANATOMICAL_BONES]
    pred = Rotation.from_rotvec(np.tile(pose[bones].astype(np.float64), (len(bank), 1)))
    candidates = Rotation.from_rotvec(bank[:, bones].reshape(-1, 3).astype(np.float64))
    angles = np.degrees((pred.inv() * candidates).magnitude()).reshape(len(bank), len(bones))
    return float(angles.mean(1).min())


def real_images(inputs: list[pathlib.Path]):
    """Each photo and each frame of each video in ``inputs`` (by file extension), and right
    after it its mirror image: (H, W, 3) uint8 RGB arrays."""
    from recon3d.io.image import load_image
    from recon3d.io.video import read_video

    for path in inputs:
        if path.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
            images, _ = read_video(path)
        else:
            images = [load_image(path)]
        for image in images:
            yield image
            yield np.ascontiguousarray(image[:, ::-1])


#: The prior acts on the network's raw output; the default estimate (as ``refine=False`` makes
#: it) also takes the limbs MediaPipe sees from its landmarks and their camera rays, placed to
#: agree with the photo and clothed from the mask; "(world limbs)" from the world landmarks only
#: (the refinement's start).
PLAUSIBILITY_VARIANTS = (
    (" (raw)", {"limbs": "network", "mirror": False}),
    (" (world limbs)", {"limbs": "mediapipe"}),
    ("", {"limbs": "image", "rigid": "photo", "clothing": "mask"}),
)


def evaluate_plausibility(
    nets: dict, inputs: list[pathlib.Path], model, bank, refinements: dict | None = None, prior=None
) -> dict:
    """Network-only poses on real images (photos and every video frame, each also mirrored),
    where the detector's output differs from the synthetic renders the network trained on and
    legs are often out of the frame: the share of implausible poses and the mean distance to the
    nearest held-out motion-capture pose, per network. ``refinements`` (method name ->
    ``BodyFitOptions``): also the first network's estimate refined with each (from the
    pipeline's start; without the face and hand landmarks, which only pull the head and
    hands), the prior's term weighed by ``prior``."""
    from recon3d.body_pipeline import REFINE_START_CLOTHING, REFINE_START_LIMBS, REFINE_START_RIGID
    from recon3d.errors import NoPersonFound
    from recon3d.fitting.body_fit import fit_body
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.models.body_net import predict_fit

    start = {
        "limbs": REFINE_START_LIMBS,
        "rigid": REFINE_START_RIGID,
        "clothing": REFINE_START_CLOTHING,
    }

    detector = MediaPipePoseDetector()
    rows: dict[str, dict[str, list[float]]] = {}
    people = 0
    for pixels in real_images(inputs):
        try:
            person = detector.detect(pixels)
        except NoPersonFound:
            continue
        people += 1
        h, w = pixels.shape[:2]
        f = 1.2 * max(h, w)
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
        for name, net in nets.items():
            for suffix, options in PLAUSIBILITY_VARIANTS:
                fit = predict_fit(net, model, person, K, image=pixels, **options)
                row = rows.setdefault(name + suffix, {"implausible": [], "nearest": []})
                row["implausible"].append(float(implausible(model, fit.pose)))
                if bank is not None:
                    row["nearest"].append(nearest_pose_angle(model, fit.pose, bank))
        if refinements:
            net = next(iter(nets.values()))
            init = predict_fit(net, model, person, K, image=pixels, **start)
            for method, options in refinements.items():
                fit = fit_body(model, person, K, options=options, init=init, prior=prior)
                row = rows.setdefault(method, {"implausible": [], "nearest": []})
                row["implausible"].append(float(implausible(model, fit.pose)))
                if bank is not None:
                    row["nearest"].append(nearest_pose_angle(model, fit.pose, bank))
        if people % 50 == 0:
            log.info("plausibility: %d inputs", people)
    summary = {
        name: {
            "inputs": people,
            "implausible_%": round(100 * float(np.mean(r["implausible"])), 1),
            "nearest_heldout_pose_deg": round(float(np.mean(r["nearest"])), 2)
            if r["nearest"]
            else None,
        }
        for name, r in rows.items()
    }
    print(f"plausibility on {people} real inputs")
    for name, m in summary.items():
        print(
            f"{name:<28}{m['implausible_%']:>8} % implausible{m['nearest_heldout_pose_deg']:>8} deg"
        )
    if refinements and len(refinements) > 1:
        from eval_body_real import paired_summary

        sign = {"implausible": -1.0, "nearest": -1.0}
        reference = next(iter(refinements))
        paired = {m: rows[m] for m in refinements}
        for method, stats in paired_summary(paired, reference, better_sign=sign).items():
            if method != reference:
                print(f"  {method} - {reference}: {paired_parts(stats, 3)}")
        summary["per_input"] = {m: rows[m] for m in refinements}
    return summary


def evaluate_photos(nets: dict, photos: list[pathlib.Path]) -> dict:
    """Real photos (no 3D ground truth): silhouette IoU, PCK@0.1, the mean keypoint error (torso
    lengths, a continuous measure where PCK counts a keypoint 0.107 torso lengths off as a miss)
    and the fit-stage time of each method, through the pipeline itself."""
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import keypoint_pck, landmark_error, silhouette_iou
    from recon3d.models.body import BodyModel

    model = BodyModel.from_pretrained()
    methods = {"optimisation": (None, True)}
    for name, net in nets.items():
        methods[f"{name} only"] = (net, False)
        methods[f"{name} + refine"] = (net, True)
    out: dict[str, dict[str, list]] = {}
    print(f"{'photo':<16}{'method':<22}{'IoU':>7}{'PCK':>7}{'kp err':>8}{'fit s':>8}")
    for photo in photos:
        for method, (net, refine) in methods.items():
            pipe = BodyReconstructionPipeline(model, network=net)
            pipe(photo, refine=refine)  # warm-up (detectors, layout)
            rec = pipe(photo, refine=refine)
            row = out.setdefault(method, {"iou": [], "pck": [], "kp_error": [], "fit_s": []})
            row["iou"].append(round(silhouette_iou(rec), 3))
            row["pck"].append(round(keypoint_pck(rec), 3))
            row["kp_error"].append(round(landmark_error(rec)[1], 4))
            row["fit_s"].append(round(rec.timings["fit"], 3))
            print(
                f"{photo.name:<16}{method:<22}{row['iou'][-1]:>7}{row['pck'][-1]:>7}"
                f"{row['kp_error'][-1]:>8}{row['fit_s'][-1]:>8}"
            )
    for method, row in out.items():
        means = [float(np.mean(row[k])) for k in ("iou", "pck", "kp_error")]
        print(f"{'mean':<16}{method:<22}{means[0]:>7.3f}{means[1]:>7.3f}{means[2]:>8.4f}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
