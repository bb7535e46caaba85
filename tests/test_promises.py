"""The run folder's promises, kept once in rnnkit.train and checked here for every task.

- kill -9 at many points of the checkpoint sequence (a real subprocess), then resume (or
  start anew where no config was written): the result is bitwise that of an
  uninterrupted run;
- a non-finite loss is skipped and counted; non-finite weights are never written;
- ``--out`` on a folder with user files or symlinks is refused and left untouched;
- a second writer is refused while the first holds the lock;
- a failed resume leaves the folder byte-identical;
- corrupt, truncated, mismatched or foreign files are refused in one line.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import rnnkit
from _zygote import Zygote
from rnnkit.tasks import NAMES, REGISTRY, get_task
from rnnkit.train import RunFolder, RunFolderError, TrainConfig, TrainingDivergedError, train
from rnnkit.train.runfolder import MANIFEST


def _text(tmp: Path) -> str:
    path = tmp / "text.txt"
    if not path.exists():
        path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    return str(path)


def _tag_data(tmp: Path) -> str:
    """A tiny JSON-lines tagging file: letters are A, everything else B."""
    path = tmp / "tag.jsonl"
    lines = ["ab 12", "c3 d", "x y z", "if x:", "f(1, 2)"] * 8
    rows = [{"x": s, "y": ["A" if c.isalpha() else "B" for c in s]} for s in lines]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def spec(task: str, tmp: Path) -> dict[str, Any]:
    """A tiny, deterministic run of ``task``: seconds, with several checkpoints.
    ``TASK+members``: the task's ensemble of two networks (``--members 2``)."""
    task, _, variant = task.partition("+")
    options: dict[str, Any] = {
        "lm": {"text": _text(tmp), "hidden_size": 8, "embed_size": 4, "seq_len": 8,
               "batch_size": 4, "sample_chars": 0, "eval_chars": 400, "dropout": 0.1},
        "numbers": {"max_number": 99, "embed_size": 8, "encoder_hidden": 8,
                    "decoder_hidden": 8, "batch_size": 8, "n_valid": 10},
        "adding": {"length": 10, "hidden_size": 8, "batch_size": 8, "n_val": 16},
        "copy": {"length": 10, "hidden_size": 8, "batch_size": 8, "n_val": 16},
        "selective-copy": {"length": 32, "hidden_size": 8, "batch_size": 8, "n_val": 16},
        "classify": {"dataset": "UnitTest", "hidden_size": 8, "batch_size": 4},
        "forecast": {"dataset": "shampoo", "hidden_size": 8, "batch_size": 4, "context": 8},
        "tag": {"data": _tag_data(tmp), "hidden_size": 8, "embed_size": 4, "seq_len": 4,
                "batch_size": 4, "eval_chars": 60, "dropout": 0.1},
    }[task]  # fmt: skip
    if variant == "members":
        options = {**options, "members": 2}
    return {
        "task": task,
        "options": options,
        "train": {"steps": 6, "eval_every": 2, "log_every": 2, "seed": 3, "threads": 1},
    }


def run(s: dict[str, Any], out: Path, **kw: Any) -> rnnkit.train.Summary:
    kw = {"log": lambda _: None, "progress": io.StringIO(), **kw}
    return train(s["task"], s["options"], TrainConfig(**s["train"]), out=out, **kw)


def final_state(out: Path) -> dict[str, torch.Tensor]:
    info = json.loads((out / MANIFEST).read_text())
    state = load_file(str(out / info["tensors"]))
    best = RunFolder(out).best_weights()  # model.safetensors, or the checkpoint if newer
    return {**state, **{f"best.{k}": v for k, v in best.items()}}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for each task's uninterrupted run, trained once for the module."""
    return tmp_path_factory.mktemp("reference")


def _reference(reference: Path, task: str) -> tuple[dict, dict[str, torch.Tensor]]:
    s, out = spec(task, reference), reference / task
    if not (out / MANIFEST).exists():
        run(s, out)
    return s, final_state(out)


# ---- kill -9 during the save ------------------------------------------------------------

