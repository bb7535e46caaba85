"""Each error message of ``rnnkit.deploy`` and of ``rnnkit.save_pretrained`` /
``rnnkit.load_pretrained`` that no other test reaches, through the public API, asserted
word for word; the pretrained refusals write nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit
from _refusals import raises_exactly as _raises

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit import deploy  # noqa: E402
from rnnkit.export import export_onnx  # noqa: E402
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel  # noqa: E402
from rnnkit.train import RunFolderError  # noqa: E402

I, H = 3, 4


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("graphs")
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H).eval()
    out = {"root": root, "step": root / "step.onnx", "lengths": root / "lengths.onnx"}
    export_onnx(layer, out["step"], mode="step")
    export_onnx(layer, out["lengths"], mode="sequence", lengths=True)
    forecaster = ForecastModel(ForecastConfig(horizon=2, hidden_size=4)).eval()
    out["forecast"] = root / "forecast.onnx"
    export_onnx(forecaster, out["forecast"], mode="step")
    return out


def _with_metadata(graphs: dict[str, Path], name: str, value: str) -> Path:
    """The step graph with its 'rnnkit' metadata replaced by ``value``."""
    proto = onnx.load(graphs["step"])
    for prop in proto.metadata_props:
        if prop.key == "rnnkit":
            prop.value = value
    path = graphs["root"] / name
    onnx.save(proto, path)
    return path


def _metadata(graphs: dict[str, Path]) -> dict[str, Any]:
    proto = onnx.load(graphs["step"])
    return json.loads(next(p.value for p in proto.metadata_props if p.key == "rnnkit"))


# ---- loading --------------------------------------------------------------------------


def test_a_graph_without_onnxruntime(graphs, monkeypatch) -> None:
    monkeypatch.setattr(deploy, "ort", None)
    _raises(
        ValueError,
        "OnnxStream: running a graph needs onnxruntime (pip install onnxruntime)",
        deploy.OnnxStream,
        graphs["step"],
    )


def test_metadata_that_is_not_json(graphs) -> None:
    path = _with_metadata(graphs, "a.onnx", "{not json")
    _raises(
        ValueError,
        "OnnxStream: the graph's 'rnnkit' metadata is not JSON (Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1))",
        deploy.OnnxStream,
        path,
    )


def test_metadata_of_another_format(graphs) -> None:
    meta = _metadata(graphs)
    path = _with_metadata(graphs, "b.onnx", json.dumps({**meta, "format": "other"}))
    _raises(
        ValueError,
        "OnnxStream: expected metadata format 'rnnkit.onnx'; got 'other'",
        deploy.OnnxStream,
        path,
    )
    path = _with_metadata(graphs, "c.onnx", "[1]")
    _raises(
        ValueError,
        "run_sequence: expected metadata format 'rnnkit.onnx'; got 'list'",
        deploy.run_sequence,
        path,
        np.zeros((1, 1, I)),
    )


def test_metadata_of_a_later_version(graphs) -> None:
    meta = _metadata(graphs)
    for version in (meta["version"] + 1, "1"):
        path = _with_metadata(graphs, "d.onnx", json.dumps({**meta, "version": version}))
        _raises(
            ValueError,
            f"OnnxStream: this file reads metadata version {meta['version']} "
            f"or older; got {version!r} (take deploy.py from the rnnkit that exported the "
            "graph)",
            deploy.OnnxStream,
            path,
        )


def test_a_graph_that_is_not_a_path(graphs) -> None:
    # It failed inside os.fspath, naming no argument.
    _raises(
        TypeError,
        "OnnxStream: graph must be the path of an ONNX file, its bytes or an "
        "onnxruntime.InferenceSession; got int",
        deploy.OnnxStream,
        5,
    )
    _raises(
        TypeError,
        "run_sequence: graph must be the path of an ONNX file, its bytes or an "
        "onnxruntime.InferenceSession; got list",
        deploy.run_sequence,
        [1],
        [[[0.0]]],
    )


@pytest.mark.parametrize("threads", ["x", 2.5, 0, True])
def test_threads_that_are_not_a_positive_integer(graphs, threads) -> None:
    # "x" failed in int()'s words and 2.5 ran on 2 threads.
    _raises(
        ValueError,
        f"OnnxStream: threads must be a positive integer or None; got {threads!r}",
        deploy.OnnxStream,
        graphs["step"],
        threads=threads,
    )


# ---- streams and sequences --------------------------------------------------------------


def test_x_that_is_not_array_like(graphs) -> None:
    stream = deploy.OnnxStream(graphs["step"])
    _raises(
        ValueError,
        "OnnxStream.step: x must be array-like; got list",
        stream.step,
        [[1.0, 2.0, 3.0], [1.0]],
    )


def test_state_arrays_of_two_batch_sizes(graphs) -> None:
    stream = deploy.OnnxStream(graphs["step"])
    state = (np.zeros((1, 2, H), np.float32), np.zeros((1, 3, H), np.float32))
    with pytest.raises(
        ValueError,
        match="^"
        + re.escape("OnnxStream.state: state arrays must share one batch size; got [2, 3]")
        + "$",
    ):
        stream.state = state


EMPTY = """
import json, sys
import numpy as np
from rnnkit import deploy

