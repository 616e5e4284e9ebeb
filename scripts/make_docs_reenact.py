"""Regenerate the animated GIFs of the re-posing documentation (docs/reenactment.md).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/make_docs_reenact.py \
        --reposer data/reenact/obama3.safetensors \
        [--video-reposer data/reenact/carphone.safetensors]
        [--out docs/images] [--panel 160] [--fps 10]

Writes, each panel ``--panel`` pixels square, at most ``--fps`` frames per second:

* ``reenact_dance_a.gif``: obama3.jpg's body reconstruction driven by the ``dance_a`` mocap clip
  (held out of the reposer's training clips): photo | normalised driving pose map | generated.
* ``reenact_video.gif``: the same reposer driven by a video: a rendered video of biden.jpg's
  body reconstruction dancing ``dance_b`` (textured mesh, no GAN; no real full-body dance video
  is in the shared data: vtest.avi's pedestrians are too small for MediaPipe, carphone.mp4 shows
  a head), seen by MediaPipe, normalised to obama3's ankle statistics:
  driving video | pose map | generated.
* ``reenact_carphone.gif`` (with ``--video-reposer``): self-reenactment of carphone.mp4 on its
  held-out frames (``--start`` onwards): real frame | pose map | generated.

Every GIF is checked to be below 3 MB. With ``--samples`` (the ``--samples`` folder of
``scripts/eval_reposer.py --setting reposed``) it writes ``reenact_rows.jpg`` instead: held-out
ground truth, then pix2pixHD, + temporal smoothing and + FaceGAN on the same frames.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import tempfile

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("make_docs_reenact")
DATA = pathlib.Path("/work/shared/data")
MOCAP = pathlib.Path(os.environ.get("RECON3D_MOCAP", DATA / "mocap"))
MAX_BYTES = 3 << 20
GUTTER = 4


def panel(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` fitted into a white ``side`` x ``side`` square (aspect kept)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(
        image,
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    out = np.full((side, side, 3), 255, np.uint8)
    y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def strip(images: list[np.ndarray], side: int) -> np.ndarray:
    gutter = np.full((side, GUTTER, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for img in images:
        parts += [panel(img, side), gutter]
    return np.concatenate(parts[:-1], 1)


def subsample(n: int, fps: float, target_fps: float) -> np.ndarray:
    step = max(1, round(fps / target_fps))
    return np.arange(0, n, step)


def write_gif(path: pathlib.Path, frames: list[np.ndarray], fps: float) -> None:
    from recon3d.io.video import write_video

    write_video(path, frames, fps)
    size = path.stat().st_size
    log.info("%s: %d frames, %.2f MB", path, len(frames), size / 1e6)
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size / 1e6:.2f} MB, over the 3 MB limit: lower --panel")


def person_crop(rec) -> np.ndarray:
    """The photo cropped to the person (its mask's box, 5 % margin)."""
    ys, xs = np.nonzero(rec.person_mask > 0.5)
    h, w = rec.image.shape[:2]
    m = int(0.05 * max(ys.ptp(), xs.ptp()))
    return rec.image[
        max(ys.min() - m, 0) : min(ys.max() + m, h), max(xs.min() - m, 0) : min(xs.max() + m, w)
    ]


def driven(reposer, driving_poses, *, normalize: bool = True):
    """(pose maps, generated frames) for loaded driving poses, as Reposer.render does."""
    from recon3d.reenact.posemap import draw_pose_map

    poses = reposer.prepare_poses(driving_poses, normalize=normalize)
    s = reposer.size
    maps = [draw_pose_map(poses, i, size=(s, s)) for i in range(len(poses))]
    frames = list(reposer.render(poses, normalize=False, progress=False))
    return maps, frames


def rows_picture(samples: pathlib.Path, out: pathlib.Path, side: int) -> None:
    """The eval's strips (ground truth above, a row's frames below, 256 px frames) stacked:
    ground truth, pix2pixHD, + temporal smoothing, + FaceGAN; frames ``side`` pixels."""
    names = ("pix2pixHD", "temporal_smoothing", "FaceGAN")
    strips = [cv2.imread(str(samples / f"{n}.jpg")) for n in names]
    if any(s is None for s in strips):
        raise SystemExit(f"missing strips in {samples}: expected {names}")
    half = strips[0].shape[0] // 2
    picture = np.concatenate([strips[0][:half]] + [s[half:] for s in strips], 0)
    scale = side / half
    picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), picture, [cv2.IMWRITE_JPEG_QUALITY, 88])
    log.info("%s: %dx%d", out, picture.shape[1], picture.shape[0])


