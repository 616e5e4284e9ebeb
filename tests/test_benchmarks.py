"""The benchmark scripts' reporting (their timings are measured by running them, not here)."""

from __future__ import annotations

import pytest
from helpers import load_repo_module


def _rows(textured: bool) -> list[dict]:
    stages = ["decode", "front end", "fit"] + (["texture", "completion"] if textured else [])
    rows = []
    for method, fit in (("optimisation", 0.9), ("network only", 0.1)):
        times = dict.fromkeys(stages, 0.1) | {"fit": fit}
        total = sum(times.values())
        rows.append(
            {"target": "head", "photo": "a.jpg", "method": method, "textured": textured}
            | times
            | {"total": total, "ratio": total / times["front end"]}
        )
    return rows


@pytest.mark.parametrize("textured", [True, False])
def test_bench_networks_prints_every_stage(textured, capsys) -> None:
    bench = load_repo_module("benchmarks", "bench_networks")
    bench.print_rows(_rows(textured))
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert ("texture" in header) is textured and ("completion" in header) is textured
    assert "fit" in header
    # optimisation 1.3 s against 0.5 s textured, 1.1 s against 0.3 s without the texture
    expected = "2.60x" if textured else "3.67x"
    assert f"speed-up {expected} (whole call)" in out
    assert ("decode to completed texture" in out) is textured
