"""Pieces shared by the benchmarks: machine facts, peak RSS, a fresh-process run, verdicts."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD_MARKER = "BENCH_JSON:"


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
