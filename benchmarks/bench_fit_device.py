"""The body's fit stage on each device: the CPU, and CUDA where there is a GPU.

For each device the three fits of the body pipeline are timed (warm, median over
``--repeats``): optimisation only (the fit from scratch), the network alone, and the network
refined by the default refinement with its pose prior (from the pose landmarks and the mask;
the pipeline also passes the face and hands, which this leaves out). With MediaPipe installed
the person is the pose detector's result on a bundled photo, and the detector's own time (the
keypoint front end, on the CPU) is measured in the same run; each fit is also printed as a
ratio to it.
Without MediaPipe (``--synthetic``, or where it cannot be imported) the person is a posed
synthetic body with exact landmarks (:func:`recon3d.train.synthetic.exact_person`), and there
is no front end to compare with.

Usage::

    python benchmarks/bench_fit_device.py [--photo tests/data/obama3.jpg] [--repeats 5]
        [--threads 2] [--synthetic] [--json F]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import REPO_ROOT, fmt_bytes, peak_rss_bytes

sys.path.insert(0, str(REPO_ROOT))


def _timed(fn, repeats: int, synchronise: bool) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if synchronise:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if synchronise:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _detected_person(photo: Path, repeats: int) -> tuple[Any, np.ndarray, float]:
    """MediaPipe's person in ``photo``, the photo's intrinsics and the detector's median time."""
    from recon3d.camera import Camera
    from recon3d.io import load_image_with_metadata
    from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector

    loaded = load_image_with_metadata(photo)
    h, w = loaded.pixels.shape[:2]
    detector = MediaPipePoseDetector()
    seconds = _timed(lambda: detector.detect(loaded.pixels), repeats, synchronise=False)
    person = detector.detect(loaded.pixels)
    K = Camera.from_image_size(w, h, loaded.focal_length_35mm).K
    return person, K, seconds


def _synthetic_person() -> tuple[Any, np.ndarray]:
    """A posed mean body 4 m in front of a 600x900 camera, with exact landmarks."""
    from recon3d.models.body import BodyModel
    from recon3d.train.synthetic import exact_person

    model = BodyModel.from_pretrained()
    K = np.array([[1100.0, 0, 299.5], [0, 1100.0, 449.5], [0, 0, 1]])
    pose = np.zeros((model.num_joints, 3), np.float32)
    pose[0] = (0.0, 0.4, 0.0)
    pose[model.bone("upperarm01.L")] = (0.0, 0.0, -0.9)
    pose[model.bone("lowerleg01.R")] = (0.5, 0.0, 0.0)
    with torch.no_grad():
        out = model(torch.zeros(1, model.num_shape), torch.as_tensor(pose)[None])
    vertices = out.vertices[0].numpy().astype(np.float64) + (0, 0, 4.0)
    return exact_person(model, vertices, K, (600, 900)), K


def bench(person, K: np.ndarray, device: str, repeats: int) -> dict[str, float]:
    """Median seconds of each fit on ``device``."""
    from recon3d.body_pipeline import REFINE_OPTIONS
    from recon3d.fitting.body_fit import fit_body
    from recon3d.models.body import BodyModel
    from recon3d.models.body_net import BodyRegressor, predict_fit
    from recon3d.models.body_prior import PoseDiscriminator

    model = BodyModel.from_pretrained().to(device)
    net = BodyRegressor.from_pretrained().to(device).eval()
    prior = PoseDiscriminator.from_pretrained().to(device)
    fits = {
        "optimisation only": lambda: fit_body(model, person, K),
        "network alone": lambda: predict_fit(net, model, person, K),
        "network + refine": lambda: fit_body(
            model,
            person,
            K,
            options=REFINE_OPTIONS,
            init=predict_fit(net, model, person, K),
            prior=prior,
        ),
    }
    cuda = torch.device(device).type == "cuda"
    return {name: _timed(fn, repeats, cuda) for name, fn in fits.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=REPO_ROOT / "tests/data/obama3.jpg")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--synthetic", action="store_true", help="no MediaPipe: a synthetic body")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    front_end = None
    if not args.synthetic:
        try:
            person, K, front_end = _detected_person(args.photo, args.repeats)
            source = f"MediaPipe's person in {args.photo.name}"
        except ImportError as error:
            print(f"MediaPipe unavailable ({error}): a synthetic body instead")
    if front_end is None:
        person, K = _synthetic_person()
        source = "a synthetic body with exact landmarks"

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = {device: bench(person, K, device, args.repeats) for device in devices}
    print(
        f"\nbody fit stage by device ({source}; {args.threads} CPU threads, median of "
        f"{args.repeats})"
    )
    if front_end is not None:
        print(f"keypoint front end (MediaPipe pose, CPU): {front_end:.3f} s")
    header = f"{'fit':<20}" + "".join(f"{d:>12}" for d in devices)
    if front_end is not None:
        header += "".join(f"{d + ' / fe':>12}" for d in devices)
    print(header)
    for name in rows["cpu"]:
        line = f"{name:<20}" + "".join(f"{rows[d][name]:>11.3f}s" for d in devices)
        if front_end is not None:
            line += "".join(f"{rows[d][name] / front_end:>11.1f}x" for d in devices)
        print(line)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
    peak = peak_rss_bytes(resource.RUSAGE_SELF)
    print(f"peak RSS of this process: {fmt_bytes(peak)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"source": source, "front_end_s": front_end, "fits": rows, "peak_rss": peak},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
