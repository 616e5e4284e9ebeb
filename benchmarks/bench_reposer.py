"""Speed and memory benchmark of the reposer (driving poses -> frames of the target person).

Measures, on this machine, with ``--threads`` torch threads (default 2):

1. driving-pose loading per frame: a DeepMimic clip (``dance_a``: retargeting, posing the body
   model, projection) and a video (``carphone.mp4``: decoding + MediaPipe pose, face mesh and
   hands + smoothing). The video's keypoint detection is the front end of the reposer, measured
   here in the same run;
2. per output size (256² and 512² by default), per frame, the median over ``--frames`` frames:
   global pose normalisation, pose-map drawing, the pix2pixHD generator (fed its previous
   output: temporal smoothing), the FaceGAN (crop + residual network + paste), the rest of
   ``Reposer.render_pose_map`` (tensor conversions), and the H.264 ``.mp4`` write; the frames
   per second of the whole chain from loaded poses to the written video, and its ratio to the
   keypoint front end (video pose detection per frame);
3. training iterations per second at 256² (body-generator steps with the multi-scale and
   temporal discriminators, feature matching and the MobileNetV2 perceptual loss when the
   weights file is there; then FaceGAN steps), batch 1;
4. peak RSS;

and the load average: wall times grow when other processes share the cores, so the CPU time
(all threads) of the pose-map + network loop is printed too.

Speed does not depend on the weights' values: without ``--reposer`` the benchmark uses an
untrained reposer of the default architecture (:class:`recon3d.reenact.networks.RendererConfig`
defaults) at each size. With ``--reposer PATH`` it loads that one (its own size only).

Bar: >= 8 frames per second at 256² on the CPU (2 threads). The exit code is 0 whatever the
bar says; non-zero only when a measurement fails.

Usage::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_reposer.py [--frames 60] [--sizes 256 512]
        [--threads 2] [--train-steps 6] [--reposer PATH] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

MOCAP = Path(os.environ.get("RECON3D_MOCAP", "/work/shared/data/mocap")) / "humanoid3d_dance_a.txt"
VIDEO = Path("/work/shared/data/video/carphone.mp4")
MOBILENET = Path("/work/shared/data/models/mobilenet_v2-b0353104.pth")
BAR_FPS_256 = 8.0
STAGES = ("normalise", "pose map", "generator", "FaceGAN", "other", "video write")

logger = logging.getLogger("bench_reposer")


class _Timed:
    """Wraps a module's forward and records its wall time (the real code path stays)."""

    def __init__(self, module, sink: list[float]) -> None:
        self.module, self.sink = module, sink

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.module(*args, **kwargs)
        self.sink.append(time.perf_counter() - start)
        return out

    def __getattr__(self, name: str):
        return getattr(self.module, name)


def driving_loading() -> tuple[dict[str, Any], Any]:
    """Seconds per frame of loading a mocap clip and a video (decoding, MediaPipe graphs built
    per call, detection, smoothing), and the loaded mocap poses."""
    from recon3d.reenact.poses import load_driving

    out: dict[str, Any] = {}
    load_driving(MOCAP, image_size=(256, 256), progress=False)  # warm (body model, caches)
    start = time.perf_counter()
    mocap = load_driving(MOCAP, image_size=(256, 256), progress=False)
    out["mocap_per_frame_s"] = (time.perf_counter() - start) / len(mocap)
    out["mocap_frames"] = len(mocap)
    from recon3d.io.video import read_video
    from recon3d.reenact.poses import detect_poses

    frames, _ = read_video(VIDEO, max_frames=2)
    detect_poses(list(frames), progress=False)  # warm: imports, model files in the page cache
    start = time.perf_counter()
    video = load_driving(VIDEO, progress=False)
    seconds = time.perf_counter() - start
    out["video_per_frame_s"] = seconds / len(video)
    out["video_frames"] = len(video)
    out["video_size"] = list(video.image_size)
    return out, mocap


def untrained_reposer(size: int, stats):
    from recon3d.reenact.networks import FaceGenerator, RendererConfig, build_generator
    from recon3d.reenact.reposer import Reposer

    config = RendererConfig(size=size)
    face = FaceGenerator(config.face_ngf, n_blocks=config.face_blocks)
    return Reposer(build_generator(config), face, config, stats)


