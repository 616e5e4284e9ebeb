"""Textures: speed and quality of the working resolutions of the projection and completion.

The 2048² body texture (1024² head texture) takes the photo's colours at full resolution, but
visibility, the mirror + harmonic fill and the completion's local fill can run at a lower
"geometry" level. This
script measures what that level costs and what it loses, on real photos, through the library's
own functions:

* time of ``project_texture`` + ``complete`` (median of ``--repeats``);
* PSNR of the final texture against the reference level (1024/1024) on the texels the photo
  sees well (confidence >= 0.25): how much photo detail is kept;
* completion of hidden regions: random discs on the person (``--masks`` per photo, fixed
  seeds) are removed from the person mask (heads: from a mask of ones), so the texels they
  cover become unseen and must be completed; PSNR and SSIM there against the photo's colours
  of the unhidden projection.

Each photo's body or head comes from the pipeline with the network (+ refinement), computed
once.

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_texture_levels.py \
        ../shared/data/photos/{obama3.jpg,biden.jpg,camera.png,astronaut.png,obama2.jpg} \
        [--target body|head] [--levels 1024/1024 512/512] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("eval_texture_levels")
_SEEN = 0.25


def layout_at(model, geometry: int):
    """The model's layout with its geometry level rasterised at ``geometry``² (none when that
    is the full size: everything at full resolution)."""
    full = model.texture_layout
    if full.coarse is not None and full.coarse.size == geometry:
        return full
    layout = copy.copy(full)
    layout.coarse = None if geometry == full.size else model.layout_level(geometry)
    return layout


def hide_discs(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (H, W) float32 mask: ones, with 3-6 random discs centred in ``region`` (radius 4-10 %
    of its box height) zeroed."""
    import cv2

    ys, xs = np.nonzero(region)
    height = ys.max() - ys.min() + 1
    out = np.ones(region.shape, np.float32)
    for _ in range(int(rng.integers(3, 7))):
        i = int(rng.integers(len(ys)))
        radius = int(height * rng.uniform(0.04, 0.10))
        cv2.circle(out, (int(xs[i]), int(ys[i])), radius, 0.0, -1)
    return out


def person_region(rec) -> np.ndarray:
    """(H, W) bool: the person mask of a body, the rendered mesh of a head."""
    from recon3d.render.renderer import render_mesh

    if rec.person_mask is not None:
        return rec.person_mask > 0.5
    h, w = rec.image.shape[:2]
    return render_mesh(rec.vertices, rec.faces, rec.camera.K, (w, h), depth_only=True).depth > 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=pathlib.Path, nargs="+")
    parser.add_argument("--target", choices=("body", "head"), default="body")
    parser.add_argument(
        "--levels",
        nargs="+",
        default=None,
        help="geometry level / completion fill size pairs; the first is the reference "
        "(body: 1024/1024 512/1024 512/512; head: 1024/1024 512/1024)",
    )
    parser.add_argument("--masks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import recon3d.texture.completion as completion
    from recon3d.body_pipeline import BodyReconstructionPipeline
    from recon3d.metrics import psnr, ssim
    from recon3d.pipeline import HeadReconstructionPipeline
    from recon3d.texture.projection import project_texture

    if args.target == "body":
        pipe = BodyReconstructionPipeline.from_pretrained(use_network=True)
        default_levels = ["1024/1024", "512/1024", "512/512"]
    else:
        pipe = HeadReconstructionPipeline.from_pretrained(use_network=True)
        default_levels = ["1024/1024", "512/1024"]
    model = pipe.model
    levels = {}
    for level in args.levels or default_levels:
        geometry, fill = (int(v) for v in level.split("/"))
        levels[level] = (layout_at(model, geometry), fill)
    default_fill = completion._FILL_SIZE

    def texture(rec, layout, fill, mask):
        completion._FILL_SIZE = fill
        try:
            tex = project_texture(
                rec.image,
                rec.vertices.astype(np.float64),
                model.faces,
                rec.camera.K,
                layout,
                person_mask=mask,
            )
            return completion.complete(pipe.completer, tex), tex
        finally:
            completion._FILL_SIZE = default_fill

    rows = []
    for photo in args.photos:
        rec = pipe(photo)
        region = person_region(rec)
        reference = {}
        for level, (layout, fill) in levels.items():
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                final, tex = texture(rec, layout, fill, rec.person_mask)
                seconds.append(time.perf_counter() - start)
            if not reference:
                reference = {"texture": final, "observed": tex.observed, "conf": tex.confidence}
            seen = reference["conf"] >= _SEEN
            row = {
                "photo": photo.name,
                "level": level,
                "seconds": statistics.median(seconds),
                "seen_psnr": psnr(final, reference["texture"], seen),
                "hidden_psnr": [],
                "hidden_ssim": [],
            }
            for k in range(args.masks):
                rng = np.random.default_rng([k, len(photo.name)])
                keep = hide_discs(region, rng)
                if rec.person_mask is not None:
                    keep *= rec.person_mask
                completed, hidden_tex = texture(rec, layout, fill, keep)
                hidden = seen & (hidden_tex.confidence == 0)
                if hidden.sum() < 500:
                    continue
                row["hidden_psnr"].append(psnr(completed, reference["observed"], hidden))
                row["hidden_ssim"].append(ssim(completed, reference["observed"], hidden))
            rows.append(row)
            log.info(
                "%s %s: %.3f s, seen %.1f dB, hidden %.2f dB / %.4f",
                photo.name,
                level,
                row["seconds"],
                row["seen_psnr"],
                np.mean(row["hidden_psnr"]),
                np.mean(row["hidden_ssim"]),
            )
    print(f"\n{'level':<12}{'seconds':>9}{'seen PSNR':>11}{'hidden PSNR':>13}{'hidden SSIM':>13}")
    summary = {}
    for level in levels:
        sel = [r for r in rows if r["level"] == level]
        summary[level] = {
            "seconds": statistics.median(r["seconds"] for r in sel),
            "seen_psnr": float(np.mean([min(r["seen_psnr"], 99.0) for r in sel])),
            "hidden_psnr": float(np.mean([v for r in sel for v in r["hidden_psnr"]])),
            "hidden_ssim": float(np.mean([v for r in sel for v in r["hidden_ssim"]])),
            "regions": sum(len(r["hidden_psnr"]) for r in sel),
        }
        s = summary[level]
        print(
            f"{level:<12}{s['seconds']:>9.3f}{s['seen_psnr']:>11.1f}"
            f"{s['hidden_psnr']:>13.2f}{s['hidden_ssim']:>13.4f}"
        )
    print("geometry level / completion fill size; seconds: median per photo; PSNR in dB")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
