"""The benchmark scripts refuse a bad command line as rnnkit's commands do: one line naming
the argument, exit status 2, no traceback, and nothing on disk changed - before any data
is read, any model trained or any file written (they run for minutes to hours)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _refusals import tree
from _zygote import Zygote

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TIMEOUT = 120  # a refusal takes seconds; a script that started its work would run on

# (script, arguments, the argument the message must name). In the arguments, {dir} is an
# existing empty folder, {file} an existing file, {missing} a name that does not exist,
# and {own} a folder of the user's holding folders named as the scripts' run folders.
CASES = [
    ("classify.py", ["--datasets", "Foo"], "--datasets"),
    ("classify.py", ["--data", "{missing}"], "--data"),
    ("classify.py", ["--data", "{file}"], "--data"),  # no --test-data
    ("classify.py", ["--test-data", "{file}"], "--test-data"),
    ("classify.py", ["--data", "{file}", "--test-data", "{file}"], "--data"),  # no .ts
    (
        "classify.py",
        ["--data", "{file}", "--test-data", "{file}", "--datasets", "GunPoint"],
        "--datasets",
    ),
    ("classify.py", ["--datasets", ""], "--datasets"),
    ("classify.py", ["--datasets", "GunPoint,GunPoint"], "--datasets"),
    ("classify.py", ["--seeds", "-1"], "--seeds"),
    ("classify.py", ["--seeds", "x"], "--seeds"),
    ("classify.py", ["--seeds", "0,0"], "--seeds"),
    ("classify.py", ["--threads", "0"], "--threads"),
    ("classify.py", ["--threads", "x"], "--threads"),
    ("classify.py", ["--members", "0"], "--members"),
    ("classify.py", ["--candidates", "gru:x"], "--candidates"),
    ("classify.py", ["--candidates", "foo:1.5"], "--candidates"),
    ("classify.py", ["--minutes-per-run", "-1"], "--minutes-per-run"),
    ("classify.py", ["--out", "{dir}"], "--out"),
    ("classify.py", ["--out", "{missing}/table.md"], "--out"),
    ("classify.py", ["--results", "{file}"], "--results"),
    ("classify.py", ["--cv", "--grid", "notjson"], "--grid"),
    ("classify.py", ["--cv", "--grid", '{"nois": 1}'], "--grid"),
    ("classify.py", ["--grid", "{}"], "--grid"),
    ("classify.py", ["--cv", "--table-only"], "--table-only"),
    ("classify.py", ["--table-only", "--seeds", "1"], "--seeds"),
    ("classify.py", ["--table-only", "--results", "{missing}"], "--results"),
    ("forecast.py", ["--sets", "Foo"], "--sets"),
    ("forecast.py", ["--sets", ""], "--sets"),
    ("forecast.py", ["--sets", "nile,nile"], "--sets"),
    ("forecast.py", ["--steps", "0"], "--steps"),
    ("forecast.py", ["--seed", "-1"], "--seed"),
    ("forecast.py", ["--members", "0"], "--members"),
    ("forecast.py", ["--origins", "0"], "--origins"),
    ("forecast.py", ["--sets", "airline,nile", "--origins", "60"], "--origins"),
    ("forecast.py", ["--adapt", "2"], "--adapt"),
    ("forecast.py", ["--margin", "nan"], "--margin"),
    ("forecast.py", ["--skip", "Foo"], "--skip"),
    ("forecast.py", ["--markdown", "{dir}"], "--markdown"),
    ("forecast.py", ["--markdown", "{missing}/table.md"], "--markdown"),
    ("forecast.py", ["--runs", ""], "--runs"),
    ("forecast.py", ["--runs", "{file}"], "--runs"),
    ("forecast.py", ["--runs", "{own}", "--sets", "nile"], "--runs"),
    ("forecast.py", ["--data", "{missing}"], "--data"),
    ("forecast.py", ["--data", "{dir}"], "--data"),
    ("forecast.py", ["--data", "{file}", "--sets", "nile"], "--sets"),
    ("forecast.py", ["--test-data", "{file}"], "--test-data"),
    ("forecast.py", ["--horizon", "6"], "--horizon"),
    ("forecast.py", ["--data", "{file}"], "--data"),  # the user's file is no series file
    ("forecast.py", ["--data", "{file}", "--horizon", "0"], "--horizon"),
    ("forecast_check.py", ["--sets", "Foo"], "--sets"),
    ("forecast_check.py", ["--seeds", ""], "--seeds"),
    ("forecast_check.py", ["--seeds", "0,0"], "--seeds"),
    ("forecast_check.py", ["--margins", "-1"], "--margins"),
    ("forecast_check.py", ["--jobs", "0"], "--jobs"),
    ("forecast_check.py", ["--sets", "nile", "--origins", "60"], "--origins"),
    ("forecast_check.py", ["--runs", "{own}", "--sets", "nile", "--seeds", "0"], "--runs"),
    ("forecast_coverage.py", ["--sets", "Foo"], "--sets"),
    ("forecast_coverage.py", ["--seeds", "x"], "--seeds"),
    ("forecast_coverage.py", ["--adapt", "2"], "--adapt"),
    ("forecast_coverage.py", ["--online", "--sets", "m1-yearly"], "--sets"),
    ("forecast_coverage.py", ["--runs", "{missing}"], "--runs"),
    ("forecast_coverage.py", ["--runs", "{dir}", "--sets", "nile"], "--runs"),
    ("tag.py", ["--steps", "0"], "--steps"),
    ("tag.py", ["--hidden", "0"], "--hidden"),
    ("tag.py", ["--k", "-1"], "--k"),
    ("tag.py", ["--seed", "-1"], "--seed"),
    ("tag.py", ["--img", "{file}"], "--img"),
    ("tag.py", ["--quick", "--steps", "100"], "--steps"),
    ("long_memory.py", ["--rows", ""], "--rows"),
    ("long_memory.py", ["--rows", "foo"], "--rows"),
    ("long_memory.py", ["--rows", "adding-100-gru,adding-100-gru"], "--rows"),
    ("long_memory.py", ["--jobs", "0"], "--jobs"),
    ("long_memory.py", ["--results", "{file}"], "--results"),
    ("long_memory.py", ["--out", "{dir}", "--rows", "adding-100-gru"], "--out"),
    ("long_memory.py", ["--plot", "{missing}/curves.png", "--rows", "adding-100-gru"], "--plot"),
    ("long_memory.py", ["--table-only", "--results", "{missing}"], "--results"),
    ("long_memory.py", ["--table-only", "--results", "{dir}", "--jobs", "2"], "--jobs"),
    ("long_memory.py", ["--results", "{own}", "--rows", "adding-100-gru"], "--results"),
    ("lm_vs_transformer.py", ["--minutes", "0"], "--minutes"),
    ("lm_vs_transformer.py", ["--marks", ""], "--marks"),
    ("lm_vs_transformer.py", ["--models", "bert"], "--models"),
    ("lm_vs_transformer.py", ["--models", "lstm,lstm"], "--models"),
    ("lm_vs_transformer.py", ["--tf-width", "130"], "--tf-width"),
    ("lm_vs_transformer.py", ["--grid", "hidden=x"], "--grid"),
    ("lm_vs_transformer.py", ["--variants", "lr=0"], "--variants"),
    ("lm_vs_transformer.py", ["--jobs", "0"], "--jobs"),
    ("lm_vs_transformer.py", ["--out", "{file}"], "--out"),
    ("bench_export.py", ["--repeats", "0"], "--repeats"),
    ("bench_export.py", ["--parts", "lm", "lm"], "--parts"),
    ("bench_export.py", ["--run", "{dir}"], "--run"),
    ("bench_export.py", ["--parts", "latency", "--chars", "5"], "--chars"),
    ("bench_layers.py", ["--cells", "Foo"], "--cells"),
    ("bench_layers.py", ["--repeats", "0"], "--repeats"),
    ("bench_layers.py", ["--gru", "--options"], "--options"),
    ("bench_layers.py", ["--projection", "--ragged"], "--ragged"),
    ("bench_layers.py", ["--ragged", "--native-only"], "--native-only"),
    ("bench_layers.py", ["--quick", "--repeats", "5"], "--repeats"),
    ("bench_lm_throughput.py", ["--threads", "0"], "--threads"),
    ("bench_lm_throughput.py", ["--steps-per-sample", "0"], "--steps-per-sample"),
    ("bench_mingru.py", ["--json", "{dir}"], "--json"),
    ("bench_mingru.py", ["--device", "foo"], "--device"),
    ("bench_scan_reset.py", ["--device", "foo"], "--device"),
    ("bench_scan_reset.py", ["--quick", "x"], "x"),
    ("bench_stream.py", ["--repeats", "0"], "--repeats"),
    ("bench_stream.py", ["--chunk", "0"], "--chunk"),
    ("compile_time.py", ["--backend", "foo"], "--backend"),
    ("compile_time.py", ["--steps", "0"], "--steps"),
    ("export_parity.py", ["--steps", "0"], "--steps"),
    ("fused_profile.py", ["--shapes", "1,2"], "--shapes"),
    ("fused_profile.py", ["--repeats", "0"], "--repeats"),
    ("lm_step_profile.py", ["--steps", "0"], "--steps"),
    ("quantize.py", ["--run", "{missing}"], "--run"),
    ("quantize.py", ["--repeats", "0"], "--repeats"),
    ("recalibration.py", ["--values", ""], "--values"),
    ("recalibration.py", ["--horizon", "0"], "--horizon"),
    ("seq2seq_bottleneck.py", ["--lang", "xx"], "--lang"),
    ("seq2seq_bottleneck.py", ["--attention", "none", "none"], "--attention"),
    ("seq2seq_bottleneck.py", ["--steps", "0"], "--steps"),
    ("seq2seq_bottleneck.py", ["--png", "{dir}"], "--png"),
    # An output file that exists (a saved table) was rewritten without a word.
    ("classify.py", ["--out", "{file}"], "--out"),
    ("classify.py", ["--table-only", "--out", "{file}"], "--out"),
    ("forecast.py", ["--markdown", "{file}"], "--markdown"),
    ("long_memory.py", ["--table-only", "--results", "{dir}", "--out", "{file}"], "--out"),
    ("long_memory.py", ["--table-only", "--results", "{dir}", "--plot", "{file}"], "--plot"),
    ("bench_mingru.py", ["--json", "{file}"], "--json"),
    ("seq2seq_bottleneck.py", ["--png", "{file}"], "--png"),
]


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """Each script runs as its own process, forked from one that imported what every
    script imports first (torch, rnnkit)."""
    server = Zygote(["numpy", "rnnkit"])
    yield server
    server.close()


@pytest.mark.parametrize(
    ("script", "args", "flag"),
    CASES,
    ids=[f"{s}:{' '.join(a) or repr('')}" for s, a, _ in CASES],
)
def test_a_bad_command_line_is_refused_in_one_line_before_any_work(
    tmp_path: Path, script: str, args: list[str], flag: str, zygote: Zygote
) -> None:
    # The script runs in a folder of its own, so that the default output folders (runs/,
    # bench-out/) would land there, and the fixtures sit beside it.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("the user's\n")
    for name in ("nile", "nile-seasonal-naive-0", "runs/adding-100-gru"):
        (tmp_path / "own" / name).mkdir(parents=True)
        (tmp_path / "own" / name / "notes.txt").write_text("the user's\n")
    where = {k: str(tmp_path / k) for k in ("dir", "file", "missing", "own")}
    argv = []
    for a in args:
        for key, path in where.items():
            a = a.replace("{" + key + "}", path)
        argv.append(a)
    before = tree(tmp_path)
    logs = tmp_path.parent / f"{tmp_path.name}-logs"  # outside the tree compared
    env = {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = zygote.script(BENCHMARKS / script, argv, logs, cwd=cwd, env=env, timeout=TIMEOUT)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{script}: error: ") and flag in lines[0], lines[0]
    assert tree(tmp_path) == before  # nothing made, removed or written


def _parse(argv: list[str]) -> tuple[int | str | None, str]:
    """Parse ``argv`` with a parser built as the scripts build theirs (an output file of
    type new_file); the exit status (None: parsed) and stderr."""
    import contextlib
    import io

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _args
    finally:
        sys.path.remove(str(BENCHMARKS))
    p = _args.parser("a benchmark")
    p.add_argument("--out", type=_args.new_file)
    p.add_argument("--plot", type=_args.new_file)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            p.parse_args(argv)
        except SystemExit as stop:
            return stop.code, err.getvalue()
    return None, err.getvalue()


def test_an_existing_output_file_is_refused_unless_overwrite(tmp_path: Path) -> None:
    saved = tmp_path / "table.md"
    saved.write_text("the user's table\n")
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    for argv, flag, name in (
        (["--out", str(saved)], "--out", saved),
        (["--out", str(tmp_path / "new.md"), "--plot", str(link)], "--plot", link),
    ):
        code, err = _parse(argv)
        assert code == 2
        assert err == (
            f"{Path(sys.argv[0]).name}: error: argument {flag}: expected a file name that "
            f"does not exist; got {name}, an existing file (--overwrite replaces it)\n"
        )
    assert _parse(["--out", str(saved), "--overwrite"]) == (None, "")
    assert _parse(["--out", str(tmp_path / "new.md")]) == (None, "")
    assert saved.read_text() == "the user's table\n" and not (tmp_path / "new.md").exists()


def test_tag_img_refuses_a_folder_holding_its_figures_unless_overwrite(tmp_path: Path) -> None:
    # --img names a folder, so new_file's check does not see the two files written into it.
    held = tmp_path / "img"
    held.mkdir()
    (held / "tag-tagged.png").write_bytes(b"the user's figure")
    before = tree(tmp_path)
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "tag.py"), "--img", str(held)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "tag.py: error: argument --img: expected a folder without tag-uni-vs-bi.png or "
        f"tag-tagged.png; got {held}, which holds tag-tagged.png (--overwrite replaces them)\n"
    )
    assert tree(tmp_path) == before
