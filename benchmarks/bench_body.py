"""Speed and memory benchmark of full-body reconstruction (photo -> textured, rigged body mesh).

Measures, on this machine:

1. the first call in a fresh process: wall time of ``python -c`` that imports recon3d, builds the
   body pipeline, reconstructs one photo and exports it to .glb (Python start and imports
   included), and the in-process time of that first reconstruct call;
2. warm runs in this process: per photo and stage (decode, front end, fit, texture, export to
   .glb with the rig) the median over ``--repeats`` runs, the total, and the ratio of the total to
   the pose front end measured in the same run;
3. peak resident memory of this process and of the fresh child;
4. per photo, outside the timed runs, the quality of the last run: silhouette IoU and PCK@0.1
   (``recon3d.metrics``);

and prints PASS/FAIL against the bars (first call <= 15 s, warm total <= 4 s per photo, peak RSS
<= 3 GB). The exit code is 0 whatever the bars say; it is non-zero only on errors (a photo that
cannot be reconstructed, a child that crashes).

Usage::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_body.py [PHOTOS...] [--repeats N] [--json F]
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
# Full body in frame first; the two upper-body photos last (the fit stands their unseen legs).
DEFAULT_PHOTOS = [
    REPO_ROOT / "tests" / "data" / name
    for name in ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png", "obama2.jpg")
]
UPPER_BODY = frozenset({"astronaut.png", "obama2.jpg"})
STAGES = ("decode", "front end", "fit", "texture", "completion", "export")

BAR_FIRST_CALL_S = 15.0
BAR_WARM_TOTAL_S = 4.0
BAR_PEAK_RSS_BYTES = 3.0e9  # 3 GB (decimal)
PCK_THRESHOLD = 0.1

# Runs in a fresh interpreter; everything it reports goes to stdout on one marked line (MediaPipe
# and TensorFlow Lite write their own noise to stderr).
CHILD_CODE = """
import time
t0 = time.perf_counter()
import json, resource, sys, tempfile
from pathlib import Path
from recon3d.body_pipeline import BodyReconstructionPipeline
t_import = time.perf_counter()
pipe = BodyReconstructionPipeline.from_pretrained()
t_build = time.perf_counter()
rec = pipe(sys.argv[1])
t_call = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    paths = rec.export(Path(tmp) / "body.glb")
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

logger = logging.getLogger("bench_body")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the photos default to the 5 body test photos."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "photos",
        nargs="*",
        type=Path,
        help="photos to reconstruct (default: 3 full-body and 2 upper-body photos in tests/data)",
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
    """One reconstruct + .glb export (rig included); stage seconds, the total (wall) and the
    ratio of the total to the front end."""
    start = time.perf_counter()
    rec = pipe(photo)
    called = time.perf_counter()
    rec.export(tmp / "body.glb")
    end = time.perf_counter()
    times = {stage: float(rec.timings[stage]) for stage in STAGES if stage != "export"}
    times["export"] = end - called
    times["call"] = called - start
    times["total"] = end - start
    times["ratio"] = times["total"] / times["front end"]
    return times, rec


def quality(rec: Any) -> dict[str, float]:
    """Silhouette IoU, PCK@0.1 and keypoint error of one body reconstruction (untimed)."""
    from recon3d.metrics import keypoint_pck, landmark_error, silhouette_iou

    error_px, error_fraction = landmark_error(rec)
    return {
        "silhouette_iou": silhouette_iou(rec),
        "pck": keypoint_pck(rec, PCK_THRESHOLD),
        "keypoint_error_px": error_px,
        "keypoint_error_torso_fraction": error_fraction,
        "height_m": float(rec.params["height_m"]),
    }


