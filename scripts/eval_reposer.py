"""Evaluate trained reposers: the "Everybody Dance Now" tables, reproduced in form, plus flicker.

Rows are reposers (``NAME=PATH``; ``PATH:noface`` evaluates a model with its FaceGAN switched
off), normally: pix2pixHD (no temporal input, no FaceGAN), + temporal smoothing, + FaceGAN.
Each row renders the held-out test frames from their own keypoints (the driving poses are the
ground truth's, in the same frame, so no pose normalisation is involved) and is compared with
the ground-truth frames:

1. body: SSIM and a perceptual distance (LPIPS-style: unit-normalised ImageNet MobileNetV2
   features, :func:`recon3d.train.perceptual.perceptual_distance`) on a square crop around the
   person (the ground truth's confident keypoints, 12 % margin), resized to 128² for the
   perceptual distance;
2. face: the same on the face box (:func:`recon3d.reenact.face.face_boxes`, the FaceGAN's crop),
   resized to 64² for the perceptual distance;
3. pose distance: MediaPipe keypoints (:func:`recon3d.reenact.poses.detect_poses`, per sequence)
   detected on the generated frames against the driving keypoints, mean pixel distance by body /
   face / hands and the detection rate (:func:`recon3d.metrics.pose_distance`); the row
   "ground truth" runs the detector on the real frames (the detector's own floor);

and temporal flicker: mean absolute difference of consecutive generated frames minus that of
the ground-truth frames (:func:`recon3d.metrics.temporal_flicker`), 0-255 units, whole frame.

Settings:
    reposed  held-out frames of the reposed reconstruction: ``render_reposed`` with the
             held-out clips (:data:`recon3d.train.reenact_data.TEST_CLIPS`), no random poses,
             seed 1000 (the training sets use other seeds and clips);
    video    self-reenactment of a real video: frames ``--start`` onwards of ``--video``
             (the reposer is trained on the frames before).

Usage:
    PYOPENGL_PLATFORM=egl python scripts/eval_reposer.py --setting reposed \
        --photo /work/shared/data/photos/obama3.jpg \
        --row "pix2pixHD=data/reenact/p2p.safetensors" \
        --row "+ temporal smoothing=data/reenact/full.safetensors:noface" \
        --row "+ FaceGAN=data/reenact/full.safetensors" \
        --json data/reenact/eval_reposed.json --markdown data/reenact/eval_reposed.md
    PYOPENGL_PLATFORM=egl python scripts/eval_reposer.py --setting video \
        --video /work/shared/data/video/carphone.mp4 --start 90 --row ... --json ... --markdown ...
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("eval_reposer")

MOBILENET = pathlib.Path("/work/shared/data/models/mobilenet_v2-b0353104.pth")
BODY_CROP = 128
FACE_CROP = 64
TEST_SEED = 1000


def body_boxes(poses, margin: float = 0.12) -> np.ndarray:
    """(T, 4) int square boxes ``x0, y0, x1, y1`` around each frame's confident keypoints
    (body, face, hands), ``margin`` x the larger side added on each side, inside the frame."""
    h, w = poses.image_size
    out = np.zeros((len(poses), 4), np.int64)
    for t in range(len(poses)):
        pts = [poses.body[t][poses.body_confidence[t] > 0.5]]
        if poses.face is not None:
            pts.append(poses.face[t][poses.face_confidence[t] > 0.5])
        if poses.hands is not None:
            pts.append(poses.hands[t].reshape(-1, 2)[poses.hands_confidence[t].reshape(-1) > 0.5])
        p = np.concatenate(pts)
        if len(p) < 2:
            out[t] = (0, 0, w, h) if w == h else (0, 0, min(w, h), min(w, h))
            continue
        lo, hi = np.clip(p.min(0), 0, (w, h)), np.clip(p.max(0), 0, (w, h))
        side = float((hi - lo).max()) * (1 + 2 * margin)
        side = int(round(min(max(side, 16), w, h)))
        cx, cy = 0.5 * (lo + hi)
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        out[t] = (x0, y0, x0 + side, y0 + side)
    return out


def generate(reposer, frame_set, *, face: bool = True) -> tuple[np.ndarray, float]:
    """Frames of ``reposer`` driven by the test set's own keypoints, as ``Reposer.render`` does
    (pose map -> generator fed its previous output -> FaceGAN on the face box where the face is
    visible), the previous frame reset at every new sequence. Returns (N, S, S, 3) uint8 and
    seconds per frame."""
    from recon3d.reenact.face import face_boxes, face_visible
    from recon3d.reenact.posemap import draw_pose_map

    s = reposer.size
    poses = frame_set.poses
    boxes = face_boxes(poses, size=(s, s))
    visible = face_visible(poses)
    out = np.empty((len(frame_set), s, s, 3), np.uint8)
    prev, last = None, None
    start = time.perf_counter()
    for i in range(len(frame_set)):
        if frame_set.sequence[i] != last:
            prev, last = None, frame_set.sequence[i]
        pose_map = draw_pose_map(poses, i, size=(s, s))
        box = boxes[i] if face and visible[i] else None
        out[i], prev = reposer.render_pose_map(pose_map, prev, box)
    return out, (time.perf_counter() - start) / max(len(frame_set), 1)


def crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[y0:y1, x0:x1]


def appearance(generated, truth, boxes, side: int, features) -> dict[str, float]:
    """Mean SSIM (at the crop's own resolution) and perceptual distance (crops resized to
    ``side``²) of the generated crops against the ground truth's."""
    import cv2
    import torch

    from recon3d.metrics import ssim
    from recon3d.train.perceptual import perceptual_distance

    scores, a, b = [], [], []
    for g, t, box in zip(generated, truth, boxes, strict=True):
        cg, ct = crop(g, box), crop(t, box)
        scores.append(ssim(cg, ct))
        a.append(cv2.resize(cg, (side, side), interpolation=cv2.INTER_AREA))
        b.append(cv2.resize(ct, (side, side), interpolation=cv2.INTER_AREA))

    def tensor(images):
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1.0

    distances = []
    with torch.inference_mode():
        for i in range(0, len(a), 32):
            distances.append(
                perceptual_distance(features, tensor(a[i : i + 32]), tensor(b[i : i + 32]))
            )
    perceptual = torch.cat(distances).cpu().numpy().astype(np.float64)
    return {
        "ssim": float(np.mean(scores)),
        "perceptual": float(perceptual.mean()),
        "per_frame": {
            "ssim": [round(float(x), 5) for x in scores],
            "perceptual": [round(float(x), 5) for x in perceptual],
        },
    }


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    sequence: np.ndarray,
    *,
    block: int = 10,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``b - a`` over frames (per-frame scores of two renderers on the same frames)
    with a 95 % moving-block bootstrap interval: consecutive frames are alike, so frames are
    resampled in blocks of ``block`` consecutive frames of one sequence, not one by one."""
    diff = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    starts = [i for i in range(len(diff) - block + 1) if sequence[i] == sequence[i + block - 1]]
    rng = np.random.default_rng(seed)
    per_sample = max(1, len(diff) // block)
    means = np.empty(resamples)
    for k in range(resamples):
        chosen = rng.choice(starts, per_sample)
        means[k] = diff[(chosen[:, None] + np.arange(block)).ravel()].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high)}


def detect_per_sequence(frames: np.ndarray, sequence: np.ndarray, fps: float):
    """MediaPipe keypoints of ``frames`` (smoothed within each sequence, not across)."""
    from recon3d.reenact.poses import detect_poses

    parts = []
    for s in np.unique(sequence):
        index = np.flatnonzero(sequence == s)
        parts.append((index, detect_poses(list(frames[index]), fps=fps, progress=False)))
    return _concatenate([p for _, p in parts])


def _concatenate(sequences):
    import dataclasses

    first = sequences[0]
    fields = {}
    for name in ("body", "body_confidence", "face", "face_confidence", "hands", "hands_confidence"):
        values = [getattr(s, name) for s in sequences]
        fields[name] = None if any(v is None for v in values) else np.concatenate(values)
    return dataclasses.replace(first, **fields)


def test_set(args, size: int):
    """The held-out FrameSet of a setting, at ``size``."""
    from recon3d.train.reenact_data import FrameSet, render_reposed, video_frames

    cache = args.test_set_cache
    if cache is not None:
        cache = pathlib.Path(str(cache).format(setting=args.setting, size=size))
        if cache.is_file():
            log.info("test set from %s", cache)
            return FrameSet.load(cache)
    if args.setting == "reposed":
        from recon3d import reconstruct
        from recon3d.train.reenact_data import TEST_CLIPS

        rec = reconstruct(args.photo, target="body")
        frame_set = render_reposed(
            rec, clips=TEST_CLIPS, random_poses=0, size=size, seed=TEST_SEED, progress=True
        )
    else:
        frame_set = video_frames(args.video, size=size, start=args.start, stop=args.stop)
    if args.max_frames and len(frame_set) > args.max_frames:
        frame_set = frame_set[: args.max_frames]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        frame_set.save(cache)
    return frame_set


def evaluate(args) -> dict:
    import torch

    from recon3d.metrics import pose_distance, temporal_flicker
    from recon3d.reenact.face import face_boxes
    from recon3d.reenact.reposer import Reposer
    from recon3d.train.perceptual import MobileNetV2Features

    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.row:
        name, _, path = spec.partition("=")
        face = True
        if path.endswith(":noface"):
            path, face = path[: -len(":noface")], False
        rows.append((name.strip(), pathlib.Path(path), face))
    models = {str(p): Reposer.load(p) for _, p, _ in rows}
    sizes = {m.size for m in models.values()}
    if len(sizes) != 1:
        raise SystemExit(f"the rows' reposers have different sizes {sorted(sizes)}")
    size = sizes.pop()
    frame_set = test_set(args, size)
    poses = frame_set.poses
    fps = float(poses.fps)
    features = MobileNetV2Features.from_file(args.perceptual_weights)
    bboxes, fboxes = body_boxes(poses), face_boxes(poses, size=(size, size))
    truth = frame_set.frames
    result = {
        "setting": args.setting,
        "size": size,
        "frames": len(frame_set),
        "sequences": int(len(np.unique(frame_set.sequence))),
        "command": " ".join(sys.argv),
        "rows": [],
    }
    log.info("%d test frames at %d², %d sequences", len(truth), size, result["sequences"])
    t0 = time.perf_counter()
    gt_detected = detect_per_sequence(truth, frame_set.sequence, fps)
    result["ground_truth"] = {
        "pose": pose_distance(gt_detected, poses),
        "flicker": temporal_flicker(truth, frame_set.sequence),
    }
    log.info("ground truth detected in %.1f s", time.perf_counter() - t0)
    for name, path, face in rows:
        reposer = models[str(path)]
        generated, seconds = generate(reposer, frame_set, face=face and reposer.config.face)
        detected = detect_per_sequence(generated, frame_set.sequence, fps)
        flicker = temporal_flicker(generated, frame_set.sequence)
        row = {
            "name": name,
            "model": str(path),
            "facegan": bool(face and reposer.config.face),
            "temporal": bool(reposer.config.temporal),
            "config": reposer.config.to_dict(),
            "seconds_per_frame": seconds,
            "body": appearance(generated, truth, bboxes, BODY_CROP, features),
            "face": appearance(generated, truth, fboxes, FACE_CROP, features),
            "pose": pose_distance(detected, poses),
            "flicker": flicker,
            "flicker_excess": flicker - result["ground_truth"]["flicker"],
        }
        if result["rows"]:
            previous = result["rows"][-1]
            row["vs_previous"] = {
                f"{part} {metric}": paired_difference(
                    previous[part]["per_frame"][metric],
                    row[part]["per_frame"][metric],
                    frame_set.sequence,
                )
                for part in ("body", "face")
                for metric in ("ssim", "perceptual")
            }
        result["rows"].append(row)
        log.info(
            "%s: %s",
            name,
            json.dumps(
                {k: {m: row[k][m] for m in ("ssim", "perceptual")} for k in ("body", "face")}
            ),
        )
        if args.samples:
            _save_samples(args.samples, name, generated, truth)
    return result


def _save_samples(folder, name: str, generated: np.ndarray, truth: np.ndarray) -> None:
    """A strip of 6 evenly spaced frames: ground truth above, generated below."""
    import cv2

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = np.linspace(0, len(truth) - 1, 6).astype(int)
    strip = np.concatenate(
        [np.concatenate(list(truth[index]), 1), np.concatenate(list(generated[index]), 1)], 0
    )
    safe = "".join(c if c.isalnum() else "_" for c in name).strip("_") or "row"
    cv2.imwrite(str(folder / f"{safe}.jpg"), strip[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def merged(previous: dict, result: dict) -> dict:
    """``previous`` with the rows of ``result`` replacing (or added after) those of the same
    name; the test set must be the same."""
    for key in ("setting", "size", "frames", "sequences"):
        if previous[key] != result[key]:
            raise SystemExit(f"--update: {key} differs ({previous[key]} vs {result[key]})")
    new = {r["name"]: r for r in result["rows"]}
    rows = [new.pop(r["name"], r) for r in previous["rows"]] + list(new.values())
    commands = previous.get("commands", [previous.get("command")])
    return {**result, "rows": rows, "commands": [*commands, result["command"]]}


def _f(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """The three tables and the flicker table."""
    rows = result["rows"]
    title = {
        "reposed": "held-out frames of the reposed reconstruction",
        "video": "self-reenactment of a real video (held-out frames)",
    }[result["setting"]]
    lines = [
        f"Setting: {title}; {result['frames']} frames in {result['sequences']} sequence(s) "
        f"at {result['size']}x{result['size']}.",
        "",
        "| body crop | SSIM ↑ | perceptual ↓ |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {_f(r['body']['ssim'])} | {_f(r['body']['perceptual'])} |" for r in rows
    ]
    lines += ["", "| face crop | SSIM ↑ | perceptual ↓ |", "|---|---|---|"]
    lines += [
        f"| {r['name']} | {_f(r['face']['ssim'])} | {_f(r['face']['perceptual'])} |" for r in rows
    ]
    lines += [
        "",
        "| pose distance (px) | body ↓ | face ↓ | hands ↓ | detected: body / face / hands ↑ |",
        "|---|---|---|---|---|",
    ]
    for name, pose in [("ground truth frames", result["ground_truth"]["pose"])] + [
        (r["name"], r["pose"]) for r in rows
    ]:
        d = [_f(pose[p]["distance_px"], 2) for p in ("body", "face", "hands")]
        rate = " / ".join(_f(pose[p]["detection_rate"], 2) for p in ("body", "face", "hands"))
        lines.append(f"| {name} | {d[0]} | {d[1]} | {d[2]} | {rate} |")
    gt = result["ground_truth"]["flicker"]
    lines += [
        "",
        "| temporal flicker (0-255) | consecutive-frame difference "
        f"| minus ground truth ({gt:.2f}) ↓ |",
        "|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['flicker']:.2f} | {r['flicker_excess']:+.2f} |" for r in rows]
    compared = [r for r in rows if "vs_previous" in r]
    if compared:
        keys = ("body ssim", "body perceptual", "face ssim", "face perceptual")
        lines += [
            "",
            "| change from the row above (95 % block bootstrap) | "
            + " | ".join(f"{k} {'↑' if 'ssim' in k else '↓'}" for k in keys)
            + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for r in compared:
            cells = [
                f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                for d in (r["vs_previous"][k] for k in keys)
            ]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=("reposed", "video"), required=True)
    parser.add_argument(
        "--photo", type=pathlib.Path, default=pathlib.Path("/work/shared/data/photos/obama3.jpg")
    )
    parser.add_argument(
        "--video", type=pathlib.Path, default=pathlib.Path("/work/shared/data/video/carphone.mp4")
    )
    parser.add_argument("--start", type=int, default=90, help="first held-out video frame")
    parser.add_argument("--stop", type=int, default=None)
    parser.add_argument("--row", action="append", required=True, help="NAME=PATH[:noface]")
    parser.add_argument("--perceptual-weights", type=pathlib.Path, default=MOBILENET)
    parser.add_argument("--max-frames", type=int, default=0, help="cut the test set (0: all)")
    parser.add_argument(
        "--test-set-cache",
        type=pathlib.Path,
        default=None,
        help="npz path (may hold {setting} and {size}) to store / reuse the test frames",
    )
    parser.add_argument("--samples", type=pathlib.Path, default=None, help="folder for strips")
    parser.add_argument(
        "--update",
        type=pathlib.Path,
        default=None,
        help="an earlier --json of the same setting: its rows are kept, rows evaluated now "
        "replace those of the same name",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--markdown", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = evaluate(args)
    if args.update is not None:
        result = merged(json.loads(args.update.read_text()), result)
    text = markdown(result)
    sys.stdout.write(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
