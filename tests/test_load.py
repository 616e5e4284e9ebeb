"""Load: 200 consecutive reconstructions in one process without memory growth (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A leak of one texture (3 MB) per call would be ~300 MB per 100 calls. Measured on the
# development machine: +4.45 MB per 100 over calls 20-200, with +-10 MB of allocator noise
# between blocks of 20 calls (docs/hardening.md); 25 MB/100 catches any leak >= 0.25 MB/call.
MAX_SLOPE_MB_PER_100 = 25.0


@pytest.mark.slow
def test_200_reconstructions_without_memory_growth(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    env = {**os.environ, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_load.py"),
            "--n",
            "200",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)  # the slope, for the test log
    result = json.loads(out.read_text())
    assert len(result["rss_mb"]) == 200
    assert "RSS slope:" in proc.stdout
    assert result["slope_mb_per_100"] < MAX_SLOPE_MB_PER_100, result["slope_mb_per_100"]
