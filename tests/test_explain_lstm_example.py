"""The hand-set 1-unit LSTM memory (chapter 10.16): golden values, checks, CLI."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from rnnkit.cli import main
from rnnkit.explain.lstm_example import (
    DEFAULT_SEQUENCE,
    GATE,
    hand_set_lstm,
    memory_batch,
    parse_sequence,
    run_lstm_example,
    stored_values,
    task_targets,
    trace_model,
)
from rnnkit.layers import LSTM


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def result():
    return run_lstm_example()


def _sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


def test_parse_sequence() -> None:
    x = parse_sequence("0.3, S-0.8,R, e0.25,E")
    expected = [
        [0.3, 0, 0, 0],
        [-0.8, 1, 0, 0],
        [0.0, 0, 1, 0],
        [0.25, 0, 0, 1],
        [0.0, 0, 0, 1],
    ]
    assert x.dtype == torch.float64
    assert x.tolist() == expected
    assert parse_sequence(DEFAULT_SEQUENCE).shape == (16, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "1 to 64 comma-separated steps; got 0"),
        (",".join(["0"] * 65), "1 to 64 comma-separated steps; got 65"),
        ("0.1,X,R", "step 1 is 'X'"),
        ("0.1,,R", "step 1 is ''"),
        ("S", "step 0 is 'S'"),
        ("RS0.5", "step 0 is 'RS0.5'"),
        ("0.5,S1.5", "step 1 has value 1.5; expected one in \\[-1, 1\\]"),
    ],
)
def test_parse_sequence_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sequence(text)


def test_stored_values_and_targets() -> None:
    x = parse_sequence("0.5,S0.4,-0.9,R,S-0.2,R,E,R")
    held, holding = stored_values(x)
    assert held.tolist() == [0.0, 0.4, 0.4, 0.4, -0.2, -0.2, 0.0, 0.0]
    assert holding.tolist() == [False, True, True, True, True, True, False, False]
    y = task_targets(x)
    assert abs(y[3].item() - math.tanh(math.tanh(0.4))) < 1e-15
    assert abs(y[5].item() - math.tanh(math.tanh(-0.2))) < 1e-15
    assert y[[0, 1, 2, 4, 6, 7]].abs().max().item() == 0.0


def test_hand_set_parameters() -> None:
    layer = hand_set_lstm()
    G = GATE
    w = layer.weight_ih_l0.tolist()  # rows i, f, g, o; columns value, store, recall, erase
    assert w == [[0, 2 * G, 0, 0], [0, -2 * G, 0, -2 * G], [1, 0, 0, 0], [0, 0, 2 * G, 0]]
    assert layer.bias_ih_l0.tolist() == [-G, G, 0, -G]
    assert layer.weight_hh_l0.abs().max().item() == 0.0
    assert layer.bias_hh_l0.abs().max().item() == 0.0
    assert layer.weight_ih_l0.dtype == torch.float64


def test_golden_values(result) -> None:
    m = result.hand_set
    golden = {  # (t, gate or state): value, from the equations 10.4-10.7 in float64
        (1, "c"): 0.6640066250141243,
        (1, "h"): 2.6377234300014918e-05,
        (1, "g"): 0.664036770267849,
        (5, "c"): 0.6638630212679142,
        (5, "h"): 0.5809021206732613,
        (7, "c"): 3.013738113856258e-05,
        (13, "c"): -0.5369221126521111,
        (13, "h"): -0.4906323123667647,
        (15, "h"): 0.6145273422165201,
    }
    for (t, name), value in golden.items():
        assert abs(getattr(m, name)[t].item() - value) < 1e-12, (t, name)
    assert abs(m.f[5].item() - _sigmoid(GATE)) < 1e-15
    assert abs(m.f[7].item() - _sigmoid(-GATE)) < 1e-15


def test_every_step_matches_the_equations_by_hand(result) -> None:
    """The chapter's equations in plain Python floats, with the hand-set weights."""
    G = GATE
    c = 0.0
    for t, (v, s, r, e) in enumerate(parse_sequence(DEFAULT_SEQUENCE).tolist()):
        f = _sigmoid(G - 2 * G * s - 2 * G * e)  # (10.4)
        i = _sigmoid(-G + 2 * G * s)  # (10.5)
        g = math.tanh(v)  # (10.5)
        c = f * c + i * g  # (10.6)
        o = _sigmoid(-G + 2 * G * r)  # (10.7)
        h = o * math.tanh(c)  # (10.7)
        m = result.hand_set
        for name, value in zip("figoch", (f, i, g, o, c, h), strict=True):
            assert abs(getattr(m, name)[t].item() - value) < 1e-12, (t, name)


def test_printed_table(result) -> None:
    report = result.report()
    assert (
        "  5 recall  +0.000     0      1     0  0.999955  0.000045  +0.000000  0.999955"
        "  +0.663863  +0.580902"
    ) in report
    assert (
        "  7 erase   +0.000     0      0     1  0.000045  0.000045  +0.000000  0.000045"
        "  +0.000030  +0.000000"
    ) in report
    assert "f (forget)      +0.000   -20.000    +0.000   -20.000   +0.000   +10.000" in report
    assert "σ = 0.999955 (open) or 0.000045 (shut)" in report
    assert "t=13 -0.490632 (-0.490751)" in report


