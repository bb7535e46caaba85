"""Every ```python block of docs/*.md runs, as written, so the docs cannot drift from the code.

Each case reads its block from the page when it runs, found by a line of its own (so a
block added elsewhere shifts nothing), and runs it with ``exec`` in a fresh namespace in a
scratch working folder that holds the files and run folders the block names, made here
small and fast (tiny files; run folders of two steps made by the command line). The code of
a block is changed in two ways only: a training budget is lowered by an explicit
replacement that must be found (:meth:`Block.lowered`), and a fragment that uses names the prose
defines (``layer``, ``x``, ``model``, ...) gets a prelude that defines them. What a block
prints is checked where it does not depend on the doc's own trained weights (shapes,
types, counts).

``test_every_block_is_run_or_listed`` fails on a block that no case here runs and
:data:`NOT_RUN` does not list with its reason. README.md's blocks are run by
tests/test_docs.py and tests/test_readme.py.
"""

from __future__ import annotations

import ast
import doctest
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)

# The blocks no test runs: (page, a line of the block, why).
NOT_RUN = [
    (
        "run-folder.md",
        'upload_folder(repo_id="you/lstm", folder_path="published/lstm")',
        "uploads to and downloads from the Hugging Face Hub: needs the network and an account",
    ),
]

# The blocks the cases run: (page, a line of the block) -> the case; filled by @example.
CASES: dict[tuple[str, str], str] = {}


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


def find(page: str, line: str) -> str:
    """The one ```python block of docs/``page`` that holds ``line``."""
    found = [code for code in blocks(page) if line in code]
    assert len(found) == 1, f"docs/{page}: {len(found)} python blocks hold {line!r}"
    return found[0]