def bench_size(reposer, driving, frames: int) -> dict[str, Any]:
    """Per-frame stage times of ``reposer`` on ``frames`` frames of ``driving`` (looped)."""
    from recon3d.io.video import write_video
    from recon3d.reenact.face import face_boxes
    from recon3d.reenact.posemap import draw_pose_map

    s = reposer.size
    reps = int(np.ceil(frames / len(driving)))
    index = np.tile(np.arange(len(driving)), reps)[:frames]
    # Normalisation works on the whole sequence at once: time it, then divide.
    reposer.prepare_poses(driving)  # warm
    start = time.perf_counter()
    poses = reposer.prepare_poses(driving)
    normalise = (time.perf_counter() - start) / len(driving)
    boxes = face_boxes(poses, size=(s, s))
    gen_times: list[float] = []
    face_times: list[float] = []
    generator, face_generator = reposer.generator, reposer.face_generator
    reposer.generator = _Timed(generator, gen_times)
    if face_generator is not None:
        reposer.face_generator = _Timed(face_generator, face_times)
    try:
        map0 = draw_pose_map(poses, 0, size=(s, s))
        reposer.render_pose_map(map0, None, boxes[0])  # warm-up
        gen_times.clear()
        face_times.clear()
        draw, call, out = [], [], []
        prev = None
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for i in index:
            start = time.perf_counter()
            pose_map = draw_pose_map(poses, int(i), size=(s, s))
            middle = time.perf_counter()
            frame, prev = reposer.render_pose_map(pose_map, prev, boxes[i])
            end = time.perf_counter()
            draw.append(middle - start)
            call.append(end - middle)
            out.append(frame)
        cpu_loop = time.process_time() - cpu_start
        wall_loop = time.perf_counter() - wall_start
    finally:
        reposer.generator, reposer.face_generator = generator, face_generator
    with tempfile.TemporaryDirectory(prefix="bench_reposer_") as tmp:
        start = time.perf_counter()
        write_video(Path(tmp) / "out.mp4", out, 30.0)
        write = (time.perf_counter() - start) / len(out)
    face_med = statistics.median(face_times) if face_times else 0.0
    gen_med = statistics.median(gen_times)
    other = [c - g - (f if face_times else 0.0) for c, g, f in
             zip(call, gen_times, face_times or [0.0] * len(call), strict=True)]  # fmt: skip
    stages = {
        "normalise": normalise,
        "pose map": statistics.median(draw),
        "generator": gen_med,
        "FaceGAN": face_med,
        "other": statistics.median(other),
        "video write": write,
    }
    per_frame = sum(stages.values())
    return {
        "size": s,
        "frames": len(out),
        "config": reposer.config.to_dict(),
        "stages_s": stages,
        "per_frame_s": per_frame,
        "fps": 1.0 / per_frame,
        "mean_render_call_s": statistics.mean(call),
        # CPU seconds (all threads) per frame of pose map + render_pose_map: unlike wall time,
        # it hardly depends on other processes sharing the cores.
        "loop_cpu_per_frame_s": cpu_loop / len(out),
        "loop_wall_per_frame_s": wall_loop / len(out),
    }


