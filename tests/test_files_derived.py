"""A run's config.json that its task refuses is named once, by its real path.

The tasks check what a run recorded (``derived``) without knowing the folder, raising
:class:`rnnkit.tasks.base.DerivedError`; :func:`rnnkit.train.run.recorded_in` names the
file in front wherever a run folder is read: loading, resuming and ``rnnkit eval``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.tasks.base import DerivedError
from rnnkit.tasks.forecast import check_derived
from rnnkit.train import TrainConfig, train
from rnnkit.train.run import recorded_in
from rnnkit.train.runfolder import RunFolderError

SMALL = {"hidden_size": 4, "embed_size": 4, "seq_len": 16, "batch_size": 4, "eval_chars": 100}


@pytest.fixture(scope="module")
def tag_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step tag run on a few lines of tagged text."""
    root = tmp_path_factory.mktemp("derived")
    line = json.dumps({"x": "ab ba", "y": ["W", "W", "S", "W", "W"]})
    data = root / "d.jsonl"
    data.write_text("\n".join([line] * 30) + "\n", encoding="utf-8")
    out = root / "run"
    train(
        "tag", {"data": str(data), **SMALL}, TrainConfig(steps=2, eval_every=2, threads=1),
        out=out, log=lambda _: None, progress=io.StringIO(),
    )  # fmt: skip
    return out


def _edited(run: Path, tmp_path: Path) -> Path:
    """A copy of ``run`` whose config.json records a source no tag run has."""
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["derived"]["source"] = {"kind": "csv"}
    config["train"]["steps"] = 4  # room to resume
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_a_task_check_names_the_key_and_recorded_in_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DerivedError, match=r"^derived: missing key\(s\) source"):
        check_derived({}, "derived")
    config = tmp_path / "run" / "config.json"
    with pytest.raises(RunFolderError) as err, recorded_in(config):
        check_derived({}, "derived")
    assert str(err.value).startswith(f"{config}: derived: missing key(s) source")
    with pytest.raises(ValueError, match=r"^other$"), recorded_in(config):
        raise ValueError("other")  # not about the recorded config: left alone


def test_resuming_names_the_run_config_once(tag_run: Path, tmp_path: Path, capsys) -> None:
    copy = _edited(tag_run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    message = f"{copy / 'config.json'}: derived.source is not that of a tag run"
    with pytest.raises(RunFolderError) as err:
        train("tag", resume=copy, log=lambda _: None, progress=io.StringIO())
    assert str(err.value) == message
    assert main(["train", "--resume", str(copy)]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"rnnkit train: error: {message}" and line.count("config.json") == 1
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_eval_names_the_run_config_once(tag_run: Path, tmp_path: Path, capsys) -> None:
    copy = _edited(tag_run, tmp_path)
    assert main(["eval", str(copy), "--out", str(tmp_path / "figs")]) == 2
    line = capsys.readouterr().err.strip()
    expected = f"{copy / 'config.json'}: derived.source is not that of a tag run"
    assert line == f"rnnkit eval: error: {expected}"
    assert not (tmp_path / "figs").exists()
