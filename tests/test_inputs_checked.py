"""What rnnkit reads is checked and said as it is: a run folder given as a symbolic link,
the characters `rnnkit eval` scores, a beam width or length penalty of the wrong kind, a
prompt with characters outside the vocabulary, the ranges of `rnnkit explain`'s flags and
`rnnkit demo --out`."""

from __future__ import annotations

import io
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

import rnnkit
from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.demo import run_demo
from rnnkit.models.lm import CharLM
from rnnkit.seq2seq import evaluate, load_run, translate
from rnnkit.seq2seq.decode import beam_search
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig
from rnnkit.train import TrainConfig, bits_per_char, train
from rnnkit.train.runfolder import RunFolderError

LOG2 = math.log(2.0)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory, textwrap_text: Path) -> Path:
    out = tmp_path_factory.mktemp("lm") / "run"
    argv = ["train", "lm", "--text", str(textwrap_text), "--hidden", "8", "--embed", "4"]
    argv += ["--layers", "1", "--seq-len", "16", "--batch-size", "4", "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--eval-chars", "200", "--out", str(out)]) == 0
    return out


def _link_message(link: Path) -> str:
    return f"{link} is a symbolic link; expected a run folder (rnnkit does not follow links)"


# ---- a run folder given as a symbolic link -------------------------------------------