def bench_training(steps: int, threads: int) -> dict[str, Any]:
    """Iterations per second of the body and FaceGAN training steps at 256², batch 1, on
    random frames with real mocap pose maps."""
    import torch

    from recon3d.reenact.networks import RendererConfig
    from recon3d.reenact.poses import load_driving
    from recon3d.train import reenact as training
    from recon3d.train.reenact_data import FrameSet

    poses = load_driving(MOCAP, image_size=(256, 256), progress=False)[:16]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (len(poses), 256, 256, 3)).astype(np.uint8)
    frame_set = FrameSet(frames, poses, np.zeros(len(poses), np.int64), np.zeros((16, 4), int))
    data = training.prepare_data(frame_set, 256)
    perceptual = None
    if MOBILENET.is_file():
        from recon3d.train.perceptual import MobileNetV2Features

        perceptual = MobileNetV2Features.from_file(MOBILENET)
    torch.set_num_threads(threads)
    renderer = RendererConfig(size=256)
    out: dict[str, Any] = {"perceptual": perceptual is not None, "batch_size": 1}
    for name, body_steps, face_steps in (("body", steps, 0), ("face", 0, steps)):
        config = training.ReenactTrainConfig(steps=body_steps, face_steps=face_steps)
        # One step first (allocations), then the timed run.
        warm = training.ReenactTrainConfig(steps=min(body_steps, 1), face_steps=min(face_steps, 1))
        training.train_reposer(data, renderer, warm, perceptual=perceptual, device="cpu",
                               progress=False)  # fmt: skip
        result = training.train_reposer(
            data, renderer, config, perceptual=perceptual, device="cpu", progress=False
        )
        out[f"{name}_steps"] = steps
        out[f"{name}_steps_per_second"] = result.steps_per_second
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per size (default 60)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--train-steps", type=int, default=6, help="0 skips training speed")
    parser.add_argument("--reposer", type=Path, default=None, help="a trained reposer")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    from recon3d.reenact.normalize import ankle_stats

    torch.set_num_threads(args.threads)
    try:
        loading, mocap = driving_loading()
        logger.info("driving loading: %s", loading)
        results = []
        if args.reposer is not None:
            from recon3d.reenact.reposer import Reposer

            reposers = [Reposer.load(args.reposer)]
        else:
            reposers = []
            for s in args.sizes:
                # The target's ankle statistics: the clip's own (values do not change the speed).
                reposers.append(untrained_reposer(s, ankle_stats(mocap.resized((s, s)))))
        for reposer in reposers:
            logger.info("size %d", reposer.size)
            results.append(bench_size(reposer, mocap, args.frames))
        training = bench_training(args.train_steps, args.threads) if args.train_steps else None
    except Exception as exc:  # noqa: BLE001 - report the failed measurement, exit non-zero
        logger.exception("measurement failed: %s", exc)
        return 1
    rss = _common.peak_rss_bytes(resource.RUSAGE_SELF)
    facts = _common.machine_facts()
    front = loading["video_per_frame_s"]

    print()
    print("=" * 100)
    print("recon3d reposer benchmark (driving poses -> frames)")
    print("=" * 100)
    print(
        f"machine : {facts['cpu_model']}; {facts['cpu_count']} CPUs ({facts['cpus_usable']} "
        f"usable); torch threads {facts['torch_threads']}; load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"software: python {facts['python']}, torch {facts['torch']}, mediapipe "
          f"{facts['mediapipe']}, renderer {facts['renderer']}")  # fmt: skip
    weights = str(args.reposer) if args.reposer else "untrained, default architecture"
    print(f"reposer : {weights} (speed does not depend on the weights)")
    print()
    print("1. Driving-pose loading, per frame")
    print(f"   mocap clip (dance_a, {loading['mocap_frames']} frames)          : "
          f"{1000 * loading['mocap_per_frame_s']:7.1f} ms")  # fmt: skip
    print(f"   video ({VIDEO.name} {loading['video_size'][1]}x{loading['video_size'][0]}, "
          f"{loading['video_frames']} frames, MediaPipe): {1000 * front:7.1f} ms  "
          "<- keypoint front end")  # fmt: skip
    print()
    print(f"2. Rendering from loaded poses, per frame (median over {args.frames} frames), ms")
    header = (
        f"{'size':>5} "
        + " ".join(f"{s:>11}" for s in STAGES)
        + f" {'total':>8} {'fps':>6} {'tot/fe':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        st = r["stages_s"]
        print(
            f"{r['size']:>5} "
            + " ".join(f"{1000 * st[s]:11.1f}" for s in STAGES)
            + f" {1000 * r['per_frame_s']:8.1f} {r['fps']:6.2f} {r['per_frame_s'] / front:6.2f}"
        )
    print("-" * len(header))
    print("tot/fe = rendering total per frame / keypoint front end per frame (same run)")
    for r in results:
        print(
            f"{r['size']}²: pose map + render_pose_map, mean per frame: wall "
            f"{1000 * r['loop_wall_per_frame_s']:.1f} ms, CPU time (all threads) "
            f"{1000 * r['loop_cpu_per_frame_s']:.1f} ms"
        )
    print()
    if training:
        perceptual = "on" if training["perceptual"] else "off"
        print(f"3. Training at 256², batch 1, perceptual loss {perceptual}")
        print(f"   body generator steps : {training['body_steps_per_second']:.3f} it/s")
        print(f"   FaceGAN steps        : {training['face_steps_per_second']:.3f} it/s")
        print()
    print(f"4. Peak RSS: {_common.fmt_bytes(rss)}")
    print()
    r256 = next((r for r in results if r["size"] == 256), None)
    bars = {}
    if r256 is not None:
        ok = r256["fps"] >= BAR_FPS_256
        bars["fps_256"] = {"bar": f">= {BAR_FPS_256:g} fps", "value": r256["fps"], "pass": ok}
        print("Bars")
        print(f"   {_common.verdict(ok)}  {r256['fps']:.2f} fps at 256² (bar >= {BAR_FPS_256:g})")
    if args.json:
        payload = {
            "machine": facts,
            "load_average": os.getloadavg(),
            "threads": args.threads,
            "reposer": weights,
            "driving": loading,
            "render": results,
            "training": training,
            "peak_rss_bytes": rss,
            "bars": bars,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
