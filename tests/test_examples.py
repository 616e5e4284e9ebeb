"""The examples run (on a few frames: what they compute is tested with the library)."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers import load_repo_module

REPO = Path(__file__).resolve().parents[1]


def test_track_head_video(tmp_path, capsys) -> None:
    example = load_repo_module("examples", "track_head_video")
    video = REPO / "tests" / "data" / "carphone.mp4"
    assert example.main([str(video), str(tmp_path), "--max-frames", "3", "--overlay"]) == 0
    with open(tmp_path / "head_track.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["frame"] for r in rows] == ["0", "1", "2"]
    for row in rows:
        # A near-frontal head at arm's length, on the optical axis, its landmarks well fitted.
        assert abs(float(row["yaw_deg"])) < 30
        assert 0.3 < float(row["z_m"]) < 1.5 and abs(float(row["x_m"])) < 0.2
        assert float(row["error_px"]) < 3
    assert (tmp_path / "overlay.mp4").stat().st_size > 0
    assert "a face in 3" in capsys.readouterr().out
