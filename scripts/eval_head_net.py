"""Evaluate head reconstruction on held-out synthetic heads and real photos: optimisation only,
network only, network + refinement (and the same for a network trained without the adversarial
prior).

Held-out set: shards of ``scripts/generate_head_data.py`` with another seed (2) and the held-out
textures (``data/texture/partials/test``); every method starts from MediaPipe's output on the
render. Errors after Procrustes (similarity) alignment of the model-frame shape, in mm:

* PVE: mean vertex error over the head model's 4 538 vertices;
* iBUG-68: mean error over the 68 iBUG landmarks (``model.landmarks["ibug68"]``);

plus the rotation error (degrees), the 2D error of the 478 landmarks reprojected against
MediaPipe's (% of the face box diagonal), and plausibility: the share of identities beyond the
prior's 99.9 % radius (√χ²₆₀(0.999)) and of expressions whose L2 norm exceeds the 99.9th
percentile of the training set's. On real photos: the 2D reprojection error only (no 3D truth).
Fit-stage times are medians per face (network forward, PnP and refinement included).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_head_net.py --data data/head_test --n 200 \
        --net data/head_net_adv/head_net.safetensors \
        [--ablation data/head_net_noadv/head_net.safetensors] [--json out.json] \
        [--photos tests/data/obama.jpg ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("eval_head_net")

PHOTOS = ("obama", "obama2", "obama3", "biden", "grace_hopper", "astronaut", "camera")


def landmarks_from_points(points: np.ndarray):
    from recon3d.keypoints.base import FaceLandmarks

    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    return FaceLandmarks(points=points.astype(np.float32), box=np.r_[lo, hi], score=1.0)


def methods(nets: dict, refine, prior_scales=()):
    """name -> function (model, landmarks, K) -> HeadFit; ``refine``: the HeadFitOptions of
    the short fit after the network."""
    from recon3d.fitting.head_fit import HeadFitOptions, fit_head
    from recon3d.models.head_net import predict_head_fit

    out = {"optimisation": lambda m, lm, K: fit_head(m, lm, K)}
    for k in prior_scales:
        options = HeadFitOptions(identity_prior=HeadFitOptions().identity_prior * k)
        out[f"optimisation, identity prior x{k:g}"] = lambda m, lm, K, o=options: fit_head(
            m, lm, K, options=o
        )
    for name, net in nets.items():
        out[f"{name} only"] = lambda m, lm, K, net=net: predict_head_fit(net, m, lm, K)
        out[f"{name} own pose"] = lambda m, lm, K, net=net: predict_head_fit(
            net, m, lm, K, align="none"
        )
        out[f"{name} + refine"] = lambda m, lm, K, net=net: fit_head(
            m, lm, K, options=refine, init=predict_head_fit(net, m, lm, K)
        )
    return out


def reprojection_pct(model, fit, landmarks, K) -> float:
    """Mean 2D distance of the 478 fitted landmarks to MediaPipe's, % of the face diagonal."""
    import torch

    from recon3d.models.landmarks import interpolate_surface

    with torch.no_grad():
        verts = model.vertices(
            torch.as_tensor(fit.identity)[None], torch.as_tensor(fit.expression)[None]
        )[0].numpy()
    points = interpolate_surface(
        verts.astype(np.float64), model.faces, model.landmarks["mediapipe478"]
    )
    cam = points @ fit.rotation.T + fit.translation
    proj = cam[:, :2] / np.clip(cam[:, 2:3], 1e-6, None) * (K[0, 0], K[1, 1]) + (K[0, 2], K[1, 2])
    err = np.linalg.norm(proj - landmarks.points[:, :2], axis=1).mean()
    return float(100 * err / landmarks.size)


def pipeline_speed(photos: list[pathlib.Path], repeats: int = 3) -> dict:
    """Median wall time of the whole head reconstruction (decode to texture completion, no
    export) and of its fit stage, warm, for the default pipeline, the network + refinement
    and the network alone, interleaved in the same run."""
    from recon3d.pipeline import HeadReconstructionPipeline

    plain = HeadReconstructionPipeline.from_pretrained()
    net = HeadReconstructionPipeline.from_pretrained(
        use_network=True, detector=plain.detector, completer=plain.completer
    )
    runs = {
        "optimisation": lambda p: plain(p),
        "net + refine": lambda p: net(p),
        "net only": lambda p: net(p, refine=False),
    }
    for path in photos:
        for run in runs.values():
            run(path)  # warm-up
    total: dict[str, list[float]] = {k: [] for k in runs}
    fit: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for path in photos:
            for name, run in runs.items():
                start = time.perf_counter()
                rec = run(path)
                total[name].append(time.perf_counter() - start)
                fit[name].append(rec.timings["fit"])
    return {
        name: {
            "reconstruct_s": round(float(np.median(total[name])), 4),
            "fit_s": round(float(np.median(fit[name])), 4),
        }
        for name in runs
    }


