"""Small refusals: reset samples that are not 1-D, a quantized model quantized with another
dtype, ``train --config`` through a link to a run folder, an empty chunk to a whole model,
and ``explain gradient-flow`` sizes past what its memory holds."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly, refused
from rnnkit.data.vocab import Vocabulary
from rnnkit.explain import gradient_flow
from rnnkit.explain.gradient_flow import MEMORY_RULE, max_hidden, max_length, run_gradient_flow
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.stream import Stream

# ---- reset samples: 1-D indices or a (B,) mask only -----------------------------------


@pytest.mark.parametrize(
    ("samples", "given"),
    [
        ([[0]], "torch.int64 of shape (1, 1)"),
        (torch.tensor([[True, False]]), "torch.bool of shape (1, 2)"),
        (np.array([[1]]), "torch.int64 of shape (1, 1)"),
        (torch.tensor(True), "torch.bool of shape ()"),
        ([[]], "torch.float32 of shape (1, 0)"),
    ],
)
def test_stream_reset_refuses_samples_that_are_not_1d(samples, given):
    # [[0]] and np.array([[1]]) were flattened and zeroed samples 0 and 1; a (1, B) mask
    # before the first chunk was taken without a word.
    stream = Stream(rnnkit.GRU(3, 4))
    message = (
        "Stream: reset samples must be a 1-D list of integer batch indices or a (B,) bool "
        "mask; got " + given
    )
    raises_exactly(ValueError, message, stream.reset, samples)  # before any chunk too
    stream(torch.randn(2, 2, 3))
    held = stream.state.clone()
    raises_exactly(ValueError, message, stream.reset, samples)
    assert torch.equal(stream.state, held)
    stream.reset([0])  # 1-D, as before: sample 0 from zeros, sample 1 as it was
    want = held.clone()
    want[:, 0] = 0.0
    assert torch.equal(stream.state, want)


def test_stream_reset_names_the_shape_of_a_2d_list():
    stream = Stream(rnnkit.GRU(3, 4))
    raises_exactly(ValueError, "Stream: reset samples must be a 1-D list of integer batch "
                   "indices or a (B,) bool mask; got torch.int64 of shape (2, 1)",
                   stream.reset, [[0], [1]])  # fmt: skip


@pytest.fixture(scope="module")
def step_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    from rnnkit.export import export_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("deploy") / "gru-step.onnx"
    export_onnx(rnnkit.GRU(3, 4).eval(), path, mode="step")
    return path


@pytest.mark.parametrize(
    ("samples", "given"),
    [
        ([[0]], "int64 array of shape (1, 1)"),
        (np.array([[True, False]]), "bool array of shape (1, 2)"),
        (np.bool_(True), "bool array of shape ()"),
        ([[]], "float64 array of shape (1, 0)"),
    ],
)
def test_onnx_stream_reset_refuses_samples_that_are_not_1d(step_graph, samples, given):
    from rnnkit import deploy

    stream = deploy.OnnxStream(step_graph)
    message = (
        "OnnxStream.reset: samples must be a 1-D list of integer batch indices or a (B,) "
        "bool mask; got " + given
    )
    raises_exactly(ValueError, message, stream.reset, samples)  # before any step too
    stream.step(np.ones((2, 3), np.float32))
    held = stream.state.copy()
    raises_exactly(ValueError, message, stream.reset, samples)
    assert np.array_equal(stream.state, held)
    stream.reset([1])
    assert not stream.state[:, 1].any() and np.array_equal(stream.state[:, 0], held[:, 0])


@pytest.mark.parametrize("index", [1, -1, np.int64(1), torch.tensor(1)])
def test_one_integer_index_resets_that_sample(step_graph, index):
    # reset(1) reads as reset([1]), on rnnkit.Stream and OnnxStream alike.
    from rnnkit import deploy

    stream = Stream(rnnkit.GRU(3, 4))
    stream(torch.randn(2, 2, 3))
    want = stream.state.clone()
    want[:, 1] = 0.0
    stream.reset(index)
    assert torch.equal(stream.state, want)
    onnx_stream = deploy.OnnxStream(step_graph)
    onnx_stream.step(np.ones((2, 3), np.float32))
    held = onnx_stream.state.copy()
    onnx_stream.reset(np.asarray(index))
    assert not onnx_stream.state[:, 1].any() and np.array_equal(onnx_stream.state[:, 0], held[:, 0])


# ---- quantize_dynamic of a quantized model ---------------------------------------------


def _quiet_quantize(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        return quantize_dynamic(*args, **kwargs)


def test_a_quantized_model_is_refused_another_dtype():
    # An int8 model quantized with float16 came back int8, as if float16 had been applied.
    model = nn.Sequential(rnnkit.LSTM(3, 4), nn.Linear(4, 2))
    int8 = _quiet_quantize(model)
    message = (
        "quantize_dynamic: model is already quantized with dtype torch.qint8 (0); expected "
        "dtype=torch.qint8, or the float model for torch.float16; got dtype=torch.float16"
    )
    raises_exactly(ValueError, message, quantize_dynamic, int8, torch.float16)
    layer = _quiet_quantize(rnnkit.GRU(3, 4), torch.float16)
    message = (
        "quantize_dynamic: model is already quantized with dtype torch.float16 (model); "
        "expected dtype=torch.float16, or the float model for torch.qint8; got dtype=torch.qint8"
    )
    raises_exactly(ValueError, message, quantize_dynamic, layer, torch.qint8)
    with warnings.catch_warnings():  # torch.ao's deprecation, not the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        linear = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(3, 3)), {nn.Linear})
    message = (
        "quantize_dynamic: model is already quantized with dtype torch.qint8 (0); expected "
        "dtype=torch.qint8, or the float model for torch.float16; got dtype=torch.float16"
    )
    raises_exactly(ValueError, message, quantize_dynamic, linear, torch.float16)


def test_the_same_dtype_quantizes_what_is_left():
    # Layers first, then the Linear: the same model as one call on the float model.
    torch.manual_seed(0)
    model = nn.Sequential(rnnkit.LSTM(3, 4), nn.Linear(4, 2))
    once = _quiet_quantize(model)
    twice = _quiet_quantize(_quiet_quantize(model, linear=False), layers=False)
    assert type(twice[1]) is type(once[1]) is torch.ao.nn.quantized.dynamic.Linear
    x = torch.randn(5, 2, 3)
    out_once, out_twice = once[1](once[0](x)[0]), twice[1](twice[0](x)[0])
    assert torch.equal(out_once, out_twice)


# ---- train --config through a link to a run folder -------------------------------------


def _config_files(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder's config.json and a user's own config file, both naming a text that
    does not exist: read, either ends in that file's refusal."""
    missing = tmp_path / "missing.txt"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "lm", "options": {"text": str(missing)}}))
    mine = tmp_path / "mine.json"
    mine.write_text((run / "config.json").read_text())
    return run, mine


