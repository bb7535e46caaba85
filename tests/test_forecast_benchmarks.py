"""The pieces the forecasting benchmarks' tables rest on: forecast_check.py's replay of
the trainer's choice under a rule, forecast_coverage.py's counts, band and pooled rows."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import forecast_check as bench
import forecast_coverage


def _run(evals, anchor_valid, anchor_test=(1.0, 1.0)):
    return {"anchor_valid": list(anchor_valid), "anchor_test": list(anchor_test),
            "horizons": 2.0, "evals": evals}  # fmt: skip


def test_replay_keeps_the_first_lowest_validation_and_falls_back_to_the_anchor():
    evals = [
        {"step": 100, "valid": [2.0, 2.2], "test": [1.5, 1.5]},
        {"step": 200, "valid": [1.0, 1.0], "test": [0.5, 0.7]},  # lowest
        {"step": 300, "valid": [1.0, 1.0], "test": [0.1, 0.1]},  # a tie: not taken
    ]
    run = _run(evals, anchor_valid=[1.6, 1.6], anchor_test=[0.9, 0.9])
    assert bench.replay(run, None) == (200, pytest.approx(0.6), True)
    # The network's lead at step 200 (0.6) has a standard error of 0 over two windows
    # that agree: kept under any margin.
    assert bench.replay(run, 2.0) == (200, pytest.approx(0.6), True)
    noisy = _run(
        [{"step": 100, "valid": [0.0, 3.0], "test": [0.2, 0.2]}],
        anchor_valid=[1.6, 1.6],
        anchor_test=[0.9, 0.9],
    )
    # 0.1 better on average, but the two windows disagree by 3: the anchor is kept.
    step, test, kept = bench.replay(noisy, 2.0)
    assert (step, kept) == (100, False) and test == pytest.approx(0.9)


def test_the_coverage_table_counts_the_sets_inside_75_to_85_and_their_band_and_pools_the_values():
    way = "adaptive"
    runs = {
        ("a", 0): {way: 76.0, "values": 100, "distinct": 19},
        ("b", 0): {way: 90.0, "values": 10, "distinct": 64},
        ("a", 1): {way: 86.0, "values": 100, "distinct": 19},
        ("b", 1): {way: 80.0, "values": 10, "distinct": 64},
    }
    lines = forecast_coverage.table(runs, way, ["a", "b"], [0, 1]).splitlines()
    half = 164.5 * math.sqrt(0.16 / 19)  # 15.1 points
    assert lines[2] == f"| a | 19 | {80 - half:.0f}-{80 + half:.0f} % | 76.0 % | 86.0 % |"
    assert lines[3] == "| b | 64 | 72-88 % | 90.0 % | 80.0 % |"
    assert lines[4] == "| inside 75-85 % | | | **1 of 2** | **1 of 2** |"
    assert lines[5] == "| inside the 9 in 10 band | | | 1 of 2 | 2 of 2 |"  # b: 90 > 88
    assert lines[6] == "| every test value of every set | | | 77.3 % | 85.5 % |"  # 85/110, 94/110
    assert lines[7] == "| mean of the sets | | | 83.0 % | 83.0 % |"
    assert lines[8] == "| mean distance from 80 % | | | 7.0 points | 3.0 points |"
    assert forecast_coverage.band(19) == pytest.approx((80 - half, 80 + half))
    assert forecast_coverage.band(4) == pytest.approx((47.1, 100.0))  # (112.9 clipped)


def test_runs_with_their_own_origins_live_in_their_own_folders():
    assert bench.options_of("nile", None) == {"dataset": "nile"}
    assert bench.options_of("nile", 60) == {"dataset": "nile", "origins": 60}
    assert bench.folder_of("r", "nile", "climatology", 3, None) == Path("r/nile-climatology-3")
    assert bench.folder_of("r", "nile", "drift", 0, 60) == Path("r/nile-o60-drift-0")
