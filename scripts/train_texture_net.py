"""Train the texture-completion GAN (issue 5) on shards from ``generate_texture_data.py``.

    python scripts/train_texture_net.py --data data/texture/train --out data/texture_runs/gan
    torchrun --nproc_per_node 2 scripts/train_texture_net.py ...      # DDP (gloo on CPUs)
    python scripts/train_texture_net.py ... --ship                     # copy into weights/

Resumes from the checkpoints in ``--out``. ``--ship`` copies the generator into
``weights/texture_net.safetensors`` and records it in ``weights/manifest.json`` (run the
evaluation first: the manifest takes its metrics from ``--metrics``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import shlex
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
MOBILENET = "/work/shared/data/models/mobilenet_v2-b0353104.pth"


def main(argv: list[str] | None = None) -> int:
    from recon3d.train.texture_gan import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = TrainConfig(data="", out="", perceptual_weights=MOBILENET)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--perceptual-weights", default=MOBILENET)
    for field in dataclasses.fields(TrainConfig):
        if field.name in ("data", "out", "perceptual_weights", "adversarial"):
            continue
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag, type=type(getattr(defaults, field.name)), default=getattr(defaults, field.name)
        )
    parser.add_argument("--no-adversarial", action="store_true", help="ablation: no GAN losses")
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--metrics", type=pathlib.Path, help="evaluation JSON for --ship")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "adversarial"
    }
    config = TrainConfig(**values, adversarial=not args.no_adversarial)
    if args.ship:
        return ship(config, args.metrics)
    train(config)
    return 0


def ship(config, metrics_path: pathlib.Path | None) -> int:
    import hashlib
    import shutil

    from safetensors import safe_open

    source = pathlib.Path(config.out) / "texture_net.safetensors"
    target = ROOT / "weights" / "texture_net.safetensors"
    shutil.copyfile(source, target)
    with safe_open(str(target), framework="pt") as f:
        meta = f.metadata()
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest_path = ROOT / "weights" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data_dir = pathlib.Path(config.data)
    manifest["files"]["texture_net.safetensors"] = {
        "sha256": digest,
        "size": target.stat().st_size,
        "description": "Texture-completion GAN generator (gated-conv U-Net in UV space, "
        "heads and bodies), recon3d.texture.completion",
        "command": "python scripts/generate_texture_data.py --out data/texture --seed 0 && "
        "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "seed": config.seed,
        "steps": int(meta.get("step", "0")),
        "data": f"{len(list(data_dir.glob('shard_*.npz')))} shards in {data_dir}: real partial "
        "textures (obama, obama2, obama3, camera, carphone frames 0-80) with random masks and "
        "procedural textures",
        "metrics": json.loads(metrics_path.read_text()) if metrics_path else {},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"shipped {target} ({digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
