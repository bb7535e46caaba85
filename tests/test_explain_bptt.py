"""BPTT by its recurrences (chapter 10.7, 10.15) against autograd, and `rnnkit explain bptt`."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from PIL import Image
from torch import nn

import rnnkit
from rnnkit.cli import main
from rnnkit.explain.bptt import (
    TOLERANCE,
    CellCheck,
    autograd_bptt,
    lstm_bptt,
    rnn_bptt,
    run_bptt,
    sample,
)

F64 = torch.float64


def _build(cell: str, I: int, H: int, O: int, *, bias: bool = True, **options):
    layer_class = rnnkit.LSTM if cell == "lstm" else rnnkit.RNN
    layer = layer_class(I, H, bias=bias, dtype=F64, **options)
    head = nn.Linear(H, O, bias=bias, dtype=F64)
    return layer, head


def _backward_of_the_layer(layer, head, data, lstm: bool) -> dict[str, torch.Tensor]:
    """loss.backward() through the layer over the whole sequence: each parameter's .grad."""
    x = data["x"].clone().requires_grad_(True)
    h0 = data["h0"].clone().requires_grad_(True)
    c0 = data["c0"].clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    out, _ = layer(x, (h0[None], c0[None]) if lstm else h0[None])
    (0.5 * (head(out) - data["target"]).pow(2).sum()).backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    grads |= {f"head.{name}": p.grad for name, p in head.named_parameters()}
    grads |= {"x": x.grad, "h0": h0.grad}
    if lstm:
        grads["c0"] = c0.grad
    return grads


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize(
    ("T", "B", "I", "H", "seed"),
    [(1, 1, 1, 1, 0), (1, 1, 3, 4, 1), (6, 1, 2, 3, 2), (9, 3, 4, 5, 3), (12, 2, 3, 4, 4)],
)
def test_recurrences_equal_the_layers_own_gradients(cell, T, B, I, H, seed) -> None:
    torch.manual_seed(seed)
    layer, head = _build(cell, I, H, 2)
    data = sample(T, B, I, H, 2, seed)
    lstm = cell == "lstm"
    if lstm:
        mine = lstm_bptt(layer, head, data["x"], data["target"], data["h0"], data["c0"])
    else:
        mine = rnn_bptt(layer, head, data["x"], data["target"], data["h0"])
    reference = _backward_of_the_layer(layer, head, data, lstm)
    expected = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "head.weight"}
    expected |= {"head.bias", "x", "h0"} | ({"c0"} if lstm else set())
    assert set(mine.grads) == set(reference) == expected
    for name, grad in reference.items():
        assert mine.grads[name].shape == grad.shape
        assert (mine.grads[name] - grad).abs().max() <= TOLERANCE, name
        assert grad.abs().max() > 1e-6, name  # a real gradient, not zeros on both sides
    assert mine.delta_h.shape == (T, B, H)
    assert (mine.delta_c is not None) == lstm and (mine.forget is not None) == lstm


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_deltas_at_every_step_equal_autograd(cell) -> None:
    result = run_bptt(cell=cell, length=7, batch=3, input_size=2, hidden=5, seed=5)
    (check,) = result.cells
    diffs = check.differences()
    assert {"delta_h", "loss"} <= set(diffs) and ("delta_c" in diffs) == (cell == "lstm")
    assert check.max_difference() <= TOLERANCE
    assert check.autograd.delta_h.shape == (7, 3, 5)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_last_step_has_only_its_own_loss(cell) -> None:
    """δh^{T−1} = W_hyᵀ ∂L^{T−1}/∂y^{T−1}: nothing comes back from a later step."""
    torch.manual_seed(2)
    layer, head = _build(cell, 3, 4, 2)
    data = sample(5, 2, 3, 4, 2, 2)
    states = (data["h0"], data["c0"]) if cell == "lstm" else (data["h0"],)
    bptt = lstm_bptt if cell == "lstm" else rnn_bptt
    mine = bptt(layer, head, data["x"], data["target"], *states)
    with torch.no_grad():
        initial = tuple(s[None] for s in states)
        out, _ = layer(data["x"], initial if cell == "lstm" else initial[0])
        expected = (head(out[-1]) - data["target"][-1]) @ head.weight
    assert (mine.delta_h[-1] - expected).abs().max() <= TOLERANCE
    assert (mine.delta_h[-2] - expected).abs().max() > 1e-3  # earlier steps get more


def test_without_biases() -> None:
    torch.manual_seed(0)
    for cell in ("rnn", "lstm"):
        layer, head = _build(cell, 3, 4, 2, bias=False)
        data = sample(5, 2, 3, 4, 2, 0)
        states = (data["h0"], data["c0"]) if cell == "lstm" else (data["h0"],)
        bptt = lstm_bptt if cell == "lstm" else rnn_bptt
        mine = bptt(layer, head, data["x"], data["target"], *states)
        reference = autograd_bptt(layer, head, data["x"], data["target"], *states)
        assert "bias_ih_l0" not in mine.grads and "head.bias" not in mine.grads
        assert CellCheck(cell, mine, reference).max_difference() <= TOLERANCE


