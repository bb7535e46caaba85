"""explain's experiments bound their sizes by memory: each refuses, in one line naming the
argument (or flag), its largest allowed value, the rule and the value given, before any
work; the rule's estimate is an upper bound of the measured peak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _refusals import raises_exactly, refused
from rnnkit.explain import _memory, bidirectional, bptt, compare, draw, rnn_loop
from rnnkit.explain.bidirectional import run_bidirectional
from rnnkit.explain.bptt import run_bptt
from rnnkit.explain.compare import run_compare
from rnnkit.explain.rnn_loop import run_rnn_loop

COMPARE = f"(memory: {compare.MEMORY_RULE})"
BIDIRECTIONAL = f"(memory: {bidirectional.MEMORY_RULE})"
RNN_LOOP = f"(memory: {rnn_loop.MEMORY_RULE})"
BPTT = f"(memory: {bptt.MEMORY_RULE})"
DRAW = f"(memory: {draw.MEMORY_RULE})"


# ---- the API ------------------------------------------------------------------------------


def test_compare_refuses_sizes_past_its_memory():
    message = (
        "compare: length must be at most 2998 at input_size 32, hidden 64, batch 32, "
        f"scaling_lengths (25, 50, 100, 200, 400) {COMPARE}; got 100000000"
    )
    raises_exactly(ValueError, message, run_compare, length=100_000_000, steps=0)
    message = f"compare: hidden must be at most 1466 at input_size 32 {COMPARE}; got 100000"
    raises_exactly(ValueError, message, run_compare, hidden=100_000)
    message = (
        "compare: scaling_lengths must be at most 2993 at input_size 32, hidden 64, batch 32 "
        f"{COMPARE}; got (25, 100000000)"
    )
    raises_exactly(ValueError, message, run_compare, scaling_lengths=(25, 100_000_000))


def test_bidirectional_refuses_sizes_past_its_memory():
    message = (
        "bidirectional: length must be at most 2997 at vocab 4, hidden 32, batch 64, "
        f"max_offset 3 {BIDIRECTIONAL}; got 100000000"
    )
    raises_exactly(ValueError, message, run_bidirectional, length=100_000_000)
    message = f"bidirectional: hidden must be at most 2568 at vocab 4 {BIDIRECTIONAL}; got 100000"
    raises_exactly(ValueError, message, run_bidirectional, hidden=100_000)


def test_rnn_loop_refuses_sizes_past_its_memory(monkeypatch: pytest.MonkeyPatch):
    def no_corpus(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was read: the sizes were not refused first")

    monkeypatch.setattr(rnn_loop, "docstring_words", no_corpus)
    message = (
        "rnn-loop: seq_len must be at most 234 at vocab 5000, embed 64, hidden 128, batch 32 "
        f"{RNN_LOOP}; got 100000000"
    )
    raises_exactly(ValueError, message, run_rnn_loop, seq_len=100_000_000)
    message = f"rnn-loop: vocab must be at most 1654091 {RNN_LOOP}; got 1000000000"
    raises_exactly(ValueError, message, run_rnn_loop, vocab=10**9)


def test_bptt_refuses_sizes_past_its_memory():
    message = (
        "bptt: length must be at most 45246 at input_size 3, output_size 2, hidden 4, batch 2 "
        f"{BPTT}; got 100000000"
    )
    raises_exactly(ValueError, message, run_bptt, length=100_000_000)
    message = f"bptt: hidden must be at most 3631 at input_size 3, output_size 2 {BPTT}; got 100000"
    raises_exactly(ValueError, message, run_bptt, hidden=100_000)


def test_draw_refuses_sizes_past_its_memory():
    message = f"draw: hidden must be at most 5744 at input_size 8, layers 1 {DRAW}; got 100000"
    raises_exactly(ValueError, message, draw.build, "lstm", hidden=100_000)
    message = f"draw: layers must be at most 772628 at input_size 32 {DRAW}; got 1000000"
    raises_exactly(ValueError, message, draw.build, "seq2seq", layers=10**6)


# ---- the largest allowed size is accepted (the validators only: nothing runs) -------------


def test_the_largest_allowed_sizes_pass_and_one_more_is_refused():
    checks = [
        (lambda t: compare.check_memory(
            {"input_size": 32, "hidden": 64, "batch": 32, "scaling_lengths": 400, "length": t},
            0, shown="(25, 50, 100, 200, 400)"), 2998),
        (lambda h: compare.check_memory(
            {"input_size": 32, "hidden": h, "batch": 1, "scaling_lengths": 0, "length": 1},
            300, shown="()"), 1466),
        (lambda t: bidirectional.check_memory(
            "lstm", {"vocab": 4, "hidden": 32, "batch": 64, "max_offset": 3, "length": t}), 2997),
        (lambda t: rnn_loop.check_memory(
            "rnn", {"vocab": 5000, "embed": 64, "hidden": 128, "batch": 32, "seq_len": t}), 234),
        (lambda t: bptt.check_memory(
            {"input_size": 3, "output_size": 2, "hidden": 4, "batch": 2, "length": t}), 45246),
        (lambda h: draw.check_memory(
            "lstm", None, {"input_size": None, "layers": None, "hidden": h}), 5744),
    ]  # fmt: skip
    for check, largest in checks:
        check(largest)  # accepted
        with pytest.raises(ValueError, match=f" must be at most {largest} "):
            check(largest + 1)


def test_the_estimates_are_those_written_in_the_rules():
    # By hand from each rule, at the defaults.
    P = 4 * 64 * (32 + 64 + 2)
    W = P // 33 + 1
    want = 96 * 2**20 + 96 * P + 28 * W * (400 * 32 + 160 * 50)
    assert compare.memory_estimate(32, 64, 32, 400, 50, 300) == want
    GH, logits = 4 * 32, 7 * 4
    want = 256 * 2**20 + 64 * 32 * (4 * (32 + 4) + logits)
    want += 20 * (26 * 64 + 2560) * GH + 20 * (8 * 64 + 2560) * logits
    assert bidirectional.memory_estimate("lstm", 4, 32, 64, 3, 20) == want
    want = 256 * 2**20 + 16 * 32 * 96 * 5000 + 16 * 32 * 32 * (64 + 3 * 128)
    want += 24 * (5000 + 128) * (64 + 128 + 2)
    assert rnn_loop.memory_estimate("rnn", 5000, 64, 128, 32, 32) == want
    want = 32 * 2**20 + 12 * (40 * 1024 + 320 * 2 * 9) + 160 * 4 * 9
    assert bptt.memory_estimate(3, 2, 4, 2, 12) == want
    assert draw.memory_estimate("bidirectional", "gru", 8, 2, 16) == 32 * 2**20 + 8 * (
        2 * 2 * 3 * 16 * (8 + 3 * 16 + 2)
    )
    assert _memory.MEMORY_LIMIT == 2 * 2**30


# ---- the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["compare", "--length", "100000000", "--steps", "0"],
            "compare: --length must be at most 2998 at --input-size 32, --hidden 64, --batch "
            f"32, --scaling-lengths 25,50,100,200,400 {COMPARE}; got --length 100000000",
        ),
        (
            ["compare", "--scaling-lengths", "", "--hidden", "100000"],
            f"compare: --hidden must be at most 1466 at --input-size 32 {COMPARE}; "
            "got --hidden 100000",
        ),
        (
            ["bidirectional", "--length", "100000000"],
            "bidirectional: --length must be at most 2997 at --vocab 4, --hidden 32, batch 64, "
            f"--max-offset 3 {BIDIRECTIONAL}; got --length 100000000",
        ),
        (
            ["rnn-loop", "--seq-len", "100000000"],
            "rnn-loop: --seq-len must be at most 234 at --vocab 5000, --embed 64, --hidden 128, "
            f"--batch 32 {RNN_LOOP}; got --seq-len 100000000",
        ),
        (
            ["bptt", "--length", "100000000"],
            "bptt: --length must be at most 45246 at input size 3, output size 2, --hidden 4, "
            f"--batch 2 {BPTT}; got --length 100000000",
        ),
        (
            ["draw", "lstm", "--hidden", "100000"],
            f"draw: --hidden must be at most 5744 at --input-size 8, --layers 1 {DRAW}; "
            "got --hidden 100000",
        ),
    ],
    ids=["compare-length", "compare-hidden", "bidirectional", "rnn-loop", "bptt", "draw"],
)
def test_explain_flags_past_their_memory_are_one_line(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "figures"
    got = refused(capsys, ["explain", *argv, "--out", str(out)], tmp_path)
    assert got == f"rnnkit explain: error: {line}"
    assert not out.exists()


# ---- the estimates bound the measured peaks ------------------------------------------------

# The peak is this process's own high-water mark (VmHWM), reset after the imports where
# the system allows it. Not ru_maxrss: Linux carries it over from the parent across exec,
# so under a pytest worker grown large it read the worker's size, not the experiment's.
MEASURE = """
import json, os, sys
import torch
torch.set_num_threads(1)
from rnnkit.explain import bidirectional, bptt, compare, draw
name, kwargs = sys.argv[1], json.loads(sys.argv[2])
run = {"compare": compare.run_compare, "bidirectional": bidirectional.run_bidirectional,
       "bptt": bptt.run_bptt, "draw": lambda **k: draw.describe(draw.build(**k))}[name]
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak so far (the imports') becomes the current size
except OSError:
    pass
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
run(**kwargs)
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
print(json.dumps(peak - before))
"""


def _measured(name: str, **kwargs: object) -> int:
    """Peak resident memory the experiment added, in a process of its own (bytes)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, name, json.dumps(kwargs)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    ("name", "kwargs", "estimate"),
    [
        # The per-step graph dominates, then the T·B·H tensors.
        ("bptt", {"length": 4000, "batch": 1, "hidden": 1},
         bptt.memory_estimate(3, 2, 1, 1, 4000)),
        ("bptt", {"length": 50, "batch": 100, "hidden": 100},
         bptt.memory_estimate(3, 2, 100, 100, 50)),
        # minGRU at the LSTM's budget with I = 1 is the widest layer.
        ("compare", {"hidden": 64, "input_size": 1, "length": 50, "batch": 16, "repeats": 1,
                     "steps": 0, "scaling_lengths": []},
         compare.memory_estimate(1, 64, 16, 0, 50, 0)),
        ("bidirectional", {"hidden": 128, "length": 50, "steps": 1},
         bidirectional.memory_estimate("lstm", 4, 128, 64, 3, 50)),
        ("draw", {"kind": "lstm", "hidden": 1500},
         draw.memory_estimate("lstm", "lstm", 8, 1, 1500)),
    ],
    ids=["bptt-steps", "bptt-tensors", "compare", "bidirectional", "draw"],
)  # fmt: skip
def test_the_estimate_bounds_the_measured_peak(name: str, kwargs: dict, estimate: int):
    measured = _measured(name, **kwargs)
    assert measured <= estimate, (measured, estimate)
    assert estimate <= 8 * measured + 128 * 2**20, (measured, estimate)  # and not far above
