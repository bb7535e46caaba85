"""Each error message of rnnkit.train (fit, the loop, the run folder, TBPTT helpers, the
config) reached through its public entry point, asserted word for word."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rnnkit
from _refusals import raises as _raises
from _refusals import raises_exactly as _raises_exactly
from _refusals import refused
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.train import (
    RunFolder,
    RunFolderError,
    StreamWindows,
    TrainConfig,
    bits_per_char,
    detach_state,
    windows,
)


class Last(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = rnnkit.GRU(2, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


DATA = TensorDataset(torch.randn(8, 3, 2), torch.randint(0, 2, (8,)))


def _quiet(**extra):
    return {"log": lambda line: None, "progress": io.StringIO(), "steps": 2, "eval_every": 2,
            **extra}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "run"
    rnnkit.fit(Last(), DataLoader(DATA, batch_size=4), out=out, **_quiet())
    return out


# ---- fit ------------------------------------------------------------------------------


def test_fit_argument_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run with no out= would go (runs/fit-STAMP)
    loader = DataLoader(DATA, batch_size=4)
    # Found at the first batch, after config.json: a run stopped before its first
    # checkpoint, which the next run into the same folder starts anew in.
    started = {"out": tmp_path / "started", **_quiet()}
    _raises(ValueError, "rnnkit.fit: monitor must be one of loss; got 'accuracy' (no "
            "val_loader)", rnnkit.fit, Last(), loader, monitor="accuracy", **_quiet())  # fmt: skip
    _raises(ValueError, "rnnkit.fit: monitor must be one of accuracy, loss; got 'f1'",
            rnnkit.fit, Last(), loader, loader, metrics={"accuracy": rnnkit.train.accuracy},
            monitor="f1", **_quiet())  # fmt: skip
    _raises(ValueError, "rnnkit.fit: train_loader yields no batch; expected at least one",
            rnnkit.fit, Last(), DataLoader([], batch_size=4), **started)  # fmt: skip
    _raises(ValueError, "rnnkit.fit: val_loader yields no batch; expected at least one",
            rnnkit.fit, Last(), loader, DataLoader([], batch_size=4), **started)  # fmt: skip
    _raises(ValueError, "rnnkit.fit: a batch must be a tuple (inputs..., target); got Tensor",
            rnnkit.fit, Last(), [torch.randn(4, 3, 2)], **started)  # fmt: skip
    _raises(ValueError, "rnnkit.fit: a batch must be a tuple (inputs..., target); got list "
            "of length 1", rnnkit.fit, Last(), [[torch.randn(4, 3, 2)]], **started)  # fmt: skip
    _raises(TypeError, "rnnkit.fit: give train_config or TrainConfig fields, not both",
            rnnkit.fit, Last(), loader, train_config=TrainConfig(steps=2), steps=3)  # fmt: skip
    _raises(ValueError, "rnnkit.fit: resume=True needs out= (the run folder to continue)",
            rnnkit.fit, Last(), loader, resume=True, **_quiet())  # fmt: skip
    _raises(TypeError, "rnnkit.fit: model must be a torch.nn.Module; got str", rnnkit.fit,
            "Last", loader, **_quiet())  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["started"]
    assert sorted(p.name for p in (tmp_path / "started").iterdir()) == [".lock", "config.json"]


def test_fit_names_the_device_and_precision_in_its_own_words():
    # The loop's checks speak the command line's flags (--device, --precision).
    loader = DataLoader(DATA, batch_size=4)
    _raises(ValueError, "rnnkit.fit: precision fp16 needs a CUDA device; on the CPU use "
            "precision bf16", rnnkit.fit, Last(), loader, device="cpu", precision="fp16",
            **_quiet())  # fmt: skip
    if not torch.cuda.is_available():
        _raises(ValueError, "rnnkit.fit: device cuda was asked for, but this PyTorch sees no "
                "CUDA device", rnnkit.fit, Last(), loader, device="cuda", **_quiet())  # fmt: skip


def test_the_command_line_on_a_run_of_fit(capsys, run, tmp_path):
    # rnnkit's commands build a task's own model; a run of rnnkit.fit holds the weights of
    # the caller's class, which only Python has: each command says where to go instead.
    from rnnkit.tasks import NAMES

    assert refused(capsys, ["eval", str(run)], run.parent) == (
        f"rnnkit eval: error: {run} is a run of rnnkit.fit; evaluate it in Python, on the "
        "model rnnkit.load(run, model=MyModel(...)) returns"
    )
    assert refused(capsys, ["train", "--resume", str(run)], run.parent) == (
        f"rnnkit train: error: {run} is a run of rnnkit.fit; continue it in Python with "
        "rnnkit.fit(model, train_loader, out=RUN, resume=True)"
    )
    config = run / "config.json"
    assert refused(capsys, ["train", "--config", str(config)], run.parent) == (
        f"rnnkit train: error: {config} is the config of a run of rnnkit.fit, which trains in "
        f"Python only; rnnkit train's tasks: {', '.join(NAMES)}"
    )
    assert refused(capsys, ["export", str(run)], run.parent) == (
        f"rnnkit export: error: {run} is a run of rnnkit.fit: give the model to load its "
        "weights into, rnnkit.load(run, model=MyModel(...))"
    )


def test_train_config_needs_a_budget():
    _raises(ValueError, "a budget is needed: --steps, --minutes or both", TrainConfig,
            steps=None, minutes=None)  # fmt: skip


# ---- resuming a run folder that does not fit ------------------------------------------


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _resume(out: Path) -> None:
    rnnkit.fit(Last(), DataLoader(DATA, batch_size=4), out=out, resume=True,
               **_quiet(steps=4))  # fmt: skip


def test_resume_refuses_a_run_of_another_task(copy):
    _edit_json(copy / "config.json", task="forecast")
    _raises(RunFolderError, f"{copy} is a run of task 'forecast', not of rnnkit.fit", _resume,
            copy)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"step": -1}, "is corrupt: step is -1"),
        ({"tensors": "weights.bin"}, "is corrupt: it names no tensor file"),
        ({"best": None}, "is corrupt: it has no 'best'"),
    ],
)
def test_resume_refuses_a_corrupt_manifest(copy, change, message):
    manifest = copy / "train_state.json"
    _edit_json(manifest, **change)
    _raises(RunFolderError, f"{manifest} {message}", _resume, copy)


def test_resume_refuses_a_manifest_that_is_no_object(copy):
    manifest = copy / "train_state.json"
    manifest.write_text("[1, 2]")
    _raises(RunFolderError, f"{manifest} is corrupt: it is not a JSON object", _resume, copy)


def test_resume_refuses_a_checkpoint_without_weights_or_of_another_model(copy):
    from safetensors.torch import load_file, save_file

    name = json.loads((copy / "train_state.json").read_text())["tensors"]
    tensors = load_file(copy / name)
    save_file({k: v for k, v in tensors.items() if not k.startswith("model.")}, copy / name)
    _raises(RunFolderError, f"{copy / name} holds no model weights", _resume, copy)
    save_file(tensors, copy / name)
    _edit_json(copy / "train_state.json", best={"metric": "loss"})
    _raises(RunFolderError, f"the checkpoint {copy / 'train_state.json'} and {name} is corrupt "
            "or does not fit (it has no entry 'value')", _resume, copy)  # fmt: skip


@pytest.mark.parametrize(
    ("write", "message"),
    [
        ("[1]", " must hold a JSON object; got list"),
        ({"task": 3}, ": task must be a string; got 3"),
        ({"options": []}, ": options must be a JSON object"),
        ({"derived": 1}, ": derived must be a JSON object"),
        ({"format": None}, " has no format; this rnnkit reads 'rnnkit.run' run folders"),
        ({"extra": 1}, ": unknown key(s) extra"),
        ({"train": None}, ": missing key(s) train"),
    ],
)
def test_a_config_json_that_does_not_fit_is_named(copy, write, message):
    config = copy / "config.json"
    if isinstance(write, str):
        config.write_text(write)
    else:
        _edit_json(config, **write)
    _raises(RunFolderError, f"{config}{message}", rnnkit.load, copy, model=Last())


def test_load_names_weights_that_do_not_fit_the_model(run):
    class Wider(Last):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 3)

    class Other(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

    # The model given, not the run's config, expects the shape (it said "the config").
    _raises(RunFolderError, f"{run / 'model.safetensors'}: head.bias has shape (2,); the "
            "Wider given expects (3,)", rnnkit.load, run, model=Wider())  # fmt: skip
    _raises(RunFolderError, f"{run / 'model.safetensors'} does not fit the Other given: "
            "missing ['lin.bias', 'lin.weight'], unknown ", rnnkit.load, run,
            model=Other())  # fmt: skip


def test_a_run_folder_with_links_or_a_linked_lock_is_refused(copy, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(copy)
    _raises(RunFolderError, f"{link} is a symbolic link; expected a run folder (rnnkit does "
            "not follow links)", RunFolder(link).check_owned)  # fmt: skip
    (copy / "config.json").rename(copy / "real.json")
    (copy / "config.json").symlink_to(copy / "real.json")
    _raises(RunFolderError, f"{copy} holds symbolic link(s) config.json; rnnkit does not "
            "follow links in a run folder", _resume, copy)  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / ".lock").symlink_to(tmp_path / "elsewhere")
    message = f"{other / '.lock'} is a symbolic link; rnnkit does not follow it"
    with pytest.raises(RunFolderError, match=re.escape(message)), RunFolder(other).locked():
        pass


def test_a_link_to_a_run_folder_is_refused_where_one_is_read(copy, tmp_path):
    # save_pretrained and write_card read the folder they are given: a link is named, not
    # followed, and nothing is written.
    from rnnkit.train.card import write_card

    link = tmp_path / "link"
    link.symlink_to(copy, target_is_directory=True)
    before = sorted(p.name for p in copy.iterdir())
    message = f"{link} is a symbolic link; expected a run folder (rnnkit does not follow links)"
    _raises_exactly(RunFolderError, message, rnnkit.save_pretrained, link, tmp_path / "out")
    _raises_exactly(RunFolderError, message, write_card, link)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in copy.iterdir()) == before


def test_load_pretrained_refuses_a_link_as_the_run_folder_readers_do(copy, tmp_path):
    # It followed a link to a folder (and one to a file said "is not a folder").
    assert isinstance(rnnkit.load_pretrained(copy, model=Last()), Last)  # the folder itself
    (tmp_path / "file.txt").write_text("x\n")
    for name, target in (("link", copy), ("to-file", tmp_path / "file.txt"),
                         ("dangling", tmp_path / "gone")):  # fmt: skip
        link = tmp_path / name
        link.symlink_to(target, target_is_directory=target == copy)
        message = f"{link} is a symbolic link; expected a run folder (rnnkit does not follow links)"
        _raises_exactly(RunFolderError, message, rnnkit.load_pretrained, link)


def test_save_pretrained_fits_a_model_to_a_fit_runs_weights(run, tmp_path):
    # A fit run's config builds no model; the weights it saved show the model's shapes, so
    # another model is refused before anything is written (it failed only at load time).
    message = (
        "the Linear given does not fit the config: missing ['head.bias', 'head.weight', "
        "'rnn.bias_hh_l0'], unknown ['bias', 'weight']"
    )
    _raises_exactly(RunFolderError, message, rnnkit.save_pretrained, nn.Linear(3, 3),
                    tmp_path / "pub", config=run)  # fmt: skip
    assert not (tmp_path / "pub").exists()
    rnnkit.save_pretrained(Last(), tmp_path / "pub", config=run)
    assert (tmp_path / "pub" / "model.safetensors").is_file()


def test_a_linked_config_or_weights_file_is_not_followed(copy, tmp_path):
    # rnnkit.load reads a run's files itself: a link among them is refused, not read.
    (copy / "config.json").rename(tmp_path / "config.json")
    (copy / "config.json").symlink_to(tmp_path / "config.json")
    _raises_exactly(ValueError, f"{copy / 'config.json'} is a symbolic link; rnnkit does not "
                    "follow links in a run", rnnkit.load, copy, model=Last())  # fmt: skip
    (copy / "config.json").unlink()
    (tmp_path / "config.json").rename(copy / "config.json")
    (copy / "model.safetensors").rename(tmp_path / "model.safetensors")
    (copy / "model.safetensors").symlink_to(tmp_path / "model.safetensors")
    _raises_exactly(ValueError, f"{copy / 'model.safetensors'} is a symbolic link; rnnkit does "
                    "not follow links in a run", rnnkit.load, copy, model=Last())  # fmt: skip


# ---- TBPTT helpers and scoring --------------------------------------------------------


def test_tbptt_messages():
    _raises(TypeError, "detach_state: expected a tensor or a tuple of them; got <class 'int'>",
            detach_state, 3)  # fmt: skip
    _raises(ValueError, "windows: seq_len must be a positive integer; got 0", next,
            windows(iter([torch.zeros(4, 1)]), 0))  # fmt: skip
    _raises(ValueError, "StreamWindows: ids must be 1-D; got shape (2, 5)", StreamWindows,
            torch.zeros(2, 5, dtype=torch.long), 1, 2)  # fmt: skip
    _raises(ValueError, "StreamWindows: batch_size must be a positive integer; got 0",
            StreamWindows, torch.zeros(50, dtype=torch.long), 0, 4)  # fmt: skip
    _raises(ValueError, "StreamWindows: seq_len must be a positive integer; got 0",
            StreamWindows, torch.zeros(50, dtype=torch.long), 2, 0)  # fmt: skip
    _raises(ValueError, "the text is too short for one window: its 5 character(s) cannot fill "
            "batch_size 2 streams of seq_len 4 (need at least 9)", StreamWindows,
            torch.zeros(5, dtype=torch.long), 2, 4)  # fmt: skip


def test_bits_per_char_messages():
    vocab = Vocabulary.from_text("ab")
    model = CharLM(CharLMConfig(len(vocab), num_layers=1, hidden_size=4, embed_size=2), vocab)
    _raises(ValueError, "the text has 1 character(s); at least 2 are needed to score one",
            bits_per_char, model, torch.tensor([1]))  # fmt: skip
    ids = torch.tensor([1, 2, 1])
    _raises(ValueError, "bits_per_char: reset_every must be a positive integer; got 0",
            bits_per_char, model, ids, reset_every=0)  # fmt: skip
    # A batch_size or seq_len of 0 ended in a ZeroDivisionError or range()'s own message.
    _raises(ValueError, "bits_per_char: batch_size must be a positive integer; got 0",
            bits_per_char, model, ids, batch_size=0)  # fmt: skip
    _raises(ValueError, "bits_per_char: seq_len must be a positive integer; got 0",
            bits_per_char, model, ids, seq_len=0)  # fmt: skip
    _raises(TypeError, "bits_per_char: reset_every must be a positive integer; got 2.5",
            bits_per_char, model, ids, reset_every=2.5)  # fmt: skip
    _raises(TypeError, "bits_per_char: ids must be a torch.Tensor; got list", bits_per_char,
            model, [1, 2, 1])  # fmt: skip
    _raises(ValueError, "bits_per_char: ids must be 1-D (N,); got shape (1, 3)", bits_per_char,
            model, ids[None])  # fmt: skip


def test_a_model_card_of_a_run_whose_derived_values_do_not_fit(tmp_path):
    out = tmp_path / "numbers"
    options = dict(max_number=99, embed_size=4, encoder_hidden=4, decoder_hidden=4, n_valid=4,
                   n_test=4)  # fmt: skip
    rnnkit.train.train("numbers", options, TrainConfig(steps=1, eval_every=1), out=out,
                       log=lambda _: None, progress=io.StringIO())  # fmt: skip
    config = out / "config.json"
    data = json.loads(config.read_text())
    data["derived"]["source_chars"] = 3
    config.write_text(json.dumps(data))
    _raises(RunFolderError, f"{config}: derived: source_chars must be a non-empty string",
            rnnkit.train.write_card, out)  # fmt: skip


def test_a_batch_that_processes_cannot_share_is_refused():
    # What torchrun with 3 processes and --batch-size 4 meets before any step.
    from rnnkit.train import distributed

    ctx = distributed.Context(0, 3, torch.device("cpu"))
    _raises(ValueError, "--batch-size must be divisible by the number of processes; got 4 "
            "streams for 3 processes", distributed.rows, ctx, 4)  # fmt: skip


def test_run_demo_names_a_device_it_does_not_know():
    from rnnkit.demo import run_demo

    _raises(ValueError, "--device must be one of auto, cpu, cuda; got 'tpu'", run_demo,
            device="tpu", steps=1)  # fmt: skip


def test_a_config_json_whose_train_fields_do_not_fit(copy):
    config = copy / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "train": {**data["train"], "steps": 0}}))
    _raises(RunFolderError, f"{config}: train: --steps must be an integer in [1, 1000000000]; "
            "got 0", rnnkit.load, copy, model=Last())  # fmt: skip


def test_run_demo_names_a_precision_it_does_not_know():
    from rnnkit.demo import run_demo

    _raises(ValueError, "--precision must be one of fp32, bf16, fp16; got 'fp8'", run_demo,
            precision="fp8", steps=1)  # fmt: skip


def test_weights_that_became_non_finite_are_not_saved(tmp_path):
    def poison(trainer):
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))

    out = tmp_path / "run"
    # It said "the last checkpoint (step 0) is kept", though none had been written.
    _raises_exactly(rnnkit.train.TrainingDivergedError, "the weights became non-finite at step "
                    "2; they are not saved; no checkpoint was written yet", rnnkit.fit, Last(),
                    DataLoader(DATA, batch_size=4), out=out, on_step=poison,
                    **_quiet())  # fmt: skip
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # Each failed later in Python's own words, or (resume, higher_is_better) was taken
        # as true.
        ({"monitor": 3}, "rnnkit.fit: monitor must be a str; got int"),
        ({"higher_is_better": "yes"}, "rnnkit.fit: higher_is_better must be a bool; got 'yes'"),
        ({"out": 3}, "rnnkit.fit: out must be a path; got int"),
        ({"resume": "yes"}, "rnnkit.fit: resume must be a bool; got 'yes'"),
        ({"metrics": [1]}, "rnnkit.fit: metrics must be a dict of name -> function (output, "
         "target) -> number; got list"),
        ({"on_step": 3}, "rnnkit.fit: on_step must be a function; got int"),
        ({"log": "x"}, "rnnkit.fit: log must be a function; got str"),
        ({"epochs": 3}, "rnnkit.fit: unknown argument(s) epochs; expected fit's own or "
         "TrainConfig fields (clip_norm, "),
    ],
)  # fmt: skip
def test_fit_names_an_argument_of_the_wrong_type(kwargs, message, tmp_path):
    _raises(TypeError, message, rnnkit.fit, Last(), DataLoader(DATA, batch_size=4),
            **{**_quiet(), **kwargs})  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_fit_names_a_train_config_that_is_no_train_config():
    _raises(TypeError, "rnnkit.fit: train_config must be a TrainConfig; got dict", rnnkit.fit,
            Last(), DataLoader(DATA, batch_size=4), train_config={"steps": 2})  # fmt: skip


def test_a_run_folder_that_is_no_path():
    # Path(3) said "expected str, bytes or os.PathLike object", naming no argument.
    _raises(TypeError, "run folder must be a path; got int", rnnkit.load, 3)
    _raises(TypeError, "run folder must be a path; got int", rnnkit.train.write_card, 3)


# ---- a loss that stays non-finite ------------------------------------------------------


def test_a_loss_that_stays_non_finite_stops_the_run(tmp_path):
    def nan_loss(output, target):
        return F.cross_entropy(output, target) * float("nan")

    out = tmp_path / "run"
    # It said "the last checkpoint (step 0) is kept", though none had been written.
    _raises_exactly(rnnkit.train.TrainingDivergedError, "the loss or gradient was non-finite "
                    "for 2 steps in a row (up to step 2); lower the learning rate or check the "
                    f"data; no checkpoint was written yet in {out}", rnnkit.fit, Last(),
                    DataLoader(DATA, batch_size=4), out=out, loss=nan_loss,
                    **_quiet(steps=4, max_bad_steps=2))  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]


def test_a_loss_that_turns_non_finite_after_a_checkpoint(tmp_path):
    poisoned = []

    def loss(output, target):
        value = F.cross_entropy(output, target)
        return value * float("nan") if poisoned else value

    def poison(trainer):
        if trainer.step == 2:  # before the checkpoint of step 2, which still commits
            poisoned.append(True)

    out = tmp_path / "run"
    _raises_exactly(rnnkit.train.TrainingDivergedError, "the loss or gradient was non-finite "
                    "for 2 steps in a row (up to step 4); lower the learning rate or check the "
                    f"data; the last checkpoint (step 2) is kept in {out}", rnnkit.fit, Last(),
                    DataLoader(DATA, batch_size=4), out=out, loss=loss, on_step=poison,
                    **_quiet(steps=6, max_bad_steps=2))  # fmt: skip
    assert json.loads((out / "train_state.json").read_text())["step"] == 2


# ---- the folder of a new run and a resume ----------------------------------------------


def test_fit_into_an_empty_path():
    # Only Python reaches it (the command line refuses --out "" itself); it named the flag.
    _raises_exactly(ValueError, "out must be a folder path; got an empty string", rnnkit.fit,
                    Last(), DataLoader(DATA, batch_size=4), out="", **_quiet())  # fmt: skip


def test_resume_refuses_an_optimiser_state_that_does_not_fit(copy):
    manifest = copy / "train_state.json"
    data = json.loads(manifest.read_text())
    for group in data["optimizer"]["param_groups"]:
        del group["params"]
    manifest.write_text(json.dumps(data))
    _raises_exactly(RunFolderError, f"the checkpoint {manifest} and {data['tensors']} is corrupt "
                    "or does not fit (the optimiser state: it has no entry 'params')", _resume,
                    copy)  # fmt: skip


def test_resume_of_a_run_another_writer_changed_meanwhile(copy, monkeypatch):
    # Another writer commits a checkpoint after the resume read the folder and before it
    # takes the lock: the resume would continue from a step that is no longer the last.
    real = RunFolder.locked

    def locked(self):
        _edit_json(self.path / "train_state.json", step=4)
        return real(self)

    monkeypatch.setattr(RunFolder, "locked", locked)
    _raises_exactly(RunFolderError, f"{copy} changed while it was being checked; try again",
                    _resume, copy)  # fmt: skip


ADDING = ["train", "adding", "--length", "10", "--hidden", "4", "--steps", "2"]


def test_train_into_a_finished_run(capsys, adding_run):
    assert refused(capsys, [*ADDING, "--out", str(adding_run)], adding_run) == (
        f"rnnkit train: error: {adding_run} already holds a run; continue it with --resume "
        f"{adding_run} or choose another --out"
    )


def test_train_into_a_folder_inside_a_run(capsys, adding_run):
    inner = adding_run / "inner"
    assert refused(capsys, [*ADDING, "--out", str(inner)], adding_run) == (
        f"rnnkit train: error: --out {inner}: expected a folder outside any run folder; got one "
        f"inside the run folder {adding_run}, which holds only what rnnkit writes"
    )


def test_train_into_a_folder_of_ones_own_files(capsys, tmp_path):
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.txt"):
        (mine / name).write_text("mine")
    assert refused(capsys, [*ADDING, "--out", str(mine)], tmp_path) == (
        f"rnnkit train: error: {mine} holds files rnnkit did not write (a.txt, b.txt, c.txt and "
        "1 more); it is not an rnnkit run folder: choose a new or empty folder"
    )
