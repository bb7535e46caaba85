"""The README's `rnnkit.fit` example runs as written, and trains."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _fit_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Your own data", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_fit_example_runs_and_learns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _fit_example()
    assert len(code.strip().splitlines()) <= 30  # "about 15 lines" of substance, shown whole
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    summary = scope["summary"]
    assert summary.step == 300 and summary.best["metric"] == "accuracy"
    assert summary.best["value"] > 0.8  # the label is learnable: well above chance (0.5)
    assert (tmp_path / "runs" / "mine" / "model.safetensors").is_file()
    # resume=True continues it; load(model=...) gives the best weights back
    import rnnkit

    more = rnnkit.fit(
        scope["Classifier"](), scope["train"], scope["val"], steps=320, out="runs/mine",
        resume=True, metrics={"accuracy": rnnkit.train.accuracy}, monitor="accuracy",
    )  # fmt: skip
    assert more.step == 320
    model = rnnkit.load("runs/mine", model=scope["Classifier"]())
    assert not model.training
