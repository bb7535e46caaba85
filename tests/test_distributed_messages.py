"""Under torchrun, a run that ends on an error says so in one line, as alone.

A refusal that every process reaches is printed once (by rank 0), one that a single
process meets is printed by that process, and a process that sees another one vanish
mid-run (killed, or no longer answering) says so in one line naming the run folder and
its last checkpoint, never in a traceback. The stderr of torchrun itself (its warnings
and its failure report) is not rnnkit's: the tests read rnnkit's lines, and check that no
process printed a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed

from rnnkit.cli import main
from rnnkit.train import distributed

needs_gloo = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

# Each process runs the command line as `torchrun -m rnnkit train ...` does; a mode makes
# one process die, hang or fail where the test needs it (the processes agree whether to
# stop after every step: "before agreeing on step n" is in the middle of a run).
WORKER = r"""
import faulthandler, os, signal, sys, time
faulthandler.dump_traceback_later(150, exit=True)  # a process left waiting ends, not hangs
from datetime import timedelta
import torch
import torch.distributed as dist
from rnnkit.cli import main
from rnnkit.train import distributed

mode, argv = sys.argv[1], sys.argv[2:]
rank = int(os.environ["RANK"])
agree = distributed.agree_max
steps = []


def before_agreeing_on_step(n, act):
    def agree_then(ctx, values):
        if len(values) == 2:  # [stop?, elapsed]: once a step
            steps.append(len(steps) + 1)
            if steps[-1] == n:
                act()
        return agree(ctx, values)

    distributed.agree_max = agree_then


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def hang():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun's SIGTERM ends it
    time.sleep(150)


def out_of_memory():
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


if mode == "kill1" and rank == 1:
    before_agreeing_on_step(6, die)
elif mode == "kill1-busy0":  # rank 0 busy when rank 1 dies: torchrun's SIGTERM comes first
    before_agreeing_on_step(6, die if rank == 1 else lambda: time.sleep(3))
elif mode == "kill0" and rank == 0:
    before_agreeing_on_step(6, die)
elif mode == "hang1":
    init = dist.init_process_group
    dist.init_process_group = lambda *a, **k: init(*a, timeout=timedelta(seconds=5), **k)
    if rank == 1:
        before_agreeing_on_step(6, hang)
elif mode == "oom1" and rank == 1:
    before_agreeing_on_step(3, out_of_memory)
elif mode in ("absent0", "absent1") and rank == int(mode[-1]):  # a file it does not have
    argv = [a + ".absent" if a.endswith(".ts") else a for a in argv]
sys.exit(main(argv))
"""

RUN = ["--hidden", "8", "--batch-size", "8", "--dropout", "0", "--noise", "0",
       "--eval-every", "4", "--threads", "1"]  # fmt: skip


def _torchrun(tmp_path: Path, mode: str | None, *args: str) -> tuple[list[str], str, float]:
    """rnnkit's lines on stderr, the whole stderr, and the seconds the run took.

    Without a mode, each process runs ``-m rnnkit`` as a user's torchrun does."""
    if mode is None:
        target = ["-m", "rnnkit"]
    else:
        script = tmp_path / "worker.py"
        script.write_text(WORKER, encoding="utf-8")
        target = [str(script), mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_FUSED": "0"}
    env.pop("RNNKIT_TRACEBACK", None)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            *target, "train", *args]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    took = time.monotonic() - start
    err = done.stderr
    assert done.returncode != 0, err[-6000:]
    # No process printed a traceback: the one there is torchrun's own, of its report.
    assert "[rank" not in err and "GLHF" not in err, err[-6000:]
    assert err.count("Traceback (most recent call last)") == err.count("ChildFailedError: "), err[
        -6000:
    ]
    return [line for line in err.splitlines() if line.startswith("rnnkit train")], err, took