@dataclass
class Block:
    page: str
    code: str

    def lowered(self, *changes: tuple[str, str]) -> Block:
        """The block with each training budget ``old`` replaced by ``new``: each ``old``
        must be in it once."""
        code = self.code
        for old, new in changes:
            assert code.count(old) == 1, f"docs/{self.page}: {old!r} is not in the block"
            code = code.replace(old, new)
        return Block(self.page, code)

    def split(self, line: str) -> tuple[Block, Block]:
        """The block's lines before the line that starts with ``line``, and from it on."""
        lines = self.code.splitlines(keepends=True)
        (at,) = [i for i, x in enumerate(lines) if x.startswith(line)]
        first, rest = "".join(lines[:at]), "\n" * at + "".join(lines[at:])  # same line numbers
        return Block(self.page, first), Block(self.page, rest)

    def run(self, prelude: str = "", scope: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run ``prelude``, then the block, in a fresh namespace (or in ``scope``, to go on
        with one); the namespace."""
        scope = {"__name__": "__doc_example__"} if scope is None else scope
        if prelude:
            exec(compile(textwrap.dedent(prelude), f"prelude of docs/{self.page}", "exec"), scope)
        exec(compile(self.code, f"docs/{self.page}", "exec"), scope)
        return scope


def example(page: str, line: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a test as the case of the block of docs/``page`` holding ``line``; the test
    gets it as its ``doc`` argument."""

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        assert (page, line) not in CASES, f"two cases for docs/{page}: {line!r}"
        CASES[(page, line)] = test.__name__
        test.example = (page, line)  # type: ignore[attr-defined]
        return test

    return mark


@pytest.fixture
def doc(request: pytest.FixtureRequest) -> Block:
    page, line = request.function.example
    return Block(page, find(page, line))


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working folder: what a block reads and writes is there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def literal(text: str) -> Any:
    return ast.literal_eval(text)


def arrays(line: str) -> list[str]:
    """The insides of the numpy arrays printed on ``line``."""
    return re.findall(r"\[([^]]*)\]", line)


# ---- files and run folders the blocks name ------------------------------------------------

LM_TINY = [
    "--hidden", "16", "--embed", "8", "--layers", "1", "--seq-len", "16", "--batch-size", "4",
    "--eval-every", "2", "--sample-chars", "0", "--threads", "1", "--steps", "2",
]  # fmt: skip


def cli(*argv: str) -> None:
    """``rnnkit ARGV``, in this process; it must succeed."""
    threads = torch.get_num_threads()
    try:
        assert main(list(argv)) == 0, f"rnnkit {' '.join(argv)} failed"
    finally:
        torch.set_num_threads(threads)  # --threads sets it for the process


def copy_run(run_dir: Path, to: str | Path) -> Path:
    """A copy of ``run_dir`` at ``to`` (relative to the working folder)."""
    Path(to).parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(run_dir, to))


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory, textwrap_text: Path) -> Path:
    """A language-model run of two steps on textwrap.py."""
    out = tmp_path_factory.mktemp("lm") / "lm"
    cli("train", "--text", str(textwrap_text), *LM_TINY, "--out", str(out))
    return out


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forecast run of two steps on the default series, M1 yearly (horizon 6)."""
    out = tmp_path_factory.mktemp("forecast") / "forecast"
    cli("train", "forecast", "--hidden", "8", "--steps", "2", "--eval-every", "2",
        "--threads", "1", "--out", str(out))  # fmt: skip
    return out


def ts_file(path: Path, n: int, seed: int, labels: bool = True) -> None:
    """A UEA .ts file of ``n`` series of two dimensions and 5 to 12 steps: the class "up"
    rises, "down" falls; without ``labels``, a file to classify (``@classLabel false``)."""
    g = torch.Generator().manual_seed(seed)
    lines = [
        "@problemName Mine",
        "@timeStamps false",
        "@missing false",
        "@univariate false",
        "@dimensions 2",
        "@equalLength false",
        "@classLabel true up down" if labels else "@classLabel false",
        "@data",
    ]
    for i in range(n):
        sign = 1 if i % 2 == 0 else -1
        ramp = torch.linspace(0, 1, 5 + i % 8) * sign + 0.05 * torch.randn(5 + i % 8, generator=g)
        dims = [",".join(f"{v:.4f}" for v in values) for values in (ramp, -0.5 * ramp)]
        lines.append(":".join(dims + ([("up" if sign == 1 else "down")] if labels else [])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def jsonl_file(path: Path, n: int = 40) -> None:
    """JSON lines of real Python: each non-empty line of textwrap.py with its tokenize tags."""
    from rnnkit.data.tagging import tag_names

    src = Path(textwrap.__file__).read_text(encoding="utf-8")
    tags = tag_names(src)
    out, at = [], 0
    for line in src.splitlines(keepends=True):
        if line.strip() and len(out) < n:
            out.append(json.dumps({"x": line, "y": tags[at : at + len(line)]}))
        at += len(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


# ---- every block is run or listed ---------------------------------------------------------


def test_every_block_is_run_or_listed() -> None:
    not_run = [(page, line) for page, line, _ in NOT_RUN]
    assert not set(not_run) & set(CASES), "a block is both run and listed as not run"
    covered = [(page, find(page, line)) for page, line in [*CASES, *not_run]]
    missing = [
        f"docs/{page.name}, block {i}:\n{code}"
        for page in sorted(DOCS.glob("*.md"))
        for i, code in enumerate(blocks(page.name))
        if (page.name, code) not in covered
    ]
    assert not missing, "python blocks that no case runs (add one, or list it in NOT_RUN):\n" + (
        "\n".join(missing)
    )
    assert len(covered) == len(set(covered)), "two entries name the same block"


# ---- beyond-the-chapter.md ----------------------------------------------------------------


@example("beyond-the-chapter.md", "stream = rnnkit.Stream(model)")
def test_beyond_the_chapter_stream(doc: Block) -> None:
    scope = doc.run("""
        import torch, rnnkit
        model = rnnkit.LSTM(3, 8)
        chunk = torch.randn(5, 4, 3)  # (T, B, I)
        x_t = torch.randn(4, 3)  # (B, I)
    """)  # fmt: skip
    assert scope["out"].shape == (5, 4, 8) and scope["y"].shape == (4, 8)


# ---- chapter.md ---------------------------------------------------------------------------


@example("chapter.md", "analysis = analyse_gates(model, SAMPLE_TEXT)")
def test_chapter_gates(doc: Block) -> None:
    scope = doc.lowered(("train_reference_model()", "train_reference_model(steps=2)")).run()
    assert scope["f"].shape == (len(scope["SAMPLE_TEXT"]),)
    assert len(scope["newline"]) == len(scope["SAMPLE_TEXT"]) and any(scope["newline"])


# ---- classify.md --------------------------------------------------------------------------


@example("classify.md", 'train = read_ts("mine_TRAIN.ts")')
def test_classify_fit(doc: Block, here: Path, capsys) -> None:
    ts_file(here / "mine_TRAIN.ts", 24, seed=0)
    ts_file(here / "mine_TEST.ts", 12, seed=1)
    scope = doc.lowered(("steps=1000", "steps=3")).run()
    best = literal(printed(capsys)[-1])  # {'metric': 'accuracy', 'value': ..., 'step': ...}
    assert list(best) == ["metric", "value", "step"] and best["metric"] == "accuracy"
    assert 0 <= best["value"] <= 1 and best["step"] in (1, 2, 3)
    assert scope["summary"].step == 3 and (here / "runs/mine/model.safetensors").is_file()


@example("classify.md", 'new = read_ts("to_classify.ts", require_labels=False)')
def test_classify_new_series(doc: Block, here: Path) -> None:
    ts_file(here / "mine_TRAIN.ts", 24, seed=0)
    ts_file(here / "mine_TEST.ts", 12, seed=1)
    ts_file(here / "to_classify.ts", 5, seed=2, labels=False)
    cli("train", "classify", "--data", "mine_TRAIN.ts", "--test-data", "mine_TEST.ts",
        "--hidden", "8", "--steps", "2", "--eval-every", "2", "--threads", "1",
        "--out", "runs/classify")  # fmt: skip
    scope = doc.run("""
        import rnnkit
        from rnnkit.data import pad_collate
        from rnnkit.data.ts_format import read_ts
    """)  # fmt: skip
    probabilities = scope["probabilities"]
    assert probabilities.shape == (5, 2)  # (N, classes)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(5))


# ---- deploy.md ----------------------------------------------------------------------------

SENSOR = ("deploy.md", 'export_onnx(sensor, "sensor-step.onnx", mode="step")')


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the first block of deploy.md ran: the graphs it writes, among them
    sensor-step.onnx, which the next block streams."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("exported")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        Block(SENSOR[0], find(*SENSOR)).run()
    return folder


@pytest.fixture
def deploy(here: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """rnnkit/deploy.py copied into the working folder, which is on sys.path."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    shutil.copy(ROOT / "src/rnnkit/deploy.py", here / "deploy.py")
    monkeypatch.syspath_prepend(str(here))
    sys.modules.pop("deploy", None)  # each test imports its own copy
    yield here
    sys.modules.pop("deploy", None)


