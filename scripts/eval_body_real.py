"""Body methods on many real images, paired: optimisation only, the network alone, the network
refined (and optional refinement variants), each through the pipeline itself.

Real images have no 3D ground truth, so agreement with the photo is what is measured: the
silhouette IoU against MediaPipe's person mask, PCK@0.1 and the mean keypoint error (torso
lengths) against MediaPipe's visible keypoints (``recon3d.metrics``), and whether the pose is
implausible (a bone beyond its anatomical range or a knee bent backwards, as in
``eval_body_net.py``). Every method gets the same
front-end result for an image. The summary gives each method's mean, and for each method its
mean difference to optimisation only with a 95 % bootstrap interval over the images (paired) and
how many images it does better on.

Inputs: photos, and every ``--every``-th frame of videos where MediaPipe finds a person.

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_body_real.py \
        ../shared/data/photos/*.jpg ../shared/data/video/vtest.avi --every 8 \
        [--variants 0/20/40/0/0.5+legs+keepbelow ...] [--json out.json]
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
sys.path.insert(0, str(ROOT / "scripts"))

log = logging.getLogger("eval_body_real")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
MEASURES = ("iou", "pck", "kp_error", "implausible")
#: Larger is better for IoU and PCK, smaller for the keypoint error.
BETTER_SIGN = {"iou": 1.0, "pck": 1.0, "kp_error": -1.0, "implausible": -1.0}


def real_inputs(paths: list[pathlib.Path], every: int):
    """(name, (H, W, 3) uint8 RGB) for each photo and every ``every``-th frame of each video."""
    from recon3d.io.image import load_image
    from recon3d.io.video import read_video

    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            frames, _ = read_video(path)
            for index, frame in enumerate(frames):
                if index % every == 0:
                    yield f"{path.name}#{index}", np.ascontiguousarray(frame)
        else:
            yield path.name, load_image(path)


def paired_summary(
    rows: dict[str, dict[str, list[float]]],
    reference: str,
    seed: int = 0,
    better_sign: dict[str, float] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and measure: mean, and against ``reference`` the mean difference, its 95 %
    bootstrap interval (images resampled with replacement, 2,000 times) and the images where the
    method does better / worse (ties left out). The measures are the keys of ``better_sign``
    (+1 where larger is better, -1 where smaller is; default :data:`BETTER_SIGN`) that the
    reference's row has."""
    better_sign = better_sign or BETTER_SIGN
    rng = np.random.default_rng(seed)
    ref = rows[reference]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, row in rows.items():
        out[method] = {}
        for measure in (m for m in better_sign if m in ref):
            values = np.asarray(row[measure], float)
            stats = {"mean": float(np.nanmean(values))}
            if method != reference:
                diff = values - np.asarray(ref[measure], float)
                diff = diff[np.isfinite(diff)]
                boots = rng.integers(0, len(diff), (2000, len(diff)))
                means = diff[boots].mean(1)
                better = better_sign[measure] * diff
                stats.update(
                    diff=float(diff.mean()),
                    low=float(np.percentile(means, 2.5)),
                    high=float(np.percentile(means, 97.5)),
                    better=int((better > 1e-9).sum()),
                    worse=int((better < -1e-9).sum()),
                )
            out[method][measure] = stats
    return out


def compare_runs(reference: dict, other: dict, seed: int = 0) -> dict:
    """Two runs of this script (their ``--json``) on the same inputs, e.g. with two networks:
    per method in both, the other run's paired difference from the reference run's, over the
    inputs both scored (matched by name), as :func:`paired_summary` gives it."""
    ours = {image["input"]: image for image in reference["images"]}
    theirs = {image["input"]: image for image in other["images"]}
    shared = [name for name in ours if name in theirs]
    if not shared:
        raise ValueError("the two runs scored no input in common")
    first = shared[0]
    methods = [
        m
        for m in ours[first]
        if isinstance(ours[first][m], dict) and all(m in theirs[name] for name in shared)
    ]
    out = {"inputs": len(shared)}
    for method in methods:
        rows = {
            run: {k: [images[name][method][k] for name in shared] for k in MEASURES}
            for run, images in (("reference", ours), ("other", theirs))
        }
        out[method] = paired_summary(rows, "reference", seed)["other"]
    return out


