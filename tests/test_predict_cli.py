"""`rnnkit predict` and :mod:`rnnkit.tasks.predict`: a classify or tag run applied to new
data gives what the run's evaluation computes (the same predictions, the same accuracy
on the run's own test file) and what the model computes by hand; every refusal is one
line, exit status 2, nothing written."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit
from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.data import pad_collate
from rnnkit.data.tagging import read_jsonl
from rnnkit.data.ts_format import read_ts, write_ts
from rnnkit.data.vocab import UNK_ID, Vocabulary
from rnnkit.tasks import get_task
from rnnkit.tasks.predict import ClassPredictions, predict_classes, predict_tags
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context
from rnnkit.train.runfolder import RunConfig, RunFolder

STEPS = {"steps": 6, "eval_every": 3, "log_every": 3, "threads": 1}
WORDS = ["ab1", "c22d", "e3", "fg", "4h", "ij5", "k6l", "7m", "no8", "p9", "qr", "s0t"]


def quiet() -> dict[str, Any]:
    return {"log": lambda _: None, "progress": io.StringIO()}


def series(n: int, seed: int, dims: int = 2) -> tuple[list[torch.Tensor], list[int]]:
    """Unequal lengths (5-12); class 0 rises, class 1 falls."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for i in range(n):
        T, y = 5 + i % 8, i % 2
        ramp = torch.linspace(0, 1, T) * (1 if y == 0 else -1)
        x = torch.stack([ramp * (d + 1) for d in range(dims)], 1)
        xs.append(x + 0.05 * torch.randn(T, dims, generator=g))
        ys.append(y)
    return xs, ys


def tagged(text: str) -> list[str]:
    return ["D" if c.isdigit() else "S" if c == " " else "N" for c in text]


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data files and tiny runs every test reads (never writes)."""
    root = tmp_path_factory.mktemp("predict")
    write_ts(root / "train.ts", *series(24, 0), classes=["up", "down"])
    write_ts(root / "test.ts", *series(12, 1), classes=["up", "down"])
    train("classify", {"data": str(root / "train.ts"), "test_data": str(root / "test.ts"),
                       "hidden_size": 8, "batch_size": 4, "dropout": 0.0},
          TrainConfig(**STEPS), out=root / "classify", **quiet())  # fmt: skip
    # Lines longer than --seq-len 8: several windows each, read with 3 steps of context.
    lines = [" ".join(WORDS[i : i + 4]) for i in range(len(WORDS))] * 2
    jsonl(root / "tags.jsonl", [{"x": t, "y": tagged(t)} for t in lines])
    tests = [" ".join(reversed(WORDS[i : i + 5])) for i in range(0, len(WORDS), 2)]
    jsonl(root / "tags-test.jsonl", [{"x": t, "y": tagged(t)} for t in tests])
    train("tag", {"data": str(root / "tags.jsonl"), "test_data": str(root / "tags-test.jsonl"),
                  "hidden_size": 8, "embed_size": 4, "seq_len": 8, "eval_context": 3},
          TrainConfig(**STEPS), out=root / "tag", **quiet())  # fmt: skip
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(20):
        x = torch.randn(6 + i % 5, 2, generator=g)
        rows.append({"x": x.tolist(), "y": ["hi" if v > 0 else "lo" for v in x[:, 0].tolist()]})
    jsonl(root / "features.jsonl", rows)
    train("tag", {"data": str(root / "features.jsonl"), "hidden_size": 4, "seq_len": 4,
                  "eval_context": 2},
          TrainConfig(**STEPS), out=root / "features", **quiet())  # fmt: skip
    for task in ("lm", "numbers", "forecast", "adding", "copy", "selective-copy"):
        task_cls = get_task(task)
        (root / f"stub-{task}").mkdir()
        options = dataclasses.asdict(task_cls.Options())
        config = RunConfig(task, options, task_cls.default_train(), {})
        RunFolder(root / f"stub-{task}").write_config(config)
    (root / "stub-fit").mkdir()
    RunFolder(root / "stub-fit").write_config(RunConfig("fit", {}, TrainConfig(steps=1), {}))
    return root


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[str, str]:
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr()
    return out.out, out.err


def prepared(run: Path) -> Any:
    """The run's task with its data read, as `rnnkit eval` prepares it."""
    config = RunFolder(run).read_config()
    task_cls = get_task(config.task)
    task = task_cls(task_cls.parse_options(config.options, where="config.json"), config.derived)
    task.prepare(config.train, Context(0, 1, torch.device("cpu")))
    return task


