"""Experiment (not used by the library): does a small grey image crop of the face help the head
network beyond the landmarks? See docs/head_network.md for the result.

1. ``crops``: replay the (deterministic) generation of existing shards and store, per kept
   sample, a CROP x CROP grey crop aligned to MediaPipe's face box, as ``crops_s*_*.npz`` beside
   the shards (no MediaPipe run: the kept samples are matched by their identity vectors).
2. ``train``: the landmark MLP plus a small CNN over the crop, trained like the ablation without
   the adversarial prior (same losses, epochs and schedule).
3. ``eval``: PVE / iBUG-68 after Procrustes on held-out shards, network alone (pose by PnP).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/head_crop_experiment.py crops --data data/head_train
    PYOPENGL_PLATFORM=egl python scripts/head_crop_experiment.py crops --data data/head_test \
        --textures data/texture/partials/test
    python scripts/head_crop_experiment.py train --data data/head_train --out data/head_net_crop
    python scripts/head_crop_experiment.py eval --data data/head_test --out data/head_net_crop
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

log = logging.getLogger("head_crop_experiment")
CROP = 32


def face_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(CROP, CROP) uint8 grey crop of the square 1.2x the face box, centred on it."""
    import cv2

    x0, y0, x1, y1 = np.asarray(box, np.float64)
    side = 1.2 * max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = CROP / side
    affine = np.array([[s, 0, CROP / 2 - s * cx], [0, s, CROP / 2 - s * cy]])
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(grey, affine, (CROP, CROP), flags=cv2.INTER_AREA)


def make_crops(args) -> None:
    import torch

    from recon3d.models.head import HeadModel
    from recon3d.train.synthetic import video_frames
    from recon3d.train.synthetic_head import (
        HeadRenderer,
        head_vertices,
        load_textures,
        random_sample,
    )

    torch.set_num_threads(1)
    model = HeadModel.from_pretrained()
    with np.load(args.bank, allow_pickle=False) as data:
        bank = data["expression"]
    renderer = HeadRenderer(model, load_textures(sorted(args.textures.glob("*_head.npz"))))
    backgrounds = video_frames(args.video, max_frames=60) if args.video.exists() else []
    for path in sorted(args.data.glob("head_s*_*.npz")):
        out = path.with_name(path.name.replace("head_s", "crops_s"))
        if out.exists():
            continue
        seed, index = (int(x) for x in path.stem[len("head_s") :].split("_"))
        start = time.perf_counter()
        with np.load(path) as shard:
            identity, points = shard["identity"], shard["points"]
            attempted = int(shard["attempted"])
        rng = np.random.default_rng([seed, index])
        crops, k = [], 0
        for _ in range(attempted):
            sample = random_sample(model, rng, bank)
            image = renderer.render(head_vertices(model, sample), sample.K, rng, backgrounds)
            if k < len(identity) and np.array_equal(
                sample.identity.astype(np.float32), identity[k]
            ):
                box = np.r_[points[k, :, :2].min(0), points[k, :, :2].max(0)]
                crops.append(face_crop(image, box))
                k += 1
        if k != len(identity):
            raise RuntimeError(f"{path.name}: matched {k} of {len(identity)} samples")
        np.savez_compressed(out, crop=np.stack(crops))
        log.info("%s: %d crops in %.1f s", out.name, k, time.perf_counter() - start)


def crop_network(width: int = 512):
    import torch
    from torch import nn

    from recon3d.models.head_net import HeadRegressor

    class CropHeadRegressor(HeadRegressor):
        """The landmark MLP with a small CNN over the face crop added to its first layer."""

        def __init__(self) -> None:
            super().__init__(width=width)
            self.crop_encoder = nn.Sequential(
                nn.Conv2d(1, 16, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(64 * 4 * 4, width),
            )

        def forward(self, landmarks: torch.Tensor, crop: torch.Tensor):
            b = landmarks.shape[0]
            hidden = self.trunk[0](landmarks.reshape(b, -1)) + self.crop_encoder(crop)
            hidden = self.trunk[1:](hidden)
            return self.split_outputs(self.head(hidden))

    return CropHeadRegressor()


def load(folder: pathlib.Path):
    import torch

    from recon3d.train.head_net import load_shards

    data = load_shards(folder)
    names = [
        p.with_name(p.name.replace("head_s", "crops_s"))
        for p in sorted(folder.glob("head_s*_*.npz"))
    ]
    crops = [np.load(n)["crop"] for n in names]
    data["face"] = torch.from_numpy(np.concatenate(crops).astype(np.float32) / 255.0)[:, None]
    return data


def train(args) -> None:
    import torch

    from recon3d.models.head import HeadModel
    from recon3d.train.head_net import TrainConfig, _Geometry, _losses

    torch.manual_seed(0)
    config = TrainConfig(adversarial_weight=0.0)
    model = HeadModel.from_pretrained()
    geometry = _Geometry(model)
    data = load(args.data)
    n = len(data["identity"])
    net = crop_network()
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    for epoch in range(args.epochs):
        lr = config.learning_rate * (0.1 if epoch >= 2 * args.epochs // 3 else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=generator)
        totals: dict[str, float] = {}
        started = time.perf_counter()
        for s in range(0, n, config.batch_size):
            idx = order[s : s + config.batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            pred = net(batch["landmarks"], batch["face"])
            losses = _losses(geometry, pred, batch, config)
            total = sum(losses.values())
            opt.zero_grad()
            total.backward()
            opt.step()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        log.info(
            "epoch %d (%.1f s): %s",
            epoch,
            time.perf_counter() - started,
            {k: round(v, 3) for k, v in totals.items()},
        )
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()},
        str(args.out / "crop_net.safetensors"),
    )


def evaluate(args) -> None:
    import json

    import torch
    from safetensors.torch import load_file

    from recon3d.metrics import procrustes_error
    from recon3d.models.head import HeadModel
    from recon3d.models.landmarks import interpolate_surface

    model = HeadModel.from_pretrained()
    net = crop_network()
    net.load_state_dict(load_file(str(args.out / "crop_net.safetensors")))
    net.eval()
    data = load(args.data)
    n = min(args.n, len(data["identity"]))
    with torch.no_grad():
        pred = net(data["landmarks"][:n], data["face"][:n])
        p = model.vertices(pred["identity"], pred["expression"]).numpy().astype(np.float64)
        g = model.vertices(data["identity"][:n], data["expression"][:n]).numpy().astype(np.float64)
    ibug = model.landmarks["ibug68"]
    pve = [1000 * procrustes_error(a, b) for a, b in zip(p, g, strict=True)]
    ib = [
        1000
        * procrustes_error(
            interpolate_surface(a, model.faces, ibug), interpolate_surface(b, model.faces, ibug)
        )
        for a, b in zip(p, g, strict=True)
    ]
    sys.stdout.write(
        json.dumps(
            {
                "n": n,
                "pve_mm": round(float(np.mean(pve)), 4),
                "ibug68_mm": round(float(np.mean(ib)), 4),
            }
        )
        + "\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("crops", "train", "eval"))
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "data" / "head_net_crop")
    parser.add_argument("--epochs", type=int, default=70)
    parser.add_argument("--n", type=int, default=200)
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
    {"crops": make_crops, "train": train, "eval": evaluate}[args.step](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
