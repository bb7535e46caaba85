"""ONNX export: every cell and option, step and sequence graphs, checked in onnxruntime.

Each exported graph is run here on fresh random input - T = 1, 7 and 1000 from one
sequence file, ragged lengths including 0 - and compared with the PyTorch model, besides
the check ``export_onnx`` makes itself before it writes anything.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.data.vocab import Vocabulary
from rnnkit.export import export_onnx, read_metadata
from rnnkit.export import onnx as export_module
from rnnkit.export.parts import parts_of
from rnnkit.models.lm import CharLM, CharLMConfig

ort = pytest.importorskip("onnxruntime")

I, H = 5, 8
LAYERS = {
    "rnn-tanh": lambda: rnnkit.RNN(I, H),
    "rnn-relu-2": lambda: rnnkit.RNN(I, H, num_layers=2, nonlinearity="relu"),
    "lstm": lambda: rnnkit.LSTM(I, H),
    "lstm-2-proj": lambda: rnnkit.LSTM(I, H, num_layers=2, proj_size=3),
    "lstm-layer_norm": lambda: rnnkit.LSTM(I, H, layer_norm=True),
    "lstm-zoneout-recurrent_dropout": lambda: rnnkit.LSTM(
        I, H, num_layers=2, zoneout=0.2, recurrent_dropout=0.3, dropout=0.4
    ),
    "gru": lambda: rnnkit.GRU(I, H, bias=False),
    "gru-zoneout": lambda: rnnkit.GRU(I, H, zoneout=0.1),
    "mingru-2": lambda: rnnkit.MinGRU(I, H, num_layers=2),
    "minlstm": lambda: rnnkit.MinLSTM(I, H, zoneout=0.1),
}
BIDIRECTIONAL = {
    "lstm-bi-2": lambda: rnnkit.LSTM(I, H, num_layers=2, bidirectional=True),
    "gru-bi-layer_norm-free": lambda: rnnkit.GRU(I, H, bidirectional=True, zoneout=0.1),
    "lstm-bi-layer_norm-proj": lambda: rnnkit.LSTM(
        I, H, bidirectional=True, layer_norm=True, proj_size=3
    ),
    "minlstm-bi": lambda: rnnkit.MinLSTM(I, H, bidirectional=True),
}


def _layer(make) -> rnnkit.RNN:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make().eval()


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _states(layer, batch: int, rows: int) -> list[torch.Tensor]:
    return [torch.randn(rows, batch, s) for s in layer.first_cell.state_sizes]


def _close(got: np.ndarray, expected: torch.Tensor, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=0, atol=atol)


def _float32_error(layer, x, states, lengths) -> float:
    """How far PyTorch's own float32 result is from float64's: the floor of any float32 parity.

    Over 1000 steps of a layer-norm LSTM it is 4e-5, above the 1e-5 asked of short runs.
    """
    wide = copy.deepcopy(layer).double()
    s64 = tuple(s.double() for s in states)
    y64, _ = wide(x.double(), s64 if len(s64) > 1 else s64[0], lengths=lengths)
    y32, _ = layer(x, tuple(states) if len(states) > 1 else states[0], lengths=lengths)
    return float((y32.double() - y64).abs().max())


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_step_graph_streams_like_the_layer(name: str) -> None:
    layer = _layer(LAYERS[name])
    proto = export_onnx(layer, mode="step")
    meta = read_metadata(proto)
    names = list(layer.first_cell.state_names)
    assert meta["inputs"] == ["x", *names]
    assert meta["outputs"] == ["y", *(f"{n}_out" for n in names)]
    session = _session(proto)
    torch.manual_seed(1)
    x = torch.randn(20, 2, I)
    states = _states(layer, 2, layer.num_layers)
    expected, final = layer(x, tuple(states) if len(states) > 1 else states[0])
    carried = [s.numpy() for s in states]
    for t in range(20):
        feed = {"x": x[t].numpy(), **dict(zip(names, carried, strict=True))}
        y, *carried = session.run(None, feed)
        _close(y, expected[t])
    finals = final if isinstance(final, tuple) else (final,)
    for got, want in zip(carried, finals, strict=True):
        _close(got, want)


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("name", list(LAYERS) + list(BIDIRECTIONAL))
def test_one_sequence_graph_runs_every_length(name: str, lengths: bool) -> None:
    layer = _layer({**LAYERS, **BIDIRECTIONAL}[name])
    proto = export_onnx(layer, mode="sequence", lengths=lengths)
    session = _session(proto)
    names = list(layer.first_cell.state_names)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    torch.manual_seed(2)
    for T in (1, 7, 1000):
        if T == 1000 and name not in ("lstm-layer_norm", "lstm-bi-2", "mingru-2"):
            continue  # a few long runs keep the file quick
        x = torch.randn(T, 3, I)
        states = _states(layer, 3, rows)
        feed = {"x": x.numpy(), **{n: s.numpy() for n, s in zip(names, states, strict=True)}}
        lens = None
        if lengths:
            lens = torch.tensor([T, max(T // 2, 1), 0])
            feed["lengths"] = lens.numpy()
        got = session.run(None, feed)
        want, final = layer(x, tuple(states) if len(states) > 1 else states[0], lengths=lens)
        finals = final if isinstance(final, tuple) else (final,)
        # 1e-5, or twice PyTorch's own float32 error where that is larger (long runs).
        atol = max(1e-5, 2 * _float32_error(layer, x, states, lens)) if T > 7 else 1e-5
        for g, w in zip(got, [want, *finals], strict=True):
            _close(g, w, atol)


def _lm(cell: str) -> CharLM:
    torch.manual_seed(0)
    vocab = Vocabulary(list("abcde \n"))
    config = CharLMConfig(
        vocab_size=len(vocab.chars) + 1, cell=cell, num_layers=2, hidden_size=16, embed_size=6
    )
    return CharLM(config, vocab).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru"])
def test_a_language_model_exports_in_both_modes(cell: str) -> None:
    lm = _lm(cell)
    ids = torch.randint(0, 8, (9, 2))
    expected, final = lm(ids)
    finals = final if isinstance(final, tuple) else (final,)
    names = list(lm.rnn.first_cell.state_names)
    sizes = lm.rnn.first_cell.state_sizes
    zeros = {n: np.zeros((2, 2, s), np.float32) for n, s in zip(names, sizes, strict=True)}

    step = export_onnx(lm, mode="step")
    meta = read_metadata(step)
    assert meta["model"] == "char_lm" and meta["vocab"] == ["", *"abcde \n"] and meta["unk_id"] == 0
    session, carried = _session(step), list(zeros.values())
    for t in range(9):
        feed = {"x": ids[t].numpy(), **dict(zip(names, carried, strict=True))}
        y, *carried = session.run(None, feed)
        _close(y, expected[t])
    sequence = export_onnx(lm, mode="sequence")
    y, *states = _session(sequence).run(None, {"x": ids.numpy(), **zeros})
    _close(y, expected)
    for got, want in zip(states, finals, strict=True):
        _close(got, want)


def test_metadata_describes_the_graph() -> None:
    proto = export_onnx(_layer(LAYERS["lstm-2-proj"]), mode="sequence", lengths=True)
    meta = read_metadata(proto)
    assert meta == {
        "format": "rnnkit.onnx",
        "version": 1,
        "mode": "sequence",
        "model": "layer",
        "kind": "LSTM",
        "lengths": True,
        "inputs": ["x", "lengths", "h", "c"],
        "outputs": ["y", "h_out", "c_out"],
        "states": [{"name": "h", "shape": [2, "B", 3]}, {"name": "c", "shape": [2, "B", H]}],
        "input_size": I,
        "output_size": 3,
        "layout": "time_major",
        "batch_first": False,
    }
    assert [i.name for i in proto.graph.input] == meta["inputs"]
    assert [o.name for o in proto.graph.output] == meta["outputs"]


def test_plain_layers_use_onnxs_own_operators_and_the_rest_a_scan() -> None:
    ops = {n.op_type for n in export_onnx(_layer(LAYERS["lstm"]), mode="sequence").graph.node}
    assert "LSTM" in ops and "Scan" not in ops
    ops = {
        n.op_type
        for n in export_onnx(_layer(LAYERS["lstm-layer_norm"]), mode="sequence").graph.node
    }
    assert "Scan" in ops and "LSTM" not in ops


def test_the_users_module_is_left_as_it_was() -> None:
    layer = rnnkit.GRU(I, H, zoneout=0.1).train()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    export_onnx(layer, mode="step")
    assert layer.training
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: export_onnx(rnnkit.GRU(I, H, bidirectional=True)), r"mode='step' needs a unidir"),
        (lambda: export_onnx(rnnkit.GRU(I, H), mode="step", lengths=True), r"lengths applies to"),
        (lambda: export_onnx(rnnkit.GRU(I, H), mode="chunk"), r"mode must be 'step' or 'seq"),
        (lambda: export_onnx(torch.nn.GRU(I, H)), r"model must be an rnnkit layer .* got GRU"),
        (lambda: export_onnx(rnnkit.GRU(I, H), lengths=1), r"lengths must be a bool; got 1"),
        (lambda: export_onnx(rnnkit.GRU(I, H), "/nonexistent/dir/g.onnx"), r"folder of .* not"),
    ],
)
def test_what_cannot_be_exported_is_refused_in_one_line(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_an_existing_file_is_never_replaced_unasked(tmp_path: Path) -> None:
    target = tmp_path / "mine.onnx"
    target.write_bytes(b"the user's own file")
    with pytest.raises(ValueError) as e:
        export_onnx(rnnkit.GRU(I, H), target)
    assert str(e.value) == f"export_onnx: {target} exists; pass overwrite=True to replace it"
    assert target.read_bytes() == b"the user's own file"
    export_onnx(rnnkit.GRU(I, H), target, overwrite=True)
    assert read_metadata(__import__("onnx").load(target))["kind"] == "GRU"


def test_a_graph_that_differs_from_pytorch_is_refused_and_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_module._CellBody.forward

    def off_by_a_little(self, *args):  # type: ignore[no-untyped-def]
        *states, y = real(self, *args)
        return (*states, y + 1e-3)

    monkeypatch.setattr(export_module._CellBody, "forward", off_by_a_little)
    target = tmp_path / "g.onnx"
    with pytest.raises(ValueError) as refused:
        export_onnx(rnnkit.LSTM(I, H, layer_norm=True), target, mode="sequence")
    assert not target.exists()
    # 1e-3 on outputs within (-1, 1): between 5e-4 and 1e-3 as |difference| / (1 + |value|)
    message = re.fullmatch(
        r"export_onnx: onnxruntime's output differs from PyTorch's by ([0-9.e-]+) "
        r"\(\|difference\| / \(1 \+ \|PyTorch's\|\), tolerance 1e-05\); nothing was written",
        str(refused.value),
    )
    assert message is not None and 5e-4 <= float(message.group(1)) <= 1e-3, str(refused.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_cli_exports_a_trained_run_which_still_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnkit.cli import main

    def cli(*args: str) -> tuple[int, str, str]:  # in this process: imports paid once
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    run = tmp_path / "run"
    trained = _cli(  # the one run as its own process, as a user starts it
        "train", "--steps", "20", "--hidden", "16", "--eval-every", "10", "--out", str(run)
    )
    assert trained.returncode == 0, trained.stderr
    code, out, err = cli("export", str(run), "--mode", "step")
    assert code == 0, err
    assert "wrote" in out and (run / "model-step.onnx").is_file()
    meta = read_metadata(__import__("onnx").load(run / "model-step.onnx"))
    assert meta["model"] == "char_lm"
    before = (run / "model-step.onnx").read_bytes()
    code, _, err = cli("export", str(run), "--mode", "step")
    assert code == 2 and err.count("\n") == 1
    assert "exists; pass --force" in err
    assert (run / "model-step.onnx").read_bytes() == before
    code, _, err = cli(
        "export", str(run), "--mode", "step", "--lengths", "--out", str(tmp_path / "x")
    )
    assert code == 2 and err.count("\n") == 1
    assert "--lengths applies to --mode sequence; got --mode step" in err
    assert not (tmp_path / "x").exists()
    assert cli("export", str(run), "--mode", "sequence", "--lengths")[0] == 0
    code, _, err = cli("export", str(run), "--mode", "step", "--int8", "--force")
    assert code == 0, err
    assert read_metadata(__import__("onnx").load(run / "model-step.int8.onnx"))["quantization"]
    code, _, err = cli("export", str(tmp_path))
    assert code == 2 and "must be a run folder" in err
    # the exported graphs belong to the run: training resumes in the folder
    code, _, err = cli("train", "--resume", str(run), "--steps", "30")
    assert code == 0, err
    assert json.loads((run / "train_state.json").read_text())["step"] == 30


@pytest.mark.parametrize(
    ("cell", "head", "members"),
    [("lstm", "quantile", 1), ("gru", "gaussian", 1), ("lstm", "quantile", 3)],
)
def test_a_forecaster_exports_in_both_modes(cell: str, head: str, members: int) -> None:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel

    torch.manual_seed(0)
    config = ForecastConfig(
        horizon=4, seasonality=12, cell=cell, head=head, hidden_size=8, members=members
    )
    model = ForecastModel(config).eval()
    for linear in model.modules():  # not the near-zero initial head
        if isinstance(linear, torch.nn.Linear):
            torch.nn.init.normal_(linear.weight, std=0.3)
    x = torch.randn(30, 2, model.features)
    expected, final = model(x)
    finals = final if isinstance(final, tuple) else (final,)
    names = list(parts_of(model).layer.first_cell.state_names)
    # an ensemble's members run side by side as one block-diagonal layer: K*H wide
    zeros = {n: np.zeros((1, 2, 8 * members), np.float32) for n in names}
    step = export_onnx(model, mode="step")
    meta = read_metadata(step)
    assert meta["model"] == "forecast" and meta["output_shape"] == [4, model.outputs]
    assert meta["forecast"]["horizon"] == 4 and meta["forecast"]["head"] == head
    session, carried = _session(step), list(zeros.values())
    for t in range(30):
        feed = {"x": x[t].numpy(), **dict(zip(names, carried, strict=True))}
        y, *carried = session.run(None, feed)
        _close(y, expected[t])
    got = _session(export_onnx(model, mode="sequence")).run(None, {"x": x.numpy(), **zeros})
    for g, w in zip(got, [expected, *finals], strict=True):
        _close(g, w)


# ---- every task's model -----------------------------------------------------------------


def _task_models() -> dict[str, tuple[torch.nn.Module, bool]]:
    """name -> (model in eval mode with non-trivial weights, x holds ids)."""
    from rnnkit.models.memory import MemoryModel, MemoryTaskConfig
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.tag import Tagger, TaggerConfig

    torch.manual_seed(0)
    std = torch.tensor([1.0, 2.0, 0.5])
    models = {
        "tagger-ids-bi": (Tagger(TaggerConfig(num_tags=5, vocab_size=9, hidden_size=8)), True),
        "tagger-features-uni": (
            Tagger(TaggerConfig(num_tags=4, num_features=3, hidden_size=8, bidirectional=False)),
            False,
        ),
        "classifier-mean-bi": (
            SequenceClassifier(3, 4, "gru", 8, 2, True, "mean", mean=[0.1, 0.2, 0.3], std=std),
            False,
        ),
        "classifier-last-uni": (SequenceClassifier(3, 4, "lstm", 8, 1, False, "last"), False),
        "classifier-max-bi": (SequenceClassifier(3, 4, "mingru", 8, 1, True, "max"), False),
        "classifier-ensemble-bi": (
            SequenceClassifier(3, 4, "gru", 8, 2, True, "last", members=3),
            False,
        ),
        "memory-adding": (MemoryModel(MemoryTaskConfig("adding", 20, "lstm", 8)), False),
        "memory-copy": (MemoryModel(MemoryTaskConfig("copy", 20, "gru", 8, 2)), True),
    }
    for model, _ in models.values():
        model.eval()
    models["tagger-features-uni"][0].mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    return models


def _forward(name: str, model: torch.nn.Module, x: torch.Tensor, lengths) -> torch.Tensor:
    """The model's own forward on time-major x, time-major out (what the graph computes)."""
    with torch.no_grad():
        if name.startswith("memory"):
            return model(x)
        y = model(x.transpose(0, 1), lengths)
        return y if name.startswith("classifier") else y.transpose(0, 1)


