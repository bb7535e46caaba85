"""Files a command writes for the user: an existing file is refused unless --force, a
refused command changes nothing on disk, and a symbolic link is replaced, never followed."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from pathlib import Path

import pytest

from _refusals import refused as refused_whole
from rnnkit.cli import main


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links as their targets' names) and its digest."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + str(p.readlink())
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(root))] = "folder"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("outputs")
    data = tmp / "shops.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["week", "north", "south"])
        for t in range(40):
            w.writerow([t, f"{10 + 3 * math.sin(t):.3f}", f"{20 + t % 4:.3f}"])
    out = tmp / "run"
    argv = [
        "train",
        "forecast",
        "--data",
        str(data),
        "--horizon",
        "4",
        "--seasonality",
        "4",
        "--hidden",
        "8",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    return out


def refused(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error of ``argv``, checking that nothing under ``root`` changed."""
    before = snapshot(root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert snapshot(root) == before
    return err


def test_forecast_refuses_to_replace_a_users_files(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run.parent / "shops.csv"
    mine = tmp_path / "mine.csv"
    mine.write_text("my precious data\n")
    notes = tmp_path / "notes.png"
    notes.write_text("not a png: my notes\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    cases = {
        "--out": (["--out", str(mine)], f"--out {mine} exists; pass --force to replace it"),
        "--plot": (
            ["--out", str(tmp_path / "new.csv"), "--plot", str(notes)],
            f"--plot {notes} exists; pass --force to replace it",
        ),
        "data": (
            ["--data", str(data), "--out", str(data), "--force"],
            f"--out {data} is the --data file; expected another file name",
        ),
        "run file": (
            ["--out", str(run / "config.json"), "--force"],
            "is in the run folder, which holds only what rnnkit writes",
        ),
        "new in run": (
            ["--out", str(run / "new.csv")],
            "is in the run folder, which holds only what rnnkit writes",
        ),
        "run's data": (
            ["--out", str(data), "--force"],
            f"--out {data} is the run's data; expected another file name",
        ),
        "suffix": (
            ["--plot", str(tmp_path / "p.pdf")],
            "--plot: expected a file name ending in .png; got",
        ),
        "folder": (["--out", str(folder)], "is a folder; expected a file name"),
        "no folder": (
            ["--out", str(tmp_path / "nodir" / "x.csv")],
            "the folder of .* does not exist",
        ),
        "same": (
            ["--out", str(tmp_path / "a.png"), "--plot", str(tmp_path / "a.png")],
            "--out and --plot name the same file",
        ),
    }
    for name, (extra, message) in cases.items():
        err = refused(["forecast", str(run), *extra], tmp_path.parent, capsys)
        assert re.search(message, err), (name, err)


def test_forecast_out_must_be_named_csv(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It wrote CSV into f.txt (or a file with no suffix at all) without a word.
    mine = tmp_path / "mine.txt"
    mine.write_text("my notes\n")
    for name, force in ((tmp_path / "f.txt", []), (tmp_path / "f", []), (mine, ["--force"]),
                        (tmp_path / "f.csv.bak", [])):  # fmt: skip
        argv = ["forecast", str(run), "--out", str(name), *force]
        assert refused_whole(capsys, argv, tmp_path) == (
            f"rnnkit forecast: error: --out: expected a file name ending in .csv; got {name}"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    assert mine.read_text() == "my notes\n"
    assert main(["forecast", str(run), "--out", str(tmp_path / "F.CSV")]) == 0  # any case
    assert (tmp_path / "F.CSV").read_text().startswith("series,step,forecast,lo80,hi80\n")


def test_forecast_force_replaces_atomically_and_replaces_links(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, plot = tmp_path / "f.csv", tmp_path / "f.png"
    assert main(["forecast", str(run), "--out", str(out), "--plot", str(plot)]) == 0
    first = out.read_text()
    assert first.startswith("series,step,forecast,lo80,hi80\n")
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    plot.unlink()
    plot.symlink_to(precious)
    argv = ["forecast", str(run), "--out", str(out), "--plot", str(plot), "--force"]
    assert main(argv) == 0
    assert out.read_text() == first
    assert not plot.is_symlink() and plot.read_bytes()[:4] == b"\x89PNG"
    assert precious.read_text() == "precious\n"  # the link was replaced, not followed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_eval_out_refuses_a_users_figure_and_leaves_nothing(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "forecast.png").write_text("my own figure\n")
    err = refused(["eval", str(run), "--out", str(figs)], tmp_path, capsys)
    assert err.endswith(
        f"--out {figs} already holds forecast.png; pass --force to replace "
        "it, or name another folder"
    )
    assert main(["eval", str(run), "--out", str(figs), "--force"]) == 0
    assert (figs / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert f"figure: {figs / 'forecast.png'}" in capsys.readouterr().out
    new = tmp_path / "new"
    assert main(["eval", str(run), "--out", str(new)]) == 0
    assert sorted(p.name for p in new.iterdir()) == ["forecast.png"]
    afile = tmp_path / "afile.txt"
    afile.write_text("x\n")
    assert refused(["eval", str(run), "--out", str(afile)], tmp_path, capsys) == (
        f"rnnkit eval: error: --out: {afile} is a file; expected a folder"
    )
    assert "does not exist" in refused(
        ["eval", str(run), "--out", str(afile / "sub")], tmp_path, capsys
    )


def test_eval_rewrites_its_own_figure_in_the_run_and_replaces_a_link(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    (copy / "forecast.png").unlink()
    (copy / "forecast.png").symlink_to(precious)
    assert main(["eval", str(copy)]) == 0
    assert precious.read_text() == "precious\n"
    assert (copy / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in copy.iterdir() if p.name.startswith(".rnnkit-")]


def test_train_out_under_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    err = refused(
        ["train", "adding", "--steps", "1", "--out", str(afile / "run")], tmp_path, capsys
    )
    assert err == (
        f"rnnkit train: error: --out: cannot make the folder {afile / 'run'} (Not a "
        "directory); expected an existing folder or a new one in a folder you may write to"
    )


def test_train_api_out_under_a_file_is_one_line(tmp_path: Path) -> None:
    # The CLI says it naming --out before the data is read; rnnkit.train itself, here.
    from rnnkit.train import TrainConfig, train
    from rnnkit.train.runfolder import RunFolderError

    afile = tmp_path / "afile"
    afile.write_text("x\n")
    out = afile / "run"
    message = (
        f"cannot make the run folder {out}: Not a directory; expected a path whose existing "
        "parts are folders"
    )
    with pytest.raises(RunFolderError, match="^" + re.escape(message) + "$"):
        train("adding", {"hidden_size": 4}, TrainConfig(steps=1), out=out)
    assert afile.read_text() == "x\n" and sorted(tmp_path.iterdir()) == [afile]


def test_train_out_the_system_refuses_to_make_is_named_before_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/sys/tx: os.access allows root, and the run folder said 'cannot make the run folder
    /sys/tx: Operation not permitted' naming no flag."""
    import errno

    from rnnkit.tasks.memory import AddingTask

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the data was made before --out was refused")

    monkeypatch.setattr(AddingTask, "prepare", never)
    mkdir = Path.mkdir
    for target in (tmp_path / "tx", tmp_path / "new" / "deeper" / "tx"):
        refused_at = target if target.parent == tmp_path else tmp_path / "new"

        def refuse(self: Path, *args: object, _at: Path = refused_at, **kwargs: object) -> None:
            if self == _at:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(self))
            mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
        argv = ["train", "adding", "--steps", "1", "--hidden", "4", "--out", str(target)]
        assert refused_whole(capsys, argv, tmp_path) == (
            f"rnnkit train: error: --out: cannot make the folder {refused_at} (Operation not "
            "permitted); expected an existing folder or a new one in a folder you may write to"
        )
        monkeypatch.setattr(Path, "mkdir", mkdir)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    not Path("/sys/class").is_dir() or os.access("/sys", os.W_OK) is False,
    reason="needs a /sys that permissions let this process write to",
)
def test_train_out_in_sys_is_refused_naming_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = Path("/sys/rnnkit-tx")
    try:
        target.mkdir()
    except OSError as err:
        why = err.strerror
    else:  # a /sys that takes folders: nothing to check here
        target.rmdir()
        pytest.skip("this /sys lets a folder be made")
    argv = ["train", "adding", "--steps", "1", "--hidden", "4", "--out", str(target)]
    assert refused_whole(capsys, argv, tmp_path) == (
        f"rnnkit train: error: --out: cannot make the folder {target} ({why}); expected an "
        "existing folder or a new one in a folder you may write to"
    )
    assert not target.exists()


def test_eval_draws_outside_the_run_folder_so_a_kill_leaves_it_resumable(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from rnnkit.tasks.forecast import ForecastTask
    from rnnkit.train.runfolder import RunFolder

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    drawn = ForecastTask.report
    seen: list[list[str]] = []

    def report(self, model, run_dir, out_dir):  # the moment a kill could come
        seen.append([p.name for p in copy.iterdir() if p.is_dir()])
        assert not Path(out_dir).is_relative_to(copy)
        return drawn(self, model, run_dir, out_dir)

    monkeypatch.setattr(ForecastTask, "report", report)
    assert main(["eval", str(copy)]) == 0
    assert seen == [[]]
    RunFolder(copy, ForecastTask.extra_files).check_owned()  # --resume would accept it


def test_eval_refuses_a_known_clash_before_loading_anything(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rnnkit.cli.eval as eval_command

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model was loaded before the clash was refused")

    monkeypatch.setattr(eval_command, "load", never)
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "forecast.png").write_text("mine\n")
    err = refused(["eval", str(run), "--out", str(figs)], tmp_path, capsys)
    assert err.endswith("already holds forecast.png; pass --force to replace it, or name "
                        "another folder")  # fmt: skip


def test_no_command_writes_into_a_run_folder(
    adding_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file or folder rnnkit does not own makes the run refuse --resume; an export with
    # --force over model.safetensors would have replaced the run's weights.
    run = adding_run
    calls = [
        ["export", str(run), "--out", str(run / "mine.onnx")],
        ["export", str(run), "--out", str(run / "model.safetensors"), "--force"],
        ["explain", "bptt", "--length", "3", "--out", str(run)],
        ["explain", "bptt", "--length", "3", "--out", str(run / "figs")],
        ["train", "adding", "--steps", "1", "--out", str(run / "inner")],
        ["demo", "--steps", "1", "--out", str(run / "a" / "b")],
    ]
    for argv in calls:
        err = refused(argv, run.parent, capsys)
        assert "outside any run folder; got one inside the run folder" in err, err
        assert err.endswith(str(run)) or f"{run}," in err, err
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 0


def test_export_refuses_a_folder_as_out_before_exporting(
    adding_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["export", str(adding_run), "--out", str(tmp_path), "--force"], tmp_path, capsys)
    assert err == f"rnnkit export: error: --out: {tmp_path} is a folder; expected a file name"


def test_eval_draws_no_figure_into_another_run(
    run: Path, adding_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # forecast.png in an adding run is a file that run does not own: --resume refused it.
    for out in (adding_run, adding_run / "figs"):
        err = refused(["eval", str(run), "--out", str(out), "--force"], adding_run.parent, capsys)
        assert err == (
            f"rnnkit eval: error: --out {out}: expected a path outside any run folder; got one "
            f"inside the run folder {adding_run}"
        )
    # nor do rnnkit forecast's CSV and figure land in another run
    for flag, name in (("--out", "f.csv"), ("--plot", "f.png")):
        argv = ["forecast", str(run), flag, str(adding_run / name), "--force"]
        err = refused(argv, adding_run.parent, capsys)
        assert err == (
            f"rnnkit forecast: error: {flag} {adding_run / name}: expected a path outside any "
            f"run folder; got one inside the run folder {adding_run}"
        )


def test_export_int8_leaves_no_folder_in_the_run_when_killed(
    adding_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import onnxruntime.quantization as quantization

    from rnnkit.train.runfolder import RunFolder

    copy = tmp_path / "run"
    shutil.copytree(adding_run, copy)
    quantize = quantization.quantize_dynamic
    seen: list[list[str]] = []

    def spy(*args: object, **kwargs: object) -> None:  # the moment a kill could come
        seen.append([p.name for p in copy.iterdir() if p.is_dir()])
        quantize(*args, **kwargs)

    monkeypatch.setattr(quantization, "quantize_dynamic", spy)
    assert main(["export", str(copy), "--int8"]) == 0
    assert seen == [[]]
    assert (copy / "model-step.int8.onnx").is_file()
    RunFolder(copy).check_owned()  # --resume would accept it


def test_eval_of_a_run_that_draws_nothing_refuses_out(
    adding_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An adding run's evaluation writes no figure: --out was accepted and left empty.
    for flags in (["--out", str(tmp_path / "figs")], ["--force"]):
        err = refused(["eval", str(adding_run), *flags], tmp_path, capsys)
        want = f"error: {flags[0]}: the evaluation of a run of task 'adding' writes no figure"
        assert err.endswith(want), err
    assert list(tmp_path.iterdir()) == []


# ---- --out as a folder: named in one line before the work ---------------------------------


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """rnnkit eval may not load the model (or run the task's report) before it refuses."""
    import rnnkit.cli.eval as eval_command
    from rnnkit.tasks.forecast import ForecastTask

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the work began before --out was refused")

    monkeypatch.setattr(eval_command, "load", never)
    monkeypatch.setattr(ForecastTask, "report", never)


def test_eval_out_never_follows_a_symbolic_link(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    """A dangling link ended in '[Errno 17] File exists'; a link to a folder was written
    through; a link to the run itself counted as the run (README: --out never follows a
    link, and train --out refused one)."""
    eo, links = tmp_path / "eo", tmp_path / "links"
    eo.mkdir()
    links.mkdir()
    targets = {"dangling": tmp_path / "nowhere", "to-folder": eo, "to-run": run}
    for name, target in targets.items():
        (links / name).symlink_to(target)
    in_run = snapshot(run)
    for name in targets:
        link = links / name
        err = refused_whole(capsys, ["eval", str(run), "--out", str(link)], eo)
        assert err == (
            f"rnnkit eval: error: --out: {link} is a symbolic link; expected a folder (rnnkit "
            "does not follow links)"
        )
    assert list(eo.iterdir()) == [] and not (tmp_path / "nowhere").exists()
    assert {p.name: p.readlink() for p in links.iterdir()} == targets
    assert snapshot(run) == in_run


def test_eval_out_a_file_or_an_unwritable_folder_before_loading(
    run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_work: None,
) -> None:
    afile = tmp_path / "f.txt"
    afile.write_text("mine\n")
    err = refused_whole(capsys, ["eval", str(run), "--out", str(afile)], tmp_path)
    assert err == f"rnnkit eval: error: --out: {afile} is a file; expected a folder"
    # Permissions as os.access reports them (a root process passes every folder).
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and access(p, mode))
    err = refused_whole(capsys, ["eval", str(run), "--out", str(locked / "figs")], tmp_path)
    assert err == (
        f"rnnkit eval: error: --out: the folder that would hold {locked / 'figs'} is not "
        "writable; expected a folder you may write to"
    )
    err = refused_whole(capsys, ["eval", str(run), "--out", str(locked)], tmp_path)
    assert err == (
        f"rnnkit eval: error: --out: the folder {locked} is not writable; expected a folder "
        "you may write to"
    )
    err = refused_whole(capsys, ["forecast", str(run), "--out", str(locked / "f.csv")], tmp_path)
    assert err == (
        f"rnnkit forecast: error: --out: the folder of {locked / 'f.csv'} is not writable; "
        "expected a folder you may write to"
    )


def test_eval_out_the_system_refuses_to_make_is_named_before_the_report(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/sys/evx: os.access allows root, and mkdir said '[Errno 1] Operation not permitted:
    '/sys/evx'' naming no flag."""
    import errno

    from rnnkit.tasks.forecast import ForecastTask

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model ran before --out was refused")

    monkeypatch.setattr(ForecastTask, "report", never)
    target = tmp_path / "evx"
    mkdir = Path.mkdir

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if self == target:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    err = refused_whole(capsys, ["eval", str(run), "--out", str(target)], tmp_path)
    assert err == (
        f"rnnkit eval: error: --out: cannot make the folder {target} (Operation not "
        "permitted); expected an existing folder or a new one in a folder you may write to"
    )


def test_eval_out_a_figure_the_system_refuses_to_write_is_named(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal when the figure is written (a full or read-only disk) named the temporary
    file atomic_write makes first; the folder made for it is removed again."""
    import errno

    import rnnkit.cli._outputs as outputs

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) + ".x.tmp")

    monkeypatch.setattr(outputs, "atomic_write", full)
    figs = tmp_path / "figs"
    err = refused_whole(capsys, ["eval", str(run), "--out", str(figs)], tmp_path)
    assert err == (
        f"rnnkit eval: error: --out: cannot write {figs / 'forecast.png'} (No space left on "
        "device); expected a file in a folder you may write to"
    )


def test_forecast_outputs_the_system_refuses_to_write_are_named(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rnnkit forecast --out on a full or read-only disk named the temporary file
    atomic_write makes first; --plot named no flag."""
    import errno

    import rnnkit.cli._outputs as outputs
    import rnnkit.train.files as files

    def full(path: Path, *_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) + ".x.tmp")

    monkeypatch.setattr(outputs, "atomic_write", full)
    out = tmp_path / "f.csv"
    err = refused_whole(capsys, ["forecast", str(run), "--out", str(out)], tmp_path)
    assert err == (
        f"rnnkit forecast: error: --out: cannot write {out} (No space left on device); "
        "expected a file in a folder you may write to"
    )
    monkeypatch.setattr(files, "write_figure", full)
    plot = tmp_path / "f.png"
    err = refused_whole(capsys, ["forecast", str(run), "--plot", str(plot)], tmp_path)
    assert err == (
        f"rnnkit forecast: error: --plot: cannot write {plot} (No space left on device); "
        "expected a file in a folder you may write to"
    )


def test_train_out_a_file_or_a_link_is_refused_in_evals_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file said 'd.ts exists and is not a folder', a link 'el is a symbolic link; give
    the folder itself': neither named --out."""
    afile = tmp_path / "d.ts"
    afile.write_text("mine\n")
    (tmp_path / "eo").mkdir()
    link = tmp_path / "el"
    link.symlink_to(tmp_path / "eo")
    train = ["train", "adding", "--steps", "2", "--hidden", "4", "--out"]
    assert refused_whole(capsys, [*train, str(afile)], tmp_path) == (
        f"rnnkit train: error: --out: {afile} is a file; expected a folder"
    )
    assert refused_whole(capsys, [*train, str(link)], tmp_path) == (
        f"rnnkit train: error: --out: {link} is a symbolic link; expected a folder (rnnkit "
        "does not follow links)"
    )
    assert afile.read_text() == "mine\n" and list((tmp_path / "eo").iterdir()) == []


def test_the_closing_hint_quotes_a_run_folder_with_spaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Copied into a shell, "--resume runs/en 1" named the folder "runs/en".
    out = tmp_path / "my runs" / "adding 1"
    argv = ["train", "adding", "--length", "10", "--hidden", "4", "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--n-val", "8", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"  continue: rnnkit train --resume '{out}' --steps N" in lines
    assert f"  load:     rnnkit.load('{out}')" in lines