def test_recomputation_equals_the_layer(result) -> None:
    assert result.hand_set.recompute_error <= 1e-12
    assert "equal the layer's: max |Δ| = " in result.report()


@pytest.mark.parametrize("shift", ["h", "c"])
def test_recomputation_check_catches_a_different_layer(shift: str) -> None:
    class Shifted(LSTM):  # a layer whose h^t or c^t is 1e-9 off the equations (10.6, 10.7)
        def forward(self, x, state=None, lengths=None, reset=None):
            out, (h, c) = super().forward(x, state, lengths, reset)
            if shift == "h":
                return out + 1e-9, (h, c)
            return out, (h, c + 1e-9)

    layer = Shifted(4, 1, dtype=torch.float64)
    layer.load_state_dict(hand_set_lstm().state_dict())
    with pytest.raises(ValueError, match=r"differ from the layer's by [1-9]e-09; expected at most"):
        trace_model("shifted", layer, parse_sequence(DEFAULT_SEQUENCE))


def test_the_cell_holds_the_value_and_forgets_it_on_erase(result) -> None:
    c, h, f = result.hand_set.c, result.hand_set.h, result.hand_set.f
    # stored at t = 1, distractors at t = 2, 3, 4, 6, recalled at t = 5, erased at t = 7
    assert (c[1:7] - math.tanh(0.8)).abs().max().item() < 2e-4
    assert f[2:7].min().item() > 0.9999
    assert abs(h[5].item() - math.tanh(math.tanh(0.8))) < 2e-4
    assert h[[2, 3, 4, 6]].abs().max().item() < 1e-4  # the output gate hides c between recalls
    assert f[7].item() < 1e-4 and c[7:10].abs().max().item() < 1e-4
    assert abs(h[9].item()) < 1e-4  # recall after erase shows nothing
    # a store overwrites: -0.6 at t = 10, then 0.9 at t = 14 replaces it
    assert (c[10:14] - math.tanh(-0.6)).abs().max().item() < 2e-4
    assert abs(c[14].item() - math.tanh(0.9)) < 2e-4
    assert result.hold_error() < 2e-4 and result.erased_max() < 1e-4


def test_output_is_deterministic() -> None:
    assert run_lstm_example().report() == run_lstm_example().report()
    one = run_lstm_example("S0.5,0.1,R", trained=True, steps=15, seed=3)
    two = run_lstm_example("S0.5,0.1,R", trained=True, steps=15, seed=3)
    assert one.report() == two.report()
    assert torch.equal(one.trained.c, two.trained.c)


def test_trained_lstm_learns_the_same_gates() -> None:
    result = run_lstm_example(trained=True, steps=300, seed=0)
    tr, m = result.training, result.trained
    assert tr.mse_hand_set < 1e-8
    assert tr.mse_trained < 0.2 * tr.mse_silent
    assert m.recompute_error <= 1e-12
    assert m.i[1].item() > 0.8 and m.f[1].item() < 0.2  # store: write, drop the old value
    assert m.f[7].item() < 0.2  # erase: the forget gate closes
    assert m.o[5].item() > 0.8 and m.f[2:5].min().item() > 0.9  # recall; hold
    assert "trained (seed 0, 300 steps): step by step" in result.report()


def test_memory_batch() -> None:
    x, y = memory_batch(32, 10, torch.Generator().manual_seed(0))
    assert x.shape == (10, 32, 4) and y.shape == (10, 32)
    assert (x[..., 1:].sum(-1) <= 1).all()  # at most one cue per step
    assert x[..., 0].abs().max().item() <= 1.0
    torch.testing.assert_close(y, task_targets(x), rtol=0, atol=0)
    assert (y[x[..., 2] == 0] == 0).all()


def test_run_checks_arguments() -> None:
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        run_lstm_example(trained=True, steps=0)
    with pytest.raises(TypeError, match="trained must be a bool"):
        run_lstm_example(trained=1)


def _check_png(path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    assert path.stat().st_size < 100_000


def test_cli_end_to_end(tmp_path, capsys) -> None:
    assert main(["explain", "lstm-example", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  5 recall  +0.000" in out and f"wrote {tmp_path / 'lstm-example.png'}" in out
    _check_png(tmp_path / "lstm-example.png")
    argv = ["explain", "lstm-example", "--sequence", "S-0.4,0.9,R,E,R", "--trained"]
    assert main([*argv, "--steps", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trained (seed 0, 5 steps)" in out and "  2 recall  +0.000" in out
    _check_png(tmp_path / "lstm-example-trained.png")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sequence", "0.2,S0.5,X"], "argument --sequence: sequence step 2 is 'X'"),
        (["--sequence", "S3"], "argument --sequence: sequence step 0 has value 3"),
        (["--steps", "10"], "--steps needs --trained"),
        (["--precision", "bf16"], "--precision must be fp32"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message) -> None:
    try:
        code = main(["explain", "lstm-example", *argv, "--out", str(tmp_path)])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err
    assert not list(tmp_path.iterdir())  # nothing written
