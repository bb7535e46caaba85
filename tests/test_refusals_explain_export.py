"""Refusals found by using explain, export and demo as a careless user would: each one a
single line naming the argument, and nothing written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import rnnkit
from _refusals import raises_exactly, refused
from rnnkit.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield  # the commands set one thread themselves (--threads, default 1)
    torch.set_num_threads(threads)


# ---- export ---------------------------------------------------------------------------


def test_quantize_onnx_refuses_a_graph_it_would_leave_float(tmp_path: Path) -> None:
    """A GRU's sequence graph uses ONNX's own GRU operator, which onnxruntime cannot
    quantize: the "int8" copy was the float graph, its metadata saying int8 weights."""
    pytest.importorskip("onnxruntime")
    from rnnkit.export import export_onnx, quantize_onnx

    torch.manual_seed(0)
    proto = export_onnx(rnnkit.GRU(3, 4), mode="sequence")
    assert {n.op_type for n in proto.graph.node} >= {"GRU"}  # the native operator
    dst = tmp_path / "int8.onnx"
    raises_exactly(
        ValueError,
        "quantize_onnx: no weight of src is read by an operator of op_types ['MatMul', "
        "'Gather']; expected op types the graph uses with constant weights (MatMul, Gather; "
        "LSTM for a native LSTM operator); nothing was written",
        quantize_onnx, proto, dst,
    )  # fmt: skip
    step = export_onnx(rnnkit.GRU(3, 4), mode="step")
    raises_exactly(
        ValueError,
        "quantize_onnx: no weight of src is read by an operator of op_types ['Conv']; "
        "expected op types the graph uses with constant weights (MatMul, Gather; LSTM for a "
        "native LSTM operator); nothing was written",
        quantize_onnx, step, dst, op_types=("Conv",),
    )  # fmt: skip
    # A string was read letter by letter, and quantized nothing either.
    raises_exactly(
        ValueError, "quantize_onnx: op_types must name operators; got 'MatMul'",
        quantize_onnx, step, dst, op_types="MatMul",
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    quantize_onnx(step, dst)  # what it can quantize it still does
    assert dst.is_file()


def test_export_onnx_names_a_path_the_system_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/proc/x.onnx: the OS's refusal named the temporary file, not the path or the call."""
    pytest.importorskip("onnxruntime")
    import rnnkit.train.files as files
    from rnnkit.export import export_onnx, quantize_onnx

    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), f"{path}.tmp")

    monkeypatch.setattr(files, "atomic_write", refuse)
    target = tmp_path / "m.onnx"
    why = os.strerror(errno.EACCES)
    raises_exactly(
        PermissionError,
        f"export_onnx: cannot write {target} ({why}); expected a file in a folder you may "
        "write to",
        export_onnx, rnnkit.GRU(2, 3), target,
    )  # fmt: skip
    proto = export_onnx(rnnkit.GRU(2, 3))
    raises_exactly(
        PermissionError,
        f"quantize_onnx: cannot write {target} ({why}); expected a file in a folder you may "
        "write to",
        quantize_onnx, proto, target,
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# ---- explain: the Python functions ----------------------------------------------------


def test_gradient_flow_models_must_be_names() -> None:
    from rnnkit.explain import run_gradient_flow

    names = "('RNN tanh', 'RNN relu', 'GRU', 'LSTM')"
    raises_exactly(
        TypeError,
        f"gradient-flow: models must be a non-empty tuple of names from {names}; got 'GRU'",
        run_gradient_flow, length=3, steps=0, models="GRU",
    )  # fmt: skip
    raises_exactly(
        TypeError,
        f"gradient-flow: models must be a non-empty tuple of names from {names}; got ()",
        run_gradient_flow, length=3, steps=0, models=(),
    )  # fmt: skip
    raises_exactly(
        ValueError, f"gradient-flow: model must be one of {names}; got 'X'",
        run_gradient_flow, length=3, steps=0, models=("X",),
    )  # fmt: skip
    raises_exactly(
        ValueError, "gradient-flow: models must not repeat a name; got ('GRU', 'GRU')",
        run_gradient_flow, length=3, steps=0, models=("GRU", "GRU"),
    )  # fmt: skip


def test_gradient_flow_reports_the_lstm_gap_only_when_it_measured_the_lstm() -> None:
    """Without the LSTM the report claimed "LSTM: ... = nan" for a model never run."""
    from rnnkit.explain import run_gradient_flow

    without = run_gradient_flow(length=4, hidden=3, steps=0, models=("GRU",)).report()
    assert "GRU" in without and "LSTM" not in without
    with_lstm = run_gradient_flow(length=4, hidden=3, steps=0, models=("LSTM",))
    gap = with_lstm.stages["initialisation"].gap
    assert f"LSTM: ‖∂c^t/∂c^(t-1) - diag(f^t)‖ / ‖diag(f^t)‖ = {gap:.3f}" in with_lstm.report()


def test_compare_cells_and_scaling_lengths_are_checked() -> None:
    from rnnkit.explain import run_compare

    small = {"hidden": 2, "input_size": 1, "length": 2, "batch": 1, "repeats": 1, "steps": 0}
    raises_exactly(
        TypeError,
        "compare: cells must be a non-empty list of CellKind (see available_cells()); got []",
        run_compare, cells=[], scaling_lengths=(), **small,
    )  # fmt: skip
    raises_exactly(
        TypeError,
        "compare: cells must hold CellKind entries (see available_cells()); got 'GRU'",
        run_compare, cells=["GRU"], scaling_lengths=(), **small,
    )  # fmt: skip
    raises_exactly(
        TypeError,
        "compare: scaling_lengths must be a tuple of integers such as (25, 50); got '25'",
        run_compare, scaling_lengths="25", **small,
    )  # fmt: skip


@pytest.mark.parametrize("lr", [float("nan"), 0.0, -1e-3, float("inf"), True, "1e-3"])
def test_rnn_loop_learning_rate_is_checked_before_any_work(lr: object) -> None:
    from rnnkit.explain.rnn_loop import run_rnn_loop

    raises_exactly(
        ValueError, f"rnn-loop: lr must be a finite number > 0; got {lr!r}",
        run_rnn_loop, lr=lr, files=[], root=Path("/nonexistent"),
    )  # fmt: skip


# ---- explain: --out -------------------------------------------------------------------


def test_explain_out_the_system_refuses_to_make_is_named_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/proc/foo: the experiment ran, printed its report, then the folder failed to be
    made with "[Errno 2] No such file or directory: '/proc/foo'", naming no flag."""
    import rnnkit.explain as explain

    def never(**_kwargs: object) -> None:
        raise AssertionError("the experiment ran before --out was refused")

    monkeypatch.setattr(explain, "run_bptt", never)
    mkdir = Path.mkdir
    target = tmp_path / "new" / "figures"

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if self == tmp_path / "new":
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    argv = ["explain", "bptt", "--device", "cpu", "--out", str(target)]
    assert refused(capsys, argv, tmp_path) == (
        f"rnnkit explain: error: --out: cannot make the folder {tmp_path / 'new'} (Operation "
        "not permitted); expected an existing folder or a new one in a folder you may write to"
    )
    assert list(tmp_path.iterdir()) == []


def test_explain_figure_the_system_refuses_to_write_is_one_line_naming_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rnnkit.train.files as files

    def refuse(fig: object, path: Path, **_kwargs: object) -> None:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), f"{path}.tmp")

    monkeypatch.setattr(files, "write_figure", refuse)
    argv = ["explain", "bptt", "--length", "2", "--hidden", "1", "--batch", "1"]
    code = main([*argv, "--device", "cpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"rnnkit explain: error: --out: cannot write {tmp_path / 'bptt.png'} (No such file or "
        "directory); expected a file in a folder you may write to\n"
    )
    assert list(tmp_path.iterdir()) == []


# ---- demo -----------------------------------------------------------------------------


def test_run_demo_checks_out_and_log_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """out="" trained into the working folder (Path("") is "."), out=5 failed inside
    pathlib after the header was printed, log=None at the first line."""
    from rnnkit.demo import run_demo

    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    small = {"steps": 1, "length": 10, "batch": 2, "log": lines.append}
    raises_exactly(
        ValueError, "run_demo: out must name a folder; got an empty string",
        run_demo, out="", **small,
    )  # fmt: skip
    raises_exactly(
        TypeError, "run_demo: out must be a folder path or None; got int",
        run_demo, out=5, **small,
    )  # fmt: skip
    raises_exactly(
        TypeError, "run_demo: log must be a function of one line; got None",
        run_demo, steps=1, length=10, batch=2, log=None,
    )  # fmt: skip
    assert lines == [] and list(tmp_path.iterdir()) == []
