"""Speed and memory benchmark of head reconstruction (photo -> textured head mesh).

Measures, on this machine:

1. the first call in a fresh process: wall time of ``python -c`` that imports recon3d, builds the
   pipeline, reconstructs one photo and exports it to .obj (Python start and imports included),
   and the in-process time of that first reconstruct call;
2. warm runs in this process: per photo and stage (decode, front end, fit, texture,
   completion, export) the
   median over ``--repeats`` runs, the total, and the ratio of the total to the keypoint front end
   measured in the same run;
3. peak resident memory of this process and of the fresh child;

and prints PASS/FAIL against the bars (first call <= 8 s, warm total <= 2 s per photo, peak RSS
<= 2.5 GB). The exit code is 0 whatever the bars say; it is non-zero only on errors (a photo that
cannot be reconstructed, a child that crashes).

Usage::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_head.py [PHOTOS...] [--repeats N] [--json F]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = [
    REPO_ROOT / "tests" / "data" / name
    for name in ("grace_hopper.jpg", "obama.jpg", "obama2.jpg", "astronaut.png", "32bit.png")
]
STAGES = ("decode", "front end", "fit", "texture", "completion", "export")

BAR_FIRST_CALL_S = 8.0
BAR_WARM_TOTAL_S = 2.0
BAR_PEAK_RSS_BYTES = 2.5e9  # 2.5 GB (decimal)

# Runs in a fresh interpreter; everything it reports goes to stdout on one marked line (MediaPipe
# and TensorFlow Lite write their own noise to stderr).
CHILD_CODE = """
import time
t0 = time.perf_counter()
import json, resource, sys, tempfile
from pathlib import Path
from recon3d.pipeline import HeadReconstructionPipeline
t_import = time.perf_counter()
pipe = HeadReconstructionPipeline.from_pretrained()
t_build = time.perf_counter()
rec = pipe(sys.argv[1])
t_call = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    paths = rec.export(Path(tmp) / "head.obj")
t_export = time.perf_counter()
print(MARKER + json.dumps({
    "import_s": t_import - t0,
    "build_s": t_build - t_import,
    "first_call_s": t_call - t_build,
    "first_call_stages_s": rec.timings,
    "export_s": t_export - t_call,
    "in_process_total_s": t_export - t0,
    "exported_files": [p.name for p in paths],
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}), flush=True)
""".replace("MARKER", repr(_common.CHILD_MARKER))

logger = logging.getLogger("bench_head")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "photos",
        nargs="*",
        type=Path,
        help="photos to reconstruct (default: the 5 real photos in tests/data)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per photo (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers to this file")
    parser.add_argument(
        "--child-timeout",
        type=float,
        default=600.0,
        help="seconds before the fresh-process run is abandoned (default 600)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    args.photos = args.photos or list(DEFAULT_PHOTOS)
    return args


def run_fresh_process(photo: Path, timeout: float) -> dict[str, Any]:
    """Import + build + first reconstruct + export in a fresh interpreter."""
    return _common.run_fresh_process(photo, timeout, CHILD_CODE)


def one_run(pipe: Any, photo: Path, tmp: Path) -> tuple[dict[str, float], Any]:
    """One reconstruct + .obj export; stage seconds, the total (wall) and the ratio."""
    start = time.perf_counter()
    rec = pipe(photo)
    called = time.perf_counter()
    rec.export(tmp / "head.obj")
    end = time.perf_counter()
    times = {stage: float(rec.timings[stage]) for stage in STAGES if stage != "export"}
    times["export"] = end - called
    times["call"] = called - start
    times["total"] = end - start
    times["ratio"] = times["total"] / times["front end"]
    return times, rec


def bench_photo(pipe: Any, photo: Path, repeats: int) -> dict[str, Any]:
    from recon3d.io import load_image

    runs: list[dict[str, float]] = []
    glb: list[float] = []
    detect_alone: list[float] = []
    rec = None
    with tempfile.TemporaryDirectory(prefix="bench_head_") as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(repeats):
            times, rec = one_run(pipe, photo, tmp)
            runs.append(times)
        # Extras, outside the timed runs: .glb export and the keypoint detector alone.
        for _ in range(repeats):
            t = time.perf_counter()
            rec.export(tmp / "head.glb")
            glb.append(time.perf_counter() - t)
        pixels = load_image(photo)
        for _ in range(repeats):
            t = time.perf_counter()
            pipe.detector.detect(pixels)
            detect_alone.append(time.perf_counter() - t)
    h, w = rec.image.shape[:2]
    keys = [*STAGES, "call", "total", "ratio"]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    totals = [r["total"] for r in runs]
    return {
        "photo": str(photo),
        "name": photo.name,
        "width": int(w),
        "height": int(h),
        "runs": runs,
        "median": median,
        "total_min": min(totals),
        "total_max": max(totals),
        "glb_export_median_s": statistics.median(glb),
        "detect_alone_median_s": statistics.median(detect_alone),
        "reprojection_error_px": float(rec.params["reprojection_error_px"]),
    }


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'photo':<18} {'size':>9} {'decode':>7} {'front end':>9} {'fit':>7} {'texture':>7} "
        f"{'complete':>8} "
        f"{'export':>7} {'total':>7} {'tot/fe':>6} {'spread':>7} {'detect*':>7} {'glb*':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        m = r["median"]
        size = f"{r['width']}x{r['height']}"
        print(
            f"{r['name'][:18]:<18} {size:>9} {m['decode']:7.3f} {m['front end']:9.3f} "
            f"{m['fit']:7.3f} {m['texture']:7.3f} {m['completion']:8.3f} "
            f"{m['export']:7.3f} {m['total']:7.3f} "
            f"{m['ratio']:6.2f} {r['total_max'] - r['total_min']:7.3f} "
            f"{r['detect_alone_median_s']:7.3f} {r['glb_export_median_s']:7.3f}"
        )
    print("-" * len(header))
    print(
        "seconds, median over repeats; total = wall time of pipe(photo) + .obj export; "
        "tot/fe = total / front end\nof the same run (median of the per-run ratios); "
        "spread = max - min total over repeats;\n* not part of total: detect = "
        "pipe.detector.detect(pixels) alone, glb = rec.export('.glb')"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; 0 unless a measurement failed."""
    from recon3d.pipeline import HeadReconstructionPipeline

    spec = _common.BenchSpec(
        title="recon3d head reconstruction benchmark",
        tmp_prefix="bench_head_",
        child_code=CHILD_CODE,
        build_pipeline=HeadReconstructionPipeline.from_pretrained,
        one_run=one_run,
        bench_photo=bench_photo,
        print_table=print_table,
        bar_first_call_s=BAR_FIRST_CALL_S,
        bar_warm_total_s=BAR_WARM_TOTAL_S,
        bar_peak_rss_bytes=BAR_PEAK_RSS_BYTES,
    )
    return _common.run(parse_args(argv), spec)


if __name__ == "__main__":
    sys.exit(main())