calls = json.loads(sys.argv[1])
for path, shape, dtype in calls:
    try:
        deploy.run_sequence(path, np.zeros(shape, dtype))
        print(json.dumps(["ran"]), flush=True)
    except Exception as error:
        print(json.dumps([type(error).__name__, str(error)]), flush=True)
# Refused, the process runs on: a batch of one step still runs.
print(json.dumps(["alive", deploy.run_sequence(calls[0][0], np.zeros((1, 1, 3)))[0].shape]))
"""


def test_an_empty_sequence_or_batch_is_refused_before_onnxruntime(tmp_path) -> None:
    # onnxruntime ended the whole process on a GRU graph's T = 0 or B = 0 ("terminate
    # called without an active exception", exit 134) and failed inside a Scan on others:
    # run in a child process, so that a crash fails this test rather than killing pytest.
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.models.lm import CharLM, CharLMConfig

    torch.manual_seed(0)
    gru, gru_lengths, scan = (tmp_path / f"{n}.onnx" for n in ("gru", "gru_lengths", "scan"))
    export_onnx(rnnkit.GRU(3, 4), gru, mode="sequence")
    export_onnx(rnnkit.GRU(3, 4), gru_lengths, mode="sequence", lengths=True)
    vocab = Vocabulary.from_text("hello world\n")
    lm = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=4, embed_size=4), vocab)
    lm_path = tmp_path / "lm.onnx"
    export_onnx(lm.eval(), lm_path, mode="sequence")
    export_onnx(rnnkit.GRU(3, 4, zoneout=0.2), scan, mode="sequence")  # a Scan graph
    f32 = "float32"
    calls = [[str(gru), [0, 2, 3], f32], [str(gru), [2, 0, 3], f32],
             [str(gru_lengths), [0, 2, 3], f32], [str(gru_lengths), [2, 0, 3], f32],
             [str(scan), [0, 2, 3], f32], [str(lm_path), [0, 2], "int64"],
             [str(lm_path), [2, 0], "int64"]]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", EMPTY, json.dumps(calls)], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    time = "run_sequence: x has T = 0 time steps; expected T >= 1; got shape "
    batch = "run_sequence: x has B = 0 sequences; expected B >= 1; got shape "
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        ["ValueError", time + "(0, 2, 3)"],
        ["ValueError", batch + "(2, 0, 3)"],
        ["ValueError", time + "(0, 2, 3)"],
        ["ValueError", batch + "(2, 0, 3)"],
        ["ValueError", time + "(0, 2, 3)"],
        ["ValueError", time + "(0, 2)"],
        ["ValueError", batch + "(2, 0)"],
        ["alive", [1, 1, 4]],
    ]


def test_a_stream_of_no_samples(graphs) -> None:
    # A step graph ran B = 0, and the stream then held a batch size of 0, which the
    # constructor refuses (batch_size must be a positive integer).
    stream = deploy.OnnxStream(graphs["step"])
    _raises(ValueError, "OnnxStream.step: x has B = 0 samples; expected B >= 1; got shape (0, 3)",
            stream.step, np.zeros((0, I), np.float32))  # fmt: skip
    empty = (np.zeros((1, 0, H), np.float32),) * 2
    _raises(ValueError, "OnnxStream.state: state h has B = 0 samples; expected B >= 1; got "
            "shape (1, 0, 4)", setattr, stream, "state", empty)  # fmt: skip
    assert stream.state is None and stream.batch_size is None and stream.steps == 0
    assert stream.step(np.zeros((2, I), np.float32)).shape == (2, H)


def test_a_reset_mask_of_another_shape(graphs) -> None:
    stream = deploy.OnnxStream(graphs["step"])
    stream.step(np.zeros((2, I), np.float32))
    _raises(
        ValueError,
        "OnnxStream.reset: a mask must have shape (2,); got (3,)",
        stream.reset,
        np.array([True, False, True]),
    )


@pytest.mark.parametrize(
    ("lengths", "given"),
    [
        ([1.0, 2.0], "float64 array of shape (2,)"),
        ([1, 2, 2], "int64 array of shape (3,)"),
        ([[1, 2]], "int64 array of shape (1, 2)"),
    ],
)
def test_lengths_of_the_wrong_kind(graphs, lengths, given) -> None:
    x = np.zeros((2, 2, I), np.float32)
    _raises(
        ValueError,
        f"run_sequence: lengths must be an int64 array of shape (2,); got {given}",
        deploy.run_sequence,
        graphs["lengths"],
        x,
        lengths=lengths,
    )


def test_a_prompt_that_is_not_a_string(graphs) -> None:
    _raises(
        TypeError,
        "generate: prompt must be a string; got int",
        deploy.generate,
        graphs["step"],
        prompt=5,
    )


# ---- the forecaster ---------------------------------------------------------------------


def test_the_onnx_forecaster_before_any_value(graphs) -> None:
    online = deploy.OnnxForecaster(graphs["forecast"])
    with pytest.raises(
        ValueError,
        match="^" + re.escape("OnnxForecaster: no value seen yet; call update(value) first") + "$",
    ):
        online.forecast  # noqa: B018


@pytest.mark.parametrize("adapt", ["0.1", True, float("nan"), -1.0])
def test_an_adapt_that_is_not_a_number(graphs, adapt) -> None:
    # A string failed in math's words, naming nothing; True adapted by steps of 1.
    _raises(
        ValueError,
        f"OnnxForecaster: adapt must be a number >= 0; got {adapt!r}",
        deploy.OnnxForecaster,
        graphs["forecast"],
        recalibrate=True,
        adapt=adapt,
    )


@pytest.mark.parametrize("hold", ["3", True, -1, 1.5])
def test_a_hold_that_is_not_a_count(graphs, hold) -> None:
    _raises(
        ValueError,
        f"OnnxForecaster: hold must be a count of time steps >= 0; got {hold!r}",
        deploy.OnnxForecaster,
        graphs["forecast"],
        recalibrate=True,
        hold=hold,
    )


# ---- translate ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rnnkit.seq2seq.data import CharVocab
    from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

    root = tmp_path_factory.mktemp("seq2seq")
    source, target = "abc ", "012"
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        src_vocab_size=len(CharVocab(source)),
        tgt_vocab_size=len(CharVocab(target)),
        encoder_hidden=4,
        decoder_hidden=4,
    )
    model = Seq2Seq(config).eval()
    out = {"bare": root / "bare.onnx"}
    export_onnx(model, out["bare"], mode="sequence")
    model.rnnkit_config = SimpleNamespace(  # what rnnkit.load attaches: the vocabularies
        derived={"source_chars": source, "target_chars": target, "max_target_length": 3}
    )
    out["encoder"], out["decoder"] = root / "encoder.onnx", root / "decoder.onnx"
    export_onnx(model, out["encoder"], mode="sequence")
    export_onnx(model, out["decoder"], mode="step")
    return out


def test_an_encoder_without_its_vocabulary(seq2seq) -> None:
    _raises(
        ValueError,
        "translate: the encoder graph carries no vocabulary; export it from a "
        "run folder (rnnkit export RUN) rather than from a bare model",
        deploy.translate,
        seq2seq["bare"],
        seq2seq["decoder"],
        "abc",
    )


@pytest.mark.parametrize("text", ["", 5])
def test_a_text_that_is_not_a_non_empty_string(seq2seq, text) -> None:
    _raises(
        ValueError,
        f"translate: text must be a non-empty string; got {text!r}",
        deploy.translate,
        seq2seq["encoder"],
        seq2seq["decoder"],
        text,
    )


@pytest.mark.parametrize("max_length", [-1, 2.0, True, "5"])
def test_a_max_length_that_is_not_a_count(seq2seq, max_length) -> None:
    # -1 decoded nothing without a word; 2.0 and "5" failed inside range().
    _raises(
        ValueError,
        f"translate: max_length must be an integer >= 0 or None; got {max_length!r}",
        deploy.translate,
        seq2seq["encoder"],
        seq2seq["decoder"],
        "abc",
        max_length=max_length,
    )
    assert deploy.translate(seq2seq["encoder"], seq2seq["decoder"], "abc", max_length=0) == ""


# ---- pretrained folders ------------------------------------------------------------------


@pytest.fixture
def place(tmp_path: Path):
    """A folder with a file, a dangling link and a folder whose config.json is another
    library's; yields it and checks afterwards that nothing was added or changed."""
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"format": "hf"}')
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.exists())
    yield tmp_path
    after = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.exists())
    assert after == before