def _example(ids: bool, model: torch.nn.Module, T: int, B: int) -> torch.Tensor:
    from rnnkit.export.parts import parts_of

    parts = parts_of(model)
    if ids:
        return torch.randint(0, parts.pre.embedding.num_embeddings, (T, B))
    return torch.randn(T, B, parts.features)


@pytest.mark.parametrize("name", list(_task_models()))
def test_every_task_model_exports_and_runs_as_its_forward(name: str) -> None:
    model, ids = _task_models()[name]
    layer = parts_of(model).layer  # an ensemble's: its members as one block-diagonal layer
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    names = list(layer.first_cell.state_names)
    sizes = layer.first_cell.state_sizes
    torch.manual_seed(3)
    ragged = not name.startswith("memory")  # the memory tasks' forward takes no lengths
    proto = export_onnx(model, mode="sequence", lengths=ragged)
    assert read_metadata(proto)["model"] == name.split("-")[0]
    session = _session(proto)
    for T in (1, 7, 40):
        x = _example(ids, model, T, 3)
        lens = torch.tensor([T, max(T // 2, 1), 1]) if ragged else None
        feed = {
            "x": x.numpy(),
            **{n: np.zeros((rows, 3, s), np.float32) for n, s in zip(names, sizes, strict=True)},
        }
        if ragged:
            feed["lengths"] = lens.numpy()
        y = session.run(None, feed)[0]
        _close(y, _forward(name, model, x, lens))
    if not (model.rnn.bidirectional or name.startswith("classifier")):
        step = _session(export_onnx(model, mode="step"))
        x = _example(ids, model, 9, 2)
        want = _forward(name, model, x, None)
        carried = [np.zeros((rows, 2, s), np.float32) for s in sizes]
        for t in range(9):
            got, *carried = step.run(
                None, {"x": x[t].numpy(), **dict(zip(names, carried, strict=True))}
            )
            _close(got, want[t])


def test_a_classifier_has_no_step_graph() -> None:
    model, _ = _task_models()["classifier-last-uni"]
    with pytest.raises(ValueError, match=r"a classifier answers after the whole sequence") as err:
        export_onnx(model, mode="step")
    assert "(rnnkit export --mode sequence)" in str(err.value)  # the CLI's spelling too


def test_a_downsampling_classifier_is_refused() -> None:
    from rnnkit.tasks.classify import SequenceClassifier

    with pytest.raises(ValueError, match=r"downsample=2\) has no exact graph"):
        export_onnx(SequenceClassifier(3, 4, downsample=2), mode="sequence")


# ---- the encoder-decoder ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "decoder", "attention", "bidirectional"),
    [
        ("gru", "gru", "general", True),
        ("lstm", "lstm", "additive", False),
        ("mingru", "lstm", "none", True),
    ],
)
def test_an_encoder_decoder_exports_as_two_graphs_that_translate_as_it_does(
    encoder: str, decoder: str, attention: str, bidirectional: bool, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from rnnkit import deploy
    from rnnkit.seq2seq.data import EOS, CharVocab
    from rnnkit.seq2seq.decode import greedy
    from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

    source, target = "abcdefgh ", "0123456789"
    src_vocab, tgt_vocab = CharVocab(source), CharVocab(target)
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab), encoder=encoder,
        decoder=decoder, attention=attention, bidirectional=bidirectional, encoder_hidden=8,
        decoder_hidden=10, decoder_layers=2,
    )  # fmt: skip
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        model.head.bias[EOS] -= 3.0  # random weights end early otherwise: decode some tokens
    model.rnnkit_config = SimpleNamespace(  # what rnnkit.load attaches: the run's vocabularies
        derived={"source_chars": source, "target_chars": target, "max_target_length": 6}
    )
    encoder_path, decoder_path = tmp_path / "encoder.onnx", tmp_path / "decoder.onnx"
    export_onnx(model, encoder_path, mode="sequence")
    export_onnx(model, decoder_path, mode="step")
    meta = read_metadata(__import__("onnx").load(decoder_path))
    assert meta["part"] == "decoder" and meta["tgt_vocab"][4:] == list(target)
    decoded = []
    for text in ["abc", "h", "bad cafe", "a" * 15, "zz?"]:  # unknown characters too
        src = torch.tensor(src_vocab.encode(text))[:, None]
        want = tgt_vocab.decode(greedy(model, src, torch.tensor([len(text)]), 20)[0].tokens)
        assert deploy.translate(encoder_path, decoder_path, text) == want
        decoded.append(want)
    assert any(decoded)  # the comparison saw tokens, not only empty outputs


def test_translate_refuses_graphs_that_are_not_an_encoder_and_its_decoder(tmp_path: Path) -> None:
    from rnnkit import deploy

    encoder, decoder = tmp_path / "gru-seq.onnx", tmp_path / "gru-step.onnx"
    export_onnx(rnnkit.GRU(3, 4), encoder, mode="sequence")
    export_onnx(rnnkit.GRU(3, 4), decoder, mode="step")
    with pytest.raises(ValueError, match="expected an encoder-decoder's encoder graph; got a lay"):
        deploy.translate(encoder, decoder, "abc")


def test_a_trained_tagger_and_classifier_carry_their_names(tmp_path: Path) -> None:
    """A runner reads a tagger's or classifier's graph with no run folder: the graph
    names the characters of its ids and the tag or class of each output."""
    import io

    from rnnkit.train import TrainConfig, train

    lines = [{"x": w, "y": ["N" if c.isalpha() else "D" for c in w]}
             for w in ["ab1", "c22d", "e3", "fg", "4h", "ij5", "k6l", "7m", "no8", "p9", "qr",
                       "s0t"]]  # fmt: skip
    tags = tmp_path / "tags.jsonl"
    tags.write_text("".join(json.dumps(d) + "\n" for d in lines))
    rows = [f"{a},{a + 1},{a + 2}:{'up' if a % 2 else 'down'}" for a in range(16)]
    ts = tmp_path / "ud.ts"
    ts.write_text("@problemName ud\n@classLabel true up down\n@data\n" + "\n".join(rows) + "\n")
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    config = TrainConfig(steps=2, eval_every=2, seed=0, threads=1)
    train("tag", {"data": str(tags), "hidden_size": 4, "embed_size": 4, "seq_len": 8},
          config, out=tmp_path / "tag", **quiet)  # fmt: skip
    train("classify", {"data": str(ts), "hidden_size": 4}, config, out=tmp_path / "cls",
          **quiet)  # fmt: skip
    tagger = rnnkit.load(tmp_path / "tag")
    meta = read_metadata(export_onnx(tagger, mode="sequence"))
    derived = json.loads((tmp_path / "tag" / "config.json").read_text())["derived"]
    assert meta["tag_names"] == derived["tags"] and len(meta["tag_names"]) == meta["num_tags"]
    assert meta["vocab"] == ["", *derived["vocab"]["chars"]] and meta["unk_id"] == 0
    assert len(meta["vocab"]) == meta["vocab_size"]
    meta = read_metadata(export_onnx(rnnkit.load(tmp_path / "cls"), mode="sequence"))
    assert meta["class_names"] == ["up", "down"] and meta["classes"] == 2
