"""Gate recomputation against the layer, text properties, and the unit search."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly
from rnnkit.explain import gates
from rnnkit.explain.gates import analyse_gates, text_features, trace_lstm


@pytest.mark.parametrize(
    "options",
    [{}, {"layer_norm": True, "backend": "reference"}, {"zoneout": 0.3, "backend": "reference"}],
    ids=["plain", "layer_norm", "zoneout"],
)
def test_recomputed_h_equals_the_layer_output(options: dict) -> None:
    layer = rnnkit.LSTM(3, 6, num_layers=2, dropout=0.5, **options).eval()
    x = torch.randn(9, 2, 3)
    traces = trace_lstm(layer, x)  # raises if the recomputed h differs
    out, (h_n, c_n) = layer(x)
    torch.testing.assert_close(traces[-1].h, out)
    for k, trace in enumerate(traces):
        torch.testing.assert_close(trace.h[-1], h_n[k])
        torch.testing.assert_close(trace.c[-1], c_n[k])
        for name in ("i", "f", "o"):
            values = getattr(trace, name)
            assert bool(((values > 0) & (values < 1)).all()), name
    # The gate equations, checked once by hand on layer 0, step 0 (h^{-1} = c^{-1} = 0).
    if not options:
        p = layer.cell_parameters(0, 0)
        a = x[0] @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"]
        i, f, g, o = a.chunk(4, dim=-1)
        c = torch.sigmoid(i) * torch.tanh(g)
        torch.testing.assert_close(traces[0].c[0], c)
        torch.testing.assert_close(traces[0].h[0], torch.sigmoid(o) * torch.tanh(c))
        torch.testing.assert_close(traces[0].f[0], torch.sigmoid(f))


def test_trace_catches_a_layer_that_differs() -> None:
    layer = rnnkit.LSTM(3, 4, zoneout=0.5, backend="reference").train()  # random zoneout
    with pytest.raises(ValueError, match="differs from the layer's output"):
        trace_lstm(layer, torch.randn(20, 2, 3))


def test_trace_rejects_other_layers() -> None:
    raises_exactly(TypeError, "trace_lstm: layer must be an rnnkit.LSTM; got GRU", trace_lstm,
                   rnnkit.GRU(2, 3), torch.randn(4, 1, 2))  # fmt: skip
    bidirectional = rnnkit.LSTM(2, 3, bidirectional=True)
    raises_exactly(ValueError, "trace_lstm: layer must be unidirectional; got bidirectional=True",
                   trace_lstm, bidirectional, torch.randn(4, 1, 2))  # fmt: skip


def test_text_features() -> None:
    text = 'f(a, "x)")\n  [b]'
    feats = text_features(text)
    assert feats["inside quotes"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert feats["bracket depth"].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0]
    assert feats["indentation"].tolist() == [0] * 11 + [1, 2, 2, 2, 2]
    assert feats["line position"].tolist() == [*range(1, 11), 0, *range(1, 6)]
    escaped = text_features("'a\\'b'c")["inside quotes"].tolist()
    assert escaped == [1, 1, 1, 1, 1, 0, 0]
    triple = text_features('x = """a\n"b" (\n""" + 1')
    assert triple["inside quotes"].tolist() == [0] * 4 + [1] * 13 + [0] * 5
    assert triple["bracket depth"].sum() == 0  # the bracket is inside the string
    comment = text_features("a # it's (\nb'c'")
    assert comment["inside comment"].tolist() == [0, 0] + [1] * 8 + [0] * 5
    assert comment["inside quotes"].tolist() == [0] * 12 + [1, 1, 0]
    assert comment["bracket depth"].sum() == 0


def test_correlations() -> None:
    feature = torch.arange(10.0)
    units = torch.stack([feature * 2 + 1, -feature, torch.ones(10), torch.randn(10)], dim=1)
    r = gates.correlations(units, feature)
    torch.testing.assert_close(r[:3], torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    assert abs(float(r[3])) < 1


class _Vocab:
    def __init__(self, chars: str) -> None:
        self.chars = chars

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.chars.index(ch) for ch in text])


class TinyLM(nn.Module):
    """What the analysis needs of a character language model: vocab, embedding, rnn."""

    def __init__(self, chars: str, hidden: int = 8) -> None:
        super().__init__()
        self.vocab = _Vocab(chars)
        self.embedding = nn.Embedding(len(chars), 2)
        self.rnn = rnnkit.LSTM(2, hidden)


def _plant_line_counter(model: TinyLM, unit: int) -> None:
    """Make cell unit ``unit`` count the characters since the last newline.

    Embedding: newline -> (1, 0), any other character -> (0, 1). On other characters
    f ≈ 1, i ≈ 1, c̃ ≈ 1 (c grows by one); on a newline f ≈ 0, c̃ = 0 (c resets to 0).
    """
    H = model.rnn.hidden_size
    with torch.no_grad():
        rest = model.embedding.num_embeddings - 1  # "\n" is the first character
        model.embedding.weight.copy_(torch.tensor([[1.0, 0.0]] + [[0.0, 1.0]] * rest))
        w_ih, w_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
        b_ih, b_hh = model.rnn.bias_ih_l0, model.rnn.bias_hh_l0
        for gate in range(4):  # rows of this unit in each gate block i, f, g, o
            row = gate * H + unit
            w_hh[row] = 0.0
            b_hh[row] = 0.0
        w_ih[0 * H + unit], b_ih[0 * H + unit] = torch.tensor([0.0, 0.0]), 30.0  # i ≈ 1
        w_ih[1 * H + unit], b_ih[1 * H + unit] = torch.tensor([-30.0, 30.0]), 0.0  # f
        w_ih[2 * H + unit], b_ih[2 * H + unit] = torch.tensor([0.0, 30.0]), 0.0  # c̃
        w_ih[3 * H + unit], b_ih[3 * H + unit] = torch.tensor([0.0, 0.0]), 30.0  # o ≈ 1


def test_analyse_gates_finds_a_planted_unit(tmp_path) -> None:
    model = TinyLM("\nab (')", hidden=8)
    _plant_line_counter(model, unit=5)
    text = "ab (a 'b')\nab\na (b)\n  'ab' a\n"
    analysis = analyse_gates(model, text)
    by_feature = {m.feature: m for m in analysis.matches}
    match = by_feature["line position"]
    assert match.unit == 5 and match.r > 0.999
    torch.testing.assert_close(
        analysis.trace.c[:, 0, 5].double(), analysis.features["line position"], atol=1e-4, rtol=0
    )
    assert analysis.units[0] in {m.unit for m in analysis.matches}
    assert len(analysis.units) == 8 and 5 in analysis.units
    report = analysis.report()
    assert "line position  unit    5  r = +1.000" in report
    path = analysis.plot(tmp_path / "gates.png", max_chars=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyse_gates_constant_feature_and_errors() -> None:
    model = TinyLM("\nab (')")
    analysis = analyse_gates(model, "abab", units=[0, 2])
    assert analysis.units == [0, 2]
    assert "inside quotes  constant in this text" in analysis.report()
    with pytest.raises(ValueError, match=r"units must be non-empty and lie in \[0, 7\]"):
        analyse_gates(model, "abab", units=[8])
    with pytest.raises(ValueError, match=r"layer must lie in \[0, 0\]; got 1"):
        analyse_gates(model, "abab", layer=1)
    with pytest.raises(ValueError, match="at least 2 characters"):
        analyse_gates(model, "a")
    model.rnn = rnnkit.GRU(2, 8)
    with pytest.raises(TypeError, match=r"model\.rnn must be an rnnkit\.LSTM; got GRU"):
        analyse_gates(model, "abab")


def test_reference_model_repeats_exactly(tmp_path) -> None:
    first, result = gates.train_reference_model(steps=3, seed=1)
    second, _ = gates.train_reference_model(steps=3, seed=1, out=tmp_path / "kept")
    assert result["steps"] == 3 and result["metric"] == "bpc" and result["value"] > 0
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert (tmp_path / "kept" / "model.safetensors").is_file()  # --save-run keeps the folder
    other, _ = gates.train_reference_model(steps=3, seed=2)
    assert not torch.equal(other.rnn.weight_hh_l0, first.rnn.weight_hh_l0)
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        gates.train_reference_model(steps=0)


def test_gates_command_without_run_dir(tmp_path, capsys) -> None:
    from rnnkit.cli import main

    assert main(["explain", "gates", "--steps", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reference model: LSTM 1x128 on the standard library, 2 steps from seed 0" in out
    assert "cell units that track the text" in out
    assert (tmp_path / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gates_steps_needs_no_run_dir(tmp_path, capsys) -> None:
    from rnnkit.cli import main

    assert main(["explain", "gates", str(tmp_path), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "rnnkit explain: error: --steps and --save-run train the reference model: give no RUN_DIR"
    )


@pytest.mark.slow
def test_reference_figures_are_the_ones_the_docs_quote(tmp_path, capsys) -> None:
    """The default `rnnkit explain gates` prints the table docs/chapter.md (10.16) quotes."""
    import re
    from pathlib import Path

    from rnnkit.cli import main

    page = Path(__file__).resolve().parent.parent / "docs" / "chapter.md"
    section = page.read_text(encoding="utf-8").split("## 10.16 ")[1].split("\n## ")[0]
    quoted = re.findall(r"^\| ([a-z ]+) \| (\d+) \| ([+−-]\d\.\d\d) \|$", section, re.MULTILINE)
    assert len(quoted) == 5
    bpc = re.search(r"validation\s+(\d\.\d\d)\s+bits\s+per\s+character", section)
    assert bpc is not None
    assert main(["explain", "gates", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # The run repeats to the bit on one machine run alone, but float32 kernels that differ
    # in the last bits (another CPU of the same kind, docs/chapter.md says which) train a
    # slightly different model, whose best unit for a property can be another one with
    # another r. What holds: the validation bpc the docs quote, and a unit that tracks
    # each of the five properties as strongly as the docs' table says, within 0.1 (or 0.3 for
    # the weakest, which is -0.36 to +0.45 from run to run).
    printed_bpc = re.search(r"validation bpc (\d\.\d+)", out)
    assert printed_bpc is not None
    assert abs(float(printed_bpc.group(1)) - float(bpc.group(1))) <= 0.015, printed_bpc.group(1)
    for feature, _, r in quoted:
        r = float(r.replace("−", "-"))
        printed = re.search(rf"{feature} +unit +\d+  r = ([+-]\d\.\d+)", out)
        assert printed is not None, f"{feature}: not printed\n{out}"
        slack = 0.1 if abs(r) >= 0.5 else 0.3
        assert abs(float(printed.group(1))) >= abs(r) - slack, (feature, printed.group(1), r)
