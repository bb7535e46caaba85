"""The model card (README.md of a run folder) and pretrained folders.

- a short language-model run writes README.md at each checkpoint: front matter, the data,
  the model and its size, the steps, and the best validation metrics as metrics.csv has them;
- the card is regenerated from the folder's files alone, to the byte;
- save_pretrained / load_pretrained round-trip a run and a model object exactly, locally;
- refusals: an existing folder, a missing folder, a folder rnnkit did not write, a model
  without a config, training into a pretrained folder;
- a user's README.md is never rewritten or removed;
- a kill while the card or a pretrained folder is written leaves no half-written file.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.train import RunFolder, RunFolderError, TrainConfig, files, train, write_card
from rnnkit.train.runfolder import CARD_MARK, MANIFEST, is_card

OPTIONS = {
    "hidden_size": 8,
    "embed_size": 4,
    "num_layers": 1,
    "seq_len": 8,
    "batch_size": 4,
    "eval_chars": 400,
    "sample_chars": 0,
}
STEPS, EVAL_EVERY = 7, 3  # evaluations at steps 3, 6 and 7 (the end)


def _text(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _train(out: Path, text: Path, **kw) -> rnnkit.train.Summary:
    config = TrainConfig(steps=STEPS, eval_every=EVAL_EVERY, log_every=2, seed=5, threads=1)
    options = {**OPTIONS, "text": str(text)}
    return train("lm", options, config, out=out, log=lambda _: None, progress=io.StringIO(), **kw)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One short run, next to a user's own README.md, with the card seen mid-run."""
    root = tmp_path_factory.mktemp("card")
    (root / "README.md").write_text("# my experiments\n")
    seen: dict[int, str] = {}

    def look(trainer) -> None:
        card = trainer.folder.path / "README.md"
        if card.exists():
            seen.setdefault(trainer.step, card.read_text(encoding="utf-8"))

    summary = _train(root / "run", _text(root), on_step=look)
    return {"root": root, "run": root / "run", "summary": summary, "seen": seen}


def _validation(run: Path) -> dict[int, dict[str, str]]:
    """metrics.csv's validation values, as written (the card shows the same digits)."""
    out: dict[int, dict[str, str]] = {}
    with (run / "metrics.csv").open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            if rec["split"] == "validation":
                out.setdefault(int(rec["step"]), {})[rec["metric"]] = rec["value"]
    return out


def _row(card: str, label: str) -> str:
    (line,) = [line for line in card.splitlines() if line.startswith(f"| {label} |")]
    return line