@example(*SENSOR)
def test_deploy_export(doc: Block, exported: Path) -> None:
    # The block ran once for the module, in the fixture `exported`: the next case streams
    # the graph it writes.
    for name in ("lstm-step.onnx", "lstm-seq.onnx", "sensor-step.onnx"):
        assert (exported / name).stat().st_size > 0
    import onnx

    from rnnkit.export import read_metadata

    modes = {"lstm-step.onnx": "step", "lstm-seq.onnx": "sequence", "sensor-step.onnx": "step"}
    for name, mode in modes.items():
        assert read_metadata(onnx.load(str(exported / name)))["mode"] == mode


@example("deploy.md", 'stream = OnnxStream("sensor-step.onnx", batch_size=1, threads=1)')
def test_deploy_streams(
    doc: Block, deploy: Path, exported: Path, lm_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(lm_run, "runs/lm")
    cli("export", str(run_dir), "--format", "onnx", "--mode", "step")
    shutil.copy(run_dir / "model-step.onnx", "model-step.onnx")
    shutil.copy(exported / "sensor-step.onnx", "sensor-step.onnx")  # from the block above
    capsys.readouterr()
    doc.run()
    text, stream, session, end = capsys.readouterr().out.rsplit("\n", 3)
    assert len(text) == 120 and end == ""  # 120 characters after the prompt
    assert stream == "(1, 16) 1000 (1, 1, 16)"  # as the comment says
    assert session == "(1, 16) (1, 1, 16)"


@example("deploy.md", 'online = OnnxForecaster("runs/forecast/model-step.onnx"')
def test_deploy_forecaster(doc: Block, deploy: Path, forecast_run: Path, capsys) -> None:
    run_dir = copy_run(forecast_run, "runs/forecast")
    cli("export", str(run_dir), "--mode", "step")
    capsys.readouterr()
    doc.run()
    seen_mean, bounds = printed(capsys)  # 24 [143.1 ...]; [102.3 ...] [182.1 ...]
    assert seen_mean.startswith("24 [")
    assert [len(a.split()) for a in arrays(seen_mean + bounds)] == [6, 6, 6]  # horizon 6


# ---- forecast.md --------------------------------------------------------------------------


@example("forecast.md", "online = OnlineForecaster(model, history=history)")
def test_forecast_online(doc: Block, here: Path, forecast_run: Path, capsys) -> None:
    copy_run(forecast_run, "runs/m1")
    scope = doc.run()
    (line,) = printed(capsys)  # the next 6 values: mean, lower, upper
    assert [len(a.split()) for a in arrays(line)] == [6, 6, 6]
    assert scope["again"].mean.shape == (6,)


# ---- language-model.md --------------------------------------------------------------------


@example("language-model.md", 'model = rnnkit.load("runs/lm")')
def test_language_model_load(doc: Block, here: Path, lm_run: Path, capsys) -> None:
    copy_run(lm_run, "runs/lm")
    scope = doc.run()
    assert len(capsys.readouterr().out) == 200 + 1  # 200 sampled characters and a newline
    V = len(scope["model"].vocab)
    assert scope["logits"].shape == (len("import os\n"), 1, V)  # (T, 1, V)


# ---- layers.md ----------------------------------------------------------------------------


@example("layers.md", "out, state = layer(x, state=None, lengths=None, reset=None)")
def test_layers_call(doc: Block) -> None:
    scope = doc.run("""
        import torch, rnnkit
        layer = rnnkit.GRU(3, 8, num_layers=2)
        x = torch.randn(5, 4, 3)  # (T, B, I)
    """)  # fmt: skip
    assert scope["out"].shape == (5, 4, 8) and scope["state"].shape == (2, 4, 8)


@example("layers.md", 'torch.save(lstm, "lstm.pt")')
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_layers_projection_and_safe_globals(doc: Block) -> None:
    import rnnkit

    scope = doc.run()
    assert scope["out"].shape == (10, 4, 64)
    assert scope["h"].shape == (2, 4, 64) and scope["c"].shape == (2, 4, 128)  # h 64, c 128
    assert isinstance(scope["same"], rnnkit.LSTM)


@example("layers.md", "with rnnkit.backends.trace() as ran:")
def test_layers_backend_choice(doc: Block) -> None:
    scope = doc.run("""
        import torch, rnnkit
        from torch import nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = rnnkit.LSTM(3, 8)

            def forward(self, x):
                return self.rnn(x)[0]

        model = Model()
        layer = model.rnn
        x = torch.randn(6, 2, 3)
        lengths = torch.tensor([6, 4])
    """)  # fmt: skip
    # the values the block's comments show
    choice = eval("layer.backend_for(x, lengths=lengths)", scope)
    assert (choice.name, choice.fallback) == ("native", False) and choice.reason
    assert eval("ran[model.rnn].name", scope) == "native"


# ---- run-folder.md ------------------------------------------------------------------------


@example("run-folder.md", 'model = rnnkit.load_pretrained("lstm-small")')
def test_run_folder_load_pretrained(doc: Block, here: Path, capsys) -> None:
    # "lstm-small" is the run folder whose model card the page shows, made by the command
    # the page gives, in the working folder ("run them from the folder that holds it"):
    # the same command, of two steps.
    page = (DOCS / "run-folder.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"`(rnnkit train [^`]*--out /tmp/cards/lstm-small)`", page)
    command = " ".join(command.split())
    for old, new in [("--minutes 0.3", "--steps 2"), ("--eval-every 50", "--eval-every 2"),
                     ("--out /tmp/cards/lstm-small", "--out lstm-small")]:  # fmt: skip
        assert command.count(old) == 1, f"docs/run-folder.md: {old!r} is not in {command!r}"
        command = command.replace(old, new)
    cli(*command.split()[1:])
    capsys.readouterr()
    scope = doc.run()
    assert not scope["model"].training
    assert len(capsys.readouterr().out) == 200 + 1  # 200 sampled characters and a newline


@example("run-folder.md", 'rnnkit.save_pretrained("runs/lstm", "published/lstm")')
def test_run_folder_save_pretrained(doc: Block, here: Path, lm_run: Path) -> None:
    copy_run(lm_run, "runs/lstm")
    scope = doc.run()
    assert not scope["model"].training
    for folder in ("published/lstm", "published/lstm-tuned"):
        names = {p.name for p in (here / folder).iterdir()}
        assert {"config.json", "model.safetensors", "README.md"} <= names
        assert not any(name.startswith("train_state") for name in names)


# ---- seq2seq.md ---------------------------------------------------------------------------


@example("seq2seq.md", "best = beam_search(model, src, lengths, max_len=20, beam=4, alpha=0.6)")
def test_seq2seq_beam_search(doc: Block, capsys) -> None:
    scope = doc.run()
    assert scope["logits"].shape == (5, 3, 20)  # (T, B, V)
    best = scope["best"][0]
    assert isinstance(best.tokens, list) and all(isinstance(t, int) for t in best.tokens)
    assert best.score <= 0 and best.attention.shape[1] == 12  # (steps, S)
    (line,) = printed(capsys)
    assert line.endswith(f" torch.Size([{best.attention.shape[0]}, 12])")


@example("seq2seq.md", 'train("numbers", resume="runs/small", steps=600)')
def test_seq2seq_train(doc: Block, here: Path, capsys) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from rnnkit.seq2seq.data import EOS

    training, use = doc.lowered(
        ('direction="digits2words"), out=',
         'direction="digits2words"), TrainConfig(steps=2, eval_every=2), out='),
        ("TrainConfig(steps=300, eval_every=100)", "TrainConfig(steps=2, eval_every=2)"),
        ("steps=600", "steps=4"),
    ).split("run = load_run(")  # fmt: skip
    scope = training.run()
    assert json.loads((here / "runs/small/train_state.json").read_text())["step"] == 4
    # The block's code runs unchanged, in two parts: between them, runs/fr is made to end
    # its outputs at once. Two steps leave the decoder's outputs to chance, and translate()
    # refuses a translation that does not end within its limit (ValueError "no end of
    # output for '97' ..."), which the doc's 1000-step run does not meet.
    weights_file = here / "runs/fr/model.safetensors"
    with safe_open(str(weights_file), "pt") as f:
        meta = f.metadata()  # the step the weights belong to: kept
    weights = load_file(str(weights_file))
    weights["head.bias"][EOS] = 50.0
    save_file(weights, str(weights_file), metadata=meta)
    use.run(scope=scope)
    output, exact = printed(capsys)[-1].rsplit(" ", 1)
    assert output == "" and float(exact) == 0.0  # the translation of "97" ends at once


# ---- tag.md -------------------------------------------------------------------------------


@example("tag.md", '>>> tag_names("x = 1  # c")')
def test_tag_names_doctest(doc: Block) -> None:
    test = doctest.DocTestParser().get_doctest(doc.code, {}, "docs/tag.md", "docs/tag.md", 0)
    results = doctest.DocTestRunner(verbose=False).run(test)  # the output, exactly
    assert (results.failed, results.attempted) == (0, 2)


@example("tag.md", 'model = rnnkit.load("runs/tag")')
def test_tag_load(doc: Block, here: Path) -> None:
    from rnnkit.tasks.tag import Tagger

    jsonl_file(here / "mine.jsonl")
    cli("train", "tag", "--data", "mine.jsonl", "--hidden", "8", "--embed", "4",
        "--seq-len", "32", "--batch-size", "4", "--steps", "2", "--eval-every", "2",
        "--threads", "1", "--out", "runs/tag")  # fmt: skip
    scope = doc.run()
    assert isinstance(scope["model"], Tagger) and not scope["model"].training


@example("tag.md", 'examples = read_jsonl("mine.jsonl")')
def test_tag_fit(doc: Block, here: Path, capsys) -> None:
    jsonl_file(here / "mine.jsonl")
    scope = doc.lowered(("steps=300, eval_every=100", "steps=2, eval_every=2")).run()
    best = literal(printed(capsys)[-1])  # {'metric': 'accuracy', 'value': 0.8908..., 'step': 300}
    assert list(best) == ["metric", "value", "step"] and best["metric"] == "accuracy"
    assert 0 <= best["value"] <= 1 and best["step"] in (1, 2)
    assert scope["summary"].step == 2
