"""The word-by-word loop of chapter 10.4: corpus, vocabulary, the loop against the layer."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from _refusals import raises_exactly
from rnnkit.cli import main
from rnnkit.data.corpus import file_split
from rnnkit.explain.rnn_loop import (
    UNK,
    Vocabulary,
    WordRNN,
    docstring_words,
    docstrings,
    feed_word_by_word,
    perplexity,
    run_rnn_loop,
    unigram_perplexity,
    whole_sentence,
    words,
)

SENTENCES = [
    "Return the value of the given name.",
    "Read one line from the file and return it.",
    "Raise ValueError if the name is not found.",
    "Close the file; return None.",
]
TINY = dict(vocab=30, embed=6, hidden=5, steps=4, seq_len=4, batch=3)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def corpus(tmp_path):
    """A folder of small modules with docstrings: six in the training split, two in the
    validation split (by the library's file rule), one that does not parse."""
    root = tmp_path / "lib"
    root.mkdir()
    wanted = {"train": 6, "validation": 2}
    files = []
    i = 0
    while any(wanted.values()):
        path = root / f"mod{i}.py"
        part = file_split(root, path)
        if wanted.get(part, 0) > 0:
            wanted[part] -= 1
            path.write_text(_module(i), encoding="utf-8")
            files.append(path)
        i += 1
    broken = root / "broken.py"
    broken.write_text('"""Never read."""\ndef (:\n', encoding="utf-8")
    return root, [*files, broken]


def _docs(i: int) -> list[str]:
    """The module's, the class's and the method's docstring of module i."""
    module = " ".join(SENTENCES[(i + k) % 4] for k in range(3))
    return [module, SENTENCES[i % 4], SENTENCES[(i + 1) % 4]]


def _module(i: int) -> str:
    module, cls, method = _docs(i)
    # A comment, a string that is no docstring and an async function without one.
    return (
        f'"""{module}"""\n\n# Not a docstring.\nX = "nor this"\n\n\nclass A:\n'
        f'    """{cls}"""\n\n    def f(self):\n        """{method}"""\n\n\n'
        "async def g():\n    return 1\n"
    )


def test_words_keep_sentence_punctuation_and_split_code() -> None:
    text = "Return os.path_join(a, B) -- don't call it 42 times!"
    assert words(text) == [
        "return", "os", ".", "path", "join", "a", ",", "b", "don't", "call", "it", "42",
        "times", "!",
    ]  # fmt: skip


def test_vocabulary_cap_ties_and_unknown_words() -> None:
    train = ["b", "a", "c", "b", "a", "d", "c", "e", "e", "e"]
    vocab = Vocabulary.build(train, 3)
    assert vocab.itos == (UNK, "e", "a")  # e: 3; a, b, c: 2 each, a first alphabetically
    assert vocab.encode(["a", "b", "e", "zzz"]) == [2, 0, 1, 0]
    assert Vocabulary.build(train, 100).itos == (UNK, "e", "a", "b", "c", "d")
    raises_exactly(ValueError, "rnn-loop: vocab must be an integer >= 2 (<unk> and one word); "
                   "got 1", Vocabulary.build, train, 1)  # fmt: skip


def test_docstrings_of_modules_classes_and_functions(corpus) -> None:
    root, files = corpus
    for path in files[:-1]:
        assert docstrings(path) == _docs(int(path.stem[3:]))
    assert docstrings(files[-1]) == []  # does not parse: skipped
    split = docstring_words(files, root)
    expected: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for path in sorted(files[:-1], key=lambda f: f.name):  # mod10.py before mod2.py
        expected[file_split(root, path)] += words(" ".join(_docs(int(path.stem[3:]))))
    assert split == expected
    assert len(expected["train"]) > 6 * 35 and len(expected["validation"]) > 2 * 35
    with pytest.raises(ValueError, match="root is needed with files"):
        docstring_words(files)


def test_unigram_and_uniform_perplexity_golden_values() -> None:
    train = torch.tensor([0, 1, 1, 2])
    valid = torch.tensor([1, 2, 0])  # one window of 2: targets 2 and 0
    # add-one counts 2, 3, 2 of 7: both targets have p = 2/7
    assert unigram_perplexity(train, valid, 2, 3) == pytest.approx(3.5)
    torch.manual_seed(0)
    model = WordRNN("rnn", 7, 3, 4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    assert perplexity(model, torch.arange(20) % 7, 4) == pytest.approx(7.0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_loop_matches_the_whole_sentence_and_the_trace_has_one_row_per_word(corpus, cell) -> None:
    root, files = corpus
    sentence = "Return the value of the frobnicated file"
    result = run_rnn_loop(sentence=sentence, cell=cell, files=files, root=root, **TINY)
    sentence_words = words(sentence)
    assert [s.word for s in result.trace] == sentence_words
    assert result.trace[5].token == UNK and result.trace[0].token == "return"
    assert len(result.states) == len(sentence_words)
    assert all(len(row) == TINY["hidden"] for row in result.states)
    for t, step in enumerate(result.trace):
        assert len(step.top) == 5
        probs = [p for _, p in step.top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        before = result.states[t - 1] if t else [0.0] * TINY["hidden"]  # h^0 = 0
        assert step.norm == pytest.approx(math.dist(result.states[t], [0.0] * TINY["hidden"]))
        assert step.change == pytest.approx(math.dist(result.states[t], before))
        if t + 1 < len(sentence_words):
            assert step.next_word == result.trace[t + 1].token and 0 < step.next_p < 1
    assert result.trace[-1].next_word is None and result.trace[-1].next_p is None
    assert result.loop_vs_layer < 1e-5
    report = result.report()
    assert "frobnicated→<unk>" in report and f"over {len(sentence_words)} words" in report


def test_the_loop_is_the_elman_recurrence() -> None:
    """h^t = tanh(W_ih x^t + b_ih + W_hh h^(t-1) + b_hh), written out, and the next-word
    probabilities of the last step equal the batched model's."""
    torch.manual_seed(1)
    model = WordRNN("rnn", 11, 5, 7).eval()
    tokens = [3, 1, 4, 1, 5, 9]
    h, probs = feed_word_by_word(model, tokens)
    rnn = model.rnn
    state = torch.zeros(7)
    with torch.no_grad():
        for t, index in enumerate(tokens):
            x = model.embed.weight[index]
            state = torch.tanh(
                rnn.weight_ih_l0 @ x + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ state + rnn.bias_hh_l0
            )
            torch.testing.assert_close(h[t], state)
        batched = torch.softmax(model(torch.tensor(tokens)[:, None]), -1)[:, 0]
    torch.testing.assert_close(probs, batched)
    torch.testing.assert_close(whole_sentence(model, tokens), h)


def test_two_runs_are_identical(corpus) -> None:
    root, files = corpus
    a = run_rnn_loop(files=files, root=root, seed=3, **TINY)
    b = run_rnn_loop(files=files, root=root, seed=3, **TINY)
    c = run_rnn_loop(files=files, root=root, seed=4, **TINY)
    assert a.report() == b.report() and a.states == b.states and a.losses == b.losses
    assert a.states != c.states


def test_training_beats_the_unigram_baseline(corpus) -> None:
    root, files = corpus
    settings = {**TINY, "steps": 150, "hidden": 16, "embed": 8}
    result = run_rnn_loop(files=files, root=root, cell="gru", **settings)
    # The toy docstrings repeat four sentences: the previous words predict the next one.
    assert result.perplexity < 0.5 * result.unigram_perplexity
    assert result.losses[-1][1] < result.losses[0][1]


def test_rnn_loop_command_end_to_end(tmp_path, capsys) -> None:
    argv = ["explain", "rnn-loop", "--vocab", "50", "--embed", "4", "--hidden", "4"]
    argv += ["--steps", "2", "--seq-len", "4", "--batch", "2", "--cell", "lstm"]
    assert main([*argv, "--sentence", "Close the file.", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "word-level language model on the standard library's docstrings" in out
    assert "validation perplexity" in out and "unigram word frequencies" in out
    assert "prediction after the last word ('.')" in out
    assert "loop against the layer on the whole sentence at once" in out
    path = tmp_path / "rnn-loop.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 200
    assert path.stat().st_size < 100_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sentence", ""], "rnn-loop: sentence must hold at least one word (letters, digits "
         "or . , ; : ! ?); got ''"),
        (["--sentence", "@@ ()"], "rnn-loop: sentence must hold at least one word (letters, "
         "digits or . , ; : ! ?); got '@@ ()'"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "figs"
    assert main(["explain", "rnn-loop", *extra, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"rnnkit explain: error: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize(
    "extra",
    [["--vocab", "0"], ["--vocab", "1"], ["--hidden", "0"], ["--cell", "tcn"], ["--steps", "x"]],
)
def test_bad_argument_types_exit_2(capsys, extra) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["explain", "rnn-loop", *extra])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_run_rnn_loop_checks_arguments(corpus) -> None:
    root, files = corpus
    with pytest.raises(ValueError, match="cell must be one of"):
        run_rnn_loop(cell="mingru")
    raises_exactly(ValueError, "rnn-loop: seq_len must be an integer >= 1; got 0", run_rnn_loop,
                   seq_len=0)  # fmt: skip
    with pytest.raises(ValueError, match="seq_len must be shorter than each split"):
        run_rnn_loop(files=files, root=root, **{**TINY, "seq_len": 10_000})