def eval_line(capsys: pytest.CaptureFixture[str], run: Path, tmp_path: Path, start: str) -> str:
    out, _ = run_cli(capsys, ["eval", str(run), "--out", str(tmp_path / "figures")])
    return next(line for line in out.splitlines() if line.startswith(start))


# ---- classify ----------------------------------------------------------------------------


def test_classify_on_the_runs_test_file_is_its_evaluation(capsys, root: Path, tmp_path: Path):
    from rnnkit.tasks.classify import predict

    run = root / "classify"
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(root / "test.ts")])
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["series", "predicted", "p_up", "p_down"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(12)]
    # The evaluation's own predictions of its test split, and its accuracy line.
    task = prepared(run)
    model = rnnkit.load(run)
    expected, _ = predict(model, task.test_split)
    classes = ["up", "down"]
    assert [r[1] for r in rows[1:]] == [classes[k] for k in expected.tolist()]
    line = eval_line(capsys, run, tmp_path, "test accuracy:")
    found = re.match(r"test accuracy: (\S+) \((\d+)/(\d+)\)", line)
    assert found is not None
    assert err == (
        f"accuracy: {found[1]} ({found[2]}/{found[3]} series, labelled in {root / 'test.ts'})\n"
    )
    # By hand: the model on the padded batch, softmax over the classes.
    data = read_ts(root / "test.ts")
    x, lengths, _ = pad_collate(list(data))
    with torch.no_grad():
        by_hand = model(x, lengths).softmax(-1)
    got = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)
    assert torch.equal(by_hand.argmax(-1), expected)


def test_classify_unlabelled_file_of_unequal_lengths(capsys, root: Path, tmp_path: Path):
    xs, _ = series(7, 5)
    lines = "\n".join(
        ":".join(",".join(f"{v:.6f}" for v in x[:, d].tolist()) for d in range(2)) for x in xs
    )
    new = tmp_path / "new.ts"
    new.write_text(
        "@problemName new\n@univariate false\n@dimensions 2\n@equalLength false\n"
        f"@classLabel false\n@data\n{lines}\n",
        encoding="utf-8",
    )
    out_file = tmp_path / "classes.csv"
    out, err = run_cli(
        capsys, ["predict", str(root / "classify"), "--data", str(new), "--out", str(out_file)]
    )
    assert out == "" and err == f"classes of 7 series: {out_file}\n"  # no accuracy: no labels
    rows = list(csv.reader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert len(rows) == 8
    model = rnnkit.load(root / "classify")
    data = read_ts(new, require_labels=False)
    assert sorted(set(data.lengths)) == [5, 6, 7, 8, 9, 10, 11]
    x, lengths, _ = pad_collate(list(data))
    with torch.no_grad():
        by_hand = model(x, lengths).softmax(-1)
    got = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    torch.testing.assert_close(got, by_hand, atol=1e-6, rtol=0)
    assert [r[1] for r in rows[1:]] == [["up", "down"][k] for k in by_hand.argmax(-1).tolist()]
    # --force replaces the file; without it the file stays.
    out_file.write_text("mine\n")
    assert refused(capsys, ["predict", str(root / "classify"), "--data", str(new), "--out",
                            str(out_file)], tmp_path) == (
        f"rnnkit predict: error: --out {out_file} exists; pass --force to replace it"
    )  # fmt: skip
    assert out_file.read_text() == "mine\n"
    run_cli(capsys, ["predict", str(root / "classify"), "--data", str(new), "--out",
                     str(out_file), "--force"])  # fmt: skip
    assert out_file.read_text(encoding="utf-8").splitlines() == [",".join(r) for r in rows]


def test_predict_classes_python_api(root: Path):
    run = root / "classify"
    result = predict_classes(run, root / "test.ts")
    assert isinstance(result, ClassPredictions) and result.classes == ["up", "down"]
    assert result.probabilities.shape == (12, 2)
    torch.testing.assert_close(result.probabilities.sum(1), torch.ones(12))
    assert result.labels == read_ts(root / "test.ts").labels
    assert result.predicted == [result.classes[k] for k in result.index.tolist()]
    pairs = zip(result.labels, result.predicted, strict=True)
    right = sum(result.classes[y] == p for y, p in pairs)
    assert result.right == right
    # A TSData and a loaded model give the same.
    again = predict_classes(run, read_ts(root / "test.ts"), model=rnnkit.load(run))
    assert torch.equal(again.probabilities, result.probabilities)


def test_predict_classes_refusals(root: Path, tmp_path: Path):
    run = root / "classify"
    raises_exactly(ValueError, f"predict_classes: {root / 'tag'} is a run of task 'tag'; "
                   "expected a classify run (predict_tags applies tag runs)", predict_classes,
                   root / "tag", root / "test.ts")  # fmt: skip
    raises_exactly(TypeError, "predict_classes: data must be a .ts file path or a TSData; got "
                   "list", predict_classes, run, [[1.0]])  # fmt: skip
    xs, ys = series(4, 3, dims=3)
    write_ts(tmp_path / "three.ts", xs, ys, classes=["up", "down"])
    raises_exactly(ValueError, f"{tmp_path / 'three.ts'}: its series have 3 dimension(s); the "
                   f"run {run} was trained on 2", predict_classes, run,
                   tmp_path / "three.ts")  # fmt: skip
    xs, _ = series(4, 3)
    write_ts(tmp_path / "other.ts", xs, [0, 1, 2, 0], classes=["up", "down", "sideways"])
    raises_exactly(ValueError, f"{tmp_path / 'other.ts'}, line 11: class 'sideways' is not a "
                   f"class of the training file {root / 'train.ts'} (up, down)", predict_classes,
                   run, tmp_path / "other.ts")  # fmt: skip


# ---- tag ---------------------------------------------------------------------------------


def test_tag_on_the_runs_test_file_is_its_evaluation(capsys, root: Path, tmp_path: Path):
    from rnnkit.tasks.tag import encode, predict

    run = root / "tag"
    test = root / "tags-test.jsonl"
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(test)])
    got = [json.loads(line) for line in out.splitlines()]
    examples = read_jsonl(test)
    assert [g["x"] for g in got] == [e.x for e in examples]
    # The evaluation's predictions: the windows of --seq-len with --eval-context either side.
    task = prepared(run)
    model = rnnkit.load(run)
    o = task.options
    pred, truth, _ = predict(model, encode(task.data.test, task.vocab()), o.seq_len,
                             o.eval_context)  # fmt: skip
    tags = task.data.tags
    assert [t for g in got for t in g["y"]] == [tags[k] for k in pred.tolist()]
    assert max(len(e.x) for e in examples) > o.seq_len + 2 * o.eval_context  # windows matter
    line = eval_line(capsys, run, tmp_path, "accuracy:")
    n, right = len(truth), int((pred == truth).sum())
    assert err == (
        f"{line} ({right:,}/{n:,} characters of the {len(examples)} line(s) with y; a tag the "
        "run does not know is always wrong)\n"
    )
    # The Python API gives the same.
    assert predict_tags(run, [e.x for e in examples]) == [g["y"] for g in got]


