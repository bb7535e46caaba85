"""A trained numbers run used as the docs show, with a user's mistakes: each is refused in
one line naming the argument (or option), what was expected and what was given, and the
command line exits 2 before printing or writing anything."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from _refusals import raises_exactly, refused
from rnnkit.seq2seq import NumbersRun, Translation, evaluate, load_run, plot_attention, translate
from rnnkit.seq2seq.data import EOS
from rnnkit.train import TrainConfig, train

TINY = dict(max_number=99, embed_size=4, encoder_hidden=4, decoder_hidden=4, n_valid=4, n_test=4)


def tiny_run(root: Path, attention: str) -> Path:
    out = root / attention
    train("numbers", {**TINY, "attention": attention}, TrainConfig(steps=1, eval_every=1),
          out=out, log=lambda _: None, progress=io.StringIO())  # fmt: skip
    return out


def ending(run_dir: Path) -> NumbersRun:
    """The run, its decoder made to end at once (one step of training leaves it to chance)."""
    run = load_run(run_dir)
    with torch.no_grad():
        run.model.head.bias[EOS] = 50.0
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    tiny_run(root, "general")
    tiny_run(root, "none")
    return root


def test_plot_of_a_run_without_attention_is_refused_before_translating(
    runs: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The translation was printed first, then "this model has no attention", naming no option.
    plot = tmp_path / "a.png"
    argv = ["translate", str(runs / "none"), "seven", "--plot", str(plot)]
    assert refused(capsys, argv, runs) == (
        "rnnkit translate: error: --plot draws the attention weights; expected a run whose "
        f"model has attention; got {runs / 'none'}, with attention 'none'"
    )
    assert not plot.exists()


def test_plot_attention_names_its_arguments(tmp_path: Path) -> None:
    raises_exactly(
        ValueError,
        "plot_attention: translation has no attention weights to plot; expected one by a "
        "model with attention; got one by a model with attention='none'",
        plot_attention,
        Translation("seven", "7", 0.0, None),
        tmp_path / "x.png",
    )


def test_plot_attention_into_a_folder_is_refused(runs: Path, tmp_path: Path) -> None:
    # The atomic write's rename said "[Errno 21] Is a directory: '<temporary name>' -> ...".
    result = translate(ending(runs / "general"), ["seven"])[0]
    raises_exactly(
        ValueError,
        f"plot_attention: path must be a file name; got the folder {tmp_path}",
        plot_attention,
        result,
        tmp_path,
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (None, "translate: texts must be a list of str, one per input; got NoneType"),
        (7, "translate: texts must be a list of str, one per input; got int"),
        (
            ["seven", 7],
            "translate: texts must be a list of str, one per input; got int 7 at index 1",
        ),
        (
            [b"7"],
            "translate: texts must be a list of str, one per input; got bytes b'7' at index 0",
        ),
    ],
)
def test_translate_texts_must_be_strings(runs: Path, texts: object, message: str) -> None:
    # A number ended in "'int' object has no attribute 'lower'", None in "empty input".
    raises_exactly(TypeError, message, translate, load_run(runs / "general"), texts)


def test_translate_seed_must_be_an_integer(runs: Path) -> None:
    # torch said "manual_seed expected a long, but got float".
    run = ending(runs / "general")
    raises_exactly(
        TypeError,
        "translate: seed must be an integer or None; got 1.5",
        translate,
        run,
        ["seven"],
        temperature=1.0,
        seed=1.5,
    )
    assert len(translate(run, ["seven"], temperature=1.0, seed=3)) == 1


def test_translate_sampling_with_a_beam_says_what_was_given(runs: Path) -> None:
    raises_exactly(
        ValueError,
        "translate: sampling (a temperature) and beam search exclude each other; expected "
        "temperature None or beam 1; got temperature 0.5 and beam 2",
        translate,
        load_run(runs / "general"),
        ["seven"],
        beam=2,
        temperature=0.5,
    )


@pytest.mark.parametrize("split", ["train", "validation", "dev"])
def test_evaluate_scores_held_out_splits_only(runs: Path, split: str) -> None:
    # "train" scored --n-valid training numbers as if they were held out.
    raises_exactly(
        ValueError,
        f"evaluate: split must be 'valid' or 'test' (the held-out numbers); got {split!r}",
        evaluate,
        load_run(runs / "general"),
        split,
    )


def test_dot_attention_of_other_sizes_names_the_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # It said "Attention: 'dot' needs the decoder hidden size ...", naming no option.
    argv = ["train", "numbers", "--attention", "dot", "--encoder-hidden", "16",
            "--decoder-hidden", "64", "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: numbers options: --decoder-hidden must equal the encoder output "
        "size 32 (--encoder-hidden 16 x 2 directions) with --attention dot; got 64 (or use "
        "--attention general)"
    )
    assert refused(capsys, [*argv, "--no-bidirectional"], tmp_path) == (
        "rnnkit train: error: numbers options: --decoder-hidden must equal the encoder output "
        "size 16 (--encoder-hidden 16 x 1 direction, --no-bidirectional) with --attention dot; "
        "got 64 (or use --attention general)"
    )
