"""Evaluate texture completion on held-out real partial textures (issue 5).

    python scripts/eval_texture_net.py --net weights/texture_net.safetensors --json out.json

For every held-out real reconstruction (``data/texture/partials/test``: grace_hopper, astronaut,
biden and carphone frames 95-115, none of them seen in training), random extra regions of what
the photo saw are hidden (``--masks`` per partial, fixed seeds). Each method completes the
texture without them; PSNR and SSIM are measured on the hidden texels against the photo's
colours there (texels seen with confidence >= 0.25), at the fill resolution (1024²):

* ``gan``: the completion network on top of the baseline;
* ``baseline``: the mirror + harmonic propagation fill of the head and body issues;
* ``telea``: OpenCV's Telea inpainting of the UV texture;
* ``part_mean``: the mean seen colour of each body part (head: face, scalp, side, neck);
* ``push_pull``: the local UV fill alone (one of the network's inputs), for reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import time
import zlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINES = ("baseline", "telea", "part_mean")
METHODS = ("gan", "baseline", "telea", "part_mean", "push_pull")

log = logging.getLogger("eval_texture_net")


def load_net(path: pathlib.Path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from recon3d.texture.completion import TextureCompletionNet

    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    net = TextureCompletionNet(width=int(config["width"]))
    net.load_state_dict(load_file(str(path)))
    torch.set_num_threads(2)
    return net.eval()


def part_mean(observed, conf, geometry) -> np.ndarray:
    layout = geometry.layout
    labels = np.full(layout.size * layout.size, -1)
    labels[layout.used] = geometry.face_labels[layout.used_face]
    flat = observed.reshape(-1, 3).astype(np.float64)
    seen = conf.reshape(-1) > 0
    out = np.zeros_like(flat)
    overall = flat[seen].mean(0)
    for label in np.unique(labels[labels >= 0]):
        where = labels == label
        known = where & seen
        out[where] = flat[known].mean(0) if known.any() else overall
    out[seen] = flat[seen]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(observed.shape)


def telea(observed, conf, geometry) -> np.ndarray:
    import cv2

    # Everything unseen is a hole, outside the islands too, so that only seen colours spread.
    hole = (conf == 0).astype(np.uint8)
    return cv2.inpaint(observed, hole, 3, cv2.INPAINT_TELEA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, default=ROOT / "data/texture/partials/test")
    parser.add_argument("--masks", type=int, default=6)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--pictures", type=pathlib.Path, help="folder for comparison sheets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from recon3d.metrics import psnr, ssim
    from recon3d.texture.completion import TextureCompleter, local_fill
    from recon3d.train.texture_data import (
        TRUTH_CONFIDENCE,
        _baseline,
        body_geometry,
        extra_mask,
        head_geometry,
    )

    geometries = {"head": head_geometry(), "body": body_geometry()}
    net = load_net(args.net)
    completers = {k: TextureCompleter(net, g.maps) for k, g in geometries.items()}
    rows: list[dict] = []
    seconds = {m: [] for m in METHODS}
    for path in sorted(args.data.glob("*.npz")):
        name = path.stem
        kind = name.rsplit("_", 1)[1]
        geometry = geometries[kind]
        with np.load(path) as d:
            observed, confidence, vertices = d["observed"], d["confidence"], d["vertices"]
        truth_region = confidence >= TRUTH_CONFIDENCE
        for k in range(args.masks):
            rng = np.random.default_rng([zlib.crc32(name.encode()), k])
            hide = extra_mask(
                geometry.size, rng, float(rng.uniform(0.15, 0.4)), around=truth_region
            )
            conf = np.where(hide, 0.0, confidence).astype(np.float32)
            obs = np.where(conf[..., None] > 0, observed, 0).astype(np.uint8)
            region = hide & truth_region
            if region.sum() < 200:
                continue
            outputs = {}
            t = time.perf_counter()
            outputs["baseline"] = _baseline(obs, conf, geometry, vertices)
            seconds["baseline"].append(time.perf_counter() - t)
            t = time.perf_counter()
            outputs["gan"] = completers[kind](outputs["baseline"], obs, conf)
            seconds["gan"].append(time.perf_counter() - t)
            t = time.perf_counter()
            outputs["telea"] = telea(obs, conf, geometry)
            seconds["telea"].append(time.perf_counter() - t)
            t = time.perf_counter()
            outputs["part_mean"] = part_mean(obs, conf, geometry)
            seconds["part_mean"].append(time.perf_counter() - t)
            t = time.perf_counter()
            outputs["push_pull"] = np.clip(local_fill(obs, conf) + 0.5, 0, 255).astype(np.uint8)
            seconds["push_pull"].append(time.perf_counter() - t)
            row = {"name": name, "kind": kind, "mask": k, "texels": int(region.sum())}
            for method, image in outputs.items():
                row[f"{method}_psnr"] = psnr(image, observed, region)
                row[f"{method}_ssim"] = ssim(image, observed, region)
            rows.append(row)
            log.info(
                "%s #%d: %s",
                name,
                k,
                ", ".join(
                    f"{m} {row[m + '_psnr']:.2f} dB / {row[m + '_ssim']:.3f}" for m in METHODS
                ),
            )
            if args.pictures is not None and k == 0:
                _sheet(args.pictures / f"{name}.jpg", observed, obs, region, outputs)

    summary: dict = {"n": {}, "psnr_db": {}, "ssim": {}, "seconds": {}}
    for kind in ("head", "body"):
        sel = [r for r in rows if r["kind"] == kind]
        summary["n"][kind] = len(sel)
        for metric, key in (("psnr", "psnr_db"), ("ssim", "ssim")):
            summary[key][kind] = {
                m: round(float(np.mean([r[f"{m}_{metric}"] for r in sel])), 4) for m in METHODS
            }
    summary["seconds"] = {m: round(float(np.median(v)), 3) for m, v in seconds.items() if v}
    summary["wins"] = {
        kind: all(
            summary[key][kind]["gan"] > summary[key][kind][m]
            for key in ("psnr_db", "ssim")
            for m in BASELINES
        )
        for kind in ("head", "body")
    }
    text = json.dumps({"summary": summary, "rows": rows}, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(json.dumps(summary, indent=1))
    for kind in ("head", "body"):
        print(f"\n{kind} (n={summary['n'][kind]}): method | PSNR (dB) | SSIM")
        for m in METHODS:
            print(f"| {m} | {summary['psnr_db'][kind][m]:.2f} | {summary['ssim'][kind][m]:.4f} |")
    return 0


def _sheet(path: pathlib.Path, truth, partial, region, outputs) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ys, xs = np.nonzero(region)
    pad = 24
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad, truth.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad, truth.shape[1])

    def crop(img):
        return cv2.resize(img[y0:y1, x0:x1], (256, 256), interpolation=cv2.INTER_AREA)

    shown = partial.copy()
    shown[region] = (255, 0, 255)
    tiles = [crop(truth), crop(shown)] + [crop(outputs[m]) for m in METHODS]
    cv2.imwrite(str(path), np.hstack(tiles)[..., ::-1])


if __name__ == "__main__":
    sys.exit(main())