def test_train_config_refuses_a_link_to_a_run_folder(tmp_path: Path, capsys):
    run, _ = _config_files(tmp_path)
    link = tmp_path / "latest"
    link.symlink_to(run, target_is_directory=True)
    out = str(tmp_path / "new")
    read = f"rnnkit train: error: text file or folder not found: {tmp_path / 'missing.txt'}"
    for given in (run, run / "config.json"):  # the folder itself is read
        assert refused(capsys, ["train", "--config", str(given), "--out", out], tmp_path) == read
    message = (
        f"rnnkit train: error: {link} is a symbolic link; expected a run folder (rnnkit does "
        "not follow links)"
    )
    for given in (link, link / "config.json"):
        assert refused(capsys, ["train", "--config", str(given), "--out", out], tmp_path) == message
    inside = tmp_path / "linked-config"
    inside.mkdir()
    (inside / "config.json").symlink_to(run / "config.json")
    message = (
        f"rnnkit train: error: {inside / 'config.json'} is a symbolic link; rnnkit does not "
        "follow links in a run"
    )
    for given in (inside, inside / "config.json"):
        assert refused(capsys, ["train", "--config", str(given), "--out", out], tmp_path) == message


def test_train_config_follows_a_link_to_a_users_own_file(tmp_path: Path, capsys):
    _, mine = _config_files(tmp_path)
    link = tmp_path / "kept-elsewhere.json"
    link.symlink_to(mine)
    read = f"rnnkit train: error: text file or folder not found: {tmp_path / 'missing.txt'}"
    argv = ["train", "--config", str(link), "--out", str(tmp_path / "new")]
    assert refused(capsys, argv, tmp_path) == read


