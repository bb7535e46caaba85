"""``--sample-chars 0`` shows no sample: the end of the run prints no heading over an
empty one either."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.cli import main


def test_no_heading_without_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "story.txt"
    text.write_text("Once upon a time there was a dragon who liked tea.\n" * 20)
    run = tmp_path / "run"
    assert main(["train", "lm", "--text", str(text), "--steps", "2", "--hidden", "8",
                 "--embed", "4", "--seq-len", "8", "--batch-size", "4", "--threads", "1",
                 "--sample-chars", "0", "--out", str(run)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    end = lines.index(f"run saved to {run}")
    assert lines[end - 1].endswith(" training chars/s")
    assert "sample from the best model:" not in lines
