"""Generate synthetic training shards for the head network (see recon3d/train/synthetic_head.py).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/generate_head_data.py --out data/head_train --seed 1 \
        --start 0 --stop 50 [--shard-size 100] [--textures data/texture/partials/train]

Held-out set: another seed and the held-out textures:
    ... --out data/head_test --seed 2 --textures data/texture/partials/test --stop 2

Run several processes on disjoint ``--start/--stop`` ranges to use more cores; a stopped run
resumes where it was (existing shards are skipped). Backgrounds: frames of the street video in
../shared/data/video (no large faces) and random gradients. Expressions: a third of the samples
start from the expression bank (``--bank``, built by the first run if absent: the head fit's
expression estimates on carphone.mp4 frames 0-89 and the photos obama, obama2, obama3, camera
and sample1; the same bank is the adversarial prior's "real" expressions).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("generate_head_data")

BANK_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "camera.png", "sample1.jpg")
BANK_FRAMES = range(0, 90)


def build_expression_bank(path: pathlib.Path, detector, model) -> np.ndarray:
    """(N, 52) expression estimates of the head fit on real frames and photos, saved to path."""
    import cv2

    from recon3d.camera import Camera
    from recon3d.fitting.head_fit import fit_head
    from recon3d.io import load_image

    images = []
    cap = cv2.VideoCapture(str(ROOT.parent / "shared" / "data" / "video" / "carphone.mp4"))
    for _ in BANK_FRAMES:
        ok, frame = cap.read()
        if not ok:
            break
        images.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    for name in BANK_PHOTOS:
        images.append(load_image(ROOT.parent / "shared" / "data" / "photos" / name))
    rows, identities = [], []
    for image in images:
        h, w = image.shape[:2]
        faces = detector.detect(image)
        if not faces:
            continue
        fit = fit_head(model, faces[0], Camera.from_image_size(w, h).K)
        rows.append(fit.expression)
        identities.append(fit.identity)
    bank = np.stack(rows).astype(np.float32)
    np.savez(path, expression=bank, identity=np.stack(identities).astype(np.float32))
    log.info("expression bank: %d fits from %d images -> %s", len(bank), len(images), path)
    return bank


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument(
        "--textures", type=pathlib.Path, default=ROOT / "data" / "texture" / "partials" / "train"
    )
    parser.add_argument("--bank", type=pathlib.Path, default=ROOT / "data" / "head_expressions.npz")
    parser.add_argument(
        "--video",
        type=pathlib.Path,
        default=ROOT.parent / "shared" / "data" / "video" / "vtest.avi",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector
    from recon3d.models.head import HeadModel
    from recon3d.train.synthetic import video_frames
    from recon3d.train.synthetic_head import HeadRenderer, generate_shard, load_textures

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = HeadModel.from_pretrained()
    detector = MediaPipeFaceDetector()
    if args.bank.exists():
        with np.load(args.bank, allow_pickle=False) as data:
            bank = data["expression"]
    else:
        bank = build_expression_bank(args.bank, detector, model)
    textures = load_textures(sorted(args.textures.glob("*_head.npz")))
    log.info("%d textures from %s", len(textures), args.textures)
    renderer = HeadRenderer(model, textures)
    backgrounds = video_frames(args.video, max_frames=60) if args.video.exists() else []
    for index in range(args.start, args.stop):
        start = time.perf_counter()
        path = generate_shard(
            model,
            detector,
            renderer,
            backgrounds,
            args.out,
            args.seed,
            index,
            args.shard_size,
            bank,
        )
        if path is not None:
            with np.load(path) as shard:
                missed = int(shard["missed"])
                kept = int(shard["attempted"]) - missed
            log.info(
                "%s: %d samples (%d missed) in %.1f s",
                path.name,
                kept,
                missed,
                time.perf_counter() - start,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
