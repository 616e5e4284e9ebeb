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
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import BenchmarkError, fmt_bytes, machine_facts, peak_rss_bytes, verdict

REPO_ROOT = Path(__file__).resolve().parent.parent
# Full body in frame first; the two upper-body photos last (the fit stands their unseen legs).
DEFAULT_PHOTOS = [
    REPO_ROOT / "tests" / "data" / name
    for name in ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png", "obama2.jpg")
]
UPPER_BODY = frozenset({"astronaut.png", "obama2.jpg"})
STAGES = ("decode", "front end", "fit", "texture", "export")

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
            f"{m['fit']:7.3f} {m['texture']:7.3f} {m['export']:7.3f} {m['total']:7.3f} "
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; 0 unless a measurement failed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    photos: list[Path] = [p.resolve() for p in args.photos]
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        logger.error("photo(s) not found: %s", ", ".join(missing))
        return 2

    # 1. The fresh process first, while this one is idle and has imported nothing heavy.
    logger.info("fresh process: import + first reconstruct + export of %s", photos[0].name)
    try:
        fresh = run_fresh_process(photos[0], args.child_timeout)
    except BenchmarkError as exc:
        logger.error("%s", exc)
        return 1

    # 2. Warm runs in this process.
    from recon3d.body_pipeline import BodyReconstructionPipeline

    t = time.perf_counter()
    pipe = BodyReconstructionPipeline.from_pretrained()
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="bench_body_") as tmp:
        t = time.perf_counter()
        one_run(pipe, photos[0], Path(tmp))
        warmup_s = time.perf_counter() - t
    logger.info("pipeline built in %.3f s, warm-up call %.3f s", build_s, warmup_s)

    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for photo in photos:
        logger.info("warm runs: %s x %d", photo.name, args.repeats)
        try:
            results.append(bench_photo(pipe, photo, args.repeats))
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
    print("recon3d full-body reconstruction benchmark")
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
        print_table(results)
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
    if results:
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

    worst_total = max((r["median"]["total"] for r in results), default=float("nan"))
    bars = {
        "first_call_fresh_process": {
            "bar": f"<= {BAR_FIRST_CALL_S:g} s (wall, incl. python start and imports)",
            "value": fresh["wall_s"],
            "pass": fresh["wall_s"] <= BAR_FIRST_CALL_S,
        },
        "warm_total_per_photo": {
            "bar": f"<= {BAR_WARM_TOTAL_S:g} s per photo (median total, worst photo)",
            "value": worst_total,
            "pass": bool(results) and not errors and worst_total <= BAR_WARM_TOTAL_S,
        },
        "peak_rss": {
            "bar": f"<= {BAR_PEAK_RSS_BYTES / 1e9:g} GB (max of this process and fresh child)",
            "value": max(rss_self, rss_child),
            "pass": max(rss_self, rss_child) <= BAR_PEAK_RSS_BYTES,
        },
    }
    print("Bars")
    print(
        f"   {verdict(bars['first_call_fresh_process']['pass'])}  first call, fresh process "
        f"{fresh['wall_s']:.3f} s {bars['first_call_fresh_process']['bar']}"
    )
    slow = [r["name"] for r in results if r["median"]["total"] > BAR_WARM_TOTAL_S]
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


if __name__ == "__main__":
    sys.exit(main())