def main(argv: list[str] | None = None) -> int:
    from recon3d.reenact.reposer import Reposer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reposer", type=pathlib.Path, default=None, help="obama3's reposer")
    parser.add_argument("--video-reposer", type=pathlib.Path, default=None)
    parser.add_argument("--start", type=int, default=90, help="first held-out carphone frame")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs/images")
    parser.add_argument("--panel", type=int, default=160)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument(
        "--samples",
        type=pathlib.Path,
        default=None,
        help="eval_reposer.py --samples folder of the reposed setting: write "
        "reenact_rows.jpg (ground truth, then each row's frames) and stop",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.samples is not None:
        rows_picture(args.samples, args.out / "reenact_rows.jpg", args.panel)
        return 0
    side = args.panel
    if args.reposer is None and args.video_reposer is None:
        parser.error("give --reposer and/or --video-reposer (or --samples)")
    if args.reposer is not None:
        obama_gifs(Reposer.load(args.reposer), args.out, side, args.fps)
    if args.video_reposer is not None:
        carphone_gif(Reposer.load(args.video_reposer), args.out, side, args.fps, args.start)
    return 0


def obama_gifs(reposer, out: pathlib.Path, side: int, target_fps: float) -> None:
    """obama3 driven by dance_a and by a rendered video of biden.jpg dancing dance_b."""
    from recon3d import reconstruct
    from recon3d.reenact.poses import load_driving

    obama = reconstruct(DATA / "photos/obama3.jpg", target="body")
    photo = person_crop(obama)

    # 1. The dance_a mocap clip.
    driving = load_driving(MOCAP / "humanoid3d_dance_a.txt", fps=30.0, progress=False)
    maps, frames = driven(reposer, driving)
    keep = subsample(len(frames), driving.fps, target_fps)
    gif = [strip([photo, maps[i], frames[i]], side) for i in keep]
    write_gif(out / "reenact_dance_a.gif", gif, min(target_fps, driving.fps))

    # 2. A video: biden.jpg's reconstruction rendered dancing dance_b, seen by MediaPipe.
    from recon3d.io.video import write_video
    from recon3d.train.reenact_data import render_reposed

    biden = reconstruct(DATA / "photos/biden.jpg", target="body")
    video = render_reposed(
        biden, clips=("dance_b",), random_poses=0, size=reposer.size, seed=7, progress=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(pathlib.Path(tmp) / "biden_dance_b.mp4", list(video.frames), 30.0)
        driving = load_driving(path, progress=False)
    maps, frames = driven(reposer, driving)
    keep = subsample(len(frames), driving.fps, target_fps)
    gif = [strip([video.frames[i], maps[i], frames[i]], side) for i in keep]
    write_gif(out / "reenact_video.gif", gif, min(target_fps, driving.fps))


def carphone_gif(reposer, out: pathlib.Path, side: int, target_fps: float, start: int) -> None:
    """Self-reenactment of carphone.mp4 on its held-out frames (``start`` onwards)."""
    from recon3d.train.reenact_data import video_frames

    held_out = video_frames(
        DATA / "video/carphone.mp4", size=reposer.size, start=start, progress=False
    )
    maps, frames = driven(reposer, held_out.poses, normalize=False)
    keep = subsample(len(frames), held_out.poses.fps, target_fps)
    gif = [strip([held_out.frames[i], maps[i], frames[i]], side) for i in keep]
    write_gif(out / "reenact_carphone.gif", gif, min(target_fps, held_out.poses.fps))


if __name__ == "__main__":
    sys.exit(main())