KILLER = """
import io, json, os, signal, sys
n, when = int(sys.argv[1]), sys.argv[2]
spec = json.loads(sys.argv[3])
real_replace, calls = os.replace, [0]

def replace(src, dst):  # every file rnnkit commits ends in one os.replace
    calls[0] += 1
    if calls[0] == n and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
    if calls[0] == n and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
from rnnkit.train import TrainConfig, train
train(spec["task"], spec["options"], TrainConfig(**spec["train"]), out=spec["out"],
      log=lambda _: None, progress=io.StringIO())
print("finished", calls[0])
"""

# The tasks whose models can be ensembles, as their two-member variants.
ENSEMBLES = ("classify+members", "forecast+members")

# (task, kill points): every os.replace of the language model's run, a spread for the rest
# (the config, the first commit's tensors/metrics/manifest/best copy, a later commit).
POINTS = (
    [("lm", n, w) for n in range(1, 19) for w in ("before", "after")]
    + [
        (t, n, w)
        for t in NAMES
        if t != "lm"
        for n, w in (
            (1, "after"),
            (2, "before"),
            (3, "after"),
            (4, "before"),
            (5, "after"),
            (8, "before"),
        )
    ]
    + [(t, n, w) for t in ENSEMBLES for n, w in ((3, "after"), (5, "after"), (8, "before"))]
)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """The killed runs' processes, forked with rnnkit and every task's module imported."""
    server = Zygote(["rnnkit.train", *(REGISTRY[name].split(":")[0] for name in NAMES)])
    yield server
    server.close()


@pytest.mark.slow
@pytest.mark.parametrize(("task", "point", "when"), POINTS)
def test_kill_during_save_then_resume_is_bitwise(task, point, when, reference, tmp_path, zygote):
    s, expected = _reference(reference, task)
    out, log = tmp_path / "run", tmp_path / "killed.log"
    args = [str(point), when, json.dumps({**s, "out": str(out)})]
    status = zygote.run(KILLER, args, log)
    assert status == -9, log.read_text()[-2000:]
    complete = False
    if not (out / "config.json").exists():  # killed before anything was written
        run(s, out)  # a new run starts in the folder
    else:
        try:
            train(s["task"], resume=out, log=lambda _: None, progress=io.StringIO())
        except RunFolderError as err:  # killed after the last commit: the run is complete
            assert "already reached its budget" in str(err)
            complete = True
    assert json.loads((out / MANIFEST).read_text())["step"] == s["train"]["steps"]
    assert_same(final_state(out), expected)
    assert_same(rnnkit.load(out).state_dict(), {k[5:]: v for k, v in expected.items()
                                                if k.startswith("best.")})  # fmt: skip
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert complete or leftovers == []  # a resume clears a kill's temporary files


def test_a_folder_killed_before_its_first_checkpoint_can_be_resumed_or_reused(tmp_path):
    s = spec("adding", tmp_path)
    out = tmp_path / "run"
    folder = RunFolder(out)
    out.mkdir()
    options = dataclasses.asdict(get_task("adding").Options(**s["options"]))
    config = rnnkit.train.RunConfig("adding", options, TrainConfig(**s["train"]), {})
    folder.write_config(config)  # what a kill right after the start leaves
    lines: list[str] = []
    run(s, out, log=lines.append)
    assert any("stopped before its first checkpoint" in line for line in lines)
    out2 = tmp_path / "run2"
    out2.mkdir()
    RunFolder(out2).write_config(config)
    lines.clear()
    summary = train("adding", resume=out2, log=lines.append, progress=io.StringIO())
    assert any("no checkpoint yet" in line for line in lines)
    assert_same(final_state(out2), final_state(out))
    assert summary.step == 6


# ---- non-finite steps ------------------------------------------------------------------


@pytest.mark.parametrize("task", NAMES)
def test_nan_weights_are_never_saved(task, tmp_path):
    s = spec(task, tmp_path)
    out = tmp_path / "run"

    def poison(trainer):
        if trainer.step == 3:  # after the first checkpoint (step 2)
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="non-finite"):
        run(s, out, on_step=poison)
    state = final_state(out)
    assert json.loads((out / MANIFEST).read_text())["step"] == 2
    for name, t in state.items():
        if t.is_floating_point():
            assert torch.isfinite(t).all(), name


