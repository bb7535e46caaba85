"""`rnnkit train --config FILE`: a run's own config.json starts a new run from any folder,
and a source given on the command line replaces the file's whole source."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rnnkit.cli import main

TINY = ["--horizon", "4", "--seasonality", "4", "--hidden", "8", "--steps", "2",
        "--eval-every", "2"]  # fmt: skip


def shops(path: Path, time: str | None, names: tuple[str, ...] = ("north", "south")) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*([time] if time else []), *names])
        for t in range(40):
            row = [f"{10 * (k + 1) + 3 * math.sin(t + k):.3f}" for k in range(len(names))]
            w.writerow([*([str(t)] if time else []), *row])
    return path


def test_a_relative_data_path_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shops(work / "shops.csv", "date")
    monkeypatch.chdir(work)
    argv = ["train", "forecast", "--data", "shops.csv", "--time-column", "date", *TINY]
    assert main([*argv, "--out", "runs/first"]) == 0
    options = json.loads((work / "runs/first/config.json").read_text())["options"]
    assert options["data"] == str(work / "shops.csv")
    # The model card's command, from the folder that holds the run (and from elsewhere).
    monkeypatch.chdir(work / "runs")
    assert main(["train", "--config", "first/config.json", "--steps", "2", "--out", "NEW"]) == 0
    monkeypatch.chdir(tmp_path)
    config = str(work / "runs/first/config.json")
    assert main(["train", "--config", config, "--steps", "2", "--out", "other"]) == 0
    capsys.readouterr()


def test_a_source_on_the_command_line_replaces_the_files_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = shops(tmp_path / "dated.csv", "date")
    argv = ["train", "forecast", "--data", str(first), "--time-column", "date", *TINY]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    other = shops(tmp_path / "plain.csv", None, ("east", "west"))
    config = str(tmp_path / "a" / "config.json")
    # The file's --time-column described its --data; with another --data it goes too.
    argv = ["train", "--config", config, "--data", str(other), "--out", str(tmp_path / "b")]
    assert main(argv) == 0
    options = json.loads((tmp_path / "b" / "config.json").read_text())["options"]
    assert options["data"] == str(other) and options["time_column"] is None
    assert "plain.csv: 2 series" in capsys.readouterr().out


def test_a_config_file_with_a_byte_order_mark_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"format": "rnnkit.run", "task": "adding", "options": {"hidden_size": 4}}
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(config).encode())
    argv = ["train", "--config", str(path), "--steps", "1", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["options"]["hidden_size"] == 4
    capsys.readouterr()


def test_a_new_source_drops_the_files_test_fraction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def ts(name: str, n: int) -> Path:
        rows = [f"{a},{a + 1},{a + 2}:{'up' if a % 2 else 'down'}" for a in range(n)]
        path = tmp_path / name
        path.write_text("@classLabel true up down\n@data\n" + "\n".join(rows) + "\n")
        return path

    train_file, test_file = ts("a.ts", 20), ts("b.ts", 8)
    tiny = ["--hidden", "4", "--steps", "1", "--eval-every", "1"]
    argv = ["train", "classify", "--data", str(train_file), "--test-fraction", "0.3", *tiny]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    config = str(tmp_path / "a" / "config.json")
    argv = ["train", "--config", config, "--data", str(train_file), "--test-data",
            str(test_file), "--out", str(tmp_path / "b")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    options = json.loads((tmp_path / "b" / "config.json").read_text())["options"]
    assert options["test_data"] == str(test_file) and options["test_fraction"] == 0.25
