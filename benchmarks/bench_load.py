"""Load test: many consecutive head reconstructions in one process, and the RSS trend.

Reconstructs ``--n`` photos in a row (cycling over the test photos), exports each to .obj in a
scratch folder, and samples the resident set size (``VmRSS``) after every call. After ``--warmup``
calls (caches, lazy imports, allocator pools filling up) a least-squares line is fitted to RSS
against the call index; its slope, in MB per 100 reconstructions, is the number to watch: a leak
of one texture per call (1024 x 1024 x 3 bytes) would show as ~300 MB per 100.

Usage::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_load.py [--n 200] [--warmup 20] [--json F]

Prints the slope, the RSS at the start and end of the measured window, and the time per call.
Exit code 0 unless a reconstruction fails.

``--batch`` measures something else: the wall time of :func:`recon3d.reconstruct_many` over
``--photos`` head photos (cycling over the test photos) for each number of workers given, e.g.
``--batch 1 2 4``, after one warm-up call; ``--repeat`` rounds, the worker counts interleaved
within each round so that changes in the machine's load hit them alike::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_load.py --batch 1 2 4 --photos 8 --repeat 2

``--threads N`` measures plain :func:`recon3d.reconstruct` called from N threads of your own
program (no ``reconstruct_many``), against the same ``--photos`` photos reconstructed serially
in the same process: wall time, process CPU time (user + system; CPU / wall above the core count
means threads spin or wait on each other) and the summed per-stage times, ``--repeat`` rounds,
serial and threaded interleaved::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_load.py --threads 4 --photos 8 --repeat 3

``--ab`` adds the "before" case in the same process: the head fit without its OpenBLAS limit
(:func:`recon3d._threads.blas_single_threaded` replaced by a no-op), rounds interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTOS = [
    REPO_ROOT / "tests" / "data" / n for n in ("grace_hopper.jpg", "obama.jpg", "astronaut.png")
]


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux ``/proc/self/status``)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


def measure(n: int, warmup: int, photos: list[Path] = PHOTOS) -> dict[str, Any]:
    """Run ``n`` reconstructions (+ .obj export); return RSS samples and the fitted slope.

    Returns:
        dict with ``rss_mb`` (n,) samples after each call, ``slope_mb_per_100`` over calls
        ``warmup..n-1``, ``rss_start_mb`` / ``rss_end_mb`` of that window, ``seconds_per_call``.
    """
    from recon3d import reconstruct

    if n <= warmup + 2:
        raise ValueError(f"need n > warmup + 2, got n={n}, warmup={warmup}")
    samples: list[float] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            rec = reconstruct(photos[i % len(photos)], target="head")
            rec.export(os.path.join(tmp, "head.obj"))
            del rec
            samples.append(rss_mb())
    elapsed = time.perf_counter() - start
    window = np.asarray(samples[warmup:])
    index = np.arange(warmup, n, dtype=np.float64)
    slope = float(np.polyfit(index, window, 1)[0]) * 100.0
    return {
        "n": n,
        "warmup": warmup,
        "rss_mb": samples,
        "slope_mb_per_100": slope,
        "rss_start_mb": float(window[0]),
        "rss_end_mb": float(window[-1]),
        "rss_max_mb": float(window.max()),
        "seconds_per_call": elapsed / n,
    }


def measure_batch(workers: list[int], photos: int, repeat: int) -> dict[str, Any]:
    """Wall time of ``reconstruct_many`` on ``photos`` head photos for each worker count.

    Returns:
        dict with ``photos``, ``repeat``, ``cpus`` (usable cores), ``load_avg`` (1-min load
        before and after) and ``seconds``: {workers: [wall time of each round]}.
    """
    from recon3d import reconstruct, reconstruct_many

    inputs = [PHOTOS[i % len(PHOTOS)] for i in range(photos)]
    reconstruct(PHOTOS[0], target="head")  # load the model and the MediaPipe graph first
    load_before = os.getloadavg()[0]
    seconds: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(repeat):
        for w in workers:
            start = time.perf_counter()
            result = reconstruct_many(inputs, workers=w, target="head", keep=False)
            seconds[w].append(time.perf_counter() - start)
            if not result.ok:
                raise RuntimeError(result.summary())
    return {
        "photos": photos,
        "repeat": repeat,
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg": [load_before, os.getloadavg()[0]],
        "seconds": seconds,
    }


BODY_PHOTOS = [REPO_ROOT / "tests" / "data" / n for n in ("obama3.jpg", "biden.jpg")]


def measure_threads(threads: int, photos: int, repeat: int, target: str = "head") -> dict[str, Any]:
    """``photos`` reconstructions serially and from ``threads`` plain threads, each round.

    ``target="head"`` cycles over the head test photos, ``"body"`` over two full-body photos.

    Returns:
        dict with ``cpus``, ``load_avg`` (before, after), and for ``"serial"`` and
        ``"threaded"`` lists (one entry per round) of ``wall`` s, ``cpu`` s (process user +
        system) and ``stages`` {stage: seconds summed over the photos}.
    """
    import threading

    from recon3d import reconstruct

    pool = PHOTOS if target == "head" else BODY_PHOTOS
    inputs = [pool[i % len(pool)] for i in range(photos)]
    reconstruct(pool[0], target=target)  # load the models and the MediaPipe graphs first

    def run_one(path: Path, stages: dict[str, float], lock: threading.Lock) -> None:
        rec = reconstruct(path, target=target)
        with lock:
            for k, v in rec.timings.items():
                stages[k] = stages.get(k, 0.0) + v

    def timed(fn) -> dict[str, Any]:
        stages: dict[str, float] = {}
        lock = threading.Lock()
        cpu0, wall0 = os.times(), time.perf_counter()
        fn(stages, lock)
        cpu1, wall = os.times(), time.perf_counter() - wall0
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {"wall": wall, "cpu": cpu, "stages": stages}

    def serial(stages: dict[str, float], lock: threading.Lock) -> None:
        for path in inputs:
            run_one(path, stages, lock)

    def threaded(stages: dict[str, float], lock: threading.Lock) -> None:
        chunks = [inputs[i::threads] for i in range(threads)]

        def worker(chunk: list[Path]) -> None:
            for path in chunk:
                run_one(path, stages, lock)

        pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    load_before = os.getloadavg()[0]
    out: dict[str, Any] = {"serial": [], "threaded": []}
    for _ in range(repeat):
        out["serial"].append(timed(serial))
        out["threaded"].append(timed(threaded))
    out.update(
        threads=threads,
        target=target,
        photos=photos,
        repeat=repeat,
        cpus=len(os.sched_getaffinity(0)),
        load_avg=[load_before, os.getloadavg()[0]],
    )
    return out


def _threads_ab(args: argparse.Namespace) -> int:
    """``--threads N --ab``: rounds of "before" (the head fit's OpenBLAS limit replaced by a
    no-op, as before it existed) and "now", interleaved in one process."""
    import contextlib

    import recon3d.fitting.head_fit as head_fit

    limit = head_fit.blas_single_threaded
    out: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
    try:
        for _ in range(args.repeat):
            for mode in ("before", "now"):
                head_fit.blas_single_threaded = (
                    contextlib.nullcontext if mode == "before" else limit
                )
                res = measure_threads(args.threads, args.photos, 1, args.target)
                s, t = res["serial"][0], res["threaded"][0]
                out[mode].append({"serial": s, "threaded": t, "load_avg": res["load_avg"]})
                print(
                    f"{mode:6s} serial wall {s['wall']:6.2f} s cpu {s['cpu']:6.2f} s "
                    f"fit {s['stages'].get('fit', 0.0):6.2f} s | {args.threads} threads wall "
                    f"{t['wall']:6.2f} s cpu {t['cpu']:6.2f} s fit (summed) "
                    f"{t['stages'].get('fit', 0.0):7.2f} s | load {res['load_avg'][0]:.1f}",
                    flush=True,
                )
    finally:
        head_fit.blas_single_threaded = limit
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="reconstructions (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="calls left out of the fit")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--batch", type=int, nargs="+", metavar="WORKERS", help="time reconstruct_many instead"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="time reconstruct() from N user threads instead"
    )
    parser.add_argument(
        "--target", choices=("head", "body"), default="head", help="for --threads (default head)"
    )
    parser.add_argument(
        "--ab",
        action="store_true",
        help="with --threads: also run without the head fit's OpenBLAS limit, interleaved",
    )
    parser.add_argument("--photos", type=int, default=8, help="photos per batch (default 8)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of --batch (default 2)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    if args.threads and args.ab:
        return _threads_ab(args)
    if args.threads:
        res = measure_threads(args.threads, args.photos, args.repeat, args.target)
        print(
            f"reconstruct() on {res['photos']} {res['target']} photos: serial vs "
            f"{res['threads']} threads, "
            f"{res['cpus']} cores, load average {res['load_avg'][0]:.1f} before / "
            f"{res['load_avg'][1]:.1f} after"
        )
        for mode in ("serial", "threaded"):
            for r in res[mode]:
                stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
                print(
                    f"{mode:8s} wall {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s  "
                    f"cpu/wall {r['cpu'] / r['wall']:.2f}  summed stages: {stages}"
                )
        if args.json:
            args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
        return 0

    if args.batch:
        batch = measure_batch(args.batch, args.photos, args.repeat)
        print(
            f"reconstruct_many on {batch['photos']} head photos, {batch['cpus']} cores, "
            f"load average {batch['load_avg'][0]:.1f} before / {batch['load_avg'][1]:.1f} after"
        )
        for w, times in batch["seconds"].items():
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"workers={w}: {runs} s (best {min(times):.2f} s)")
        if args.json:
            args.json.write_text(json.dumps(batch, indent=1) + "\n", encoding="utf-8")
        return 0

    result = measure(args.n, args.warmup)
    print(f"{args.n} reconstructions (+ .obj export), {result['seconds_per_call']:.2f} s each")
    print(
        f"RSS after call {args.warmup}: {result['rss_start_mb']:.0f} MB, after call {args.n}: "
        f"{result['rss_end_mb']:.0f} MB, max {result['rss_max_mb']:.0f} MB"
    )
    print(f"RSS slope: {result['slope_mb_per_100']:+.2f} MB per 100 reconstructions")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