def test_autograd_bptt_sets_the_parameters_grad() -> None:
    torch.manual_seed(1)
    layer, head = _build("lstm", 2, 3, 2)
    data = sample(4, 2, 2, 3, 2, 1)
    args = (layer, head, data["x"], data["target"], data["h0"], data["c0"])
    reference = autograd_bptt(*args)
    mine = lstm_bptt(*args)
    assert torch.equal(reference.grads["weight_hh_l0"], layer.weight_hh_l0.grad)
    assert (mine.grads["weight_hh_l0"] - layer.weight_hh_l0.grad).abs().max() <= TOLERANCE
    assert (mine.grads["head.weight"] - head.weight.grad).abs().max() <= TOLERANCE


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_autograd_bptt_refuses_a_frozen_parameter_and_changes_nothing(cell) -> None:
    # A parameter with requires_grad=False kept .grad None: an AttributeError on None.
    torch.manual_seed(2)
    layer, head = _build(cell, 3, 4, 2)
    data = sample(3, 2, 3, 4, 2, 2)
    states = (data["h0"], data["c0"]) if cell == "lstm" else (data["h0"],)
    layer.bias_hh_l0.requires_grad_(False)
    head.weight.requires_grad_(False)
    earlier = torch.full_like(layer.weight_ih_l0, 7.0)
    layer.weight_ih_l0.grad = earlier.clone()
    message = (
        "autograd_bptt: every parameter of layer and head must require grad; "
        "got requires_grad=False for bias_hh_l0, head.weight"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        autograd_bptt(layer, head, data["x"], data["target"], *states)
    assert torch.equal(layer.weight_ih_l0.grad, earlier)  # refused before zero_grad
    layer.bias_hh_l0.requires_grad_(True)
    head.weight.requires_grad_(True)
    bptt = lstm_bptt if cell == "lstm" else rnn_bptt
    mine = bptt(layer, head, data["x"], data["target"], *states)
    reference = autograd_bptt(layer, head, data["x"], data["target"], *states)
    assert CellCheck(cell, mine, reference).max_difference() <= TOLERANCE


def test_autograd_bptt_ignores_a_c0_given_with_an_rnn() -> None:
    torch.manual_seed(3)
    layer, head = _build("rnn", 3, 4, 2)
    data = sample(3, 2, 3, 4, 2, 3)
    args = (layer, head, data["x"], data["target"], data["h0"])
    with_c0 = autograd_bptt(*args, data["c0"])
    assert "c0" not in with_c0.grads and with_c0.delta_c is None
    mine = rnn_bptt(*args)
    assert CellCheck("rnn", mine, with_c0).max_difference() <= TOLERANCE


def test_golden_values_and_determinism() -> None:
    first, second = run_bptt(), run_bptt()
    report = first.report()
    assert "RNN (tanh): L = 26.540072" in report
    assert "LSTM: L = 27.064324" in report
    rnn, lstm = first.cells
    assert float(rnn.recurrences.delta_h[0].norm()) == pytest.approx(1.098042, abs=1e-6)
    assert float(lstm.recurrences.delta_c[0].norm()) == pytest.approx(0.7591641, abs=1e-7)
    for a, b in zip(first.cells, second.cells, strict=True):
        assert a.recurrences.grads.keys() == b.recurrences.grads.keys()
        for name in a.recurrences.grads:
            assert torch.equal(a.recurrences.grads[name], b.recurrences.grads[name])


def test_report_lines_and_a_wrong_gradient_is_reported() -> None:
    result = run_bptt(length=4, hidden=3)
    report = result.report()
    lines = report.splitlines()
    assert "check: the recurrences equal autograd for RNN (tanh) and LSTM" in report
    assert "<= 1e-12 (float64)" in report
    header = lines.index(next(line for line in lines if "mean f^t" in line))
    assert [int(line.split()[0]) for line in lines[header + 1 : header + 5]] == [3, 2, 1, 0]
    assert sum(line.startswith("weight_hh_l0") for line in lines) == 2
    # A recurrence with a mistake (here: one weight gradient off by 1e-9) fails the check.
    rnn, lstm = result.cells
    grads = dict(rnn.recurrences.grads)
    grads["weight_hh_l0"] = grads["weight_hh_l0"] + 1e-9
    wrong = CellCheck(rnn.name, dataclasses.replace(rnn.recurrences, grads=grads), rnn.autograd)
    bad = dataclasses.replace(result, cells=[wrong, lstm]).report()
    assert "the recurrences do NOT equal autograd" in bad and "1.0e-09 > 1e-12" in bad


def test_bptt_command(tmp_path, capsys) -> None:
    argv = ["explain", "bptt", "--length", "3", "--hidden", "2", "--batch", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "check: the recurrences equal autograd for RNN (tanh) and LSTM" in out
    assert "T = 3, B = 1, I = 3, H = 2" in out
    path = tmp_path / "bptt.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 200
    assert path.stat().st_size < 100_000
    assert main(["explain", "bptt", "--cell", "rnn", "--length", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "RNN (tanh): L =" in out and "LSTM" not in out and "δc^t" not in out


def test_bptt_command_bad_arguments_exit_2(tmp_path, capsys) -> None:
    for bad in (["--cell", "gru"], ["--length", "0"], ["--batch", "-1"], ["--hidden", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(["explain", "bptt", *bad])
        assert exc.value.code == 2
    capsys.readouterr()
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["explain", "bptt", "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert err == f"rnnkit explain: error: --out: {afile} is a file; expected a folder\n"
    (tmp_path / "figures").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "figures", target_is_directory=True)
    assert main(["explain", "bptt", "--out", str(link)]) == 2
    assert capsys.readouterr().err == (
        f"rnnkit explain: error: --out: {link} is a symbolic link; expected a folder (rnnkit "
        "does not follow links)\n"
    )
    assert not any((tmp_path / "figures").iterdir())


@pytest.mark.parametrize(
    ("cell", "options", "message"),
    [
        ("rnn", {"bidirectional": True},
         "{f}: layer must be unidirectional; got bidirectional=True"),
        ("lstm", {"num_layers": 2}, "{f}: layer must have num_layers=1; got 2"),
        ("rnn", {"batch_first": True},
         "{f}: layer must be time-major (T, B, I); got batch_first=True"),
        ("rnn", {"nonlinearity": "relu"}, "{f}: layer must use nonlinearity='tanh'; got 'relu'"),
        ("lstm", {"layer_norm": True}, "{f}: layer must not use layer_norm, zoneout or "
         "recurrent_dropout; got layer_norm=True"),
        ("rnn", {"zoneout": 0.1}, "{f}: layer must not use layer_norm, zoneout or "
         "recurrent_dropout; got zoneout=0.1"),
        ("lstm", {"recurrent_dropout": 0.2}, "{f}: layer must not use layer_norm, zoneout or "
         "recurrent_dropout; got recurrent_dropout=0.2"),
    ],
)  # fmt: skip
def test_refuses_layers_it_does_not_cover(cell, options, message) -> None:
    layer, head = _build(cell, 3, 4, 2, **options)
    data = sample(2, 2, 3, 4, 2, 0)
    states = (data["h0"], data["c0"]) if cell == "lstm" else (data["h0"],)
    bptt = lstm_bptt if cell == "lstm" else rnn_bptt
    for function in (bptt, autograd_bptt):  # the message names the function called
        whole = message.format(f=function.__name__)
        with pytest.raises(ValueError, match="^" + re.escape(whole) + "$"):
            function(layer, head, data["x"], data["target"], *states)


def test_refuses_wrong_arguments() -> None:
    layer, head = _build("rnn", 3, 4, 2)
    data = sample(2, 2, 3, 4, 2, 0)
    x, target, h0 = data["x"], data["target"], data["h0"]
    gru = rnnkit.GRU(3, 4, dtype=F64)
    with pytest.raises(
        TypeError, match="^" + re.escape("rnn_bptt: layer must be an rnnkit.RNN; got GRU") + "$"
    ):
        rnn_bptt(gru, head, x, target, h0)
    lstm, _ = _build("lstm", 3, 4, 2)
    with pytest.raises(
        TypeError, match="^" + re.escape("lstm_bptt: layer must be an rnnkit.LSTM; got RNN") + "$"
    ):
        lstm_bptt(layer, head, x, target, h0, h0)
    with pytest.raises(TypeError, match=re.escape("c0 must be a torch.Tensor; got NoneType")):
        autograd_bptt(lstm, head, x, target, h0)
    with pytest.raises(
        TypeError, match=re.escape("head must be a torch.nn.Linear; got Sequential")
    ):
        rnn_bptt(layer, nn.Sequential(head), x, target, h0)
    with pytest.raises(
        ValueError, match=re.escape("head.in_features must equal the layer's hidden_size 4")
    ):
        rnn_bptt(layer, nn.Linear(5, 2, dtype=F64), x, target, h0)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, 3\) with T, B >= 1"):
        rnn_bptt(layer, head, x[..., :2], target, h0)
    with pytest.raises(ValueError, match=r"target must have shape \(2, 2, 2\); got \(2, 2, 3\)"):
        rnn_bptt(layer, head, x, x, h0)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\); got \(1, 2, 4\)"):
        rnn_bptt(layer, head, x, target, h0[None])
    with pytest.raises(
        ValueError, match=re.escape("x.dtype must equal the layer's parameters.dtype")
    ):
        rnn_bptt(layer, head, x.float(), target, h0)
    with pytest.raises(ValueError, match=re.escape("bptt: cell must be one of")):
        run_bptt(cell="gru")
    with pytest.raises(
        ValueError, match=re.escape("bptt: length must be a positive integer; got 0")
    ):
        run_bptt(length=0)
    with pytest.raises(
        ValueError, match=re.escape("bptt: seed must be a non-negative integer; got -1")
    ):
        run_bptt(seed=-1)