@pytest.mark.parametrize("task", NAMES)
def test_a_non_finite_loss_is_skipped_and_counted(task, tmp_path, monkeypatch):
    s = spec(task, tmp_path)
    from rnnkit.tasks import get_task

    cls = get_task(task)
    real = cls.loss
    calls = [0]

    def loss(self, net, batch, device):
        calls[0] += 1
        value = real(self, net, batch, device)
        return value * float("nan") if calls[0] == 3 else value

    monkeypatch.setattr(cls, "loss", loss)
    summary = run(s, tmp_path / "run")
    assert summary.skipped_steps == 1 and summary.step == 6
    assert all(torch.isfinite(t).all() for t in final_state(tmp_path / "run").values()
               if t.is_floating_point())  # fmt: skip


def test_repeated_non_finite_losses_stop_the_run_with_a_message(tmp_path, monkeypatch):
    s = spec("adding", tmp_path)
    s["train"]["max_bad_steps"] = 2
    from rnnkit.tasks import get_task

    cls = get_task("adding")
    real = cls.loss
    monkeypatch.setattr(cls, "loss", lambda self, net, b, d: real(self, net, b, d) * float("inf"))
    with pytest.raises(TrainingDivergedError, match="2 steps in a row"):
        run(s, tmp_path / "run")
    assert not (tmp_path / "run" / MANIFEST).exists()


# ---- folders that are not ours, a second writer, failed resumes ------------------------