def _logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 1]])
    with torch.no_grad():
        return model(ids)[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---- the card a run writes ---------------------------------------------------------------


def test_the_card_opens_with_front_matter_hubs_read(made):
    card = (made["run"] / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: rnnkit\n")
    front = card.split("---\n")[1].splitlines()
    assert "pipeline_tag: text-generation" in front
    # Tags are YAML's double-quoted scalars, which JSON strings are.
    tags = front[front.index("tags:") + 1 :]
    assert all(t.startswith("- ") for t in tags)
    assert {"rnnkit", "lm", "lstm", "safetensors"} <= {json.loads(t[2:]) for t in tags}
    assert CARD_MARK in card and is_card(made["run"] / "README.md")


def test_the_card_says_what_metrics_csv_and_the_manifest_say(made):
    run = made["run"]
    card = (run / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((run / MANIFEST).read_text())
    best = manifest["best"]["step"]
    validation = _validation(run)
    assert sorted(validation) == [3, 6, 7]
    shown = ", ".join(f"{k} {v}" for k, v in sorted(validation[best].items()))
    assert _row(card, "best validation") == f"| best validation | {shown} (step {best}) |"
    for step, metrics in validation.items():  # every evaluation, with metrics.csv's digits
        mark = " (best)" if step == best else ""
        assert (
            _row(card, f"{step}{mark}")
            == f"| {step}{mark} | {metrics['bpc']} | {metrics['loss']} |"
        )
    assert f"{STEPS} steps in " in _row(card, "trained")
    params = sum(p.numel() for p in rnnkit.load(run).parameters())
    assert f"{params:,} parameters" in _row(card, "model")
    assert "--hidden 8" in _row(card, "model") and "--cell lstm" in _row(card, "model")
    vocab = len(json.loads((run / "config.json").read_text())["derived"]["vocab"]["chars"])
    assert f"| vocab | {vocab} characters" in card
    assert f"| corpus.path | {run.parent / 'text.txt'} |" in card
    assert f"| rnnkit | {rnnkit.__version__} |" in card


def test_the_card_gives_the_commands_that_load_evaluate_and_export(made):
    card = (made["run"] / "README.md").read_text(encoding="utf-8")
    for line in (
        'model = rnnkit.load_pretrained("run")',
        'rnnkit.train.run.load("run")',
        "rnnkit eval run",
        "rnnkit generate run --prompt 'def ' --length 200",
        "rnnkit export run --format onnx --mode step",
        "rnnkit train --resume run --steps N",
    ):
        assert line in card, line


def test_the_card_is_rewritten_at_each_checkpoint(made):
    seen = made["seen"]
    # on_step runs before a step's checkpoint: the first commit's card shows at step 4.
    assert min(seen) == EVAL_EVERY + 1
    first = seen[EVAL_EVERY + 1]
    steps = [line.split()[1] for line in first.splitlines() if line[2:3].isdigit()]
    assert steps == ["3"] and "| 3 (best) |" in first and "3 steps in " in first


def test_the_card_is_regenerated_to_the_byte_from_the_files(made, tmp_path):
    copy_ = tmp_path / "run"
    shutil.copytree(made["run"], copy_)
    before = (copy_ / "README.md").read_bytes()
    (copy_ / "README.md").unlink()
    assert write_card(copy_) == copy_ / "README.md"
    assert (copy_ / "README.md").read_bytes() == before


def test_a_resumed_run_rewrites_the_card_at_its_end(made, tmp_path):
    copy_ = tmp_path / "run"
    shutil.copytree(made["run"], copy_)
    train("lm", resume=copy_, steps=9, log=lambda _: None, progress=io.StringIO())
    card = (copy_ / "README.md").read_text(encoding="utf-8")
    assert "9 steps in " in _row(card, "trained")
    steps = [line.split()[1] for line in card.splitlines() if line[2:3].isdigit()]
    assert steps[-1] == "9"


def test_a_users_readme_beside_a_run_is_untouched(made):
    assert (made["root"] / "README.md").read_text() == "# my experiments\n"


def test_the_card_of_a_fit_run_says_what_ranks_its_checkpoints(tmp_path):
    # rnnkit.fit records its monitor, its direction and whether a val_loader was given;
    # without one the card says the scores are on training data.
    from torch.utils.data import DataLoader, TensorDataset

    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randint(0, 2, (8,))), batch_size=4)
    quiet = {"log": lambda _: None, "progress": io.StringIO(), "steps": 2, "eval_every": 2}
    rnnkit.fit(torch.nn.Linear(2, 2), data, out=tmp_path / "plain", **quiet)
    card = (tmp_path / "plain" / "README.md").read_text(encoding="utf-8")
    assert '| `monitor` | "loss" | the metric that ranks the checkpoints |' in card
    better = "whether a larger value of the monitor is better"
    assert f"| `higher_is_better` | false | {better} |" in card
    assert (
        "| `val_loader` | false | whether a val_loader was given (without one the training "
        "loss ranks them) |"
    ) in card
    assert "training (no val_loader: the mean loss since the last evaluation)" in card
    rnnkit.fit(torch.nn.Linear(2, 2), data, data, out=tmp_path / "val", **quiet)
    card = (tmp_path / "val" / "README.md").read_text(encoding="utf-8")
    assert "| `val_loader` | true |" in card and "no val_loader" not in card


# ---- a user's README.md ------------------------------------------------------------------


def test_a_folder_with_a_users_readme_is_not_a_run_folder(made, tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "README.md").write_text("# my notes\nlibrary_name: rnnkit\n")
    with pytest.raises(RunFolderError, match=r"did not write \(README.md\)"):
        _train(out, made["root"] / "text.txt")
    assert _snapshot(out) == {"README.md": b"# my notes\nlibrary_name: rnnkit\n"}
    with pytest.raises(RunFolderError, match="not a run folder"):
        write_card(out)
    assert _snapshot(out) == {"README.md": b"# my notes\nlibrary_name: rnnkit\n"}


def test_a_run_whose_card_the_user_replaced_is_left_alone(made, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(made["run"], run)
    (run / "README.md").write_text("# mine now\n")
    before = _snapshot(run)
    with pytest.raises(RunFolderError, match=r"did not write \(README.md\)"):
        train("lm", resume=run, steps=9, log=lambda _: None, progress=io.StringIO())
    with pytest.raises(RunFolderError, match=r"did not write \(README.md\)"):
        write_card(run)
    assert _snapshot(run) == before


# ---- pretrained folders ------------------------------------------------------------------


def test_a_run_folder_is_a_pretrained_folder(made):
    loaded = rnnkit.load_pretrained(made["run"])
    assert not loaded.training
    assert torch.equal(_logits(loaded), _logits(rnnkit.load(made["run"])))


def test_save_pretrained_of_a_run_round_trips_exactly(made, tmp_path):
    dest = rnnkit.save_pretrained(made["run"], tmp_path / "pub")
    assert dest == tmp_path / "pub"
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["README.md", "config.json", "loss.png", "metrics.csv", "model.safetensors"]
    assert (dest / "config.json").read_bytes() == (made["run"] / "config.json").read_bytes()
    assert (dest / "metrics.csv").read_bytes() == (made["run"] / "metrics.csv").read_bytes()
    original, loaded = rnnkit.load(made["run"]), rnnkit.load_pretrained(dest)
    assert torch.equal(_logits(loaded), _logits(original))
    card = (dest / "README.md").read_text(encoding="utf-8")
    run_card = (made["run"] / "README.md").read_text(encoding="utf-8")
    assert _row(card, "best validation") == _row(run_card, "best validation")
    assert 'rnnkit.load_pretrained("pub")' in card and "--resume" not in card
    assert [p.name for p in tmp_path.iterdir()] == ["pub"]  # no temporary folder left


def test_save_pretrained_of_a_model_round_trips_exactly(made, tmp_path):
    model = rnnkit.load_pretrained(made["run"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # "fine-tuned": no longer the run's weights
    dest = rnnkit.save_pretrained(model, tmp_path / "tuned")
    loaded = rnnkit.load_pretrained(dest)
    assert torch.equal(_logits(loaded), _logits(model))
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert "no training recorded" in card and "--hidden 8" in card
    # A model without a recorded config takes it from config=.
    bare = copy.deepcopy(model)
    del bare.rnnkit_config
    again = rnnkit.save_pretrained(bare, tmp_path / "again", config=made["run"])
    assert torch.equal(_logits(rnnkit.load_pretrained(again)), _logits(model))
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty folder is filled
    assert rnnkit.save_pretrained(model, empty) == empty


def test_load_pretrained_never_touches_the_network(made, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    rnnkit.load_pretrained(made["run"])
    with pytest.raises(RunFolderError, match="downloads nothing"):
        rnnkit.load_pretrained("someone/some-model")


def _one_line(err: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    text = str(err.value)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text


def test_refusals_are_one_line_and_write_nothing(made, tmp_path):
    model = rnnkit.load_pretrained(made["run"])
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    for source in (model, made["run"]):
        with pytest.raises(ValueError) as err:
            rnnkit.save_pretrained(source, full)
        _one_line(err, str(full), "not empty")
    assert _snapshot(full) == {"keep.txt": b"mine"}

    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError) as err:
        rnnkit.load_pretrained(missing)
    _one_line(err, "not found", str(missing))
    with pytest.raises(ValueError) as err:
        rnnkit.save_pretrained(missing, tmp_path / "out")
    _one_line(err, "not found", str(missing))

    with pytest.raises(ValueError) as err:
        rnnkit.load_pretrained(full)
    _one_line(err, str(full), "not an rnnkit folder", "config.json")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError) as err:
        rnnkit.load_pretrained(other)
    _one_line(err, str(other), "not an rnnkit folder")

    with pytest.raises(ValueError) as err:
        rnnkit.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "out")
    _one_line(err, "Linear", "config=")
    with pytest.raises(ValueError) as err:
        rnnkit.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "out", config=made["run"])
    _one_line(err, "the Linear given")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "other"]


def test_save_pretrained_refuses_a_folder_in_a_run_and_writes_nothing(made, tmp_path):
    run = made["run"]
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    model = rnnkit.load_pretrained(run)
    link = tmp_path / "link"
    link.symlink_to(run)
    # A link that leads into the run is named as the user gave it.
    inside = {run / "pub": run, run / "a" / "b": run, link / "pub": link}
    for dest, where in inside.items():
        for source in (run, model):
            with pytest.raises(ValueError) as err:
                rnnkit.save_pretrained(source, dest)
            assert str(err.value) == (
                f"save_pretrained: folder {dest}: expected a path outside any run folder; got "
                f"one inside the run folder {where}"
            )
    # The run itself, or a link to it, is a folder that exists: said so.
    for dest in (run, link):
        for source in (run, model):
            with pytest.raises(ValueError) as err:
                rnnkit.save_pretrained(source, dest)
            assert str(err.value) == (
                f"{dest} already exists and is not empty (an rnnkit folder); save_pretrained "
                "writes a new folder and overwrites nothing"
            )
    # Nothing was written there: no folder, no temporary, and the run still resumes.
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    RunFolder(run).check_owned()  # raises on anything rnnkit did not write


def test_a_pretrained_folder_is_never_trained_into(made, tmp_path):
    dest = rnnkit.save_pretrained(made["run"], tmp_path / "pub")
    before = _snapshot(dest)
    with pytest.raises(RunFolderError) as err:
        _train(dest, made["root"] / "text.txt")
    _one_line(err, "pretrained folder", "--config")
    with pytest.raises(RunFolderError) as err:
        train("lm", resume=dest, steps=9, log=lambda _: None, progress=io.StringIO())
    _one_line(err, "pretrained folder")
    assert _snapshot(dest) == before


# ---- kills -------------------------------------------------------------------------------

KILLER = """
import os, signal, sys
import rnnkit
from rnnkit.train import write_card
what, folder = sys.argv[1], sys.argv[2]
real_replace, real_rename = os.replace, os.rename

def replace(src, dst):  # the card's own rename: killed just before it
    if os.path.basename(dst) == "README.md":
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

def rename(src, dst):  # the pretrained folder's rename into place
    os.kill(os.getpid(), signal.SIGKILL)

os.replace, os.rename = replace, rename
if what == "card":
    write_card(folder)
else:
    rnnkit.save_pretrained(folder, sys.argv[3])
"""


def test_a_kill_while_writing_leaves_no_half_written_file(made, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(made["run"], run)
    (run / "README.md").write_text((run / "README.md").read_text() + "\nan older card\n")
    before = _snapshot(run)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "card", str(run)], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    after = _snapshot(run)
    (tmp,) = [name for name in after if name not in before]  # the unfinished new card
    assert tmp.startswith(".README.md.") and tmp.endswith(".tmp")
    # The old card, whole (the lock names the killed writer's pid).
    assert {k: v for k, v in after.items() if k not in (tmp, ".lock")} == {
        k: v for k, v in before.items() if k != ".lock"
    }
    folder = RunFolder(run)
    folder.check_owned()  # a kill's temporary file does not make the folder foreign
    with folder.locked():
        folder.clean()
    assert tmp not in _snapshot(run)

    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "pretrained", str(run), str(tmp_path / "pub")],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "pub").exists()  # no folder at all rather than half of one
    (left,) = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert left.startswith(".pub.") and left.endswith(".tmp")