def test_load_refuses_a_link_to_a_run_as_load_pretrained_does(
    adding_run: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(adding_run)
    assert isinstance(rnnkit.load(adding_run), torch.nn.Module)  # the folder itself loads
    raises_exactly(RunFolderError, _link_message(link), rnnkit.load, link)
    raises_exactly(RunFolderError, _link_message(link), rnnkit.load_pretrained, link)


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "{link}"],
        ["generate", "{link}"],
        ["export", "{link}"],
        ["translate", "{link}", "seven"],
        ["forecast", "{link}"],
        ["explain", "draw", "--run", "{link}"],
        ["train", "--resume", "{link}", "--steps", "4"],
    ],
)
def test_every_command_that_reads_a_run_refuses_a_link_to_it(
    adding_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    link = tmp_path / "link"
    link.symlink_to(adding_run)
    before = {p.name: p.read_bytes() for p in adding_run.iterdir()}
    argv = [a.replace("{link}", str(link)) for a in argv]
    assert refused(capsys, argv, tmp_path) == f"rnnkit {argv[0]}: error: {_link_message(link)}"
    assert {p.name: p.read_bytes() for p in adding_run.iterdir()} == before


# ---- rnnkit eval of a language model: every character but the first ------------------


def _by_hand(model: CharLM, ids: torch.Tensor, lengths: list[int]) -> float:
    """bpc over consecutive streams of ``lengths`` targets, each from a zero state."""
    total, start = 0.0, 0
    for n in lengths:
        with torch.no_grad():
            logits, _ = model(ids[start : start + n].unsqueeze(1))  # (n, 1, V)
        logp = torch.log_softmax(logits[:, 0].double(), -1)
        total -= logp.gather(1, ids[start + 1 : start + n + 1].unsqueeze(1)).sum().item()
        start += n
    assert start == ids.numel() - 1  # the streams cover every character after the first
    return total / start / LOG2


def test_bits_per_char_scores_the_remainder_of_uneven_streams(lm_run: Path) -> None:
    model = rnnkit.load(lm_run)
    ids = model.vocab.encode("def f(x):\n    return x\n")[:11]  # 10 targets, 3 streams
    # 10 = 4 + 3 + 3: the first stream takes the one left over; none is dropped.
    bpc, scored = bits_per_char(model, ids, batch_size=3, seq_len=2)
    assert scored == 10
    assert bpc == pytest.approx(_by_hand(model, ids, [4, 3, 3]), rel=1e-5)


def test_eval_scores_every_character_of_a_786_character_text(
    lm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Path(rnnkit.__file__).read_text(encoding="utf-8")
    text = source[:784] + "x"  # 785 characters, no newline at the end
    assert len(text) == 785
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", str(lm_run), "--text", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = rnnkit.load(lm_run)
    ids = model.vocab.encode(text + "\n")
    unknown = sum(c not in model.vocab for c in text)
    # 786 characters read, 785 predicted: by hand, 17 streams of 25 and 15 of 24 (32 streams).
    assert lines[:2] == [
        f"text: {path}: 786 characters (with a newline added at the end of 1 file), "
        f"{unknown} unknown to the model",
        "scored: 785 characters, all but the first (nothing comes before it); read as 32 "
        "streams of 24-25 characters, each from a zero state: a character's context is the "
        "earlier characters of its stream",
    ]
    expected = _by_hand(model, ids, [25] * 17 + [24] * 15)
    assert lines[2] == f"bpc: {expected:.4f}"


def test_eval_of_a_one_character_file_scores_its_newline(
    lm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.txt"
    path.write_text("a", encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", str(lm_run), "--text", str(path), "--reset-every", "1"]) == 0
    reset = capsys.readouterr().out.splitlines()
    assert main(["eval", str(lm_run), "--text", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = rnnkit.load(lm_run)
    with torch.no_grad():
        logits, _ = model(model.vocab.encode("a").unsqueeze(1))
    expected = -torch.log_softmax(logits[0, 0].double(), -1)[model.vocab.encode("\n")[0]] / LOG2
    assert lines == [
        f"text: {path}: 2 characters (with a newline added at the end of 1 file), 0 unknown "
        "to the model",
        "scored: 1 character, all but the first (nothing comes before it); each with every "
        "earlier character as context",
        f"bpc: {float(expected):.4f}",
    ]
    assert reset[1] == (
        "scored: 1 character, all but the first (nothing comes before it); the state set to "
        "zeros every 1 character, each has at most 1 character of context"
    )


# ---- seq2seq: the beam width and the length penalty -----------------------------------


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("numbers") / "en"
    options = dict(
        max_number=999, embed_size=8, encoder_hidden=8, decoder_hidden=8, n_valid=10, n_test=12
    )
    config = TrainConfig(steps=2, eval_every=2)
    train("numbers", options, config, out=out, log=lambda _: None, progress=io.StringIO())
    return out


@pytest.mark.parametrize("beam", [True, False, 2.0, "2", None])
def test_translate_and_evaluate_refuse_a_beam_that_is_no_integer(
    numbers_run: Path, beam: object
) -> None:
    run = load_run(numbers_run)
    message = f"translate: beam must be an integer >= 1; got {beam!r}"
    raises_exactly(TypeError, message, translate, run, ["seven"], beam=beam)
    message = f"evaluate: beam must be an integer >= 1; got {beam!r}"
    raises_exactly(TypeError, message, evaluate, run, beam=beam, limit=2)


def test_translate_and_evaluate_refuse_a_beam_below_one(numbers_run: Path) -> None:
    run = load_run(numbers_run)
    raises_exactly(ValueError, "translate: beam must be >= 1; got 0", translate, run, ["7"], beam=0)
    raises_exactly(ValueError, "evaluate: beam must be >= 1; got -1", evaluate, run, beam=-1)
    # An integer beam still decodes: 1 is greedy (the default), 2 searches.
    greedy = [e.output for e in evaluate(run, limit=3).examples]
    assert [e.output for e in evaluate(run, beam=1, limit=3).examples] == greedy
    assert len(evaluate(run, beam=2, limit=2).examples) == 2


@pytest.mark.parametrize(
    ("alpha", "error"),
    [(-1, ValueError), (-1e-9, ValueError), (math.inf, ValueError), (math.nan, ValueError),
     (True, TypeError), ("0.6", TypeError), (None, TypeError)],
)  # fmt: skip
def test_beam_search_refuses_an_alpha_below_zero_or_not_a_number(
    alpha: object, error: type[Exception]
) -> None:
    model = Seq2Seq(Seq2SeqConfig(6, 6, embed_size=2, encoder_hidden=4, decoder_hidden=4))
    src, lengths = torch.ones(3, 2, dtype=torch.long), torch.tensor([3, 3])
    message = f"beam_search: alpha must be a finite number >= 0 (a length penalty); got {alpha!r}"
    raises_exactly(error, message, beam_search, model, src, lengths, 4, beam=2, alpha=alpha)
    for fine in (0, 0.6, 2):
        assert len(beam_search(model, src, lengths, 4, beam=2, alpha=fine)) == 2


# ---- rnnkit generate: a prompt with characters outside the vocabulary -----------------


def test_generate_names_the_prompts_unknown_characters_and_still_generates(
    lm_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = rnnkit.load(lm_run)
    prompt = "d\u00e9f \u2192 \u00e9"
    assert "\u00e9" not in model.vocab and "\u2192" not in model.vocab
    capsys.readouterr()
    argv = ["generate", str(lm_run), "--length", "20", "--seed", "3", "--device", "cpu"]
    assert main([*argv, "--prompt", prompt]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "rnnkit generate: --prompt has characters not in the run's vocabulary, read as its "
        "unknown class: '\u00e9', '\u2192'\n"
    )
    # Read as the unknown class: the same text as with any other unknown character there.
    other = "d\u2192f \u00e9 \u2192"
    gen = torch.Generator().manual_seed(3)
    sampled = "".join(model.sample(other, 20, temperature=0.8, generator=gen))
    assert out == prompt + sampled + "\n" and len(sampled) == 20
    assert main([*argv, "--prompt", "def "]) == 0
    assert capsys.readouterr().err == ""


# ---- rnnkit explain: flags out of an experiment's range name the flag -----------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gradient-flow", "--length", "1"],
         "rnnkit explain gradient-flow: error: argument --length: expected an integer >= 2; "
         "got 1"),
        (["bidirectional", "--vocab", "1"],
         "rnnkit explain bidirectional: error: argument --vocab: expected an integer >= 2; "
         "got 1"),
        (["rnn-loop", "--vocab", "1"],
         "rnnkit explain rnn-loop: error: argument --vocab: expected an integer >= 2; got 1"),
        (["bidirectional", "--length", "6", "--max-offset", "3"],
         "rnnkit explain: error: bidirectional: --length must be more than twice "
         "--max-offset; got --length 6, --max-offset 3"),
        (["draw", "rnn", "--steps", "7"],
         "rnnkit explain draw: error: argument --steps: expected an integer from 1 to 6; "
         "got 7"),
        (["draw", "rnn", "--layers", "5"],
         "rnnkit explain: error: draw: --layers: the unrolled rnn figure draws at most 4 "
         "layers; got 5"),
    ],
)  # fmt: skip
def test_explain_refuses_a_flag_out_of_range_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = ["explain", *argv, "--out", str(tmp_path / "figures")]
    assert refused(capsys, argv, tmp_path) == message


# ---- rnnkit demo --out: refused before anything is printed ----------------------------


def test_demo_refuses_its_out_before_printing_anything(
    adding_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(adding_run, run)
    afile = tmp_path / "f.txt"
    afile.write_text("mine\n")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    demo = ["demo", "--steps", "2", "--out"]
    assert refused(capsys, [*demo, str(run)], tmp_path) == (
        f"rnnkit demo: error: {run} already holds a run; continue it with --resume {run} or "
        "choose another --out"
    )
    assert refused(capsys, [*demo, str(afile)], tmp_path) == (
        f"rnnkit demo: error: --out: {afile} is a file; expected a folder"
    )
    assert refused(capsys, [*demo, str(link)], tmp_path) == (
        f"rnnkit demo: error: --out: {link} is a symbolic link; expected a folder (rnnkit "
        "does not follow links)"
    )
    # The API too: its log gets nothing before the refusal.
    lines: list[str] = []
    message = re.escape(f"{run} already holds a run; continue it with --resume {run} or ")
    with pytest.raises(RunFolderError, match="^" + message + "choose another --out$"):
        run_demo(steps=2, out=run, log=lines.append)
    raises_exactly(
        RunFolderError, _link_message(link), run_demo, steps=2, out=link, log=lines.append
    )
    assert lines == []
