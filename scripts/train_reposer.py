"""Train a person-specific reposer (recon3d/train/reenact.py) and save it as safetensors + JSON.

Usage (CPU, one process):
    python scripts/train_reposer.py --photo photo.jpg --out data/reenact/person.safetensors \\
        --perceptual-weights mobilenet_v2-b0353104.pth --steps 2000 --face-steps 500
Sources: --photo (body reconstruction, reposed and rendered), --video (self-reenactment), or
--frames (a FrameSet .npz, e.g. saved with --save-frames, e.g. to train several variants on the same
frames). Several processes (DistributedDataParallel; gloo on CPUs, one process per GPU):
    torchrun --nproc_per_node 2 scripts/train_reposer.py --frames ... --out ...
--checkpoint-dir keeps checkpoints; --resume continues from the one there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--photo", help="photo of the person (body reconstruction)")
    source.add_argument("--video", help="video of the person (self-reenactment)")
    source.add_argument("--frames", help="a frame set saved with --save-frames (.npz)")
    parser.add_argument("--out", required=True, help="output reposer (.safetensors)")
    parser.add_argument("--save-frames", help="also save the training frame set (.npz)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--face-steps", type=int, default=500)
    parser.add_argument("--no-temporal", action="store_true", help="pix2pixHD alone")
    parser.add_argument("--no-face", action="store_true", help="no FaceGAN")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--n-blocks", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument(
        "--perceptual-weights", default=os.environ.get("RECON3D_PERCEPTUAL_WEIGHTS")
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--extend",
        metavar="CHECKPOINT",
        help="go on training the body generator of a finished run: its checkpoint is rewound to "
        "the end of its body stage (a FaceGAN stage is undone) into --checkpoint-dir and resumed "
        "up to --steps body steps",
    )
    parser.add_argument(
        "--time-limit", type=float, default=0.0, help="wall-time budget per stage, seconds"
    )
    parser.add_argument(
        "--without-face-out", help="also save the reposer without its FaceGAN (.safetensors)"
    )
    parser.add_argument(
        "--data-options", default="{}", help="JSON keyword arguments for the frame-set builder"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rank = int(os.environ.get("RANK", "0"))
    if args.extend:
        if not args.checkpoint_dir:
            parser.error("--extend needs --checkpoint-dir")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            parser.error("--extend runs in one process; then resume under torchrun with --resume")
        from recon3d.train.reenact import rewind_to_body_end

        target = pathlib.Path(args.checkpoint_dir) / "checkpoint.safetensors"
        done = rewind_to_body_end(args.extend, target)
        logging.info("rewound %s to body step %d -> %s", args.extend, done, target)
        args.resume = True

    from recon3d.reenact.reposer import Reposer

    options = json.loads(args.data_options)
    if args.photo:
        from recon3d import reconstruct

        source = reconstruct(args.photo, target="body", progress=False)
    elif args.video:
        source = args.video
    else:
        from recon3d.train.reenact_data import FrameSet

        source = FrameSet.load(args.frames)
    if args.save_frames and not args.frames:
        from recon3d.reenact.reposer import _frame_set

        source = _frame_set(source, args.size, args.seed, not args.quiet, options)
        if rank == 0:
            source.save(args.save_frames)
    reposer = Reposer.fit(
        source,
        size=args.size,
        steps=args.steps,
        face_steps=args.face_steps,
        temporal=not args.no_temporal,
        face=not args.no_face,
        ngf=args.ngf,
        n_blocks=args.n_blocks,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        perceptual_weights=args.perceptual_weights,
        device=args.device,
        seed=args.seed,
        progress=not args.quiet,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        time_limit=args.time_limit,
        data_options=options,
    )
    if rank == 0:
        path = reposer.save(args.out)
        logging.info("saved %s (%s)", path, json.dumps(reposer.info))
        if args.without_face_out:
            reposer.without_face().save(args.without_face_out)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
