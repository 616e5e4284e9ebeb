"""The plot of docs/body_network.md's "Adam's first steps": from the body network's estimate
alone (the network-only result), the photo agreement after each number of silhouette
iterations, with Adam at its full learning rate from the first step and with the learning
rate ramped up over the first iterations (``BodyFitOptions.warmup_iterations``).

Per photo the front end runs once; every count then refines the same estimate (the default
refinement's options otherwise, torso and pose stages left out). Plotted: the mean silhouette
IoU and the mean keypoint error (torso lengths) over the photos, as ``scripts/eval_body_real.py``
scores them.

Usage:  PYOPENGL_PLATFORM=egl python scripts/make_docs_body_warmup.py [--out docs/images]
            [--json F] [PHOTOS...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png", "obama2.jpg", "obama.jpg")
COUNTS = (0, 1, 2, 3, 5, 8, 12, 20, 30, 40)
WARMUPS = (0, 5)


def agreement(photos: list[pathlib.Path]) -> dict[int, dict[int, list[tuple[float, float]]]]:
    """warm-up -> iterations -> per photo (silhouette IoU, keypoint error in torso lengths)."""
    from PIL import Image
    from sweep_body_refine import estimating

    from recon3d.body_pipeline import REFINE_OPTIONS, BodyReconstructionPipeline
    from recon3d.metrics import landmark_error, silhouette_iou

    pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
    scores: dict[int, dict[int, list[tuple[float, float]]]] = {
        w: {n: [] for n in COUNTS} for w in WARMUPS
    }
    for path in photos:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        person = pipe.detect(pixels)
        for warmup in WARMUPS:
            for count in COUNTS:
                pipe.refine_options = dataclasses.replace(
                    REFINE_OPTIONS,
                    torso_iterations=0,
                    pose_iterations=0,
                    silhouette_iterations=count,
                    warmup_iterations=warmup,
                )
                # The refinement starts from the network-only result: limbs on their rays.
                with estimating("+rays+pnp+clothes+hair"):
                    rec = pipe(pixels, person=person, complete_texture=False)
                scores[warmup][count].append((silhouette_iou(rec), landmark_error(rec)[1]))
    return scores


def plot(scores, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for warmup, style in zip(WARMUPS, ("o--", "o-"), strict=True):
        label = "full rate from the first step" if warmup == 0 else f"{warmup}-iteration warm-up"
        means = np.array([np.mean(scores[warmup][n], axis=0) for n in COUNTS])
        axes[0].plot(COUNTS, means[:, 0], style, label=label)
        axes[1].plot(COUNTS, means[:, 1], style, label=label)
    axes[0].set_ylabel("silhouette IoU (higher is better)")
    axes[1].set_ylabel("keypoint error, torso lengths")
    for ax in axes:
        ax.set_xlabel("silhouette iterations from the network's estimate")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    photos = args.photos or [ROOT / "tests" / "data" / name for name in PHOTOS]
    scores = agreement(photos)
    for warmup in WARMUPS:
        for count in COUNTS:
            iou, error = np.mean(scores[warmup][count], axis=0)
            print(f"warm-up {warmup:2d}, {count:2d} iterations: IoU {iou:.3f}, error {error:.3f}")
    if args.json:
        args.json.write_text(json.dumps({str(w): scores[w] for w in WARMUPS}, indent=1))
    plot(scores, args.out / "body_warmup.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