def test_load_pretrained_of_a_file(place) -> None:
    _raises(
        RunFolderError,
        f"{place / 'file.txt'} is not a folder; load_pretrained reads a folder",
        rnnkit.load_pretrained,
        place / "file.txt",
    )


def test_a_folder_whose_config_is_another_librarys(place) -> None:
    _raises(
        RunFolderError,
        f"{place / 'other'} is not an rnnkit folder: its config.json "
        "has format 'hf', not 'rnnkit.run'",
        rnnkit.load_pretrained,
        place / "other",
    )


def test_a_folder_that_is_not_a_path(place) -> None:
    # Path() failed in its own words, naming no argument.
    _raises(TypeError, "load_pretrained: folder must be a path; got int", rnnkit.load_pretrained, 5)
    _raises(
        TypeError,
        "save_pretrained: folder must be a path; got NoneType",
        rnnkit.save_pretrained,
        torch.nn.Linear(2, 2),
        None,
    )


def test_save_pretrained_of_a_file(place) -> None:
    _raises(
        RunFolderError,
        f"{place / 'file.txt'} is a file; expected a run folder",
        rnnkit.save_pretrained,
        place / "file.txt",
        place / "out",
    )


def test_save_pretrained_of_a_folder_with_a_config(place) -> None:
    _raises(
        TypeError,
        "save_pretrained: config= is for a model object; a folder has its own",
        rnnkit.save_pretrained,
        place / "other",
        place / "out",
        config=place / "other",
    )


