"""Seq2seq: attention masking, decoders against each other and against the full pass,
the numbers task's split, its training through the one loop, the run folder and every
error message."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import rnnkit
from rnnkit.seq2seq import (
    NumbersTask,
    Seq2Seq,
    Seq2SeqConfig,
    beam_search,
    evaluate,
    greedy,
    load_run,
    plot_attention,
    sample,
    translate,
)
from rnnkit.seq2seq.data import BOS, EOS, PAD, CharVocab, normalise, pad_sources
from rnnkit.seq2seq.evaluate import Translation, edit_distance, prepare_source
from rnnkit.seq2seq.model import DECODER_CELLS, ENCODERS
from rnnkit.tasks.numbers import NumbersOptions
from rnnkit.tasks.numbers import NumbersTask as NumbersTrainingTask
from rnnkit.train import RunConfig, RunFolder, TrainConfig, train
from rnnkit.train.distributed import Context

ATTENTIONS = ["none", "additive", "dot", "general"]


def tiny_model(attention: str = "general", encoder: str = "gru", decoder: str = "gru", **kw):
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        src_vocab_size=12,
        tgt_vocab_size=9,
        embed_size=6,
        encoder=encoder,
        encoder_hidden=5,
        bidirectional=True,
        decoder=decoder,
        decoder_hidden=10,
        attention=attention,
        **kw,
    )
    return Seq2Seq(config).double().eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    lengths = torch.tensor([7, 3, 5, 1])
    src = torch.randint(4, 12, (7, 4))  # (S, B)
    src[torch.arange(7)[:, None] >= lengths[None, :]] = PAD
    return src, lengths


# ---- attention masks padding ----------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("encoder", ["gru", "lstm"])
def test_padding_changes_nothing(attention, encoder):
    model = tiny_model(attention, encoder=encoder, decoder=encoder, decoder_layers=2)
    src, lengths = padded_batch()
    tgt_in = torch.randint(3, 9, (6, 4))
    tgt_in[0] = BOS
    ref = model(src, lengths, tgt_in)
    noisy = src.clone()
    pad = torch.arange(7)[:, None] >= lengths[None, :]
    noisy[pad] = torch.randint(4, 12, (int(pad.sum()),))  # garbage where padding was
    torch.testing.assert_close(model(noisy, lengths, tgt_in), ref, rtol=0, atol=1e-12)
    # Each sequence alone, without any padding, gives its row of the batch.
    for b in range(4):
        alone = model(src[: lengths[b], b : b + 1], lengths[b : b + 1], tgt_in[:, b : b + 1])
        torch.testing.assert_close(alone, ref[:, b : b + 1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
def test_attention_weights_are_zero_on_padding(attention):
    model = tiny_model(attention)
    src, lengths = padded_batch()
    for d in greedy(model, src, lengths, max_len=5):
        assert d.attention is not None
        torch.testing.assert_close(d.attention.sum(-1), torch.ones(len(d.attention)).double())
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    _, _, w = model.step(torch.full((4,), BOS), state, memory)
    assert w is not None
    assert bool((w[~memory.mask] == 0).all())


# ---- decoders -------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_step_by_step_equals_teacher_forced_pass(attention):
    model = tiny_model(attention, decoder="lstm", decoder_layers=2)
    src, lengths = padded_batch()
    decoded = greedy(model, src, lengths, max_len=6)
    T = max(len(d.tokens) + 1 for d in decoded)
    tgt = torch.full((T, 4), PAD)
    for b, d in enumerate(decoded):
        ids = [*d.tokens, EOS] if d.finished else d.tokens
        tgt[: len(ids), b] = torch.tensor(ids)
    tgt_in = torch.cat([torch.full((1, 4), BOS), tgt[:-1]])
    logp = F.log_softmax(model(src, lengths, tgt_in), -1)  # (T, B, V)
    for b, d in enumerate(decoded):
        n = len(d.tokens) + d.finished
        full = logp[torch.arange(n), b, tgt[:n, b]].sum()
        torch.testing.assert_close(full.item(), d.score, rtol=0, atol=1e-10)
    # And the greedy tokens are the argmax of the full pass at every step.
    for b, d in enumerate(decoded):
        assert logp[: len(d.tokens), b].argmax(-1).tolist() == d.tokens


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_one_equals_greedy(attention):
    model = tiny_model(attention)
    src, lengths = padded_batch()
    g = greedy(model, src, lengths, max_len=8)
    b1 = beam_search(model, src, lengths, max_len=8, beam=1)
    assert [d.tokens for d in b1] == [d.tokens for d in g]
    assert [d.finished for d in b1] == [d.finished for d in g]
    for x, y in zip(b1, g, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-10)
        if y.attention is not None:
            torch.testing.assert_close(x.attention, y.attention)


def test_beam_search_is_batched_and_scores_its_hypothesis():
    model = tiny_model("additive")
    src, lengths = padded_batch()
    batch = beam_search(model, src, lengths, max_len=8, beam=3)
    for b in range(4):
        alone = beam_search(model, src[: lengths[b], b : b + 1], lengths[b : b + 1], 8, beam=3)
        assert alone[0].tokens == batch[b].tokens
        assert alone[0].score == pytest.approx(batch[b].score, abs=1e-9)
    # The score is the log-probability the teacher-forced pass gives the hypothesis.
    d = batch[0]
    ids = [*d.tokens, EOS] if d.finished else d.tokens
    tgt_in = torch.tensor([BOS, *ids[:-1]])[:, None]
    logp = F.log_softmax(model(src[: lengths[0], :1], lengths[:1], tgt_in), -1)[:, 0]
    assert logp[torch.arange(len(ids)), ids].sum().item() == pytest.approx(d.score, abs=1e-9)


def test_beam_search_keeps_the_most_likely_finished_hypothesis():
    # A wider beam never ends with a lower log-probability than greedy here (α = 0).
    model = tiny_model("general")
    src, lengths = padded_batch()
    g = greedy(model, src, lengths, max_len=12)
    b = beam_search(model, src, lengths, max_len=12, beam=8)
    for x, y in zip(b, g, strict=True):
        if x.finished and y.finished:
            assert x.score >= y.score - 1e-9


def test_sampling_is_seeded_and_cold_sampling_is_greedy():
    model = tiny_model("dot")
    src, lengths = padded_batch()
    draw = [
        [d.tokens for d in sample(model, src, lengths, 8, 1.5, torch.Generator().manual_seed(3))]
        for _ in range(2)
    ]
    assert draw[0] == draw[1]
    cold = sample(model, src, lengths, 8, 1e-4, torch.Generator().manual_seed(0))
    assert [d.tokens for d in cold] == [d.tokens for d in greedy(model, src, lengths, 8)]
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(model, src, lengths, 8, 0.0)


@pytest.mark.parametrize("temperature", [1e-4, 1e-30, 1e-300])
def test_cold_sampling_is_greedy_where_padding_is_the_likeliest_token(temperature):
    # Padding and begin-of-sequence are never output. Where the model scores one of them
    # highest, every other probability of softmax(logits / T) underflowed to 0 at a small
    # T (torch.multinomial: "invalid multinomial distribution"), and T below float32's
    # range gave nan; `rnnkit translate --temperature 1e-300` ended in a traceback.
    model = tiny_model("general")
    with torch.no_grad():
        model.head.bias[PAD] += 50.0
        model.head.bias[BOS] += 40.0
    src, lengths = padded_batch()
    want = greedy(model, src, lengths, 8)
    assert all(d.tokens and PAD not in d.tokens and BOS not in d.tokens for d in want)
    cold = sample(model, src, lengths, 8, temperature, torch.Generator().manual_seed(0))
    assert [d.tokens for d in cold] == [d.tokens for d in want]
    assert not any(math.isnan(d.score) for d in cold)
    plain = tiny_model("general")
    cold = sample(plain, src, lengths, 8, temperature, torch.Generator().manual_seed(0))
    assert [d.tokens for d in cold] == [d.tokens for d in greedy(plain, src, lengths, 8)]


def test_scheduled_sampling_feeds_the_models_own_tokens():
    model = tiny_model("general")
    src, lengths = padded_batch()
    tgt_in = torch.randint(3, 9, (5, 4))
    tgt_in[0] = BOS
    own = model(src, lengths, tgt_in, sampling_probability=1.0)
    fed = torch.cat([tgt_in[:1], own[:-1].argmax(-1)])
    torch.testing.assert_close(model(src, lengths, fed), own, rtol=0, atol=1e-12)


def test_model_config_errors():
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2SeqConfig(5, 5, attention="cosine")
    with pytest.raises(ValueError, match="encoder must be one of"):
        Seq2SeqConfig(5, 5, encoder="transformer")
    with pytest.raises(ValueError, match="'dot' needs the decoder hidden size"):
        Seq2Seq(Seq2SeqConfig(5, 5, encoder_hidden=4, decoder_hidden=6, attention="dot"))
    with pytest.raises(ValueError, match="unknown keys"):
        Seq2SeqConfig.from_dict({"src_vocab_size": 5, "tgt_vocab_size": 5, "heads": 2})
    with pytest.raises(ValueError, match="src_lengths must have"):
        tiny_model().encode(torch.ones(3, 2, dtype=torch.long), torch.tensor([3, 0]))


# ---- the numbers task -----------------------------------------------------------------


def test_split_by_number_is_disjoint_and_complete():
    task = NumbersTask(lang="en", min_number=0, max_number=4999)
    splits = {
        s: {n for n in range(5000) if task.split_of(n) == s} for s in ("train", "valid", "test")
    }
    assert sum(len(v) for v in splits.values()) == 5000
    assert not splits["train"] & splits["test"]
    assert not splits["train"] & splits["valid"]
    assert not splits["valid"] & splits["test"]
    assert 150 < len(splits["test"]) < 350  # 5 % of 5000, by a hash
    test = task.fixed_set("test", 200)
    valid = task.fixed_set("valid", 200)
    assert set(test) <= splits["test"]
    assert set(valid) <= splits["valid"]
    drawn = task.sample("train", 2000, torch.Generator().manual_seed(0))
    assert set(drawn) <= splits["train"]
    # Digit counts are drawn uniformly: 1- to 4-digit numbers all appear.
    assert {len(str(n)) for n in drawn} == {1, 2, 3, 4}
    # The split is a property of the number, not of the direction or language.
    other = NumbersTask(lang="fr", direction="digits2words", max_number=4999)
    assert other.fixed_set("test", 200) == test


def test_pairs_and_vocabulary():
    task = NumbersTask(lang="en")
    assert task.pair(312004) == ("three hundred and twelve thousand and four", "312004")
    assert NumbersTask(lang="fr", direction="digits2words").pair(97) == (
        "97",
        "quatre-vingt-dix-sept",
    )
    assert normalise("One Thousand,  Two") == "one thousand two"
    vocab = CharVocab("0123456789")
    assert vocab.decode([*vocab.encode("907", eos=True), 5]) == "907"
    assert vocab.unknown("9a7b") == ["a", "b"]
    src, lengths = pad_sources([[4, 5], [6]])
    assert src.tolist() == [[4, 6], [5, PAD]] and lengths.tolist() == [2, 1]


def test_task_errors():
    with pytest.raises(ValueError, match=r"unsupported language 'xx'; expected one of .*en"):
        NumbersTask(lang="xx")
    with pytest.raises(ValueError, match="direction must be one of"):
        NumbersTask(direction="both")
    with pytest.raises(ValueError, match="0 <= min_number <= max_number"):
        NumbersTask(min_number=10, max_number=5)
    with pytest.raises(ValueError, match="valid_fraction must lie in"):
        NumbersTask(valid_fraction=0.0)
    single = NumbersTask(min_number=7, max_number=7)
    other = next(s for s in ("train", "valid", "test") if s != single.split_of(7))
    with pytest.raises(ValueError, match=f"has \\(almost\\) no {other} numbers; widen it"):
        single.sample(other, 1, torch.Generator())
    with pytest.raises(ValueError, match=r"--n-valid must be an integer in \[1, .*; got 0"):
        NumbersOptions(n_valid=0)
    with pytest.raises(ValueError, match=r"--embed \(embed_size\) must be an integer"):
        NumbersOptions(embed_size=0)
    with pytest.raises(ValueError, match="--direction must be one of words2digits"):
        NumbersOptions(direction="both")
    with pytest.raises(ValueError, match=r"--attention must be one of none, additive"):
        NumbersOptions(attention="soft")
    with pytest.raises(ValueError, match="--min-number must be <= --max-number; got 10 > 5"):
        NumbersOptions(min_number=10, max_number=5)
    with pytest.raises(ValueError, match=r"--valid-fraction must be a finite number in \(0, 0.5\)"):
        NumbersOptions(valid_fraction=0.0)
    with pytest.raises(ValueError, match=r"--scheduled-sampling must be a finite number in \["):
        NumbersOptions(scheduled_sampling=1.0)


# ---- training through the one loop, the run folder, translation and evaluation ------

TINY = dict(
    max_number=999,
    n_valid=20,
    n_test=30,
    embed_size=8,
    encoder_hidden=8,
    decoder_hidden=16,
    batch_size=8,
    label_smoothing=0.1,
    scheduled_sampling=0.5,
)


def quiet_train(task_options=None, train_config=None, **kw):
    """``rnnkit.train.train("numbers", ...)`` without printing."""
    return train(
        "numbers",
        task_options,
        train_config,
        log=lambda _: None,
        progress=io.StringIO(),
        **kw,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("numbers") / "run"
    quiet_train(TINY, TrainConfig(steps=4, eval_every=2), out=out)
    return out


def test_run_folder_is_the_common_one(run_dir):
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        ".lock",
        "README.md",
        "config.json",
        "loss.png",
        "metrics.csv",
        "model.safetensors",
        "train_state-00000004.safetensors",
        "train_state.json",
    ]
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["format"] == "rnnkit.run" and meta["task"] == "numbers"
    assert meta["options"]["lang"] == "en" and meta["options"]["max_number"] == 999
    assert meta["train"]["steps"] == 4
    derived = meta["derived"]
    assert set(derived["target_chars"]) == set("0123456789")
    assert derived["max_target_length"] == 3
    # the longest English number word below 1000 ("three hundred and seventy-seven" ...)
    assert derived["max_source_length"] == max(len(NumbersTask().words(n)) for n in range(1000))
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    validation = [r.split(",") for r in rows[1:] if ",validation," in r]
    assert {(r[0], r[3]) for r in validation} >= {("2", "exact"), ("4", "exact"), ("4", "cer")}
    assert isinstance(rnnkit.load(run_dir), Seq2Seq)


def test_tiny_run_loads_as_a_seq2seq(tmp_path):
    out = tmp_path / "tiny"
    options = NumbersOptions(**{**TINY, "max_number": 99})
    summary = quiet_train(options, TrainConfig(steps=20, eval_every=10), out=out)
    assert summary.step == 20 and set(summary.metrics) == {"exact", "cer", "loss"}
    assert 0.0 <= summary.metrics["exact"] <= 1.0 and summary.best["metric"] == "exact"
    assert any(line.startswith("valid exact match") for line in summary.lines)
    assert any("rnnkit translate" in line for line in summary.lines)
    model = rnnkit.load(out)
    assert isinstance(model, Seq2Seq) and not model.training
    run = load_run(out)
    assert run.options == options and run.task.max_number == 99
    for name, value in model.state_dict().items():
        assert torch.equal(value, run.model.state_dict()[name])


def same_files(a: Path, b: Path, step: int) -> None:
    """Bitwise the same best weights and training state (every tensor)."""
    for name in ("model.safetensors", f"train_state-{step:08d}.safetensors"):
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys(), name
        if name.startswith("train_state"):
            assert {"model.head.bias", "data.generator", "rng.cpu"} <= set(x)
        for key in x:
            assert torch.equal(x[key], y[key]), f"{name}: {key}"


def test_resume_with_a_larger_budget_is_bitwise_the_uninterrupted_run(tmp_path):
    # A constant rate and no scheduled sampling: nothing depends on the budget, so 10
    # steps, then a resume to 20, is the 20-step run to the bit.
    options = {**TINY, "max_number": 99, "scheduled_sampling": 0.0, "dropout": 0.1,
               "decoder_layers": 2}  # fmt: skip
    config = dict(eval_every=10, schedule="constant", warmup_steps=0)
    whole, split = tmp_path / "whole", tmp_path / "split"
    quiet_train(options, TrainConfig(steps=20, **config), out=whole)
    quiet_train(options, TrainConfig(steps=10, **config), out=split)
    summary = quiet_train(resume=split, steps=20)
    assert summary.step == 20
    same_files(whole, split, 20)


def test_interrupted_run_resumes_bitwise(tmp_path):
    # Cosine schedule, scheduled sampling and dropout: the run stopped after step 10 (as
    # by Ctrl-C) and resumed ends with every tensor of the run trained in one go.
    options = {**TINY, "max_number": 99, "dropout": 0.1, "decoder_layers": 2}
    config = TrainConfig(steps=20, eval_every=10)
    whole, split = tmp_path / "whole", tmp_path / "split"
    quiet_train(options, config, out=whole)

    def stop_at_10(trainer):
        if trainer.step == 10:
            trainer.request_stop("test")

    first = quiet_train(options, config, out=split, on_step=stop_at_10)
    assert first.step == 10 and first.stopped_by == "test"
    assert json.loads((split / "train_state.json").read_text())["data"]["step"] == 10
    quiet_train(resume=split)
    same_files(whole, split, 20)


def test_batches_share_the_global_batch_and_ramp_scheduled_sampling():
    options = NumbersOptions(**{**TINY, "batch_size": 6})
    config = TrainConfig(steps=10)
    cpu = torch.device("cpu")
    one, two = Context(0, 1, cpu), [Context(rank, 2, cpu) for rank in (0, 1)]
    task = NumbersTrainingTask(options)
    task.prepare(config, one)
    whole = task.batches(config, one)
    shares = [task.batches(config, ctx) for ctx in two]
    for step in range(4):
        batch = next(whole)
        parts = [next(s) for s in shares]
        assert batch.sampling == pytest.approx(0.5 * step / 10)
        assert torch.equal(batch.lengths, torch.cat([p.lengths for p in parts]))
        columns = [p.src[:, b] for p in parts for b in range(p.src.size(1))]
        for b, column in enumerate(columns):
            n = int(batch.lengths[b])
            assert torch.equal(batch.src[:n, b], column[:n])
    state = whole.state_dict()
    assert isinstance(state["generator"], torch.Tensor) and state["step"] == 4
    again = task.batches(config, one)
    again.load_state_dict(state)
    a, b = next(whole), next(again)
    assert b.sampling == pytest.approx(0.5 * 4 / 10) and a.sampling == b.sampling
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt_out, b.tgt_out)


def test_data_problems_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="--scheduled-sampling rises over the step budget"):
        quiet_train(TINY, TrainConfig(minutes=1.0), out=tmp_path / "x")
    with pytest.raises(ValueError, match=r"the range 7\.\.7 has no validation numbers"):
        quiet_train({**TINY, "min_number": 7, "max_number": 7}, TrainConfig(steps=1),
                    out=tmp_path / "x")  # fmt: skip
    with pytest.raises(ValueError, match=r"unsupported language 'xx'"):
        quiet_train({**TINY, "lang": "xx"}, TrainConfig(steps=1), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # A split too rare to fill its share gives what it has rather than searching forever.
    rare = NumbersTask(min_number=1000, max_number=9999, valid_fraction=1e-6)
    assert rare.fixed_set("valid", 3) == []


def test_task_defaults_are_the_old_loops():
    config = NumbersTrainingTask.default_train()
    assert (config.steps, config.minutes, config.lr, config.weight_decay) == (1000, None, 3e-3, 0.0)
    assert config.lr_at(0, 0.0) == 3e-3  # no warm-up
    assert config.lr_at(999, 1.0) == pytest.approx(0.05 * 3e-3)  # cosine to 5 %
    assert (config.clip_norm, config.eval_every, config.schedule) == (1.0, 200, "cosine")
    assert NumbersTrainingTask.default_train(minutes=2.0).steps is None


def test_importing_the_task_does_not_import_num2words():
    code = (
        "import sys, rnnkit, rnnkit.tasks.numbers, rnnkit.seq2seq\n"
        "from rnnkit.tasks import get_task\n"
        "get_task('numbers')(rnnkit.tasks.numbers.NumbersOptions())\n"
        "assert 'num2words' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_translate_evaluate_and_plot(run_dir, tmp_path):
    run = load_run(run_dir)
    out = translate(run, ["Three hundred, and twelve", "seven"], beam=1)
    assert [t.source for t in out] == ["three hundred and twelve", "seven"]
    assert all(set(t.output) <= set("0123456789") for t in out)
    assert out[0].attention is not None
    assert out[0].attention.shape == (len(out[0].output) + 1, len(out[0].source))
    beam = translate(run, ["seven"], beam=3, alpha=0.6)
    assert len(beam) == 1
    result = evaluate(run, "test", limit=10)
    assert len(result.examples) == 10 and 0.0 <= result.exact <= 1.0 and result.cer >= 0.0
    png = tmp_path / "a.png"
    plot_attention(out[0], png, title="test")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_translate_and_evaluate_refuse_counts_and_texts_they_would_misread(run_dir):
    run = load_run(run_dir)
    # A str was read as one input per character: "seven" gave five translations.
    msg = "translate: texts must be a list of str, one per input; got the str 'seven'"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        translate(run, "seven")
    # limit 0 scored every number, -1 all but the last; batch_size 0 was range()'s error.
    whole = len(evaluate(run, "test").examples)
    assert whole > 3 and len(evaluate(run, "test", limit=3, batch_size=2).examples) == 3
    for kwargs, error, message in [
        ({"limit": 0}, ValueError, "evaluate: limit must be a positive integer; got 0"),
        ({"limit": -1}, ValueError, "evaluate: limit must be a positive integer; got -1"),
        ({"limit": 2.0}, TypeError, "evaluate: limit must be a positive integer; got 2.0"),
        ({"batch_size": 0}, ValueError, "evaluate: batch_size must be a positive integer; got 0"),
    ]:
        with pytest.raises(error, match="^" + re.escape(message) + "$"):
            evaluate(run, "test", **kwargs)


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("312", "312") == 0


def test_bad_inputs_give_one_line_errors(run_dir, tmp_path):
    run = load_run(run_dir)
    cases = {
        "": "empty input",
        "   ": "empty input",
        "seven €": "characters outside the vocabulary",
        "seven " * 40: "longest input of the trained range 0..999 has",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError, match=message):
            translate(run, [text])
    with pytest.raises(ValueError, match="no text to translate"):
        translate(run, [])
    with pytest.raises(ValueError, match="exclude each other"):
        translate(run, ["seven"], beam=2, temperature=1.0)
    with pytest.raises(ValueError, match="is not a run folder: it has no config"):
        load_run(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((run_dir / "config.json").read_text())
    meta["options"]["colour"] = "red"
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"options: unknown key\(s\) colour"):
        load_run(bad)
    del meta["options"]["colour"]
    del meta["derived"]["target_chars"]
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"derived: missing key\(s\) target_chars"):
        load_run(bad)
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format": "rnnkit.numbers", "task": "numbers"}))
    with pytest.raises(ValueError, match=r"runs of rnnkit 0\.1 must be trained again"):
        load_run(old)


def test_load_run_refuses_a_run_of_another_task_in_one_line(tmp_path):
    lm = tmp_path / "lm"
    folder = RunFolder(lm)
    lm.mkdir()
    folder.write_config(RunConfig("lm", {}, TrainConfig(steps=1), {}))
    with pytest.raises(ValueError) as err:
        load_run(lm)
    assert str(err.value) == f"{lm} is a run of task 'lm', not a numbers (seq2seq) run"
    assert len(str(err.value).splitlines()) == 1


def test_digits_outside_the_trained_range_are_refused(tmp_path):
    out = tmp_path / "fr"
    options = {**TINY, "lang": "fr", "direction": "digits2words", "min_number": 10}
    quiet_train(options, TrainConfig(steps=1), out=out)
    run = load_run(out)
    assert run.max_source_length == 3
    for text in ("0312", "7", "1,2,3,4"):
        with pytest.raises(ValueError, match=r"not a number of the trained range 10\.\.999"):
            translate(run, [text])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        translate(run, ["douze"])
    assert prepare_source(run, "1 2") == "12"


@pytest.mark.parametrize("kind", sorted(set(ENCODERS) & set(DECODER_CELLS)))
def test_every_rnnkit_layer_and_cell_can_encode_and_decode(kind):
    # Greedy never emits padding or begin-of-sequence; beam 1 is greedy; the greedy
    # scores are the teacher-forced log-probabilities.
    model = tiny_model("additive", encoder=kind, decoder=kind, decoder_layers=2)
    src, lengths = padded_batch()
    g = greedy(model, src, lengths, max_len=6)
    b1 = beam_search(model, src, lengths, max_len=6, beam=1)
    assert [d.tokens for d in b1] == [d.tokens for d in g]
    for b, d in enumerate(g):
        assert PAD not in d.tokens and BOS not in d.tokens
        ids = [*d.tokens, EOS] if d.finished else d.tokens
        tgt_in = torch.tensor([BOS, *ids[:-1]])[:, None]
        one = model(src[: lengths[b], b : b + 1], lengths[b : b + 1], tgt_in)
        logp = F.log_softmax(one, -1)[:, 0]
        assert logp[torch.arange(len(ids)), ids].sum().item() == pytest.approx(d.score, abs=1e-9)


def test_sigint_stops_after_the_step_and_saves(tmp_path):
    def interrupt(trainer) -> None:
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C during training

    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs in the background
    summary = quiet_train(TINY, TrainConfig(steps=6, eval_every=4), out=out, on_step=interrupt)
    assert summary.stopped_by == "SIGINT" and summary.step == 2
    assert json.loads((out / "train_state.json").read_text())["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_plot_needs_attention(tmp_path):
    model = tiny_model("none")
    src, lengths = padded_batch()
    assert all(d.attention is None for d in greedy(model, src, lengths, max_len=3))
    with pytest.raises(ValueError, match="has no attention"):
        plot_attention(Translation("seven", "7", 0.0, None), tmp_path / "x.png")
