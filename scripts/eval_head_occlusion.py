"""Real faces with a part hidden: how well each head method completes what the camera did not see.

The head counterpart of ``scripts/eval_body_occlusion.py``. On an unaltered photo the
optimisation fits MediaPipe's 478 face-mesh points, so their reprojection error favours it by
construction. Here a real-photo patch (a street-scene crop from ``vtest.avi``) covers one eye
(with its brow), the nose or the mouth; every method reconstructs the covered photo (MediaPipe
runs on it as the pipeline always does), and each result is scored on the hidden region's
face-mesh points against MediaPipe's points on the *uncovered* photo, which no method saw:

* hidden-point error: mean distance between the model's projected face-mesh points and the
  uncovered detection's, in % of the face size (the larger side of the uncovered detection's
  landmark box), as in ``recon3d.metrics.landmark_error``.

Each photo and every ``--video-every``-th video frame is used as is and mirrored, with up to
``--max-faces`` faces each. A case is skipped when MediaPipe no longer finds the face once
covered (no detected face overlaps the uncovered one's box by IoU > 0.5).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_head_occlusion.py \
        --photos ../shared/data/photos/{obama.jpg,grace_hopper.jpg,biden.jpg,obama2.jpg} \
            ../shared/data/video/carphone.mp4 \
        --occluder ../shared/data/video/vtest.avi \
        [--ablation data/head_net_noadv/head_net.safetensors] [--json out.json]
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

log = logging.getLogger("eval_head_occlusion")
# Padding of the covered box around the hidden points, as a fraction of the face size.
_PAD = 0.05


def regions() -> dict[str, list[int]]:
    """Hidden region -> MediaPipe face-mesh indices (MediaPipe's own contour sets)."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    def points(*connections) -> list[int]:
        return sorted({i for c in connections for edge in c for i in edge})

    return {
        "left eye": points(mesh.FACEMESH_LEFT_EYE, mesh.FACEMESH_LEFT_EYEBROW),
        "right eye": points(mesh.FACEMESH_RIGHT_EYE, mesh.FACEMESH_RIGHT_EYEBROW),
        "nose": points(mesh.FACEMESH_NOSE),
        "mouth": points(mesh.FACEMESH_LIPS),
    }


def face_size(points: np.ndarray) -> float:
    """The larger side of the bounding box of (N, 2) points."""
    return float(np.ptp(points, axis=0).max())


def covered_box(points: np.ndarray, image_shape, size: float) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) around (N, 2) points, padded by ``_PAD`` face sizes, in the image."""
    h, w = image_shape[:2]
    pad = _PAD * size
    x0, y0 = np.floor(points.min(0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(0) + pad).astype(int)
    return int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h))


def matching_face(detector, image: np.ndarray, box) -> int | None:
    """Index (largest first, as the pipeline counts) of the detected face in ``image`` whose box
    overlaps ``box`` most (IoU > 0.5), or None."""
    from eval_body_occlusion import box_iou

    best, best_iou = None, 0.5
    for index, face in enumerate(detector.detect(image)):
        iou = box_iou(face.box, box)
        if iou > best_iou:
            best, best_iou = index, iou
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=pathlib.Path, nargs="+", required=True)
    parser.add_argument("--video-every", type=int, default=10)
    parser.add_argument("--occluder", type=pathlib.Path, required=True)
    parser.add_argument("--max-faces", type=int, default=3)
    parser.add_argument("--net", type=pathlib.Path, default=ROOT / "weights/head_net.safetensors")
    parser.add_argument("--ablation", type=pathlib.Path, default=None)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument(
        "--refine-variants",
        nargs="*",
        default=[],
        help="more refinements of the network's estimate, as iterations/init_weight",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from eval_body_occlusion import case_row, cover, inputs, occluder_patch, summarise

    from recon3d.fitting.head_fit import HeadFitOptions
    from recon3d.models.head import HeadModel
    from recon3d.models.head_net import HeadRegressor
    from recon3d.pipeline import HeadReconstructionPipeline

    model = HeadModel.from_pretrained()
    plain = HeadReconstructionPipeline(model)
    methods = {"optimisation": (plain, True)}
    nets = {"network": HeadRegressor.from_file(args.net)}
    if args.ablation:
        nets["no-prior network"] = HeadRegressor.from_file(args.ablation)
    for name, net in nets.items():
        pipe = HeadReconstructionPipeline(model, network=net)
        methods[f"{name} only"] = (pipe, False)
        if name == "network":
            methods[f"{name} + refine"] = (pipe, True)
            for variant in args.refine_variants:
                iterations, weight = variant.split("/")
                options = HeadFitOptions(iterations=int(iterations), init_weight=float(weight))
                other = HeadReconstructionPipeline(model, network=net, refine_options=options)
                methods[f"{name} + refine {variant}"] = (other, True)
    patch = occluder_patch(args.occluder)
    hidden = regions()

    rows, skipped = [], []
    for name, base in inputs(args.photos, args.video_every):
        for mirrored, image in ((False, base), (True, np.ascontiguousarray(base[:, ::-1]))):
            label = name + (" (mirrored)" if mirrored else "")
            faces = plain.detector.detect(image)[: args.max_faces]
            for index, face in enumerate(faces):
                points = face.points[:, :2]
                size = face_size(points)
                for case, indices in hidden.items():
                    box = covered_box(points[indices], image.shape, size)
                    covered = cover(image, box, patch)
                    found = matching_face(plain.detector, covered, face.box)
                    if found is None:
                        log.info("%s #%d %s: face lost once covered, skipped", label, index, case)
                        skipped.append((label, index, case))
                        continue
                    for method, (pipe, refine) in methods.items():
                        rec = pipe(covered, face_index=found, refine=refine, complete_texture=False)
                        predicted = rec.landmarks_2d("mediapipe478")
                        error = np.linalg.norm(predicted - points, axis=1) * 100 / size
                        seen = np.ones(len(points), bool)
                        seen[indices] = False
                        row = case_row(name, label, index, case, method)
                        row["errors"] = [round(float(error[indices].mean()), 3)]
                        row["seen_error"] = round(float(error[seen].mean()), 3)
                        rows.append(row)
                        log.info("%s", row)
    summary = summarise(rows, list(methods), unit="% of the face size", pck=None)
    # The points left uncovered: what each method fits; scored against the same detection.
    print("error on the uncovered points (% of the face size):")
    for method in methods:
        seen = [r["seen_error"] for r in rows if r["method"] == method]
        summary[method]["seen_error"] = float(np.mean(seen)) if seen else float("nan")
        print(f"  {method:<34}{summary[method]['seen_error']:.3f}")
    print(f"{len(skipped)} cases skipped: MediaPipe lost the face once covered")
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "summary": summary, "skipped": skipped}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