def test_tag_jsonl_without_y_text_files_and_unknown_characters(capsys, root: Path, tmp_path):
    run = root / "tag"
    model = rnnkit.load(run)
    vocab = Vocabulary.from_dict(RunFolder(run).read_config().derived["vocab"])
    tags = RunFolder(run).read_config().derived["tags"]

    def by_hand(text: str) -> list[str]:  # shorter than --seq-len: one window, all context
        with torch.no_grad():
            logits = model(vocab.encode(text)[None])
        return [tags[k] for k in logits[0].argmax(-1).tolist()]

    # "é" and "ü" are no characters of the training lines: both the unknown class.
    assert "é" not in vocab and "ü" not in vocab and vocab.encode("é").tolist() == [UNK_ID]
    data = jsonl(tmp_path / "new.jsonl", [{"x": "ab é1"}, {"x": "c2", "y": ["N", "Q"]}])
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(data)])
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [{"x": "ab é1", "y": by_hand("ab é1")}, {"x": "c2", "y": by_hand("c2")}]
    assert got[0]["y"] == by_hand("ab ü1")
    right = int(got[1]["y"][0] == "N")  # "Q" is no tag of the run: always wrong
    assert err == (
        f"accuracy: {right / 2:.4%} ({right}/2 characters of the 1 line(s) with y; a tag the "
        "run does not know is always wrong)\n"
    )
    # None with y: no accuracy line.
    data = jsonl(tmp_path / "plain.jsonl", [{"x": "ab1"}, {"x": "7m"}])
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(data)])
    assert err == "" and [json.loads(line)["y"] for line in out.splitlines()] == [
        by_hand("ab1"),
        by_hand("7m"),
    ]
    # A plain text file: its whole text, one JSON line; --format text forces it.
    text = "ab1 c2\nfg é\n"
    (tmp_path / "notes.txt").write_text(text, encoding="utf-8")
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(tmp_path / "notes.txt")])
    assert err == "" and json.loads(out) == {"x": text, "y": predict_tags(run, [text])[0]}
    assert out.count("\n") == 1
    out, _ = run_cli(capsys, ["predict", str(run), "--data", str(data), "--format", "text"])
    whole = data.read_text(encoding="utf-8")
    assert json.loads(out) == {"x": whole, "y": predict_tags(run, [whole])[0]}
    # JSON lines under the format's other names are JSON lines too, not text.
    for suffix in (".ndjson", ".jl"):
        other = tmp_path / f"plain{suffix}"
        other.write_bytes(data.read_bytes())
        assert (
            run_cli(capsys, ["predict", str(run), "--data", str(other)])[0]
            == run_cli(capsys, ["predict", str(run), "--data", str(data)])[0]
        )
    out_file = tmp_path / "tagged.jsonl"
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(data), "--out", str(out_file)])
    assert out == "" and err == f"tags of 2 input(s), 5 characters: {out_file}\n"


