"""`rnnkit train classify` and its `.ts` reader: tiny files written by the tests, seconds."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data import pad_collate
from rnnkit.data.ts_format import parse_ts, read_ts, write_ts
from rnnkit.tasks.classify import ClassifyTask, SequenceClassifier, aeon_data_dir
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context

HEADER = """# a comment
@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def tiny_series(n: int = 24, seed: int = 0) -> tuple[list[torch.Tensor], list[int]]:
    """Two dimensions, lengths 5-12; class 0 rises, class 1 falls (learnable in steps)."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for i in range(n):
        T = 5 + i % 8
        y = i % 2
        ramp = torch.linspace(0, 1, T) * (1 if y == 0 else -1)
        x = torch.stack([ramp, -0.5 * ramp], 1) + 0.05 * torch.randn(T, 2, generator=g)
        xs.append(x)
        ys.append(y)
    return xs, ys


def tiny_file(path: Path, n: int = 24, seed: int = 0) -> str:
    xs, ys = tiny_series(n, seed)
    write_ts(path, xs, ys, classes=["up", "down"], problem_name="Tiny")
    return str(path)


def quiet(**kw):
    return {"log": lambda _: None, "progress": io.StringIO(), **kw}


SMALL = {"hidden_size": 8, "batch_size": 4, "dropout": 0.0}
STEPS = {"steps": 4, "eval_every": 2, "log_every": 2, "threads": 1}


# ---- the reader -----------------------------------------------------------------------


def test_univariate_equal_length():
    text = "@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n"
    data = parse_ts(text + "1,2,3:a\n4,5,6:b\n\n# between\n7,8,9:a\n", "u.ts")
    assert len(data) == 3 and data.dimensions == 1 and data.classes == ["a", "b"]
    assert data.labels == [0, 1, 0] and data.lengths == [3, 3, 3]
    x, _ = data[1]
    assert x.dtype == torch.float32 and x.shape == (3, 1) and x[:, 0].tolist() == [4, 5, 6]
    assert data.lines == [6, 7, 10]


def test_multivariate_unequal_length(tmp_path):
    f = tmp_path / "m.ts"
    f.write_text(HEADER + "1,2,3:10,20,30:up\n4,5:40,50:down\n", encoding="utf-8")
    data = read_ts(f)
    assert data.problem_name == "Tiny" and data.dimensions == 2 and data.lengths == [3, 2]
    assert data[0][0].tolist() == [[1, 10], [2, 20], [3, 30]]
    assert data[1][1] == 1


def test_missing_values_are_filled_forward_or_refused_or_kept():
    text = "@dimensions 2\n@classLabel true a b\n@data\n?,2,?,4,NaN:1,nan,3,?,5:a\n"
    data = parse_ts(text, "m.ts")
    assert data.missing == 5
    # a leading gap takes the first value; later gaps the last value before them
    assert data[0][0].T.tolist() == [[2, 2, 2, 4, 4], [1, 1, 3, 3, 5]]
    kept = parse_ts(text, "m.ts", missing="keep")[0][0]
    assert torch.isnan(kept).sum() == 5
    with pytest.raises(ValueError, match=r"m\.ts, line 4: dimension 1, value 1 is missing"):
        parse_ts(text, "m.ts", missing="error")
    with pytest.raises(ValueError, match=r"m\.ts, line 3: dimension 2 has no value at all"):
        parse_ts("@classLabel true a\n@data\n1,2:?,?:a\n", "m.ts")


def test_timestamped_series_keep_their_values_in_order():
    text = (
        "@timeStamps true\n@univariate true\n@classLabel true 1 2\n@data\n"
        "(2007-01-01 00:00:00,241.97),(2007-01-01 00:01:00,?),(2007-01-01 00:02:00,2.5):2\n"
    )
    x, y = parse_ts(text, "t.ts")[0]
    assert x[:, 0].tolist() == pytest.approx([241.97, 241.97, 2.5]) and y == 1


def test_a_file_of_series_to_classify_has_no_labels():
    text = "@dimensions 2\n@classLabel false\n@data\n1,2:3,4\n5:6\n"
    with pytest.raises(ValueError, match="@classLabel false"):
        parse_ts(text, "new.ts")
    data = parse_ts(text, "new.ts", require_labels=False)
    assert data.classes == [] and data.labels == [-1, -1] and data.lengths == [2, 1]
    with pytest.raises(ValueError, match=r"line 6: expected 2 dimension.*no label"):
        parse_ts(text + "1,2\n", "new.ts", require_labels=False)
    assert parse_ts(HEADER + "1:2:up\n", "l.ts", require_labels=False).labels == [0]


def test_write_ts_round_trips(tmp_path):
    xs, ys = tiny_series(6)
    xs[0][1, 1] = math.nan
    write_ts(tmp_path / "w.ts", xs, ys, classes=["up", "down"])
    back = read_ts(tmp_path / "w.ts", missing="keep")
    assert back.classes == ["up", "down"] and back.labels == ys
    for (x, _), want in zip(back, xs, strict=True):
        assert torch.allclose(x, want, equal_nan=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HEADER + "1,2:3,4:up\n1,2:up\n", r"bad\.ts, line 11: expected 2 dimension\(s\).*got 1"),
        (HEADER + "1,2:3,4:up\n1,2:3,4:5,6:up\n", r"line 11: expected 2 dimension"),
        (HEADER + "1,2:3,4:sideways\n", r"line 10: class label 'sideways' is not declared"),
        (HEADER + "1,x,3:3,4,5:up\n", r"line 10: dimension 1, value 2: 'x' is not a number"),
        (HEADER + "1,2:3,inf:up\n", r"line 10: dimension 2, value 2: 'inf' is not finite"),
        (HEADER + "1,2,3:3,4:up\n", r"line 10: dimension 2 has 2 values and dimension 1 has 3"),
        (HEADER + "1,2,3 3,4\n", r"line 10: .*got no ':'"),
        (HEADER + ":3,4:up\n", r"line 10: dimension 1 has no values"),
        (HEADER.replace("@data\n", ""), r"bad\.ts: no @data line"),
        (HEADER, r"bad\.ts: no series after @data"),
        (HEADER.replace("@missing false", "@missing maybe"), r"line 4: @missing must be true"),
        (HEADER.replace("@dimensions 2", "@dimensions two"), r"line 6: @dimensions must be a"),
        (HEADER.replace("@classLabel true up down", "@classLabel true"), r"line 8: .*list"),
        (HEADER.replace("@classLabel true up down", "@classLabel false"), "@classLabel false"),
        (HEADER.replace("@classLabel true up down", "@targetLabel true"), "regression"),
        (HEADER.replace("@problemName Tiny", "1,2:3,4:up"), r"line 2: expected a @tag"),
        (HEADER.replace("@data", "@data now"), r"line 9: @data takes no value"),
        ("@univariate true\n@dimensions 3\n@classLabel true a\n@data\n1:a\n", "contradicts"),
        ("@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n",
         r"line 5: the series has 2 values; @seriesLength says 3"),
        ("@equalLength true\n@classLabel true a\n@data\n1,2:a\n1:a\n", "2 different lengths"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_one_line_naming_the_file_and_line(tmp_path, body, message):
    f = tmp_path / "bad.ts"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as err:
        read_ts(f)
    assert "\n" not in str(err.value) and str(f) in str(err.value)


def test_files_that_are_not_ts_text(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_ts(tmp_path / "nope.ts")
    with pytest.raises(ValueError, match="is a folder"):
        read_ts(tmp_path)
    (tmp_path / "b.ts").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_ts(tmp_path / "b.ts")


# ---- the task's data ----------------------------------------------------------------------


def test_a_single_class_file_is_refused(tmp_path):
    xs, _ = tiny_series(8)
    write_ts(tmp_path / "one.ts", xs, [0] * 8, classes=["up", "down"])
    with pytest.raises(ValueError, match=r"every series is of class 'up'; .*at least two"):
        train("classify", {"data": str(tmp_path / "one.ts"), **SMALL}, TrainConfig(**STEPS),
              out=tmp_path / "run", **quiet())  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_data_without_test_data_makes_a_seeded_split_recorded_in_config(tmp_path):
    f = tiny_file(tmp_path / "d.ts", n=40)
    opts = {"data": f, "test_fraction": 0.25, "val_fraction": 0.25, **SMALL}

    def split(out: str, **more) -> dict:
        train("classify", {**opts, **more}, TrainConfig(**STEPS), out=tmp_path / out, **quiet())
        return json.loads((tmp_path / out / "config.json").read_text())["derived"]

    a, b, c = split("a"), split("b"), split("c", split_seed=1)
    assert a["split"] == b["split"] and a["split"] != c["split"]
    test, val = a["split"]["test"], a["split"]["val"]
    assert len(test) == 10 and len(val) == 8 and not set(test) & set(val)
    labels = read_ts(f).labels
    assert sorted(labels[i] for i in test) == [0] * 5 + [1] * 5  # stratified
    assert a["source"]["train"]["path"] == str(Path(f).resolve()) and a["source"]["test"] is None
    assert len(a["mean"]) == len(a["std"]) == a["dimensions"] == 2
    assert a["downsample"] == 1  # auto: the longest series (12 steps) is short already
    assert a["classes"] == ["up", "down"]


def test_without_validation_every_training_series_trains_and_the_last_model_is_kept(tmp_path):
    """--val-fraction 0 is a refit: no evaluation chooses, so the kept model is the final
    one even where an earlier evaluation scored higher on the training series."""
    from safetensors.torch import load_file

    f = tiny_file(tmp_path / "d.ts", n=40)
    opts = {"data": f, "val_fraction": 0.0, **SMALL}
    config = TrainConfig(steps=6, eval_every=1, log_every=6, threads=1, lr=0.05, seed=0)
    shown = io.StringIO()
    summary = train("classify", opts, config, out=tmp_path / "refit", **quiet(progress=shown))
    evaluations = re.findall(r"step \d+: training \(no validation split\) .*", shown.getvalue())
    assert "validation accuracy" not in shown.getvalue()  # the training series are scored
    assert len(evaluations) == 6 and all(e.endswith("(the last, saved)") for e in evaluations)
    assert summary.best["step"] == 6
    derived = json.loads((tmp_path / "refit" / "config.json").read_text())["derived"]
    assert derived["split"]["val"] == [] and len(derived["split"]["test"]) == 10
    kept = load_file(tmp_path / "refit" / "model.safetensors")
    (state,) = (tmp_path / "refit").glob("train_state-*.safetensors")
    assert state.name == "train_state-00000006.safetensors"  # the final training state
    final = load_file(state)
    assert kept and all(torch.equal(kept[k], final[f"model.{k}"]) for k in kept)


def test_a_test_file_with_a_class_the_training_file_lacks_is_refused(tmp_path):
    f = tiny_file(tmp_path / "d.ts")
    t = tmp_path / "t.ts"
    t.write_text(HEADER.replace("up down", "up down left") + "1,2:3,4:left\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"t\.ts, line 10: class 'left' is not a class of"):
        train("classify", {"data": f, "test_data": str(t), **SMALL}, TrainConfig(**STEPS),
              out=tmp_path / "run", **quiet())  # fmt: skip


def test_options_that_do_not_go_together():
    Options = ClassifyTask.Options
    with pytest.raises(ValueError, match="give --dataset or --data, not both"):
        Options(dataset="GunPoint", data="x.ts")
    with pytest.raises(ValueError, match="--test-data needs --data"):
        Options(test_data="x.ts")
    with pytest.raises(ValueError, match=r"--data must name a \.ts file"):
        Options(data="")
    with pytest.raises(ValueError, match=r"--test-fraction must be a finite number in \(0, 1\)"):
        Options(test_fraction=0.0)


def test_a_resume_reads_the_same_data_or_says_the_file_changed(tmp_path):
    f = tiny_file(tmp_path / "d.ts")
    out = tmp_path / "run"
    train("classify", {"data": f, **SMALL}, TrainConfig(**STEPS), out=out, **quiet())
    write_ts(tmp_path / "d.ts", *tiny_series(24, 5), classes=["up", "down"], overwrite=True)
    with pytest.raises(ValueError, match="changed since the run started"):
        train("classify", resume=out, steps=6, **quiet())


# ---- the model ----------------------------------------------------------------------------


@pytest.mark.parametrize("downsample", [1, 3])
@pytest.mark.parametrize("pool", ["last", "mean", "max"])
@pytest.mark.parametrize(("cell", "bidirectional"), [("gru", True), ("lstm", False),
                                                     ("mingru", True), ("rnn", True)])  # fmt: skip
def test_padding_does_not_leak_into_the_logits(pool, cell, bidirectional, downsample):
    torch.manual_seed(0)
    model = SequenceClassifier(3, 4, cell=cell, hidden_size=6, num_layers=2,
                               bidirectional=bidirectional, pool=pool, downsample=downsample,
                               mean=[0.5, -1.0, 2.0], std=[2.0, 1.0, 0.5]).eval()  # fmt: skip
    series = [torch.randn(T, 3) for T in (7, 2, 5)]
    alone = torch.cat([model(s.unsqueeze(0), torch.tensor([len(s)])) for s in series])
    x, lengths = pad_collate(series, padding_value=123.0)  # garbage in the padding
    together = model(x, lengths)
    assert torch.allclose(alone, together, atol=1e-5), (alone - together).abs().max()
    longer = torch.cat([x, torch.full((3, 4, 3), -50.0)], 1)  # more padding still
    assert torch.allclose(model(longer, lengths), together, atol=1e-5)


def test_float64_and_integer_series_are_read_in_the_models_dtype():
    torch.manual_seed(0)
    model = SequenceClassifier(2, 3, hidden_size=5, mean=[1.0, 2.0], std=[0.5, 2.0]).eval()
    x, lengths = torch.randint(-3, 4, (2, 5, 2)), torch.tensor([5, 3])
    want = model(x.float(), lengths)
    assert torch.equal(model(x.double(), lengths), want)
    assert torch.equal(model(x, lengths), want)  # integer values, as a .ts file may hold


def bad_inputs() -> list:
    x, lengths = torch.randn(3, 6, 2), torch.tensor([6, 4, 2])
    nan = x.clone()
    nan[1, 3, 0] = float("nan")
    return [
        ((x.numpy(), lengths), TypeError, r"x must be a torch.Tensor \(B, T, 2\).*got ndarray"),
        ((x[0], lengths), ValueError, r"x must be \(B, T, 2\) raw values.*got shape \(6, 2\)"),
        ((torch.randn(3, 6, 3), lengths), ValueError, r"\(B, T, 2\).*got shape \(3, 6, 3\)"),
        ((x, torch.tensor([7, 4, 2])), ValueError, r"lengths must lie in \[0, T\] = \[0, 6\]"),
        ((x, torch.tensor([6.0, 4.0, 2.0])), TypeError, "lengths must have an integer dtype"),
        ((x, torch.tensor([6, 4])), ValueError, r"lengths must have shape \(B,\) = \(3,\)"),
        ((x, torch.tensor([6, 0, 2])), ValueError, "lengths must be >= 1.*got \\[6, 0, 2\\]"),
        ((nan, lengths), ValueError, "must be finite at every valid step.*nan in series 1, step 3"),
    ]


@pytest.mark.parametrize("pool", ["last", "mean", "max"])
@pytest.mark.parametrize("members", [1, 2])
def test_wrong_inputs_are_one_line_naming_the_argument(pool, members):
    """Not a traceback from inside the layer, and never a silent result: a float length
    was truncated, a series of no steps was classified from the bias alone (max pooling:
    NaN), a NaN at a valid step made the series' logits NaN."""
    model = SequenceClassifier(2, 3, hidden_size=4, pool=pool, members=members).eval()
    for (x, lengths), error, message in bad_inputs():
        with pytest.raises(error, match=message):
            model(x, lengths)
    x = torch.randn(3, 6, 2)
    x[2, 4:] = float("nan")  # padding past the last valid step may hold anything
    assert torch.isfinite(model(x, [6, 4, 4])).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, r"num_classes must be an integer >= 2 \(.*\); got 1"),
        ({"mean": [0.0, 1.0, 2.0]}, r"mean must hold one value per channel \(input_size = 2\)"),
        ({"std": [0.0, 1.0]}, "std must be > 0 in every channel"),
        ({"std": [float("nan"), 1.0]}, "std must be finite"),
        ({"noise": -1.0}, "noise must be a finite number >= 0; got -1.0"),
        ({"dropout": 2.0}, r"dropout must be a number in \[0, 1\); got 2.0"),
    ],
)
def test_wrong_constructor_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceClassifier(2, **{"num_classes": 3, **kwargs})