def main(argv=None) -> int:
    from eval_body_net import add_prior_arguments, load_prior, prior_refinements

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", type=pathlib.Path, nargs="*", help="photos and videos")
    parser.add_argument(
        "--compare",
        type=pathlib.Path,
        nargs=2,
        metavar=("REFERENCE_JSON", "OTHER_JSON"),
        help="instead of running: the paired differences between two runs' --json files",
    )
    parser.add_argument("--every", type=int, default=8, help="video frame step")
    parser.add_argument("--net", type=pathlib.Path, default=ROOT / "weights/body_net.safetensors")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="extra refinements, as scripts/sweep_body_refine.py spells them; 'only' and its"
        " estimate suffixes ('only+pnp') for the network alone",
    )
    parser.add_argument("--json", type=pathlib.Path, default=None)
    add_prior_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.compare:
        runs = [json.loads(path.read_text()) for path in args.compare]
        result = compare_runs(*runs)
        print(f"{args.compare[1].name} - {args.compare[0].name}, {result.pop('inputs')} inputs:")
        for method, stats in result.items():
            print(
                f"  {method}: "
                + "; ".join(
                    f"{m} {v['mean']:.3f}, {v['diff']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"
                    f" better {v['better']} worse {v['worse']}"
                    for m, v in stats.items()
                )
            )
        return 0
    if not args.inputs:
        parser.error("give photos and videos to score (or --compare two runs)")

    import torch
    from eval_body_net import implausible, load_net
    from sweep_body_refine import estimating, refine_options

    from recon3d.body_pipeline import BodyReconstructionPipeline, body_visible
    from recon3d.errors import NoPersonFound
    from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector
    from recon3d.keypoints.mediapipe_hands import MediaPipeHandDetector
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector
    from recon3d.metrics import keypoint_pck, landmark_error, silhouette_iou
    from recon3d.models.body import BodyModel

    torch.set_num_threads(1)
    model = BodyModel.from_pretrained()
    net = load_net(args.net)
    # One set of detectors, so every method starts from the same front-end result.
    detectors = {
        "detector": MediaPipePoseDetector(),
        "face_detector": MediaPipeFaceDetector(),
        "hand_detector": MediaPipeHandDetector(),
    }
    prior = load_prior(args.prior)
    plain = BodyReconstructionPipeline(model, network=None, **detectors)
    with_net = BodyReconstructionPipeline(model, network=net, prior=prior, **detectors)
    methods = {
        "optimisation": (plain, True, None),
        "network only": (with_net, False, None),
        "network + refine": (with_net, True, None),
    }
    for variant in args.variants:
        if variant.startswith("only"):
            methods[f"network {variant}"] = (with_net, False, variant)
            continue
        pipe = BodyReconstructionPipeline(
            model, network=net, refine_options=refine_options(variant), prior=prior, **detectors
        )
        methods[f"refine {variant}"] = (pipe, True, variant)
    for method, options in prior_refinements(args.prior_weights).items():
        pipe = BodyReconstructionPipeline(
            model, network=net, refine_options=options, prior=prior, **detectors
        )
        methods[f"network {method}"] = (pipe, True, None)

    rows: dict[str, dict[str, list[float]]] = {m: {k: [] for k in MEASURES} for m in methods}
    images: list[dict] = []
    for name, pixels in real_inputs(args.inputs, args.every):
        try:
            person = plain.detect(pixels)
        except NoPersonFound:
            continue
        images.append({"input": name, "whole_body": bool(body_visible(person))})
        line = [f"{name:<18}"]
        for method, (pipe, refine, variant) in methods.items():
            if variant is None:
                rec = pipe(pixels, person=person, refine=refine, complete_texture=False)
            else:
                with estimating(variant):
                    rec = pipe(pixels, person=person, refine=refine, complete_texture=False)
            values = {
                "iou": silhouette_iou(rec),
                "pck": keypoint_pck(rec),
                "kp_error": landmark_error(rec)[1],
                # A bone beyond its anatomical range or a knee bent backwards (eval_body_net).
                "implausible": float(implausible(model, np.asarray(rec.params["pose"]))),
            }
            for measure, value in values.items():
                rows[method][measure].append(round(float(value), 4))
            images[-1][method] = {k: round(float(v), 4) for k, v in values.items()}
            line.append(f"{values['iou']:.3f}/{values['pck']:.2f}/{values['kp_error']:.3f}")
        log.info("  ".join(line))

    summary = paired_summary(rows, "optimisation")
    print(f"\n{len(images)} real inputs ({sum(i['whole_body'] for i in images)} whole bodies)")
    print(
        f"{'method':<40}{'IoU':>8}{'PCK':>8}{'kp err':>8}{'implaus':>8}"
        "   differences to optimisation"
    )
    for method, stats in summary.items():
        line = f"{method:<40}" + "".join(f"{stats[m]['mean']:>8.3f}" for m in MEASURES)
        if method != "optimisation":
            line += "   " + "; ".join(
                f"{m} {stats[m]['diff']:+.3f} [{stats[m]['low']:+.3f}, {stats[m]['high']:+.3f}]"
                f" better {stats[m]['better']} worse {stats[m]['worse']}"
                for m in MEASURES
            )
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "images": images}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