def _ts_file(folder: Path) -> Path:
    """A UEA/UCR .ts file of 24 series of 8 values, two classes."""
    rows = ["@problemName shapes", "@timeStamps false", "@missing false", "@univariate true",
            "@equalLength true", "@classLabel true up down", "@data"]  # fmt: skip
    for i in range(24):
        values = [float((t * (i % 3 + 1)) % 7) for t in range(8)]
        rows.append(",".join(f"{v:g}" for v in (values[::-1] if i % 2 else values))
                    + (":down" if i % 2 else ":up"))  # fmt: skip
    path = folder / "shapes.ts"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of one process (a folder that holds a run)."""
    run = tmp_path_factory.mktemp("distributed_messages") / "done"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNKIT_FUSED", "0")
        patch.delenv("WORLD_SIZE", raising=False)
        try:
            assert main(["train", "classify", "--dataset", "UnitTest", *RUN, "--steps", "2",
                         "--out", str(run)]) == 0  # fmt: skip
        finally:
            torch.set_num_threads(1)
    return run


# ---- refusals ------------------------------------------------------------------------------

REFUSALS = {
    "a bad flag value": (
        ["classify", "--dataset", "UnitTest", "--hidden", "0", "--steps", "2"],
        "rnnkit train classify: error: argument --hidden: expected an integer in [1, 65536]; "
        "got '0'",
    ),
    "a missing file": (
        ["classify", "--data", "{tmp}/absent.ts", "--steps", "2"],
        "rnnkit train: error: --data {tmp}/absent.ts does not exist; expected a .ts file",
    ),
    "a folder that holds a run": (
        ["classify", "--dataset", "UnitTest", *RUN, "--steps", "2", "--out", "{run}"],
        "rnnkit train: error: {run} already holds a run; continue it with --resume {run} or "
        "choose another --out",
    ),
    "a flag a resumed run does not take": (
        ["--resume", "{run}", "--hidden", "16"],
        "rnnkit train: error: --resume continues {run} with its own config.json; --hidden "
        "cannot be given with it (only --steps and --minutes)",
    ),
    # Met after the processes joined their group, not while parsing.
    "a batch the processes cannot share": (
        ["classify", "--dataset", "UnitTest", *RUN, "--batch-size", "7", "--out", "{tmp}/new"],
        "rnnkit train: error: --batch-size must be divisible by the number of processes; got "
        "7 streams for 2 processes",
    ),
}


@needs_gloo
@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_every_process_reaches_is_printed_once(
    case: str, tmp_path: Path, done_run: Path
) -> None:
    args, expected = REFUSALS[case]
    paths = {"tmp": str(tmp_path), "run": str(done_run)}
    lines, _, _ = _torchrun(tmp_path, None, *[a.format(**paths) for a in args])
    assert lines == [expected.format(**paths)]
    assert not (tmp_path / "new").exists()


@needs_gloo
@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 1])
def test_a_file_only_one_process_lacks_is_named_by_that_process(tmp_path: Path, rank: int):
    # Rank 1 waits for rank 0 to reach the same refusal, which it never does: it says it
    # after that wait (rank 0 is waiting for it to join the group, and torchrun then ends
    # it); rank 0 says it at once.
    data = _ts_file(tmp_path)
    lines, _, took = _torchrun(tmp_path, f"absent{rank}", "classify", "--data", str(data),
                               *RUN, "--steps", "2", "--out", str(tmp_path / "new"))  # fmt: skip
    assert lines == [
        f"rnnkit train: error: --data {data}.absent does not exist; expected a .ts file"
    ]
    assert took < distributed.WAIT_FOR_RANK_0_S + 90  # no process waited for ever
    assert not (tmp_path / "new").exists()


@needs_gloo
@pytest.mark.slow
def test_memory_one_process_lacks_mid_run_is_said_by_it_and_its_peer_stays_silent(
    tmp_path: Path,
):
    # Rank 1 fails at step 3 while rank 0 waits for it in a collective: rank 1 says why
    # after its wait for rank 0; rank 0 sees it leave, finds its words, and adds none.
    run = tmp_path / "run"
    lines, _, took = _torchrun(tmp_path, "oom1", "classify", "--dataset", "UnitTest", *RUN,
                               "--steps", "20", "--out", str(run))  # fmt: skip
    assert lines == [
        "rnnkit train: error: out of memory: an allocation of 2.00 GiB failed; expected sizes "
        "that fit this machine (a smaller model, batch or sequence length)"
    ]
    assert took < distributed.WAIT_FOR_RANK_0_S + 90


# ---- a process that is gone ------------------------------------------------------------------


def _left(who: str, run: Path, why: str) -> str:
    return (
        f"rnnkit train: error: {who} left the process group ({why}); {run} keeps the last "
        f"checkpoint (step 4): resume with --resume {run}"
    )


def _intact_at_step_4(run: Path) -> None:
    """The run folder holds its checkpoint of step 4, whole, and nothing half-written."""
    names = {p.name for p in run.iterdir()} - {".lock"}
    assert names == {"README.md", "config.json", "loss.png", "metrics.csv", "model.safetensors",
                     "train_state-00000004.safetensors", "train_state.json"}  # fmt: skip
    manifest = json.loads((run / "train_state.json").read_text())
    assert (manifest["step"], manifest["tensors"]) == (4, "train_state-00000004.safetensors")


@needs_gloo
@pytest.mark.slow
def test_a_process_killed_mid_run_is_named_in_one_line_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Rank 1 is killed as the processes are about to agree after step 6: rank 0's
    # collective fails at once, before torchrun's SIGTERM reaches it.
    run = tmp_path / "run"
    lines, _, _ = _torchrun(tmp_path, "kill1", "classify", "--dataset", "UnitTest", *RUN,
                            "--steps", "20", "--out", str(run))  # fmt: skip
    assert len(lines) == 1
    assert lines[0] in {_left("process 1 of 2", run, why) for why in
                        ("Connection closed by peer", "Connection reset by peer")}  # fmt: skip
    _intact_at_step_4(run)
    monkeypatch.setenv("RNNKIT_FUSED", "0")
    try:
        assert main(["train", "--resume", str(run), "--steps", "8"]) == 0
    finally:
        torch.set_num_threads(1)
    assert json.loads((run / "train_state.json").read_text())["step"] == 8


@needs_gloo
@pytest.mark.slow
def test_a_process_killed_while_its_peer_is_busy_is_named_in_one_line(tmp_path: Path):
    # Rank 0 is still busy when rank 1 dies: torchrun's SIGTERM reaches it first (it asks
    # the loop to stop after the step), then its next collective fails.
    run = tmp_path / "run"
    lines, err, _ = _torchrun(tmp_path, "kill1-busy0", "classify", "--dataset", "UnitTest",
                              *RUN, "--steps", "20", "--out", str(run))  # fmt: skip
    assert "SIGTERM: stopping after this step and saving ..." in err.splitlines()
    assert len(lines) == 1
    assert lines[0] in {_left("process 1 of 2", run, why) for why in
                        ("Connection closed by peer", "Connection reset by peer")}  # fmt: skip
    _intact_at_step_4(run)


@needs_gloo
@pytest.mark.slow
def test_the_main_process_killed_is_named_by_the_other(tmp_path: Path):
    # Rank 1 reads the folder rank 0 wrote; it does not wait for words from rank 0, gone.
    run = tmp_path / "run"
    lines, _, _ = _torchrun(tmp_path, "kill0", "classify", "--dataset", "UnitTest", *RUN,
                               "--steps", "20", "--out", str(run))  # fmt: skip
    assert len(lines) == 1
    assert lines[0] in {_left("process 0 of 2", run, why) for why in
                        ("Connection closed by peer", "Connection reset by peer")}  # fmt: skip
    _intact_at_step_4(run)


@needs_gloo
@pytest.mark.slow
def test_a_process_that_stops_answering_is_named_after_the_groups_timeout(tmp_path: Path):
    # The group's timeout cut to 5 s; rank 1 hangs before agreeing on step 6.
    run = tmp_path / "run"
    lines, _, _ = _torchrun(tmp_path, "hang1", "classify", "--dataset", "UnitTest", *RUN,
                            "--steps", "20", "--out", str(run))  # fmt: skip
    assert lines == [
        "rnnkit train: error: process 1 of 2 stopped answering (Timed out waiting 5000ms for "
        f"recv operation to complete); {run} keeps the last checkpoint (step 4): resume with "
        f"--resume {run}"
    ]
    _intact_at_step_4(run)


# ---- the rules, without torchrun -------------------------------------------------------------

GLOO = "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/{}] {}. This is typically "


@pytest.mark.parametrize(
    ("where", "text", "said"),
    [
        ("pair.cc:553", "Connection closed by peer [127.0.0.1]:45726",
         "process 1 of 2 left the process group (Connection closed by peer)"),
        ("pair.cc:537", "Read error [127.0.0.1]:45250: Connection reset by peer",
         "process 1 of 2 left the process group (Connection reset by peer)"),
        ("unbound_buffer.cc:81", "Timed out waiting 1800000ms for recv operation to complete",
         "process 1 of 2 stopped answering (Timed out waiting 1800000ms for recv operation "
         "to complete)"),
    ],
)  # fmt: skip
def test_a_collective_failing_for_a_peer_gone_is_recognised(where: str, text: str, said: str):
    ctx = distributed.Context(0, 2, torch.device("cpu"))
    assert distributed.peer_lost(ctx, RuntimeError(GLOO.format(where, text))) == (said, 1)
    three = distributed.Context(2, 3, torch.device("cpu"))
    found = distributed.peer_lost(three, RuntimeError(GLOO.format(where, text)))
    assert found == (said.replace("process 1 of 2", "another of the 3 processes"), None)


def test_other_errors_are_not_taken_for_a_peer_gone():
    ctx = distributed.Context(0, 2, torch.device("cpu"))
    gone = GLOO.format("pair.cc:553", "Connection closed by peer [127.0.0.1]:45726")
    for err in (
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)"),
        RuntimeError("Connection closed by peer"),  # not gloo's transport
        ValueError(gone),  # not a collective's error
    ):
        assert distributed.peer_lost(ctx, err) is None
    alone = distributed.Context(0, 1, torch.device("cpu"))
    assert distributed.peer_lost(alone, RuntimeError(gone)) is None


def test_alone_or_without_torchrun_every_process_prints_its_line(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "TORCHELASTIC_USE_AGENT_STORE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.prints_error("rnnkit train: error: x")
    monkeypatch.setenv("WORLD_SIZE", "2")  # started by hand, not by torchrun: no store
    monkeypatch.setenv("RANK", "1")
    assert distributed.prints_error("rnnkit train: error: x")


def test_alone_a_bad_flag_value_is_still_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["train", "classify", "--hidden", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "rnnkit train classify: error: argument --hidden: expected an integer in [1, 65536]; "
        "got '0'\n"
    )


def test_the_line_of_a_peer_gone_says_what_the_folder_keeps(tmp_path: Path, done_run: Path):
    from rnnkit.train.run import _after_loss
    from rnnkit.train.runfolder import RunFolder

    assert _after_loss(None, False) == "no checkpoint was written: run the command again"
    new = RunFolder(tmp_path / "new")
    assert _after_loss(new, False) == "no checkpoint was written: run the command again"
    assert _after_loss(new, True) == "no checkpoint was written: run it again"
    done = RunFolder(done_run)
    assert _after_loss(done, False) == (
        f"{done_run} keeps the last checkpoint (step 2): resume with --resume {done_run}"
    )
    assert _after_loss(done, True) == (
        f"{done_run} keeps the last checkpoint (step 2): continue it with resume=True"
    )


def test_a_peer_gone_ends_the_command_in_one_line_and_status_1(monkeypatch, capsys):
    from rnnkit.cli import _guarded

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RNNKIT_TRACEBACK", raising=False)
    said = "process 1 of 2 left the process group (Connection closed by peer); no checkpoint "

    def run() -> int:
        raise distributed.PeerLostError(said + "was written: run the command again", 1)

    before = signal.getsignal(signal.SIGTERM)
    try:
        assert _guarded("train", run) == 1  # it ignores SIGTERM from then on, as it ends
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == (
        f"rnnkit train: error: {said}was written: run the command again\n"
    )


@pytest.mark.parametrize(("rank", "world"), [("1", "2"), ("0", "2"), ("1", "1"), ("x", "2")])
def test_only_the_process_that_writes_the_run_folder_probes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: str, world: str
) -> None:
    # Every rank made and removed the --out folder to probe it: a rank's mkdir could meet
    # the folder rank 0 had just made, and the run ended in "File exists".
    from rnnkit.cli.train import _probe_out

    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "run"  # a folder no probe can make
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    if rank == "1" and world == "2":
        _probe_out(str(out))  # rank 0's to judge
        return
    with pytest.raises(NotADirectoryError) as err:
        _probe_out(str(out))
    assert str(err.value) == (
        f"--out: cannot make the folder {out} (Not a directory); expected an existing folder "
        "or a new one in a folder you may write to"
    )
