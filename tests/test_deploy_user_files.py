"""A user's own files through the numbers task and the export: standard input saved by an
editor (a byte-order mark, CRLF, blank lines at the end), the ONNX file given by its path,
a graph quantized onto itself, a directory given as a graph, and a run exported while it
is still being trained (its best checkpoint so far)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import rnnkit
from _refusals import raises_exactly
from rnnkit.cli import main
from rnnkit.seq2seq.data import EOS
from rnnkit.train import TrainConfig, train
from rnnkit.train.runfolder import RunFolder, RunFolderError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit import deploy  # noqa: E402
from rnnkit.export import export_onnx, quantize_onnx, read_metadata  # noqa: E402

TINY_OPTIONS = dict(
    max_number=999, embed_size=8, encoder_hidden=8, decoder_hidden=8, n_valid=10, n_test=12
)


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numbers run whose decoder ends at once: every output is the empty string, so the
    number of output lines is the number of inputs read."""
    out = tmp_path_factory.mktemp("w3") / "en"
    train("numbers", TINY_OPTIONS, TrainConfig(steps=2, eval_every=2), out=out,
          log=lambda _: None, progress=io.StringIO())  # fmt: skip
    path = out / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    weights = load_file(str(path))
    weights["head.bias"][EOS] = 50.0
    save_file(weights, str(path), metadata=meta)
    return out