def bench_photo(pipe: Any, photo: Path, repeats: int) -> dict[str, Any]:
    """``repeats`` timed runs of one photo, then untimed extras: the pose detector alone and
    the quality measures of the last run."""
    from recon3d.io import load_image

    runs: list[dict[str, float]] = []
    detect_alone: list[float] = []
    rec = None
    with tempfile.TemporaryDirectory(prefix="bench_body_") as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(repeats):
            times, rec = one_run(pipe, photo, tmp)
            runs.append(times)
    # Extras, outside the timed runs: the pose detector alone and the quality measures.
    pixels = load_image(photo)
    for _ in range(repeats):
        t = time.perf_counter()
        pipe.detect(pixels)
        detect_alone.append(time.perf_counter() - t)
    t = time.perf_counter()
    measures = quality(rec)
    metrics_s = time.perf_counter() - t
    h, w = rec.image.shape[:2]
    keys = [*STAGES, "call", "total", "ratio"]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    totals = [r["total"] for r in runs]
    return {
        "photo": str(photo),
        "name": photo.name,
        "upper_body": photo.name in UPPER_BODY,
        "width": int(w),
        "height": int(h),
        "runs": runs,
        "median": median,
        "total_min": min(totals),
        "total_max": max(totals),
        "detect_alone_median_s": statistics.median(detect_alone),
        "quality": measures,
        "metrics_s": metrics_s,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    """The per-photo table of stage medians and quality."""
    header = (
        f"{'photo':<16} {'size':>9} {'decode':>7} {'front end':>9} {'fit':>7} {'texture':>7} "
        f"{'complete':>8} "
        f"{'export':>7} {'total':>7} {'tot/fe':>6} {'spread':>7} {'detect*':>7} "
        f"{'IoU*':>5} {'PCK*':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        m, q = r["median"], r["quality"]
        size = f"{r['width']}x{r['height']}"
        name = r["name"][:14] + (" ^" if r["upper_body"] else "")
        print(
            f"{name:<16} {size:>9} {m['decode']:7.3f} {m['front end']:9.3f} "
            f"{m['fit']:7.3f} {m['texture']:7.3f} {m['completion']:8.3f} "
            f"{m['export']:7.3f} {m['total']:7.3f} "
            f"{m['ratio']:6.2f} {r['total_max'] - r['total_min']:7.3f} "
            f"{r['detect_alone_median_s']:7.3f} {q['silhouette_iou']:5.3f} {q['pck']:5.3f}"
        )
    print("-" * len(header))
    print(
        "seconds, median over repeats; total = wall time of pipe(photo) + .glb export (with the "
        "rig);\ntot/fe = total / front end of the same run (median of the per-run ratios); "
        "spread = max - min total\nover repeats; ^ upper-body photo (legs not in frame, the fit "
        "stands them);\n* not part of total: detect = pipe.detect(pixels) alone (pose + mask); "
        f"IoU = silhouette_iou,\nPCK = keypoint_pck at {PCK_THRESHOLD:g} x torso "
        "(recon3d.metrics, last run)"
    )


def print_quality(results: list[dict[str, Any]]) -> None:
    """Section 4 of the report: silhouette IoU, PCK and keypoint error per photo."""
    print(f"4. Quality of the last warm run (recon3d.metrics, PCK at {PCK_THRESHOLD:g})")
    for r in results:
        q = r["quality"]
        print(
            f"   {r['name']:<16} silhouette IoU {q['silhouette_iou']:.3f}   "
            f"PCK@{PCK_THRESHOLD:g} {q['pck']:.3f}   keypoint error "
            f"{q['keypoint_error_px']:.1f} px ({100 * q['keypoint_error_torso_fraction']:.1f}"
            f"% of torso)   height {q['height_m']:.2f} m"
            + ("   [upper body]" if r["upper_body"] else "")
        )
    print()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; 0 unless a measurement failed."""
    from recon3d.body_pipeline import BodyReconstructionPipeline

    spec = _common.BenchSpec(
        title="recon3d full-body reconstruction benchmark",
        tmp_prefix="bench_body_",
        child_code=CHILD_CODE,
        build_pipeline=BodyReconstructionPipeline.from_pretrained,
        one_run=one_run,
        bench_photo=bench_photo,
        print_table=print_table,
        bar_first_call_s=BAR_FIRST_CALL_S,
        bar_warm_total_s=BAR_WARM_TOTAL_S,
        bar_peak_rss_bytes=BAR_PEAK_RSS_BYTES,
        print_quality=print_quality,
    )
    return _common.run(parse_args(argv), spec)


if __name__ == "__main__":
    sys.exit(main())