def test_save_pretrained_of_neither_a_folder_nor_a_model(place) -> None:
    _raises(
        TypeError,
        "save_pretrained: source must be a run folder or a torch.nn.Module; got int",
        rnnkit.save_pretrained,
        5,
        place / "out",
    )


def test_save_pretrained_into_a_link_a_file_or_a_full_folder(place) -> None:
    model = torch.nn.Linear(2, 2)
    _raises(
        ValueError,
        f"{place / 'link'} is a symbolic link; save_pretrained writes a new folder",
        rnnkit.save_pretrained,
        model,
        place / "link",
    )
    _raises(
        ValueError,
        f"{place / 'file.txt'} exists and is not a folder; save_pretrained writes a new folder",
        rnnkit.save_pretrained,
        model,
        place / "file.txt",
    )
    _raises(
        ValueError,
        f"{place / 'full'} already exists and is not empty; save_pretrained "
        "writes a new folder and overwrites nothing",
        rnnkit.save_pretrained,
        model,
        place / "full",
    )


def test_save_pretrained_with_a_config_of_the_wrong_kind(place) -> None:
    model = torch.nn.Linear(2, 2)
    _raises(
        RunFolderError,
        f"config folder not found: {place / 'nowhere'}",
        rnnkit.save_pretrained,
        model,
        place / "out",
        config=place / "nowhere",
    )
    _raises(
        TypeError,
        "save_pretrained: config must be a RunConfig or a folder holding config.json; got dict",
        rnnkit.save_pretrained,
        model,
        place / "out",
        config={"task": "lm"},
    )


# ---- generate ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.models.lm import CharLM, CharLMConfig

    torch.manual_seed(0)
    vocab = Vocabulary.from_text("hello world\n")
    model = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=4, embed_size=4), vocab)
    path = tmp_path_factory.mktemp("lm") / "lm.onnx"
    export_onnx(model.eval(), path, mode="step")
    return path


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True])
def test_a_seed_that_is_not_a_count(lm, seed) -> None:
    # numpy's generator refused "x" and 1.5 in its own words ("SeedSequence expects int
    # or sequence of ints"), -1 as "expected non-negative integer".
    _raises(
        ValueError,
        f"generate: seed must be an integer >= 0 or None; got {seed!r}",
        deploy.generate,
        lm,
        "he",
        3,
        seed=seed,
    )
    assert deploy.generate(lm, "he", 3, seed=np.int64(3)) == deploy.generate(lm, "he", 3, seed=3)


@pytest.mark.parametrize("temperature", [float("inf"), True])
def test_a_temperature_that_is_not_a_finite_number(lm, temperature) -> None:
    # inf sampled from NaN probabilities ("Probabilities contain NaN"); True read as 1.
    _raises(
        ValueError,
        f"generate: temperature must be a number >= 0; got {temperature!r}",
        deploy.generate,
        lm,
        "he",
        3,
        temperature=temperature,
    )


