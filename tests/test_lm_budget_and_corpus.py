"""The language model's built-in prose corpus, and a --minutes budget that counts training
steps only (evaluations, samples and checkpoints are not taken from it)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch

from rnnkit.data.corpus import SPLITS, docs_texts, file_split, load_corpus, stdlib_root
from rnnkit.tasks.lm import LanguageModelTask, LMOptions
from rnnkit.train import TrainConfig, train


@pytest.fixture(scope="module")
def docs():
    return load_corpus({"kind": "docs"})


def test_the_docs_corpus_is_english_prose_split_by_document(docs):
    named = docs_texts()
    root = stdlib_root()
    # Every document lands whole in the split its path's checksum picks, in order.
    parts = {
        s: "".join(
            t if t.endswith("\n") else t + "\n" for p, t in named if file_split(root, p) == s
        )
        for s in SPLITS
    }
    assert (docs.train, docs.validation, docs.test) == (
        parts["train"],
        parts["validation"],
        parts["test"],
    )
    assert docs.source["kind"] == "docs" and docs.num_files == len(named) > 100
    assert len(docs.train) > 1_000_000 and len(docs.test) > 20_000
    # Prose (with the odd example in it): mostly letters and spaces.
    letters = sum(c.isalpha() or c == " " for c in docs.test) / len(docs.test)
    assert letters > 0.8
    # The help topics are there, under a path of their own.
    assert any(p.parent.name == "topics" and p.name == "if" for p, _ in named)
    assert 'The "if" statement' in docs.train + docs.validation + docs.test
    assert "docstrings and help topics" in docs.describe()


def test_docs_corpus_is_the_same_on_every_read(docs):
    again = load_corpus({"kind": "docs", "python": "recorded by a run"})
    assert again.train == docs.train and again.test == docs.test


def test_lm_task_reads_the_corpus_it_names_and_records_it():
    task = LanguageModelTask(LMOptions(corpus="docs", batch_size=2, seq_len=8))
    task.prepare(TrainConfig(steps=1), _cpu())
    assert task.derived["corpus"]["kind"] == "docs"
    assert task.corpus.train.startswith(load_corpus({"kind": "docs"}).train[:1000])


def test_text_and_corpus_together_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="--text and --corpus name two corpora; give one"):
        LMOptions(text=str(tmp_path), corpus="docs")
    with pytest.raises(ValueError, match=r"--corpus must be one of stdlib, docs; got .prose."):
        LMOptions(corpus="prose")


def test_evaluation_time_is_not_taken_from_a_minutes_budget(tmp_path: Path, monkeypatch):
    import textwrap

    text = tmp_path / "text.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    slow = 0.7  # longer than the whole budget: one evaluation alone would exhaust it
    calls = []
    evaluate = LanguageModelTask.evaluate

    def slow_evaluate(self, model):
        calls.append(1)
        time.sleep(slow)  # an evaluation far longer than the steps around it
        return evaluate(self, model)

    monkeypatch.setattr(LanguageModelTask, "evaluate", slow_evaluate)
    budget_s = 0.3
    started = time.perf_counter()
    summary = train(
        "lm",
        LMOptions(
            text=str(text),
            hidden_size=8,
            embed_size=4,
            num_layers=1,
            seq_len=16,
            batch_size=4,
            eval_chars=50,
            sample_chars=0,
        ),
        TrainConfig(minutes=budget_s / 60, eval_every=40, warmup_steps=0, threads=1),
        out=tmp_path / "run",
        log=lambda s: None,
        progress=io.StringIO(),
    )
    wall = time.perf_counter() - started
    elapsed = json.loads((tmp_path / "run" / "train_state.json").read_text())["elapsed_s"]
    # The evaluations alone took more than twice the budget: had they counted, the run
    # would have stopped after a few steps. The training clock reached the budget anyway.
    assert len(calls) * slow > 2 * budget_s
    assert budget_s <= elapsed < wall - len(calls) * slow + 0.05
    assert summary.stopped_by is None and summary.step >= len(calls) - 1


def _cpu():
    from rnnkit.train.distributed import Context

    return Context(0, 1, torch.device("cpu"))


# ---- --dropout's default: by the size of the training text ------------------------------


def test_dropout_defaults_by_the_training_texts_size():
    from rnnkit.tasks.lm import AUTO_DROPOUT, AUTO_DROPOUT_BELOW, auto_dropout

    assert auto_dropout(None, AUTO_DROPOUT_BELOW - 1) == AUTO_DROPOUT == 0.1
    assert auto_dropout(None, AUTO_DROPOUT_BELOW) == 0.0
    assert auto_dropout(0.0, 1000) == 0.0 and auto_dropout(0.3, 10**9) == 0.3  # given: kept


def test_the_run_records_the_dropout_it_trains_with(tmp_path: Path):
    import textwrap

    from rnnkit.train.run import load

    text = tmp_path / "text.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    small = {"text": str(text), "hidden_size": 8, "embed_size": 4, "num_layers": 2,
             "seq_len": 8, "batch_size": 2, "eval_chars": 50, "sample_chars": 0}  # fmt: skip
    for given, want in ((None, 0.1), (0.0, 0.0), (0.25, 0.25)):
        out = tmp_path / f"run-{given}"
        train("lm", LMOptions(**small, dropout=given), TrainConfig(steps=2, threads=1),
              out=out, log=lambda s: None)  # fmt: skip
        derived = json.loads((out / "config.json").read_text())["derived"]
        assert derived["dropout"] == want
        model = load(out)
        assert model.config.dropout == want and model.drop.p == want
        assert model.rnn.dropout == want  # between the two layers


def test_docs_corpus_trains_with_dropout_and_the_standard_library_without():
    task = LanguageModelTask(LMOptions(corpus="docs", batch_size=2, seq_len=8))
    task.prepare(TrainConfig(steps=1), _cpu())
    assert len(task.corpus.train) < 5_000_000 and task.derived["dropout"] == 0.1
    stdlib = LanguageModelTask(LMOptions(batch_size=2, seq_len=8))
    stdlib.prepare(TrainConfig(steps=1), _cpu())
    assert len(stdlib.corpus.train) > 5_000_000 and stdlib.derived["dropout"] == 0.0


def test_a_run_folder_from_before_the_default_keeps_its_recorded_dropout():
    from rnnkit.data.vocab import Vocabulary

    vocab = Vocabulary.from_text("some text")
    for options, want in ((LMOptions(dropout=0.2), 0.2), (LMOptions(), 0.0)):
        task = LanguageModelTask(options)
        task.derived = {"vocab": vocab.to_dict()}  # no "dropout": written before it was
        assert task.build_model().config.dropout == want
