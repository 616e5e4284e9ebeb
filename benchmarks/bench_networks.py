"""Speed of reconstruction with the trained networks against optimisation only, in one run.

For each photo and each method the same pipeline call is timed (warm, median over
``--repeats``), stage by stage:

* ``optimisation``: today's default, the fit from the analytic initialisation;
* ``network + refine``: the network's estimate refined by the short fit;
* ``network only``: the network's estimate (``refine=False``);
* ``network + refine T/P/S`` (``--refine-variants``, bodies): shorter or longer refinements,
  T torso, P pose and S silhouette iterations, the rest as the default refinement.

With ``--no-texture`` the calls are geometry only (``texture=False``: no texture projection or
completion, the stages every method shares and most of a head call).

It prints per-stage medians, the total of the call (decode to completed texture, or to the
fitted mesh with ``--no-texture``; the export is the same for every method and is left out),
the ratio of each total to the keypoint front end of the same run, the speed-up of each method
over optimisation only, the speed-up it would have if its fit stage took no time (the bound
the shared stages set), and the peak RSS.

Usage::

    PYOPENGL_PLATFORM=egl python benchmarks/bench_networks.py [--target body|head|both]
        [--repeats N] [--no-texture] [--json F] [PHOTOS...]
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

REPO_ROOT = Path(__file__).resolve().parent.parent
BODY_PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png", "obama2.jpg")
HEAD_PHOTOS = ("obama.jpg", "grace_hopper.jpg", "biden.jpg", "obama2.jpg", "astronaut.png")


def _pipelines(target: str, refine_variants: list[str]) -> dict[str, tuple[Any, bool]]:
    """method -> (pipeline, refine) for one target."""
    if target == "body":
        from recon3d.body_pipeline import BodyReconstructionPipeline as Pipeline
    else:
        from recon3d.pipeline import HeadReconstructionPipeline as Pipeline
    plain = Pipeline.from_pretrained(use_network=False)
    with_net = Pipeline.from_pretrained(use_network=True)
    pipes = {
        "optimisation": (plain, True),
        "network + refine": (with_net, True),
        "network only": (with_net, False),
    }
    if target == "body":
        import dataclasses

        from recon3d.body_pipeline import REFINE_OPTIONS

        for variant in refine_variants:
            torso, pose, silhouette = (int(n) for n in variant.split("/"))
            options = dataclasses.replace(
                REFINE_OPTIONS,
                torso_iterations=torso,
                pose_iterations=pose,
                silhouette_iterations=silhouette,
            )
            other = Pipeline(with_net.model, network=with_net.network, refine_options=options)
            pipes[f"network + refine {variant}"] = (other, True)
    return pipes


def bench(
    target: str,
    photos: list[Path],
    repeats: int,
    refine_variants: list[str] = (),
    texture: bool = True,
) -> list[dict[str, Any]]:
    pipes = _pipelines(target, list(refine_variants))
    rows = []
    for photo in photos:
        for method, (pipe, refine) in pipes.items():
            # warm-up: graphs, layouts, caches
            pipe(photo, refine=refine, progress=False, texture=texture)
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                rec = pipe(photo, refine=refine, progress=False, texture=texture)
                total = time.perf_counter() - start
                runs.append({**{k: float(v) for k, v in rec.timings.items()}, "total": total})
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            median["ratio"] = median["total"] / median["front end"]
            rows.append(
                {
                    "target": target,
                    "photo": photo.name,
                    "method": method,
                    "textured": texture,
                    **median,
                }
            )
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    stages = [
        k for k in rows[0] if k not in ("target", "photo", "method", "textured", "total", "ratio")
    ]
    header = f"{'photo':<16}{'method':<26}" + "".join(f"{s[:10]:>11}" for s in stages)
    header += f"{'total':>9}{'tot/fe':>8}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    base = {r["photo"]: r["total"] for r in rows if r["method"] == "optimisation"}
    for r in rows:
        line = f"{r['photo'][:15]:<16}{r['method']:<26}"
        line += "".join(f"{r.get(s, float('nan')):11.3f}" for s in stages)
        line += f"{r['total']:9.3f}{r['ratio']:8.1f}{base[r['photo']] / r['total']:9.2f}x"
        print(line)
    print("-" * len(header))
    for method in dict.fromkeys(r["method"] for r in rows):
        totals = [r["total"] for r in rows if r["method"] == method]
        speedups = [base[r["photo"]] / r["total"] for r in rows if r["method"] == method]
        fits = [r["fit"] for r in rows if r["method"] == method]
        base_fits = [r["fit"] for r in rows if r["method"] == "optimisation"]
        # What this method's call would gain over optimisation only if its fit took no time:
        # the stages every method shares bound any speed-up a faster fit can give.
        ceilings = [
            base[r["photo"]] / (r["total"] - r["fit"]) for r in rows if r["method"] == method
        ]
        print(
            f"{method:<26} median total {statistics.median(totals):.3f} s, speed-up "
            f"{statistics.median(speedups):.2f}x (whole call), fit stage "
            f"{statistics.median(base_fits) / statistics.median(fits):.1f}x, "
            f"{statistics.median(ceilings):.2f}x with a free fit"
        )
    end = "completed texture" if rows[0]["textured"] else "fitted mesh, no texture"
    print(f"seconds, median over repeats; total = the pipeline call (decode to {end})")
    print(
        "with a free fit: optimisation only's total over this method's total less its fit stage,"
        " the largest speed-up any fit could give with these shared stages"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--target", choices=("body", "head", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time textured calls (default) or geometry-only ones (--no-texture)",
    )
    parser.add_argument(
        "--refine-variants",
        nargs="*",
        default=[],
        help="more body refinements to time, as torso/pose/silhouette iterations (e.g. 0/10/20)",
    )
    args = parser.parse_args(argv)
    targets = ("body", "head") if args.target == "both" else (args.target,)
    rows = []
    for target in targets:
        names = BODY_PHOTOS if target == "body" else HEAD_PHOTOS
        photos = args.photos or [REPO_ROOT / "tests" / "data" / n for n in names]
        result = bench(target, photos, args.repeats, args.refine_variants, args.texture)
        kind = "" if args.texture else ", geometry only (texture=False)"
        print(f"\n{target}: optimisation only vs the trained network (same run{kind})")
        print_rows(result)
        rows += result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\npeak RSS of this process: {peak / 2**20:,.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peak_rss_bytes": peak}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