def test_tag_features(capsys, root: Path, tmp_path: Path):
    from rnnkit.tasks.tag import encode, predict

    run = root / "features"
    rows = [{"x": [[0.5, -1.25], [2.0, 0.1], [-0.3, 3]]}, {"x": [[1, 2]] * 9}]
    data = jsonl(tmp_path / "f.jsonl", rows)
    out, err = run_cli(capsys, ["predict", str(run), "--data", str(data)])
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["x"] for g in got] == [r["x"] for r in rows] and err == ""  # x as written
    task = prepared(run)
    docs = read_jsonl(data, require_labels=False)
    arrays = [e.x for e in docs]
    from rnnkit.data.tagging import Document

    encoded = encode([Document(a, np.zeros(len(a), np.int64)) for a in arrays], None)
    pred, _, _ = predict(rnnkit.load(run), encoded, task.options.seq_len,
                         task.options.eval_context)  # fmt: skip
    assert [t for g in got for t in g["y"]] == [task.data.tags[k] for k in pred.tolist()]
    assert predict_tags(run, [torch.tensor(a) for a in arrays]) == [g["y"] for g in got]
    assert predict_tags(run, []) == [] and predict_tags(root / "tag", [""]) == [[]]


def test_predict_tags_refusals(root: Path):
    text, features = root / "tag", root / "features"
    raises_exactly(ValueError, f"predict_tags: {root / 'classify'} is a run of task 'classify'; "
                   "expected a tag run (predict_classes applies classify runs)", predict_tags,
                   root / "classify", ["ab"])  # fmt: skip
    raises_exactly(TypeError, "predict_tags: inputs must be a list of texts or of feature "
                   "sequences; got str", predict_tags, text, "ab1")  # fmt: skip
    raises_exactly(TypeError, f"predict_tags: inputs[1] must be a str (the run {text} was "
                   "trained on text); got list", predict_tags, text, ["ab", [[1.0]]])  # fmt: skip
    raises_exactly(TypeError, f"predict_tags: inputs[0] must be a (T, 2) feature sequence (the "
                   f"run {features} was trained on features); got a str", predict_tags,
                   features, ["ab"])  # fmt: skip
    raises_exactly(ValueError, f"predict_tags: inputs[0] must be (T, 2) features, 2 per step as "
                   f"the run {features} was trained on; got shape (2, 3)", predict_tags,
                   features, [[[1, 2, 3], [4, 5, 6]]])  # fmt: skip
    raises_exactly(ValueError, f"predict_tags: inputs[0] must be (T, 2) features, 2 per step as "
                   f"the run {features} was trained on; got no array of numbers", predict_tags,
                   features, [[[1, 2], [3]]])  # fmt: skip
    raises_exactly(ValueError, "predict_tags: inputs[1] must hold finite numbers within "
                   "float32's range", predict_tags, features,
                   [[[1, 2]], [[1, float("nan")]]])  # fmt: skip


# ---- refusals of the command line --------------------------------------------------------


def test_runs_of_other_tasks_are_refused_naming_the_command(capsys, root: Path):
    def stub(task: str) -> str:
        return str(root / f"stub-{task}")

    data = str(root / "test.ts")
    expected = {
        "forecast": f"forecast new series with rnnkit forecast {stub('forecast')} --data FILE",
        "lm": f"it has no classes or tags to predict: continue a text with rnnkit generate "
        f"{stub('lm')}, score one with rnnkit eval {stub('lm')} --text FILE",
        "numbers": f"translate numbers with rnnkit translate {stub('numbers')} TEXT",
        "fit": "apply its model in Python, on the model rnnkit.load(run, model=MyModel(...)) "
        "returns",
    }
    for task in ("adding", "copy", "selective-copy"):
        expected[task] = (
            "a synthetic task has nothing to predict on new data (its inputs are generated); "
            f"score it with rnnkit eval {stub(task)}"
        )
    for task, why in expected.items():
        assert refused(capsys, ["predict", stub(task), "--data", data], root) == (
            f"rnnkit predict: error: {stub(task)} is a run of task {task!r}, not a classify or "
            f"tag run; {why}"
        )