def _translate_stdin(capsys, monkeypatch, run: Path, text: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    capsys.readouterr()
    code = main(["translate", str(run)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- rnnkit translate reads standard input as files hold it ---------------------------


def test_translate_reads_a_file_saved_with_a_bom_crlf_and_blank_lines_at_the_end(
    capsys, monkeypatch, numbers_run
):
    # Notepad's UTF-8: a BOM, CRLF, and the blank lines an export leaves at the end. The
    # BOM was refused as a character outside the vocabulary, the blank lines as "empty input".
    code, out, err = _translate_stdin(
        capsys, monkeypatch, numbers_run, "\ufeffseven\r\nnine\r\nTen\r\n\r\n  \r\n"
    )
    assert (code, err) == (0, "")
    assert out == "\n\n\n"  # three inputs, three (empty) outputs: one line each
    # The same inputs as arguments give the same outputs.
    assert main(["translate", str(numbers_run), "seven", "nine", "Ten"]) == 0
    assert capsys.readouterr().out == out


def test_translate_names_the_line_of_standard_input_it_refuses(capsys, monkeypatch, numbers_run):
    cases = {
        "seven\r\n\r\nnine\n": (
            "standard input line 2: empty input: expected a number in en words for 0..999"
        ),
        "seven\nnine\nsept cent\n": (
            "standard input line 3: input 'sept cent' has characters outside the vocabulary: "
            "'p', 'c'; expected en words for 0..999"
        ),
    }
    for text, message in cases.items():
        code, out, err = _translate_stdin(capsys, monkeypatch, numbers_run, text)
        assert (code, out, err) == (2, "", f"rnnkit translate: error: {message}\n")
    # Blank lines only: no input at all, as an empty standard input.
    code, out, err = _translate_stdin(capsys, monkeypatch, numbers_run, "\r\n\n")
    assert (code, out) == (2, "")
    assert err == (
        "rnnkit translate: error: empty input: give TEXT arguments or lines on standard input\n"
    )


# ---- rnnkit export of a run that is still training --------------------------------


def test_export_of_a_run_being_trained_writes_its_best_checkpoint_so_far(
    capsys, numbers_run, tmp_path
):
    # The trainer replaces checkpoints atomically and export takes no lock: a run that a
    # training process holds exports the best weights it has at that moment.
    run = tmp_path / "training"
    shutil.copytree(numbers_run, run)
    with RunFolder(run).locked():  # as a training process holds it
        assert main(["export", str(run), "--mode", "sequence"]) == 0
        # Still held: a second writer is refused.
        with pytest.raises(RunFolderError), RunFolder(run).locked():
            pass
    capsys.readouterr()
    assert (run / "model-sequence.onnx").stat().st_size > 0


# ---- the graph as a path: read_metadata, quantize_onnx, deploy ------------------------


@pytest.fixture(scope="module")
def step_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w3graph") / "sensor step.onnx"
    torch.manual_seed(0)
    export_onnx(rnnkit.GRU(3, 4), path, mode="step")
    return path


def test_read_metadata_takes_the_path_or_the_bytes_of_the_file(step_graph, tmp_path):
    expected = read_metadata(onnx.load(step_graph))
    assert expected["mode"] == "step" and expected["kind"] == "GRU"
    # The path was read as a ModelProto: AttributeError "'str' object has no attribute".
    assert read_metadata(str(step_graph)) == expected
    assert read_metadata(step_graph) == expected
    assert read_metadata(step_graph.read_bytes()) == expected
    text = tmp_path / "notes.onnx"
    text.write_text("not a graph")
    raises_exactly(
        ValueError,
        f"read_metadata: model must be an ONNX graph; {str(text)!r} does not parse as one",
        read_metadata,
        text,
    )
    raises_exactly(
        ValueError,
        "read_metadata: model must be an ONNX graph; the given bytes does not parse as one",
        read_metadata,
        b"not a graph",
    )
    raises_exactly(
        ValueError,
        f"read_metadata: model must be an ONNX file; got {str(tmp_path)!r}, a directory",
        read_metadata,
        tmp_path,
    )
    raises_exactly(
        TypeError,
        "read_metadata: model must be an onnx.ModelProto, the path of an ONNX file or its "
        "bytes; got int",
        read_metadata,
        5,
    )


def test_quantize_onnx_refuses_its_own_source_as_dst_and_keeps_it(step_graph, tmp_path):
    src = tmp_path / "float.onnx"
    shutil.copy(step_graph, src)
    before = src.read_bytes()
    # overwrite=True replaced the float graph by its int8 copy: the source was lost.
    for dst in (src, str(src), tmp_path / "." / "float.onnx"):
        raises_exactly(
            ValueError,
            f"quantize_onnx: dst must be another file than src; got {os.fspath(dst)!r} for "
            "both (the float graph would be lost)",
            quantize_onnx,
            src,
            dst,
            overwrite=True,
        )
    assert src.read_bytes() == before
    assert "quantization" not in read_metadata(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.onnx"]
    # Another file is written, as before.
    quantize_onnx(src, tmp_path / "int8.onnx")
    assert read_metadata(tmp_path / "int8.onnx")["quantization"]["weights"] == "int8"


def test_quantize_onnx_names_src_when_it_is_no_onnx_file(tmp_path):
    missing = tmp_path / "missing.onnx"
    text = tmp_path / "notes.onnx"
    text.write_text("not a graph")
    cases = {
        missing: f"quantize_onnx: src must be an ONNX file; got {str(missing)!r}, no such file",
        tmp_path: f"quantize_onnx: src must be an ONNX file; got {str(tmp_path)!r}, a directory",
        text: f"quantize_onnx: src must be an ONNX graph; {str(text)!r} does not parse as one",
    }
    for src, message in cases.items():  # os's "[Errno 2]" and protobuf's DecodeError before
        raises_exactly(ValueError, message, quantize_onnx, src, tmp_path / "q.onnx")
    raises_exactly(
        TypeError,
        "quantize_onnx: src must be a path or an onnx.ModelProto; got bytes",
        quantize_onnx,
        b"bytes",
        tmp_path / "q.onnx",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.onnx"]


def test_deploy_names_a_directory_given_as_the_graph(tmp_path):
    # It said "'...' does not exist" of a folder that exists.
    raises_exactly(
        ValueError,
        f"OnnxStream: expected an ONNX file; {str(tmp_path)!r} is a directory",
        deploy.OnnxStream,
        tmp_path,
    )
    raises_exactly(
        ValueError,
        f"OnnxStream: expected an ONNX file; {str(tmp_path / 'x.onnx')!r} does not exist",
        deploy.OnnxStream,
        tmp_path / "x.onnx",
    )