def test_the_next_save_removes_a_killed_saves_folder_and_nothing_else(made, tmp_path):
    old = rnnkit.save_pretrained(made["run"], tmp_path / "old")  # saved before: kept whole
    before = _snapshot(old)
    killed = subprocess.Popen([sys.executable, "-c", KILLER, "pretrained", str(made["run"]),
                               str(tmp_path / "pub")])  # fmt: skip
    assert killed.wait(timeout=300) == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if p.name != "old"]
    # Hidden, rnnkit's, named by the killed process, and a folder: the save's staging.
    assert left.name.startswith(f".pub.rnnkit_{killed.pid}_") and left.name.endswith(".tmp")
    assert left.is_dir() and not (tmp_path / "pub").exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = files._host()
        kept = [
            f".pub.rnnkit_{live.pid}_{host}_abc123.tmp",  # a save in progress
            f".old.rnnkit_{killed.pid}_{host}_abc123.tmp",  # another folder's
            ".pub.abc123.tmp",  # an older rnnkit's: whose, nobody knows
        ]
        for name in kept:
            (tmp_path / name).mkdir()
            (tmp_path / name / "keep.txt").write_text("keep")
        dest = rnnkit.save_pretrained(made["run"], tmp_path / "pub")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["old", "pub", *kept])
    finally:
        live.kill()
        live.wait()
    assert all((tmp_path / name / "keep.txt").read_text() == "keep" for name in kept)
    assert _snapshot(old) == before
    model, saved = rnnkit.load_pretrained(dest), rnnkit.load_pretrained(old)
    assert torch.equal(_logits(model), _logits(saved))


def test_a_run_whose_derived_its_task_refuses_is_named_once(tmp_path):
    """The card writer, save_pretrained and rnnkit.load name the real config.json once,
    then the key the task refused: the same line wherever the folder is read."""
    out = tmp_path / "numbers"
    options = dict(max_number=99, embed_size=4, encoder_hidden=4, decoder_hidden=4, n_valid=4,
                   n_test=4)  # fmt: skip
    train("numbers", options, TrainConfig(steps=1, eval_every=1), out=out,
          log=lambda _: None, progress=io.StringIO())  # fmt: skip
    config = out / "config.json"
    data = json.loads(config.read_text())
    data["derived"]["source_chars"] = 3
    config.write_text(json.dumps(data))
    before = _snapshot(out)
    expected = f"{config}: derived: source_chars must be a non-empty string"
    for read in (
        write_card,
        rnnkit.load,
        lambda run: rnnkit.save_pretrained(run, tmp_path / "pub"),
    ):
        with pytest.raises(RunFolderError) as err:
            read(out)
        assert str(err.value) == expected
    assert _snapshot(out) == before and not (tmp_path / "pub").exists()