def test_a_stream_of_another_batch_size(lm) -> None:
    # Its first step refused the prompt as "x's batch size must equal the stream's".
    stream = deploy.OnnxStream(lm, batch_size=2)
    _raises(
        ValueError,
        "generate: a stream given as graph must be of batch size 1 (or none fixed); got an "
        "OnnxStream of batch_size=2",
        deploy.generate,
        stream,
        "he",
        3,
    )
    assert deploy.generate(deploy.OnnxStream(lm), "he", 3) == deploy.generate(lm, "he", 3)


def test_a_folder_without_a_config_or_a_model_without_one(place) -> None:
    _raises(
        RunFolderError,
        f"{place / 'full'} is not an rnnkit folder: it has no config.json",
        rnnkit.load_pretrained,
        place / "full",
    )
    _raises(
        ValueError,
        "save_pretrained: this Linear has no rnnkit config; give config= (the run folder it "
        "came from) or load it with rnnkit.load_pretrained",
        rnnkit.save_pretrained,
        torch.nn.Linear(2, 2),
        place / "out",
    )


def test_numpy_integers_are_integers(graphs, lm, seq2seq) -> None:
    # Each was refused as "must be a positive integer; got np.int64(...)".
    stream = deploy.OnnxStream(graphs["step"], batch_size=np.int64(2), threads=np.int64(1))
    assert stream.batch_size == 2 and type(stream.batch_size) is int
    assert stream.step(np.zeros((2, I))).shape == (2, H)
    assert deploy.generate(lm, "he", np.int64(3), top_k=np.int64(2)) == deploy.generate(
        lm, "he", 3, top_k=2
    )
    encoder, decoder = seq2seq["encoder"], seq2seq["decoder"]
    assert deploy.translate(encoder, decoder, "ab", max_length=np.int64(2)) == deploy.translate(
        encoder, decoder, "ab", max_length=2
    )


# ---- a graph of the other mode, ids, state and resets ------------------------------------


def test_a_graph_of_the_other_mode(graphs) -> None:
    _raises(
        ValueError,
        "OnnxStream: expected a graph exported with mode='step'; got mode='sequence' (use "
        "run_sequence() for it)",
        deploy.OnnxStream,
        graphs["lengths"],
    )
    _raises(
        ValueError,
        "run_sequence: expected a graph exported with mode='sequence'; got mode='step' (use "
        "OnnxStream for it)",
        deploy.run_sequence,
        graphs["step"],
        np.zeros((1, 1, I), np.float32),
    )


def test_ids_outside_the_vocabulary(lm) -> None:
    # The language model's vocabulary: "hello world\n" has 9 characters, and id 0 is unknown.
    stream = deploy.OnnxStream(lm)
    _raises(
        ValueError,
        "OnnxStream.step: x must hold ids in [0, 10); got values in [-1, 10]",
        stream.step,
        np.array([3, -1, 10]),
    )
    assert stream.state is None  # nothing ran


def test_a_state_of_the_wrong_number_of_arrays(graphs) -> None:
    stream = deploy.OnnxStream(graphs["step"])
    with pytest.raises(
        ValueError,
        match="^" + re.escape("OnnxStream.state: state must hold 2 array(s) (h, c); got 1") + "$",
    ):
        stream.state = np.zeros((1, 2, H), np.float32)
    _raises(
        ValueError,
        "run_sequence: state must hold 2 array(s) (h, c); got 3",
        deploy.run_sequence,
        graphs["lengths"],
        np.zeros((2, 2, I), np.float32),
        state=(np.zeros((1, 2, H), np.float32),) * 3,
    )


@pytest.mark.parametrize(
    ("samples", "given"), [([5], "[5]"), ([0, 2], "[0, 2]"), ([-3], "[-3]")]
)  # 0.5 is no index: a TypeError (tests/test_refusals_deploy.py)
def test_a_reset_of_samples_outside_the_batch(graphs, samples, given) -> None:
    stream = deploy.OnnxStream(graphs["step"])
    stream.step(np.zeros((2, I), np.float32))
    _raises(
        ValueError,
        "OnnxStream.reset: samples must be batch indices in [0, 2) (or from the end, -2 to -1); "
        f"got {given}",
        stream.reset,
        samples,
    )


@pytest.mark.parametrize(("history", "given"), [("123", "str"), (5.0, "float")])
def test_a_history_that_is_not_a_sequence_of_numbers(graphs, history, given) -> None:
    _raises(
        TypeError,
        "OnnxForecaster: history must be a sequence of numbers (e.g. a list or a 1-D array); "
        f"got {given}",
        deploy.OnnxForecaster,
        graphs["forecast"],
        history,
    )
