"""The plot of docs/body_network.md's "Training on a GPU, and the video-call shards from the
start": per network (the shipped one, and three seeds each of the control and the video-call
recipe), the network alone (b) and refined (c) on held-out whole bodies, on head-and-shoulders
framings and on the real images, with optimisation only (a) as a line.

The inputs are the ``--json`` files of the evaluations: one ``scripts/eval_body_net.py`` run per
synthetic set, with every network as ``--net``/``--ablation`` (the control of seed 0 as
``--net``, whose rows are named "net"), and one ``scripts/eval_body_real.py`` run per network.

Usage:  python scripts/make_docs_body_seeds.py --whole W.json --head-and-shoulders H.json
            --real shipped=S.json control_s0=C0.json ... [--out docs/images/body_seeds.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
NETWORKS = (
    "shipped",
    "control_s0",
    "control_s1",
    "control_s2",
    "video_call_s0",
    "video_call_s1",
    "video_call_s2",
)
# eval_body_net.py's row names: the --net is "net", the others their --ablation-label.
SYNTHETIC_ROW = {
    "shipped": "shipped",
    "control_s0": "net",
    "control_s1": "ctrl_s1",
    "control_s2": "ctrl_s2",
    "video_call_s0": "hs_s0",
    "video_call_s1": "hs_s1",
    "video_call_s2": "hs_s2",
}


def synthetic(path: pathlib.Path) -> tuple[float, dict[str, tuple[float, float]]]:
    """Mean PVE of optimisation only, and per network (alone, refined)."""
    rows = json.loads(path.read_text())["synthetic"]
    pve = {name: row["PVE_mm"] for name, row in rows.items()}
    out = {}
    for network, row in SYNTHETIC_ROW.items():
        out[network] = (pve[f"{row} only"], pve[f"{row} + refine"])
    return pve["optimisation"], out


def real(paths: dict[str, pathlib.Path]) -> tuple[float, dict[str, tuple[float, float]]]:
    """Mean silhouette IoU of optimisation only, and per network (alone, refined)."""
    out = {}
    optimisation = []
    for network, path in paths.items():
        summary = json.loads(path.read_text())["summary"]
        optimisation.append(summary["optimisation"]["iou"]["mean"])
        out[network] = (
            summary["network only"]["iou"]["mean"],
            summary["network + refine"]["iou"]["mean"],
        )
    return float(np.mean(optimisation)), out


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whole", type=pathlib.Path, required=True)
    parser.add_argument("--head-and-shoulders", type=pathlib.Path, required=True)
    parser.add_argument("--real", nargs="+", required=True, help="NETWORK=eval_body_real.json")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs/images/body_seeds.png")
    args = parser.parse_args(argv)
    real_paths = dict(item.split("=", 1) for item in args.real)
    missing = set(NETWORKS) - set(real_paths)
    if missing:
        parser.error(f"--real lacks {sorted(missing)}")

    panels = [
        ("80 whole bodies: PVE, mm (lower is better)", *synthetic(args.whole)),
        ("60 head-and-shoulders framings: PVE, mm", *synthetic(args.head_and_shoulders)),
        (
            "58 real images: silhouette IoU (higher is better)",
            *real({k: pathlib.Path(v) for k, v in real_paths.items()}),
        ),
    ]
    colours = {"shipped": "black", "control": "tab:blue", "video_call": "tab:orange"}
    labels = [
        n.replace("video_call_s", "video call\nseed ").replace("control_s", "control\nseed ")
        for n in NETWORKS
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    for ax, (title, optimisation, values) in zip(axes, panels, strict=True):
        for x, network in enumerate(NETWORKS):
            alone, refined = values[network]
            colour = colours[network.rsplit("_s", 1)[0]]
            ax.plot([x, x], [alone, refined], color=colour, alpha=0.4)
            ax.scatter(x, alone, marker="o", facecolors="none", edgecolors=colour, s=45)
            ax.scatter(x, refined, marker="o", color=colour, s=45)
        ax.axhline(optimisation, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(NETWORKS)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(title, fontsize=9)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="grey"),
        plt.Line2D([], [], marker="o", linestyle="", color="grey"),
        plt.Line2D([], [], linestyle="--", color="grey"),
    ]
    names = ["(b) the network alone", "(c) refined (the default)", "(a) optimisation only"]
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
