"""`rnnkit explain ...` end to end on tiny configurations: exit status, output, PNG."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from rnnkit.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield  # the commands set one thread themselves (--threads, default 1)
    torch.set_num_threads(threads)


def _check_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    assert path.stat().st_size < 300_000


def test_gradient_flow_command(tmp_path, capsys) -> None:
    argv = ["explain", "gradient-flow", "--length", "6", "--hidden", "4", "--steps", "2"]
    assert main([*argv, "--init", "chrono", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "known case: linear RNN with W_hh = 0.9·I" in out
    assert "after 2 training steps" in out and "LSTM ∏ f (direct term)" in out
    _check_png(tmp_path / "gradient-flow-chrono.png")


def test_compare_command(tmp_path, capsys) -> None:
    argv = ["explain", "compare", "--hidden", "4", "--input-size", "3", "--length", "4"]
    argv += ["--batch", "2", "--repeats", "1", "--steps", "0", "--scaling-lengths", "3,6"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "equal hidden size" in out and "MSE" not in out.split("budget")[-1]
    assert "T=3" in out and "T=6" in out
    _check_png(tmp_path / "compare.png")


def test_bidirectional_command(tmp_path, capsys) -> None:
    argv = ["explain", "bidirectional", "--cell", "rnn", "--hidden", "4", "--length", "5"]
    assert main([*argv, "--max-offset", "1", "--steps", "3", "--out", str(tmp_path)]) == 0
    assert "bidirectional, H = 4 per direction" in capsys.readouterr().out
    _check_png(tmp_path / "bidirectional.png")


def test_bad_arguments_exit_with_status_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["explain", "gradient-flow", "--init", "xavier"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["explain", "compare", "--steps", "-1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["explain", "compare", "--scaling-lengths", "10,x"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["explain", "bidirectional", "--length", "4", "--max-offset", "2"]) == 2
    assert capsys.readouterr().err == (
        "rnnkit explain: error: bidirectional: --length must be more than twice --max-offset; "
        "got --length 4, --max-offset 2\n"
    )


def test_gates_on_a_missing_run_folder(tmp_path, capsys) -> None:
    assert main(["explain", "gates", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit explain: error:") and len(err.strip().splitlines()) == 1


def test_gates_units_must_be_integers(tmp_path, capsys) -> None:
    assert main(["explain", "gates", str(tmp_path), "--units", "1,x"]) == 2
    assert "--units must be comma-separated integers" in capsys.readouterr().err


def test_gates_command_on_a_trained_language_model(tmp_path, capsys) -> None:
    text = 'def f(x):\n    return [x, "a(b)"]  # (x)\n\nclass A:\n    y = (1, 2)\n'
    corpus = tmp_path / "code.py"
    corpus.write_text(text * 4, encoding="utf-8")
    run = tmp_path / "run"
    train = ["train", "--text", str(corpus), "--cell", "lstm", "--layers", "2", "--hidden", "8"]
    train += ["--embed", "4", "--seq-len", "8", "--batch-size", "2", "--steps", "2"]
    assert main([*train, "--eval-every", "2", "--threads", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    argv = ["explain", "gates", str(run), "--text", text, "--units", "0,3", "--layer", "0"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "LSTM layer 0, 65 characters, 8 cell units" in out
    for feature in ("inside quotes", "inside comment", "bracket depth", "line position"):
        assert feature in out
    _check_png(tmp_path / "gates.png")
    assert main(["explain", "gates", str(run), "--file", str(corpus), "--out", str(tmp_path)]) == 0
    assert f"LSTM layer 1, {4 * len(text)} characters" in capsys.readouterr().out
    assert main(["explain", "gates", str(run), "--layer", "2"]) == 2
    assert "--layer: expected an integer in [0, 1]; got 2" in capsys.readouterr().err


def test_gates_refuses_a_run_it_cannot_trace_in_one_line(tmp_path, capsys) -> None:
    # An adding run has no character vocabulary: this ended in an AttributeError traceback.
    run = tmp_path / "adding"
    argv = ["train", "adding", "--length", "10", "--hidden", "4", "--steps", "1"]
    assert main([*argv, "--n-val", "8", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["explain", "gates", str(run), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"rnnkit explain: error: RUN_DIR {run}: expected a language-model run (rnnkit train "
        "lm) with --cell lstm; got a MemoryModel"
    )
    assert not (tmp_path / "gates.png").exists()


def test_gates_file_errors_name_the_flag(tmp_path, capsys) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 au lait\n")
    cases = {
        str(latin): f"--file: {latin} is not UTF-8 text (byte 0xe9 at offset 3)",
        str(tmp_path / "none.txt"): f"--file: expected a UTF-8 text file; got "
        f"{tmp_path / 'none.txt'} (not found)",
    }
    for name, message in cases.items():
        assert main(["explain", "gates", "--file", name, "--steps", "1"]) == 2
        assert capsys.readouterr().err.strip() == f"rnnkit explain: error: {message}"


def test_gates_checks_layer_and_units_before_the_reference_model_trains(
    tmp_path, capsys, monkeypatch
) -> None:
    import rnnkit.explain.gates as gates

    def never(**_kwargs: object) -> None:
        raise AssertionError("the reference model trained before the check")

    monkeypatch.setattr(gates, "train_reference_model", never)
    assert main(["explain", "gates", "--layer", "1", "--out", str(tmp_path)]) == 2
    assert "error: --layer: expected an integer in [0, 0]; got 1" in capsys.readouterr().err
    assert main(["explain", "gates", "--units", "3,128", "--out", str(tmp_path)]) == 2
    assert "error: --units: expected units in [0, 127]; got 128" in capsys.readouterr().err


def test_a_figure_rnnkit_did_not_write_is_replaced_only_with_force(
    tmp_path, capsys, monkeypatch
) -> None:
    import rnnkit.explain as explain

    mine = tmp_path / "bptt.png"
    mine.write_bytes(b"my own figure")
    argv = ["explain", "bptt", "--length", "3", "--hidden", "2", "--out", str(tmp_path)]
    real = explain.run_bptt

    def never(**_kwargs: object) -> None:
        raise AssertionError("the experiment ran before the check")

    monkeypatch.setattr(explain, "run_bptt", never)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"rnnkit explain: error: --out {tmp_path} already holds bptt.png, which rnnkit did "
        "not write; pass --force to replace it, or name another folder"
    )
    assert mine.read_bytes() == b"my own figure"
    monkeypatch.setattr(explain, "run_bptt", real)
    assert main([*argv, "--force"]) == 0
    _check_png(mine)
    first = mine.read_bytes()
    assert main([*argv, "--seed", "1"]) == 0  # its own figure: rewritten without --force
    assert mine.read_bytes() != first
    # draw --run knows the figure's name only from the run; it is checked before writing
    run = tmp_path / "lm"
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    argv = ["train", "--text", str(text), "--steps", "1", "--hidden", "8", "--seq-len", "16"]
    assert main([*argv, "--out", str(run)]) == 0
    (tmp_path / "draw-lstm.png").write_bytes(b"mine too")
    capsys.readouterr()
    assert main(["explain", "draw", "--run", str(run), "--out", str(tmp_path)]) == 2
    assert "already holds draw-lstm.png, which rnnkit did not write" in capsys.readouterr().err
    assert (tmp_path / "draw-lstm.png").read_bytes() == b"mine too"
