"""Run folders a user's rnnkit.fit meets: one this process may not write in or create,
refused in one line (not an OSError's own words) with nothing written; and a run whose
every evaluation scored its monitor nan, which keeps no weights, named as such when
loaded (it did not stop before its first evaluation)."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly
from rnnkit.train import RunFolderError, runfolder

torch.manual_seed(0)
X = torch.randn(8, 4)
Y = (X.sum(1) > 0).long()
QUIET = {"log": lambda line: None, "progress": io.StringIO(), "steps": 2}


def _deny(monkeypatch, where: Path) -> None:
    """Folders under ``where`` may not be created nor written in, as for a user without
    write permission (the tests may run as root, whom chmod does not stop)."""
    real_open, real_mkdir = os.open, Path.mkdir

    def denied(path: object) -> bool:
        return Path(os.fspath(path)).resolve().is_relative_to(where.resolve())

    def open_(path, flags, *args, **kwargs):
        if denied(path) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def mkdir(self, *args, **kwargs):
        if denied(self) and not self.is_dir():
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(runfolder.os, "open", open_)
    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_an_out_this_process_may_not_write_in_is_refused_in_one_line(tmp_path, monkeypatch):
    # It was "[Errno 13] Permission denied: 'ro/.lock'".
    ro = tmp_path / "ro"
    ro.mkdir()
    _deny(monkeypatch, ro)
    raises_exactly(RunFolderError, f"cannot write in the run folder {ro}: Permission denied; "
                   "expected a folder this process may write in", rnnkit.fit, nn.Linear(4, 2),
                   [(X, Y)], out=ro, **QUIET)  # fmt: skip
    # A new folder inside it: the path's parts are folders, as the message said to check.
    raises_exactly(RunFolderError, f"cannot make the run folder {ro / 'sub'}: Permission "
                   "denied; expected a path where this process may create a folder",
                   rnnkit.fit, nn.Linear(4, 2), [(X, Y)], out=ro / "sub",
                   **QUIET)  # fmt: skip
    assert list(ro.iterdir()) == []


def test_a_run_whose_monitor_was_never_finite_says_so_when_loaded(tmp_path):
    out = tmp_path / "run"
    summary = rnnkit.fit(nn.Linear(4, 2), [(X, Y)], [(X, Y)],
                         metrics={"acc": lambda output, target: float("nan")}, monitor="acc",
                         out=out, eval_every=1, **QUIET)  # fmt: skip
    assert summary.best == {"metric": "acc", "value": None, "step": None}
    message = (f"{out} has no model.safetensors: no evaluation up to step 2 scored a finite "
               "acc, so no weights were kept; expected at least one finite score of the "
               "metric that ranks the checkpoints")  # fmt: skip
    raises_exactly(RunFolderError, message, rnnkit.load, out, model=nn.Linear(4, 2))
    raises_exactly(RunFolderError, message, rnnkit.load_pretrained, out, model=nn.Linear(4, 2))