@pytest.mark.parametrize("task", NAMES)
def test_out_with_user_files_is_refused_and_untouched(task, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my own numbers\n")
    (out / "notes.txt").write_text("keep me\n")
    before = snapshot(out)
    with pytest.raises(RunFolderError, match="did not write"):
        run(spec(task, tmp_path), out)
    assert snapshot(out) == before


def test_symlinks_are_not_followed(tmp_path):
    target = tmp_path / "precious.png"
    target.write_bytes(b"user data")
    out = tmp_path / "run"
    out.mkdir()
    (out / "loss.png").symlink_to(target)
    with pytest.raises(RunFolderError, match="symbolic link"):
        run(spec("adding", tmp_path), out)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(RunFolderError, match="symbolic link"):
        run(spec("adding", tmp_path), link)
    assert target.read_bytes() == b"user data" and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("task", NAMES)
def test_a_second_writer_is_refused(task, tmp_path):
    s = spec(task, tmp_path)
    out = tmp_path / "run"
    run(s, out)
    before = snapshot(out)
    with RunFolder(out).locked():  # the first writer, still running
        snapshot_locked = snapshot(out)
        with pytest.raises(RunFolderError, match=rf"another rnnkit process \(pid {os.getpid()}\)"):
            train(task, resume=out, steps=8, log=lambda _: None)
        with pytest.raises(RunFolderError, match="already holds a run"):
            run(s, out)
        assert snapshot(out) == snapshot_locked
    assert {k: v for k, v in snapshot(out).items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }


def test_two_new_runs_into_one_folder_one_is_refused(tmp_path):
    s = spec("adding", tmp_path)
    out = tmp_path / "run"
    with RunFolder(out).locked(), pytest.raises(RunFolderError, match="another rnnkit process"):
        run(s, out)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def _corruptions(task: str) -> list[tuple[str, Any, str]]:
    """(what, how to damage a finished run, what the message says)."""

    def truncate(out: Path) -> None:
        info = json.loads((out / MANIFEST).read_text())
        path = out / info["tensors"]
        path.write_bytes(path.read_bytes()[:100])

    def bad_manifest(out: Path) -> None:
        (out / MANIFEST).write_text('{"step": 4')

    def foreign_config(out: Path) -> None:
        (out / "config.json").write_text('{"format": "someone.else", "task": "lm"}')

    def old_config(out: Path) -> None:
        data = json.loads((out / "config.json").read_text())
        (out / "config.json").write_text(json.dumps({**data, "format_version": 1}))

    def mismatched(out: Path) -> None:
        data = json.loads((out / "config.json").read_text())
        key = "hidden_size" if "hidden_size" in data["options"] else "decoder_hidden"
        data["options"][key] = data["options"][key] + 3
        (out / "config.json").write_text(json.dumps(data))

    def unknown_key(out: Path) -> None:
        data = json.loads((out / "config.json").read_text())
        data["options"]["colour"] = "blue"
        (out / "config.json").write_text(json.dumps(data))

    def names_missing(out: Path) -> None:
        info = json.loads((out / MANIFEST).read_text())
        (out / info["tensors"]).unlink()

    return [
        ("truncated tensors", truncate, "truncated or corrupt"),
        ("bad manifest", bad_manifest, "not valid JSON"),
        ("foreign config", foreign_config, "someone.else"),
        ("old format", old_config, "format_version 1"),
        ("mismatched shapes", mismatched, "shape"),
        ("unknown option", unknown_key, "unknown key"),
        ("missing tensors", names_missing, "has no train_state-"),
    ]


@pytest.mark.parametrize("task", NAMES)
def test_a_failed_resume_changes_nothing_and_says_why_in_one_line(task, tmp_path):
    s = spec(task, tmp_path)
    base = tmp_path / "base"
    run(s, base)
    for what, damage, message in _corruptions(task):
        out = tmp_path / what.replace(" ", "-")
        out.mkdir()
        for name, data in snapshot(base).items():
            (out / name).write_bytes(data)
        damage(out)
        before = snapshot(out)
        mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        with pytest.raises((RunFolderError, ValueError, FileNotFoundError)) as err:
            train(task, resume=out, steps=10, log=lambda _: None)
        text = str(err.value)
        assert message in text and "\n" not in text, (what, text)
        assert snapshot(out) == before, what
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes, what


def test_a_resume_past_the_budget_is_refused(tmp_path):
    s = spec("adding", tmp_path)
    run(s, tmp_path / "run")
    with pytest.raises(RunFolderError, match="already reached its budget"):
        train("adding", resume=tmp_path / "run", log=lambda _: None)


@pytest.mark.parametrize("task", NAMES)
def test_every_task_loads_and_resumes_through_the_one_folder(task, tmp_path):
    s = spec(task, tmp_path)
    out = tmp_path / "run"
    logged: list[str] = []
    first = run(s, out, log=logged.append)
    assert first.best["value"] is not None and math.isfinite(first.best["value"])
    (line,) = [x for x in logged if x.startswith("model: ")]  # the count once, at its end
    n = sum(p.numel() for p in rnnkit.load(out).parameters())
    assert line.count("parameters") == 1 and f"; {n:,} parameters; processes: 1" in line
    model = rnnkit.load(out)
    assert not model.training
    names = {"config.json", "model.safetensors", MANIFEST, "metrics.csv", "loss.png", ".lock"}
    assert names <= {p.name for p in out.iterdir()}
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,time,split,metric,value"
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    evals = {int(r.split(",")[0]) for r in rows if ",validation," in r}
    assert evals == {2, 4, 6}
    second = train(task, resume=out, steps=8, log=lambda _: None, progress=io.StringIO())
    assert second.step == 8


@pytest.mark.parametrize("task", NAMES)
def test_sigterm_stops_after_the_step_and_saves(task, tmp_path):
    import signal

    s = spec(task, tmp_path)
    out = tmp_path / "run"

    def stop(trainer):
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the loop's own handler

    handler = signal.getsignal(signal.SIGTERM)
    summary = run(s, out, on_step=stop)
    assert signal.getsignal(signal.SIGTERM) == handler  # restored
    assert summary.stopped_by == "SIGTERM" and summary.step == 3
    assert json.loads((out / MANIFEST).read_text())["step"] == 3
    resumed = train(task, resume=out, log=lambda _: None, progress=io.StringIO())
    assert resumed.step == 6
