"""Pieces shared by the benchmarks: machine facts, peak RSS, a fresh-process run, verdicts."""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD_MARKER = "BENCH_JSON:"

logger = logging.getLogger("bench")


@dataclass(frozen=True)
class BenchSpec:
    """What differs between the head and the body benchmark."""

    title: str
    tmp_prefix: str
    child_code: str
    build_pipeline: Callable[[], Any]
    one_run: Callable[[Any, Path, Path], Any]
    bench_photo: Callable[[Any, Path, int], dict[str, Any]]
    print_table: Callable[[list[dict[str, Any]]], None]
    bar_first_call_s: float
    bar_warm_total_s: float
    bar_peak_rss_bytes: float
    print_quality: Callable[[list[dict[str, Any]]], None] | None = None


class BenchmarkError(RuntimeError):
    """A measurement could not be taken (as opposed to a bar that was missed)."""


def peak_rss_bytes(who: int) -> int:
    """Peak RSS in bytes (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss * 1024


def fmt_bytes(n: float) -> str:
    """``n`` bytes as MiB and decimal GB."""
    return f"{n / 2**20:,.0f} MiB ({n / 1e9:.2f} GB)"


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def machine_facts() -> dict[str, Any]:
    """CPU, thread counts, library versions and renderer backend, for the report."""
    import numpy
    import torch

    import recon3d
    from recon3d.render.backend import backend_name

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mediapipe_version = __import__("mediapipe").__version__
    except Exception:  # noqa: BLE001 - only a fact for the report
        mediapipe_version = "unavailable"
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mediapipe": mediapipe_version,
        "recon3d": getattr(recon3d, "__version__", "unknown"),
        "renderer": backend_name(),
        "pyopengl_platform_env": os.environ.get("PYOPENGL_PLATFORM"),
        "platform": platform.platform(),
    }


def run_fresh_process(photo: Path, timeout: float, child_code: str) -> dict[str, Any]:
    """Run ``child_code`` (which prints one ``CHILD_MARKER`` JSON line) on ``photo`` in a fresh
    interpreter: import + build + first reconstruct + export, timed from outside too."""
    cmd = [sys.executable, "-c", child_code, str(photo)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"fresh-process run exceeded {timeout:.0f} s") from exc
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise BenchmarkError(
            f"fresh-process run failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    report: dict[str, Any] = json.loads(lines[-1][len(CHILD_MARKER) :])
    report["wall_s"] = wall
    report["photo"] = str(photo)
    # Max over all waited-for children; the fresh child is the only one so far.
    report["peak_rss_children_bytes"] = peak_rss_bytes(resource.RUSAGE_CHILDREN)
    return report


def run(args: Any, spec: BenchSpec) -> int:
    """Run a benchmark described by ``spec`` with parsed ``args`` (photos, repeats,
    child_timeout, json) and print the report; 0 unless a measurement failed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    photos: list[Path] = [p.resolve() for p in args.photos]
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        logger.error("photo(s) not found: %s", ", ".join(missing))
        return 2

    # 1. The fresh process first, while this one is idle and has imported nothing heavy.
    logger.info("fresh process: import + first reconstruct + export of %s", photos[0].name)
    try:
        fresh = run_fresh_process(photos[0], args.child_timeout, spec.child_code)
    except BenchmarkError as exc:
        logger.error("%s", exc)
        return 1

    # 2. Warm runs in this process.
    t = time.perf_counter()
    pipe = spec.build_pipeline()
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix=spec.tmp_prefix) as tmp:
        t = time.perf_counter()
        spec.one_run(pipe, photos[0], Path(tmp))
        warmup_s = time.perf_counter() - t
    logger.info("pipeline built in %.3f s, warm-up call %.3f s", build_s, warmup_s)

    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for photo in photos:
        logger.info("warm runs: %s x %d", photo.name, args.repeats)
        try:
            results.append(spec.bench_photo(pipe, photo, args.repeats))
        except Exception as exc:  # noqa: BLE001 - report and go on with the other photos
            logger.exception("%s failed", photo)
            errors.append(f"{photo}: {type(exc).__name__}: {exc}")

    # 3. Memory, 4. machine facts.
    rss_self = peak_rss_bytes(resource.RUSAGE_SELF)
    rss_child = int(fresh["peak_rss_bytes"])
    facts = machine_facts()

    # ---- report ----------------------------------------------------------------------------
    print()
    print("=" * 100)
    print(spec.title)
    print("=" * 100)
    print(
        f"machine : {facts['cpu_model']}; {facts['cpu_count']} CPUs "
        f"({facts['cpus_usable']} usable); torch threads {facts['torch_threads']} "
        f"(interop {facts['torch_interop_threads']})"
    )
    print(
        f"software: python {facts['python']}, torch {facts['torch']}, numpy {facts['numpy']}, "
        f"mediapipe {facts['mediapipe']}, recon3d {facts['recon3d']}"
    )
    print(
        f"renderer: {facts['renderer']} (PYOPENGL_PLATFORM={facts['pyopengl_platform_env']}); "
        f"{facts['platform']}"
    )
    print()
    st = fresh["first_call_stages_s"]
    print(f"1. First call in a fresh process ({Path(fresh['photo']).name})")
    print(
        f"   wall time, python start to exit : {fresh['wall_s']:7.3f} s   "
        f"(import {fresh['import_s']:.3f} + build {fresh['build_s']:.3f} + first call "
        f"{fresh['first_call_s']:.3f} + export {fresh['export_s']:.3f} + interpreter start/exit "
        f"{fresh['wall_s'] - fresh['in_process_total_s']:.3f})"
    )
    print(
        f"   first reconstruct call in-process: {fresh['first_call_s']:7.3f} s   ("
        + ", ".join(f"{k} {v:.3f}" for k, v in st.items())
        + ")"
    )
    print()
    print(
        f"2. Warm runs in this process: {args.repeats} repeats per photo after one warm-up call "
        f"(build {build_s:.3f} s, warm-up {warmup_s:.3f} s)"
    )
    if results:
        spec.print_table(results)
        mean_total = statistics.mean(r["median"]["total"] for r in results)
        mean_ratio = statistics.mean(r["median"]["ratio"] for r in results)
        print(
            f"summary: mean total {mean_total:.3f} s over {len(results)} photos; "
            f"mean total / front end ratio {mean_ratio:.2f}"
        )
    else:
        mean_total = mean_ratio = float("nan")
    for err in errors:
        print(f"ERROR  {err}")
    print()
    print("3. Peak RSS")
    print(f"   this process (ru_maxrss SELF)       : {fmt_bytes(rss_self)}")
    print(f"   fresh child (its own ru_maxrss)     : {fmt_bytes(rss_child)}")
    rss_children = fmt_bytes(fresh["peak_rss_children_bytes"])
    print(f"   children (RUSAGE_CHILDREN after exit): {rss_children}")
    print()
    if results and spec.print_quality is not None:
        spec.print_quality(results)

    worst_total = max((r["median"]["total"] for r in results), default=float("nan"))
    bars = {
        "first_call_fresh_process": {
            "bar": f"<= {spec.bar_first_call_s:g} s (wall, incl. python start and imports)",
            "value": fresh["wall_s"],
            "pass": fresh["wall_s"] <= spec.bar_first_call_s,
        },
        "warm_total_per_photo": {
            "bar": f"<= {spec.bar_warm_total_s:g} s per photo (median total, worst photo)",
            "value": worst_total,
            "pass": bool(results) and not errors and worst_total <= spec.bar_warm_total_s,
        },
        "peak_rss": {
            "bar": f"<= {spec.bar_peak_rss_bytes / 1e9:g} GB (max of this process and fresh child)",
            "value": max(rss_self, rss_child),
            "pass": max(rss_self, rss_child) <= spec.bar_peak_rss_bytes,
        },
    }
    print("Bars")
    print(
        f"   {verdict(bars['first_call_fresh_process']['pass'])}  first call, fresh process "
        f"{fresh['wall_s']:.3f} s {bars['first_call_fresh_process']['bar']}"
    )
    slow = [r["name"] for r in results if r["median"]["total"] > spec.bar_warm_total_s]
    print(
        f"   {verdict(bars['warm_total_per_photo']['pass'])}  warm total, worst photo "
        f"{worst_total:.3f} s {bars['warm_total_per_photo']['bar']}"
        + (f"; over the bar: {', '.join(slow)}" if slow else "")
        + (f"; {len(errors)} photo(s) failed" if errors else "")
    )
    print(
        f"   {verdict(bars['peak_rss']['pass'])}  peak RSS "
        f"{fmt_bytes(max(rss_self, rss_child))} {bars['peak_rss']['bar']}"
    )

    if args.json is not None:
        payload = {
            "machine": facts,
            "photos": [str(p) for p in photos],
            "repeats": args.repeats,
            "fresh_process": fresh,
            "warm": {
                "build_s": build_s,
                "warmup_s": warmup_s,
                "photos": results,
                "mean_total_s": mean_total,
                "mean_ratio_total_to_front_end": mean_ratio,
            },
            "peak_rss_bytes": {
                "self": rss_self,
                "fresh_child": rss_child,
                "children": fresh["peak_rss_children_bytes"],
            },
            "bars": bars,
            "errors": errors,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nJSON written to {args.json}")
    return 1 if errors else 0
