"""Generate training and test data for the texture-completion network (issue 5).

    python scripts/generate_texture_data.py --out data/texture --seed 0

Real photos are reconstructed once (head, and body where the body is in frame); their partial
textures are cached under ``<out>/partials/``. Shards of samples go to ``<out>/train/`` (real
photos of the training split with random extra masks, plus procedural textures seen by random
cameras); existing shards are kept, so an interrupted run resumes where it stopped. The held-out
photos are only reconstructed here (their partials are what ``eval_texture_net.py`` masks).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = pathlib.Path("/work/shared/data/photos")
VIDEO = pathlib.Path("/work/shared/data/video/carphone.mp4")
# (photo, targets). Held out: grace_hopper, astronaut, biden and the last 30 video frames.
TRAIN_PHOTOS = {
    "obama.jpg": ("head", "body"),
    "obama2.jpg": ("head", "body"),
    "obama3.jpg": ("head", "body"),
    "camera.png": ("body",),
}
TEST_PHOTOS = {
    "grace_hopper.jpg": ("head",),
    "astronaut.png": ("head", "body"),
    "biden.jpg": ("head", "body"),
}
TRAIN_FRAMES = range(0, 90, 10)
TEST_FRAMES = range(95, 120, 10)

log = logging.getLogger("generate_texture_data")


def video_frames(indices: range) -> dict[str, np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames = {}
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in indices:
            # The clip is 176x144: upscale so the face detector and the texture have pixels.
            big = cv2.resize(frame, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
            frames[f"carphone_{index:03d}"] = big[..., ::-1].copy()
        index += 1
    return frames


def partials(out: pathlib.Path, split: str, geometries) -> list[pathlib.Path]:
    """Reconstruct the split's photos and cache their partial textures; returns the files."""
    from recon3d import reconstruct
    from recon3d.errors import NoFaceFound, NoPersonFound
    from recon3d.io.image import load_image
    from recon3d.train.texture_data import real_partial

    folder = out / "partials" / split
    folder.mkdir(parents=True, exist_ok=True)
    photos = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
    sources: list[tuple[str, np.ndarray, tuple[str, ...]]] = [
        (pathlib.Path(name).stem, load_image(PHOTOS / name), targets)
        for name, targets in photos.items()
    ]
    frames = video_frames(TRAIN_FRAMES if split == "train" else TEST_FRAMES)
    sources += [(name, image, ("head",)) for name, image in frames.items()]
    files = []
    for name, image, targets in sources:
        for target in targets:
            path = folder / f"{name}_{target}.npz"
            if not path.exists():
                try:
                    rec = reconstruct(image, target=target, progress=False)
                except (NoFaceFound, NoPersonFound) as exc:
                    log.warning("skipping %s (%s): %s", name, target, exc)
                    continue
                partial = real_partial(rec, geometries[target])
                np.savez_compressed(
                    path,
                    observed=partial.observed,
                    confidence=partial.confidence,
                    vertices=partial.vertices,
                )
                log.info("reconstructed %s as %s", name, target)
            files.append(path)
    return files


def load_partial(path: pathlib.Path):
    from recon3d.train.texture_data import PartialTexture

    with np.load(path) as data:
        return PartialTexture(data["observed"], data["confidence"], data["vertices"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "data" / "texture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-masks", type=int, default=40, help="masks per real partial")
    parser.add_argument("--synthetic", type=int, default=400, help="procedural samples per kind")
    parser.add_argument("--shard-size", type=int, default=40)
    parser.add_argument("--worker", type=int, default=0, help="this process's index")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the shards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from recon3d.train.texture_data import (
        body_geometry,
        head_geometry,
        procedural_texture,
        random_view,
        sample_from_partial,
        save_shard,
    )

    geometries = {"head": head_geometry(), "body": body_geometry()}
    train_files = partials(args.out, "train", geometries)
    if args.worker == 0:
        partials(args.out, "test", geometries)

    # Jobs: (kind, source) pairs, in a fixed order; each shard is a deterministic slice.
    jobs: list[tuple[str, str]] = []
    for path in train_files:
        kind = path.stem.rsplit("_", 1)[1]
        jobs += [(kind, str(path))] * args.real_masks
    for kind in ("head", "body"):
        jobs += [(kind, "procedural")] * args.synthetic
    order = np.random.default_rng(args.seed).permutation(len(jobs))
    jobs = [jobs[i] for i in order]
    shards = range(0, len(jobs), args.shard_size)
    folder = args.out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[str, object] = {}
    for shard_index, start in enumerate(shards):
        if shard_index % args.workers != args.worker:
            continue
        path = folder / f"shard_{shard_index:04d}.npz"
        if path.exists():
            continue
        samples = []
        for j, (kind, source) in enumerate(jobs[start : start + args.shard_size]):
            rng = np.random.default_rng([args.seed, start + j])
            geometry = geometries[kind]
            if source == "procedural":
                texture = procedural_texture(geometry, rng)
                partial = random_view(geometry, texture, rng)
                samples.append(sample_from_partial(partial, geometry, rng, truth=texture))
            else:
                if source not in cache:
                    cache[source] = load_partial(pathlib.Path(source))
                samples.append(sample_from_partial(cache[source], geometry, rng))
        save_shard(path, samples)
        log.info("wrote %s (%d samples)", path, len(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