# ---- end to end -----------------------------------------------------------------------------


def test_train_load_and_eval_writes_the_confusion_matrix(tmp_path, capsys):
    f = tiny_file(tmp_path / "d.ts", n=32)
    out = tmp_path / "run"
    summary = train("classify", {"data": f, **SMALL}, TrainConfig(**{**STEPS, "steps": 6}),
                    out=out, **quiet())  # fmt: skip
    assert summary.best["metric"] == "accuracy" and 0 <= summary.best["value"] <= 1
    assert any("majority-class baseline" in line for line in summary.lines)
    model = rnnkit.load(out)
    x, _ = read_ts(f)[0]
    assert model(x.unsqueeze(0), torch.tensor([len(x)])).shape == (1, 2)
    figures = tmp_path / "figures"
    assert main(["eval", str(out), "--out", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed and "per-class accuracy" in printed
    assert "   up:" in printed and "down:" in printed
    png = (figures / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(out)]) == 0  # into the run folder itself: a file of its own
    assert (out / "confusion.png").exists()


def test_the_cli_trains_on_a_users_file(tmp_path, capsys):
    f = tiny_file(tmp_path / "d.ts")
    t = tiny_file(tmp_path / "t.ts", n=10, seed=1)
    out = tmp_path / "run"
    argv = ["train", "classify", "--data", f, "--test-data", t, "--steps", "4", "--hidden",
            "8", "--batch-size", "4", "--eval-every", "2", "--pool", "last", "--cell", "lstm",
            "--no-bidirectional", "--noise", "0.1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"test accuracy [\d.]+% \(\d+/10 series of t\.ts\)", printed), printed
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["cell"] == "lstm" and config["derived"]["split"]["test"] is None


def test_bad_data_on_the_command_line_is_one_line_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.ts"
    bad.write_text(HEADER + "1,2:up\n", encoding="utf-8")
    assert main(["train", "classify", "--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 10" in err and "error" in err
    assert not (tmp_path / "r").exists()


def test_your_own_sequences_from_python_with_fit_and_pad_collate(tmp_path):
    from torch.utils.data import DataLoader

    train_data = read_ts(tiny_file(tmp_path / "train.ts", n=32))
    val_data = read_ts(tiny_file(tmp_path / "val.ts", n=8, seed=1))
    torch.manual_seed(0)
    loader = DataLoader(train_data, batch_size=8, shuffle=True, collate_fn=pad_collate)
    val = DataLoader(val_data, batch_size=64, collate_fn=pad_collate)
    model = SequenceClassifier(train_data.dimensions, len(train_data.classes), hidden_size=8)
    summary = rnnkit.fit(model, loader, val, metrics={"accuracy": rnnkit.train.accuracy},
                         monitor="accuracy", steps=30, eval_every=10, lr=1e-2,
                         out=tmp_path / "run", **quiet())  # fmt: skip
    assert summary.best["metric"] == "accuracy" and summary.best["value"] >= 0.75
    x, lengths, y = next(iter(val))
    assert x.shape[0] == 8 and lengths.max() == x.shape[1] and y.dtype == torch.long


def test_a_shipped_dataset_loads_with_its_official_split():
    try:
        folder = aeon_data_dir() / "JapaneseVowels"
    except ValueError:  # aeon is not installed
        pytest.skip("aeon (rnnkit[timeseries]) is not installed")
    if not folder.is_dir():
        pytest.skip("this aeon ships no JapaneseVowels")
    task = ClassifyTask(ClassifyTask.Options(val_fraction=0.2))
    task.prepare(ClassifyTask.default_train(), Context(0, 1, torch.device("cpu")))
    d = task.derived
    assert d["source"]["dataset"] == "JapaneseVowels" and d["split"]["test"] is None
    assert d["dimensions"] == 12 and len(d["classes"]) == 9
    assert task.train_split.n + task.val_split.n == 270 and task.test_split.n == 370
    assert task.lengths == (7, 29)
    assert task.train_split.x.shape[2] == 12 and task.test_split.x.shape == (370, 29, 12)
    assert task.val_split.n == 54  # 20 % of each class's 30


def test_downsample_averages_windows_of_the_valid_steps_only():
    from rnnkit.tasks.classify import aggregate

    x = torch.tensor([[1.0, 2, 3, 4, 5, 6, 7], [1, 3, 5, 99, 99, 99, 99]]).unsqueeze(-1)
    z, lengths = aggregate(x, torch.tensor([7, 3]), 2)
    assert lengths.tolist() == [4, 2]
    assert z[0, :, 0].tolist() == [1.5, 3.5, 5.5, 7.0] and z[1, :2, 0].tolist() == [2.0, 5.0]


def test_auto_downsample_keeps_the_longest_training_series_within_64_steps(tmp_path):
    xs = [torch.randn(T, 1) for T in (100, 150, 200, 130)] * 3
    write_ts(tmp_path / "long.ts", xs, [0, 1] * 6, classes=["a", "b"])
    task = ClassifyTask(ClassifyTask.Options(data=str(tmp_path / "long.ts"), val_fraction=0.0))
    task.prepare(ClassifyTask.default_train(), Context(0, 1, torch.device("cpu")))
    assert task.derived["downsample"] == 4  # the longest training series: 200 -> 50 steps
    assert task.build_model().downsample == 4


def test_an_int8_classifier_predicts():
    """rnnkit.quantize_dynamic leaves no parameters; predict finds the device all the same."""
    import warnings

    from rnnkit.tasks.classify import SequenceClassifier, Split, predict

    torch.manual_seed(0)
    model = SequenceClassifier(3, 4, "gru", 16, 1, True, "mean").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = rnnkit.quantize_dynamic(model)
    assert next(int8.parameters(), None) is None
    split = Split([torch.randn(n, 3) for n in (5, 9, 2)], [0, 1, 2], "test")
    classes, loss = predict(int8, split)
    expected, _ = predict(model, split)
    assert classes.shape == (3,) and math.isfinite(loss)
    assert torch.equal(classes, expected)