def test_command_line_refusals(capsys, root: Path, tmp_path: Path):
    classify, tag, features = str(root / "classify"), str(root / "tag"), str(root / "features")
    test_ts, tags = str(root / "test.ts"), str(root / "tags.jsonl")
    (tmp_path / "notes.txt").write_text("ab1\n", encoding="utf-8")
    mine = tmp_path / "mine.csv"
    mine.write_text("mine\n")
    link = tmp_path / "link"
    link.symlink_to(root / "classify", target_is_directory=True)
    cases = [
        (["predict", classify, "--data", test_ts, "--format", "text"],
         f"--format text describes the --data of a tag run; {classify} is a classify run, "
         "whose --data is a .ts file"),
        (["predict", str(link), "--data", test_ts],
         f"{link} is a symbolic link; expected a run folder (rnnkit does not follow links)"),
        (["predict", classify, "--data", str(tmp_path / "nope.ts")],
         f"--data {tmp_path / 'nope.ts'} does not exist; expected a file"),
        (["predict", classify, "--data", str(tmp_path)],
         f"--data {tmp_path} is a folder; expected a file"),
        (["predict", classify, "--data="], "--data needs a file path; got an empty string"),
        (["predict", classify, "--data", test_ts, "--out", str(mine)],
         f"--out {mine} exists; pass --force to replace it"),
        (["predict", classify, "--data", test_ts, "--out", test_ts],
         f"--out {test_ts} is the --data file; expected another file name"),
        (["predict", tag, "--data", str(tmp_path / "notes.txt"), "--out", tags, "--force"],
         f"--out {tags} is the run's data; expected another file name"),
        (["predict", classify, "--data", test_ts, "--out", f"{classify}/p.csv"],
         f"--out {classify}/p.csv: expected a path outside any run folder; got one inside the "
         f"run folder {classify}"),
        (["predict", classify, "--data", test_ts, "--out", str(tmp_path / "p.txt")],
         f"--out: expected a file name ending in .csv; got {tmp_path / 'p.txt'}"),
        (["predict", tag, "--data", tags, "--out", str(tmp_path / "p.csv")],
         f"--out: expected a file name ending in .jsonl; got {tmp_path / 'p.csv'}"),
        (["predict", features, "--data", str(tmp_path / "notes.txt")],
         f"--data {tmp_path / 'notes.txt'} is read as text, and {features} was trained on "
         'feature sequences; give JSON lines of {"x": [[features], ...]}'),
        (["predict", features, "--data", tags],
         f"--data {tags}: x is text, and {features} was trained on features"),
        (["predict", tag, "--data", str(root / "features.jsonl")],
         f"--data {root / 'features.jsonl'}: x is features, and {tag} was trained on text"),
    ]  # fmt: skip
    jsonl(tmp_path / "wide.jsonl", [{"x": [[1, 2, 3]]}])
    cases.append((["predict", features, "--data", str(tmp_path / "wide.jsonl")],
                  f"--data {tmp_path / 'wide.jsonl'}: x has 3 feature(s) per step, and "
                  f"{features} was trained on 2"))  # fmt: skip
    (tmp_path / "empty.txt").write_bytes(b"")
    cases.append((["predict", tag, "--data", str(tmp_path / "empty.txt")],
                  f"--data: text file {tmp_path / 'empty.txt'} is empty; expected a text "
                  "file to tag"))  # fmt: skip
    jsonl(tmp_path / "bad.jsonl", [{"x": "ab"}, {"x": "ab", "y": ["N"]}])
    cases.append((["predict", tag, "--data", str(tmp_path / "bad.jsonl")],
                  f"--data {tmp_path / 'bad.jsonl'} line 2: len(y) must equal len(x); got 1 tags "
                  "for 2 characters"))  # fmt: skip
    for argv, message in cases:
        assert refused(capsys, argv, tmp_path) == f"rnnkit predict: error: {message}", argv
    assert mine.read_text() == "mine\n"
    # Nothing in the run folders either.
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert refused(capsys, cases[8][0], tmp_path)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_a_jsonl_line_without_y_is_read_only_when_labels_are_not_required(tmp_path: Path):
    data = jsonl(tmp_path / "d.jsonl", [{"x": "ab"}])
    raises_exactly(ValueError, f'--data {data} line 1: missing key "y" (keys: x)', read_jsonl,
                   data)  # fmt: skip
    assert [(e.x, e.y) for e in read_jsonl(data, require_labels=False)] == [("ab", [])]