def plausibility(fits: dict, inputs: list[pathlib.Path], model, id_radius, exp_limit) -> dict:
    """On real images (photos and every video frame with a face, each also mirrored), where
    the detector's output differs from the renders the networks trained on: the share of
    estimates whose identity lies beyond the prior's 99.9 % radius or whose expression is
    larger than 99.9 % of the training expressions, per method."""
    from eval_body_net import real_images

    from recon3d.camera import Camera
    from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

    detector = MediaPipeFaceDetector()
    rows: dict[str, dict[str, list[float]]] = {
        name: {"identity": [], "expression": []} for name in fits
    }
    faces = 0
    for pixels in real_images(inputs):
        found = detector.detect(pixels)
        if not found:
            continue
        faces += 1
        h, w = pixels.shape[:2]
        K = Camera.from_image_size(w, h).K
        for name, fn in fits.items():
            fit = fn(model, found[0], K)
            rows[name]["identity"].append(100.0 * (np.linalg.norm(fit.identity) > id_radius))
            rows[name]["expression"].append(100.0 * (np.linalg.norm(fit.expression) > exp_limit))
    summary = {
        name: {
            "inputs": faces,
            "identity_outside_pct": round(float(np.mean(r["identity"])), 1),
            "expression_outside_pct": round(float(np.mean(r["expression"])), 1),
        }
        for name, r in rows.items()
    }
    log.info("plausibility on %d real faces: %s", faces, summary)
    return summary


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a.T @ b) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=ROOT / "data" / "head_test")
    parser.add_argument("--train-data", type=pathlib.Path, default=ROOT / "data" / "head_train")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--net", type=pathlib.Path, required=True)
    parser.add_argument("--ablation", type=pathlib.Path, default=None)
    parser.add_argument("--refine-iterations", type=int, default=None)
    parser.add_argument("--init-weight", type=float, default=None)
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only time the whole head pipeline (default / network + refinement / network) "
        "on the five head photos of the benchmark",
    )
    parser.add_argument(
        "--prior-scales",
        nargs="*",
        type=float,
        default=(),
        help="also run the optimisation with its identity prior multiplied by these",
    )
    parser.add_argument("--photos", nargs="*", type=pathlib.Path, default=None)
    parser.add_argument(
        "--plausibility-inputs",
        type=pathlib.Path,
        nargs="*",
        default=[],
        help="real photos and videos on which the network-only estimates are checked for "
        "plausibility (no ground truth needed): each photo and each video frame with a face, "
        "also mirrored",
    )
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    from scipy.stats import chi2

    from recon3d.metrics import procrustes_error
    from recon3d.models.head import HeadModel
    from recon3d.models.head_net import HeadRegressor
    from recon3d.models.landmarks import interpolate_surface
    from recon3d.train.head_net import load_shards

    torch.set_num_threads(1)
    if args.speed_only:
        names = ("grace_hopper.jpg", "obama.jpg", "obama2.jpg", "astronaut.png", "camera.png")
        speed = pipeline_speed([ROOT / "tests" / "data" / n for n in names])
        sys.stdout.write(json.dumps(speed, indent=1) + "\n")
        return 0
    model = HeadModel.from_pretrained()
    nets = {"net": HeadRegressor.from_file(args.net)}
    if args.ablation is not None:
        nets["net_noadv"] = HeadRegressor.from_file(args.ablation)
    from recon3d.pipeline import REFINE_OPTIONS

    refine = dataclasses.replace(
        REFINE_OPTIONS,
        **({"iterations": args.refine_iterations} if args.refine_iterations is not None else {}),
        **({"init_weight": args.init_weight} if args.init_weight is not None else {}),
    )
    fits = methods(nets, refine, args.prior_scales)
    # Warm-up (first calls build caches).
    test = load_shards(args.data)
    points_all = []
    for path in sorted(args.data.glob("head_s*_*.npz")):
        with np.load(path) as shard:
            if "points" in shard.files:
                points_all.append(shard["points"])
    points_all = np.concatenate(points_all)
    n = min(args.n, len(points_all))
    id_radius = float(np.sqrt(chi2.ppf(0.999, model.num_identity)))
    train_exp = load_shards(args.train_data)["expression"].numpy()
    exp_limit = float(np.percentile(np.linalg.norm(train_exp, axis=1), 99.9))
    ibug = model.landmarks["ibug68"]

    def shape(identity, expression) -> np.ndarray:
        with torch.no_grad():
            return (
                model.vertices(
                    torch.as_tensor(identity, dtype=torch.float32)[None],
                    torch.as_tensor(expression, dtype=torch.float32)[None],
                )[0]
                .numpy()
                .astype(np.float64)
            )

    rows: dict[str, dict[str, list[float]]] = {k: {} for k in fits}
    lm0 = landmarks_from_points(points_all[0])
    for fn in fits.values():
        fn(model, lm0, test["K"][0].numpy().astype(np.float64))
    for i in range(n):
        K = test["K"][i].numpy().astype(np.float64)
        lm = landmarks_from_points(points_all[i])
        gt = shape(test["identity"][i].numpy(), test["expression"][i].numpy())
        gt_ibug = interpolate_surface(gt, model.faces, ibug)
        for name, fn in fits.items():
            start = time.perf_counter()
            fit = fn(model, lm, K)
            elapsed = time.perf_counter() - start
            pred = shape(fit.identity, fit.expression)
            r = rows[name]
            r.setdefault("pve_mm", []).append(1000 * procrustes_error(pred, gt))
            r.setdefault("ibug68_mm", []).append(
                1000 * procrustes_error(interpolate_surface(pred, model.faces, ibug), gt_ibug)
            )
            r.setdefault("rotation_deg", []).append(
                rotation_error_deg(fit.rotation, test["rotation"][i].numpy().astype(np.float64))
            )
            r.setdefault("reprojection_pct", []).append(reprojection_pct(model, fit, lm, K))
            r.setdefault("identity_outside_pct", []).append(
                100.0 * (np.linalg.norm(fit.identity) > id_radius)
            )
            r.setdefault("expression_outside_pct", []).append(
                100.0 * (np.linalg.norm(fit.expression) > exp_limit)
            )
            r.setdefault("time_s", []).append(elapsed)
        if (i + 1) % 25 == 0:
            log.info("%d/%d", i + 1, n)
    results: dict = {
        "heldout_synthetic_n": n,
        "identity_radius_999": id_radius,
        "expression_norm_limit_999": exp_limit,
        "refine_options": dataclasses.asdict(refine),
        "synthetic": {},
    }
    for name, r in rows.items():
        results["synthetic"][name] = {
            k: round(float(np.median(v) if k == "time_s" else np.mean(v)), 4) for k, v in r.items()
        }
    photos = [] if args.skip_photos else args.photos
    if photos is None:
        photos = [next((ROOT / "tests" / "data").glob(f"{p}.*")) for p in PHOTOS]
    if photos:
        from recon3d.camera import Camera
        from recon3d.io import load_image_with_metadata
        from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

        detector = MediaPipeFaceDetector()
        results["photos"] = {}
        for path in photos:
            loaded = load_image_with_metadata(path)
            h, w = loaded.pixels.shape[:2]
            K = Camera.from_image_size(w, h, loaded.focal_length_35mm).K
            lm = detector.detect(loaded.pixels)[0]
            entry = {}
            for name, fn in fits.items():
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    fit = fn(model, lm, K)
                    times.append(time.perf_counter() - start)
                entry[name] = {
                    "reprojection_pct": round(reprojection_pct(model, fit, lm, K), 3),
                    "time_s": round(float(np.median(times)), 4),
                }
            results["photos"][path.stem] = entry
        results["photos_mean_reprojection_pct"] = {
            name: round(
                float(np.mean([e[name]["reprojection_pct"] for e in results["photos"].values()])),
                3,
            )
            for name in fits
        }
    if args.plausibility_inputs:
        results["plausibility"] = plausibility(
            {name: fits[name] for name in ("optimisation", *(f"{k} only" for k in nets))},
            args.plausibility_inputs,
            model,
            id_radius,
            exp_limit,
        )
    text = json.dumps(results, indent=1)
    sys.stdout.write(text + "\n")
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
