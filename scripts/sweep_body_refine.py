"""How long the refinement of the body network's estimate should be: iteration counts and the
pull towards the network's pose (``init_weight``) against agreement with the photo (real
photos: silhouette IoU and PCK against MediaPipe) and 3D error (held-out synthetic people: PVE
and MPJPE after Procrustes, mm). Optimisation only is the reference on the photos. Per photo,
the fitted standing height; on the synthetic people, the error of the standing height (cm),
which the Procrustes-aligned errors do not see.

Usage:
    PYOPENGL_PLATFORM=egl python scripts/sweep_body_refine.py --n 40 \
        --photos ../shared/data/photos/{obama3.jpg,biden.jpg,camera.png,astronaut.png,obama2.jpg}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pathlib
import sys
from unittest import mock

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("sweep_body_refine")

#: "torso/pose/silhouette iterations/init_weight[/hidden_init_weight]"; the first is the
#: refinement shipped before hidden_init_weight existed.
VARIANTS = ("0/15/25/0.05", "0/25/40/0.02", "0/40/40/0", "0/20/60/0", "20/40/40/0")


def refine_options(variant: str):
    """``BodyFitOptions`` from "torso/pose/silhouette/init_weight[/hidden_init_weight][+legs]
    [+keepbelow][+outside][@learning_rate][:optimiser][~prior_weight][^warmup]" ("^": Adam's
    ``warmup_iterations``; "~": the weight of
    the shipped pose prior, ``adversarial_weight``, which is 0 without it: the default
    refinement weighs it 0.3; "+legs": ``choose_unseen_legs``;
    "+keepbelow": ``trust_knees_outside_frame``; "+outside": ``landmarks_outside_frame``;
    "+uncut", after those: ``pull_cut_bones=False``;
    "+netheight", "+rays", "+pnp" or "+hipspnp", "+clothes" and "+hair" suffixes, last, are
    read by :func:`estimate_options`)."""
    from recon3d.fitting.body_fit import BodyFitOptions

    variant, _, warmup = variant.partition("^")
    variant, _, prior_weight = variant.partition("~")
    variant, _, optimiser = variant.partition(":")
    variant, _, learning_rate = variant.partition("@")
    variant = variant.removesuffix("+hair").removesuffix("+clothes")
    variant = variant.removesuffix("+pnp").removesuffix("+hipspnp")
    variant = variant.removesuffix("+rays").removesuffix("+netheight")
    variant, uncut = variant.removesuffix("+uncut"), variant.endswith("+uncut")
    variant, outside = variant.removesuffix("+outside"), variant.endswith("+outside")
    variant, keep_below = variant.removesuffix("+keepbelow"), variant.endswith("+keepbelow")
    variant, legs = variant.removesuffix("+legs"), variant.endswith("+legs")
    fields = variant.split("/")
    if len(fields) not in (4, 5):
        raise ValueError(f"refinement variant {variant!r} is not t/p/s/w[/h]")
    t, p, s = (int(f) for f in fields[:3])
    weights = [float(f) for f in fields[3:]]
    return BodyFitOptions(
        torso_iterations=t,
        pose_iterations=p,
        silhouette_iterations=s,
        init_weight=weights[0],
        hidden_init_weight=weights[1] if len(weights) > 1 else 0.0,
        choose_unseen_legs=legs,
        trust_knees_outside_frame=keep_below,
        pull_cut_bones=not uncut,
        landmarks_outside_frame=outside,
        learning_rate=float(learning_rate) if learning_rate else BodyFitOptions.learning_rate,
        optimiser=optimiser or BodyFitOptions.optimiser,
        adversarial_weight=float(prior_weight) if prior_weight else 0.0,
        warmup_iterations=int(warmup) if warmup else 0,
    )


def estimate_options(variant: str) -> dict:
    """``predict_fit`` options of a variant: "+netheight" keeps the network's height where no
    ankle is seen (``height="network"``); "+rays" turns the seen limbs onto their landmarks'
    camera rays (``limbs="image"``); "+pnp", last of all, turns the whole estimate so that its
    keypoints agree with the photo (``rigid="photo"``), "+hipspnp" instead does so only where
    MediaPipe sees no hips; "+clothes", after that, reads the clothing off the person mask
    (``clothing="mask"``), and "+hair", last, the hair too (the head in
    ``MASK_CLOTHING_PARTS``; without it the head stays naked, as before session 14); otherwise
    the default. The ``"hair"`` entry is for :func:`estimating`, not ``predict_fit``."""
    options = {}
    variant = variant.partition("^")[0].partition("~")[0].partition("@")[0].partition(":")[0]
    options["hair"] = variant.endswith("+hair")
    variant = variant.removesuffix("+hair")
    if variant.endswith("+clothes"):
        options["clothing"] = "mask"
        variant = variant.removesuffix("+clothes")
    if variant.endswith("+pnp"):
        options["rigid"] = "photo"
        variant = variant.removesuffix("+pnp")
    if variant.endswith("+hipspnp"):
        options["rigid"] = "photo-without-hips"
        variant = variant.removesuffix("+hipspnp")
    if variant.endswith("+rays"):
        options["limbs"] = "image"
        variant = variant.removesuffix("+rays")
    if variant.endswith("+netheight"):
        options["height"] = "network"
    return options


def estimating(variant: str):
    """A context in which the body pipeline makes the network's estimate as ``variant`` says
    (:func:`estimate_options`)."""
    from recon3d.models import body_net
    from recon3d.models.body_net import predict_fit

    options = estimate_options(variant)
    hair = options.pop("hair", False)

    def estimate(network, model, person, *args, **kwargs):
        # The variant's options win over the pipeline's own (it passes ``limbs``).
        chosen = dict(options)
        if chosen.get("rigid") == "photo-without-hips":
            from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

            seen = person.visible()
            hips = all(seen[POSE_LANDMARKS.index(n)] for n in ("left_hip", "right_hip"))
            chosen["rigid"] = "world" if hips else "photo"
        return predict_fit(network, model, person, *args, **{**kwargs, **chosen})

    context = contextlib.ExitStack()
    context.enter_context(mock.patch("recon3d.body_pipeline.predict_fit", estimate))
    if not hair:
        parts = tuple(p for p in body_net.MASK_CLOTHING_PARTS if p != "head")
        context.enter_context(mock.patch.object(body_net, "MASK_CLOTHING_PARTS", parts))
    return context


def fit_errors(model, fit, gt_verts, gt_kp, true_height: float) -> tuple[float, float, float]:
    """PVE and MPJPE (mm, after Procrustes) and the standing height's error (cm) of a fit."""
    from eval_body_net import body_errors

    height_error = 100 * abs(model.height(fit.shape) - true_height)
    return (*body_errors(model, fit, gt_verts, gt_kp), height_error)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="held-out synthetic people")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--net", type=pathlib.Path, default=ROOT / "weights/body_net.safetensors")
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data/mocap_bank_test.npy")
    parser.add_argument("--photos", type=pathlib.Path, nargs="*", default=[])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        help="t/p/s/w[/h][+legs][+keepbelow][+outside][+uncut][+netheight][+rays][+pnp|+hipspnp]"
        "[+clothes][+hair]"
        "[@learning_rate]"
        "[:optimiser]",
    )
    parser.add_argument(
        "--cut-off",
        type=float,
        default=0.0,
        help="share of held-out people framed as portraits (cut at the thighs or knees)",
    )
    parser.add_argument(
        "--clothed", action="store_true", help="held-out people dressed (clothes and hair)"
    )
    parser.add_argument(
        "--head-and-shoulders",
        action="store_true",
        help="frame every held-out person on the head and shoulders (like a video call)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="a variant to pair the others with on the synthetic people (PVE and MPJPE: mean"
        " difference, 95 %% bootstrap interval, better / worse people)",
    )
    parser.add_argument("--json", type=pathlib.Path, default=None, help="per-person errors")
    args = parser.parse_args(argv)
    if args.reference is not None and args.reference not in args.variants:
        parser.error("--reference must be one of --variants")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    from eval_body_net import heldout_people, load_net

    from recon3d import body_pipeline
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.fitting.body_fit import fit_body
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.metrics import keypoint_pck, silhouette_iou
    from recon3d.models.body import BodyModel
    from recon3d.models.body_prior import PoseDiscriminator

    torch.set_num_threads(1)
    model = BodyModel.from_pretrained()
    net = load_net(args.net)
    variants = {variant: refine_options(variant) for variant in args.variants}
    prior = PoseDiscriminator.from_pretrained()

    photos: dict[str, list[tuple[float, float]]] = {}
    heights: dict[str, list[float]] = {}
    for photo in args.photos:
        for name, options in [("optimisation only", None), *variants.items()]:
            pipe = BodyReconstructionPipeline(
                model, network=None if options is None else net, refine_options=options
            )
            with estimating(name):
                rec = pipe(photo, complete_texture=False)
            photos.setdefault(name, []).append((silhouette_iou(rec), keypoint_pck(rec)))
            heights.setdefault(name, []).append(rec.params["height_m"])

    detector = MediaPipePoseDetector()
    rng = np.random.default_rng([args.seed, 999])
    synthetic: dict[str, list[tuple[float, float, float]]] = {}
    people = heldout_people(
        model,
        detector,
        rng,
        np.load(args.bank),
        args.n,
        args.cut_off,
        args.clothed,
        args.head_and_shoulders,
    )
    for done, (sample, person, gt_verts, gt_kp, _) in enumerate(people, 1):
        truth = (gt_verts, gt_kp, model.height(sample.shape))
        fit = fit_body(model, person, sample.K)
        synthetic.setdefault("optimisation only", []).append(fit_errors(model, fit, *truth))
        inits = {}  # one network estimate per distinct estimate options
        for name, options in variants.items():
            key = tuple(sorted(estimate_options(name).items()))
            if key not in inits:
                with estimating(name):
                    inits[key] = body_pipeline.predict_fit(net, model, person, sample.K)
            fit = fit_body(model, person, sample.K, options=options, init=inits[key], prior=prior)
            synthetic.setdefault(name, []).append(fit_errors(model, fit, *truth))
        if done % 10 == 0:
            log.info("%d/%d", done, args.n)

    print(
        f"{'refinement':<30}{'photos IoU':>11}{'PCK':>7}{'synthetic PVE':>15}{'MPJPE':>8}"
        f"{'height error (cm)':>19}"
    )
    for name in ["optimisation only", *variants]:
        iou, pck = np.mean(photos[name], 0) if name in photos else (np.nan, np.nan)
        pve, mpjpe, height = (
            np.mean(synthetic[name], 0) if name in synthetic else (np.nan, np.nan, np.nan)
        )
        print(f"{name:<30}{iou:>11.3f}{pck:>7.3f}{pve:>15.1f}{mpjpe:>8.1f}{height:>19.1f}")
    if args.reference is not None:
        from eval_body_real import paired_summary

        rows = {
            name: {"pve": [e[0] for e in errors], "mpjpe": [e[1] for e in errors]}
            for name, errors in synthetic.items()
        }
        summary = paired_summary(rows, args.reference, better_sign={"pve": -1.0, "mpjpe": -1.0})
        print(f"\nsynthetic people, paired with {args.reference}:")
        for name, stats in summary.items():
            if name != args.reference:
                print(
                    f"  {name}: "
                    + "; ".join(
                        f"{m} {v['diff']:+.1f} [{v['low']:+.1f}, {v['high']:+.1f}]"
                        f" better {v['better']} worse {v['worse']}"
                        for m, v in stats.items()
                    )
                )
    if args.json:
        args.json.write_text(json.dumps({"synthetic": synthetic, "photos": photos}, indent=1))
    if args.photos:
        print("\nper photo: IoU / PCK / height (m)")
        for i, photo in enumerate(args.photos):
            cells = [
                f"{photos[name][i][0]:.3f} / {photos[name][i][1]:.2f} / {heights[name][i]:.2f}"
                for name in ["optimisation only", *variants]
            ]
            print(f"{photo.name:<18}" + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