# ---- an empty chunk to a whole model ---------------------------------------------------


def test_an_empty_chunk_to_a_model_is_refused_in_streams_words():
    # The model's layer refused it naming lengths, which a stream's caller never passes.
    torch.manual_seed(0)
    vocab = Vocabulary.from_text("hello world")
    model = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=8), vocab).eval()
    ids = vocab.encode("hello wor").unsqueeze(1)  # (T, 1)
    stream = Stream(model)
    first = stream(ids[:4])
    held = tuple(s.clone() for s in stream.state)
    message = (
        "Stream: chunk has T = 0 time steps; expected T >= 1 for a model (an empty chunk "
        "runs on a layer only); got shape (0, 1) for CharLM"
    )
    raises_exactly(ValueError, message, stream, ids[:0])
    assert all(torch.equal(a, b) for a, b in zip(stream.state, held, strict=True))
    assert stream.steps == 4
    rest = stream(ids[4:])  # the stream goes on as if nothing had been offered
    whole, _ = model(ids)
    torch.testing.assert_close(torch.cat([first, rest]), whole, rtol=0, atol=1e-6)
    layer = Stream(rnnkit.GRU(3, 4))  # a layer runs it: no outputs, the state kept
    layer(torch.randn(2, 1, 3))
    kept = layer.state.clone()
    assert layer(torch.randn(0, 1, 3)).shape == (0, 1, 4) and torch.equal(layer.state, kept)


# ---- explain gradient-flow: sizes within its memory ------------------------------------


def test_gradient_flow_memory_bound_by_hand():
    # T·(160 KiB + 2 KiB·H + 32 B·H²) + 640 B·H² within 2 GiB.
    per_step = 160 * 1024 + 2048 * 32 + 32 * 32**2
    assert max_length(32) == (2**31 - 640 * 32**2) // per_step == 8189
    h = max_hidden()
    assert gradient_flow.memory_estimate(2, h) <= 2**31 < gradient_flow.memory_estimate(2, h + 1)
    assert h == 1743 and max_length(h) >= 2


def test_gradient_flow_refuses_sizes_past_its_memory():
    message = (
        f"gradient-flow: length must be at most 8189 at hidden 32 (memory: {MEMORY_RULE}); "
        "got 100000000"
    )
    raises_exactly(ValueError, message, run_gradient_flow, length=100_000_000, steps=0)
    message = f"gradient-flow: hidden must be at most 1743 (memory: {MEMORY_RULE}); got 1744"
    raises_exactly(ValueError, message, run_gradient_flow, length=2, hidden=1744, steps=0)


def test_explain_gradient_flow_flags_past_its_memory_are_refused(tmp_path: Path, capsys):
    # --length 100000000 --steps 0 was killed for memory (exit 137).
    out = str(tmp_path / "figures")
    argv = ["explain", "gradient-flow", "--length", "100000000", "--steps", "0", "--out", out]
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit explain: error: gradient-flow: --length must be at most 8189 at --hidden 32 "
        f"(memory: {MEMORY_RULE}); got --length 100000000"
    )
    argv = ["explain", "gradient-flow", "--hidden", "1744", "--steps", "0", "--out", out]
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit explain gradient-flow: error: argument --hidden: expected an integer from 1 "
        f"to 1743 (memory: {MEMORY_RULE}); got 1744"
    )
    assert not (tmp_path / "figures").exists()
