"""Each error message of the classify, tag, forecast, lm and numbers tasks that no other test
reaches, through the Python API or `rnnkit` itself, asserted word for word: the command
line's in one line on stderr, exit status 2, no traceback and nothing written."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from _refusals import raises_exactly as _raises
from _refusals import refused
from _runs import edited
from rnnkit.cli import main
from rnnkit.data.ts_format import write_ts
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.train import TrainConfig, train

SMALL = {"hidden_size": 4, "batch_size": 4, "dropout": 0.0}
STEPS = {"steps": 2, "eval_every": 2, "log_every": 2, "threads": 1}


def quiet() -> dict[str, Any]:
    return {"log": lambda _: None, "progress": io.StringIO()}


def series_file(path: Path, n: int = 16, dims: int = 2) -> str:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4 + i % 3, dims, generator=g) for i in range(n)]
    write_ts(path, xs, [i % 2 for i in range(n)], classes=["up", "down"])
    return str(path)


# ---- SequenceClassifier ---------------------------------------------------------------


def test_sequence_classifier_messages() -> None:
    _raises(ValueError, "cell must be one of rnn, lstm, gru, mingru, minlstm; got 'tcn'",
            SequenceClassifier, 2, 3, cell="tcn")  # fmt: skip
    _raises(ValueError, "pool must be one of last, mean, max; got 'median'", SequenceClassifier,
            2, 3, pool="median")  # fmt: skip
    _raises(TypeError, "SequenceClassifier: mean must be a list or tensor of numbers, one per "
            "channel; got str", SequenceClassifier, 2, 3, mean="ab")  # fmt: skip
    _raises(ValueError, "SequenceClassifier: mean must be finite; got [0.0, inf]",
            SequenceClassifier, 2, 3, mean=[0.0, float("inf")])  # fmt: skip
    model = SequenceClassifier(2, 3, hidden_size=4).eval()
    _raises(ValueError, "SequenceClassifier: lengths must be >= 1 (a series of no steps has "
            "nothing to classify); got [4, 0, 2]", model, torch.randn(3, 4, 2),
            torch.tensor([4, 0, 2]))  # fmt: skip


# ---- rnnkit train classify ------------------------------------------------------------


def test_train_classify_messages(capsys, tmp_path: Path) -> None:
    data = series_file(tmp_path / "d.ts")
    one = series_file(tmp_path / "one.ts", n=6, dims=1)
    out = str(tmp_path / "run")
    argv = ["train", "classify", "--data", data, "--out", out, "--steps", "1"]
    assert refused(capsys, [*argv, "--test-data", one], tmp_path) == (
        f"rnnkit train: error: {one}: its series have 1 dimension(s); the training file's have 2"
    )
    assert refused(capsys, [*argv, "--test-data", one, "--test-fraction", "0.3"], tmp_path) == (
        f"rnnkit train: error: --test-fraction 0.3 holds out a share of --data, and "
        f"--test-data {one} is the test split; leave --test-fraction out"
    )
    argv = ["train", "classify", "--test-data", one, "--out", out, "--steps", "1"]
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: classify options: --test-data needs --data (the training file of "
        "your own data)"
    )
    few = series_file(tmp_path / "few.ts", n=4)
    argv = ["train", "classify", "--data", few, "--out", out, "--steps", "1"]
    assert refused(capsys, [*argv, "--test-fraction", "0.1"], tmp_path) == (
        "rnnkit train: error: --test-fraction 0.1 of 4 series holds out none for the test; "
        "give a larger --test-fraction or a --test-data file"
    )


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classify_run")
    f = series_file(root / "d.ts", n=24)
    train("classify", {"data": f, **SMALL}, TrainConfig(**STEPS), out=root / "run", **quiet())
    return root / "run"


def test_eval_of_a_hand_edited_classify_run(capsys, classify_run: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone.ts"

    def no_test_list(d: dict) -> None:
        d["split"]["test"] = None

    def past_the_end(d: dict) -> None:
        d["split"]["val"] = [0, 24]

    def no_majority(d: dict) -> None:
        del d["majority"], d["mean"]

    def moved(d: dict) -> None:
        d["source"]["train"]["path"] = str(gone)

    def no_val_list(d: dict) -> None:
        d["split"]["val"] = "all"

    def no_downsample(d: dict) -> None:
        d["downsample"] = 0

    def no_source(d: dict) -> None:
        d["source"] = str(gone)

    cases = [
        (no_val_list, "derived: split must be an object with a list 'val'"),
        (no_downsample, "derived: downsample must be a positive integer; got 0"),
        (no_source, "derived: source must be an object naming the training file"),
        (no_test_list, "derived: split must hold the list 'test' of held-out series"),
        (past_the_end, "derived: split.val: indices must be integers in [0, 24)"),
        (no_majority, "derived: missing key(s) mean, majority of a classify run"),
    ]
    for change, message in cases:
        copy = edited(classify_run, tmp_path, change)
        where = copy / "config.json"
        assert refused(capsys, ["eval", str(copy)], tmp_path) == (
            f"rnnkit eval: error: {where}: {message}"
        )
        shutil.rmtree(copy)
    copy = edited(classify_run, tmp_path, moved)
    assert refused(capsys, ["eval", str(copy)], tmp_path) == (
        f"rnnkit eval: error: {gone}: the train file of this run is missing"
    )
    shutil.rmtree(copy)
    other = Path(series_file(tmp_path / "other.ts", n=20))  # not the file the run read

    def changed(d: dict) -> None:
        d["source"]["train"]["path"] = str(other)

    copy = edited(classify_run, tmp_path, changed)
    assert refused(capsys, ["eval", str(copy)], tmp_path) == (
        f"rnnkit eval: error: {other} changed since the run started (its SHA-256 differs "
        "from the one in config.json); restore it, or start a new run"
    )


def test_eval_out_of_a_classify_run_in_a_folder_that_does_not_exist(
    capsys, classify_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no" / "figures"
    assert refused(capsys, ["eval", str(classify_run), "--out", str(out)], tmp_path) == (
        f"rnnkit eval: error: --out: the folder that would hold {out} does not exist; "
        "expected an existing folder or a new one inside an existing folder"
    )


def _tag_data(folder: Path) -> dict[str, Any]:
    words = ["ab1", "c22d", "e3", "fg", "4h", "ij5", "k6l", "7m", "no8", "p9", "qr", "s0t"]
    lines = [{"x": w, "y": ["N" if c.isalpha() else "D" for c in w]} for w in words]
    path = folder / "tags.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    return {"data": str(path), "hidden_size": 4, "embed_size": 4, "seq_len": 8}


def _forecast_data(folder: Path) -> dict[str, Any]:
    rows = ["t,a,b"] + [f"{t},{10 + t % 4 + t / 10:.2f},{20 - t % 3:.1f}" for t in range(40)]
    (folder / "shops.csv").write_text("\n".join(rows) + "\n")
    return {"data": str(folder / "shops.csv"), "horizon": 4, "seasonality": 4,
            "hidden_size": 4, "batch_size": 4, "context": 8}  # fmt: skip


@pytest.mark.parametrize(
    ("task", "figure"),
    [("classify", "confusion.png"), ("tag", "tagged.png"), ("forecast", "forecast.png")],
)
def test_a_task_report_into_a_file(
    task: str, figure: str, classify_run: Path, tmp_path: Path
) -> None:
    # `rnnkit eval --out FILE` is refused before (a file is no folder); a caller of the
    # task's own report, as rnnkit eval is, hears it from the report, and the file stays.
    import rnnkit
    from rnnkit.tasks import get_task
    from rnnkit.train.distributed import Context
    from rnnkit.train.runfolder import RunFolder

    run = classify_run
    if task != "classify":
        options = (_tag_data if task == "tag" else _forecast_data)(tmp_path)
        train(task, options, TrainConfig(**STEPS), out=tmp_path / "run", **quiet())
        run = tmp_path / "run"
    config = RunFolder(run).read_config()
    task_cls = get_task(task)
    made = task_cls(task_cls.parse_options(config.options, where="config.json"), config.derived)
    made.prepare(config.train, Context(0, 1, torch.device("cpu")))
    afile = tmp_path / "figures.png"
    afile.write_text("mine\n")
    _raises(ValueError, f"out_dir {afile} is a file; expected a folder for {figure}",
            made.report, rnnkit.load(run), run, afile)  # fmt: skip
    assert afile.read_text() == "mine\n"
    # A new folder is made, and the figure is written into it.
    lines = made.report(rnnkit.load(run), run, tmp_path / "new")
    assert (tmp_path / "new" / figure).is_file() and str(tmp_path / "new" / figure) in lines[-1]


def test_a_dataset_aeon_lacks_a_file_of(capsys, tmp_path: Path, monkeypatch) -> None:
    import rnnkit.tasks.classify.rundata as rundata

    (tmp_path / "aeon" / "GunPoint").mkdir(parents=True)
    monkeypatch.setattr(rundata, "aeon_data_dir", lambda: tmp_path / "aeon")
    argv = ["train", "classify", "--dataset", "GunPoint", "--steps", "1", "--out",
            str(tmp_path / "run")]  # fmt: skip
    train_file = tmp_path / "aeon" / "GunPoint" / "GunPoint_TRAIN.ts"
    assert refused(capsys, argv, tmp_path) == (
        f"rnnkit train: error: --dataset GunPoint: {train_file} is missing from this aeon "
        "installation"
    )


# ---- tag ------------------------------------------------------------------------------


def test_tagger_messages() -> None:
    from rnnkit.tasks.tag import Tagger, TaggerConfig

    _raises(ValueError, "give one of vocab_size (characters) or num_features (feature "
            "vectors); got neither: vocab_size=0, num_features=0", TaggerConfig,
            num_tags=2)  # fmt: skip
    _raises(ValueError, "give one of vocab_size (characters) or num_features (feature "
            "vectors); got both: vocab_size=3, num_features=2", TaggerConfig, num_tags=2,
            vocab_size=3, num_features=2)  # fmt: skip
    chars = Tagger(TaggerConfig(num_tags=2, vocab_size=5, hidden_size=4))
    _raises(ValueError, "Tagger: x must be (B, T) long character ids; got torch.float32 (2, 3)",
            chars, torch.zeros(2, 3))  # fmt: skip
    features = Tagger(TaggerConfig(num_tags=2, num_features=2, hidden_size=4))
    _raises(ValueError, "Tagger: x must be (B, T, 2) features; got (2, 3, 3)", features,
            torch.zeros(2, 3, 3))  # fmt: skip


def test_tag_test_data_without_data(capsys, tmp_path: Path) -> None:
    from rnnkit.tasks.tag import TagOptions

    _raises(ValueError, "--test-data needs --data (the default data has its own test files)",
            TagOptions, test_data="t.jsonl")  # fmt: skip
    argv = ["train", "tag", "--test-data", str(tmp_path / "t.jsonl"), "--steps", "1", "--out",
            str(tmp_path / "run")]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: tag options: --test-data needs --data (the default data has its "
        "own test files)"
    )


def test_a_test_file_that_is_the_training_file(capsys, tmp_path: Path) -> None:
    """classify and tag refuse a --test-data that is --data: by path, through a link, or a
    copy of the same bytes (its scores would be of the examples trained on)."""
    data = Path(series_file(tmp_path / "d.ts"))
    copy = tmp_path / "copy.ts"
    copy.write_bytes(data.read_bytes())
    link = tmp_path / "link.ts"
    link.symlink_to(data)
    out = str(tmp_path / "run")
    for test in (data, copy, link):
        argv = ["train", "classify", "--data", str(data), "--test-data", str(test), "--out",
                out, "--steps", "1"]  # fmt: skip
        assert refused(capsys, argv, tmp_path) == (
            f"rnnkit train: error: --test-data {test} holds the same bytes as --data {data}; "
            "a test split must be other examples (leave out --test-data for a seeded split)"
        )
    lines = [{"x": "ab " * 4, "y": ["lo", "lo", "hi"] * 4} for _ in range(40)]
    tags = tmp_path / "d.jsonl"
    tags.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    argv = ["train", "tag", "--data", str(tags), "--test-data", str(tags), "--steps", "1",
            "--out", out]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        f"rnnkit train: error: --test-data {tags} holds the same bytes as --data {tags}; a test "
        "split must be other examples (leave out --test-data for a seeded split)"
    )


def test_a_tag_run_whose_recorded_tags_are_not_its_datas(capsys, tmp_path: Path) -> None:
    lines = [{"x": "ab " * 4, "y": ["lo", "lo", "hi"] * 4} for _ in range(40)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "tag", "--data", str(data), "--steps", "1", "--eval-every", "1",
            "--hidden", "4", "--embed", "4", "--seq-len", "8", "--batch-size", "2",
            "--eval-chars", "50", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["derived"]["tags"] == ["hi", "lo"]
    config["derived"]["tags"] = ["lo", "hi"]  # ids 0 and 1 would swap meaning
    (run / "config.json").write_text(json.dumps(config))
    message = (
        f"{run / 'config.json'}: derived: tags ['lo', 'hi'] are not those of the run's data "
        "(hi, lo)"
    )
    assert refused(capsys, ["eval", str(run)], tmp_path) == f"rnnkit eval: error: {message}"
    argv = ["train", "--resume", str(run), "--steps", "2"]
    assert refused(capsys, argv, tmp_path) == f"rnnkit train: error: {message}"


# ---- lm -------------------------------------------------------------------------------


def test_lm_messages(capsys, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("abcdefghijklmnopqrst", encoding="utf-8")  # 5% of 20: 1 to validate
    argv = ["train", "lm", "--text", str(text), "--seq-len", "2", "--batch-size", "1",
            "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: the validation split has 1 character(s); use a longer text (5% "
        "of it validates)"
    )
    text.write_text("abcdefghij" * 10, encoding="utf-8")  # 90 to train, 5 to validate
    argv = ["train", "lm", "--text", str(text), "--seq-len", "8", "--batch-size", "16",
            "--steps", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: the training text is too short for one window: its 90 "
        "character(s) cannot fill --batch-size 16 streams of --seq-len 8 (need at least 129); "
        "use a longer text or smaller values"
    )


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    text = root / "t.txt"
    text.write_text("hello world, hello there. " * 40, encoding="utf-8")
    argv = ["train", "lm", "--text", str(text), "--hidden", "8", "--embed", "4", "--seq-len",
            "8", "--batch-size", "2", "--eval-every", "2", "--threads", "1", "--steps", "2",
            "--out", str(root / "run")]  # fmt: skip
    assert main(argv) == 0
    return root / "run"


def test_load_of_a_run_whose_derived_cannot_build_its_model(lm_run: Path, tmp_path: Path) -> None:
    import rnnkit
    from rnnkit.train import RunFolderError

    def edited(name: str, change) -> Path:
        copy = tmp_path / name
        shutil.copytree(lm_run, copy)
        config = json.loads((copy / "config.json").read_text())
        change(config["derived"])
        (copy / "config.json").write_text(json.dumps(config))
        return copy

    gone = edited("gone", lambda d: d.pop("vocab"))
    _raises(RunFolderError, f"{gone / 'config.json'}: derived has no 'vocab'", rnnkit.load, gone)
    odd = edited("odd", lambda d: d.update(vocab={"chars": 3}))
    _raises(RunFolderError, f"{odd / 'config.json'}: derived is inconsistent (vocabulary must "
            "be an object with one string entry 'chars')", rnnkit.load, odd)  # fmt: skip


# ---- forecast -------------------------------------------------------------------------


def test_online_forecaster_before_any_value() -> None:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel, OnlineForecaster

    online = OnlineForecaster(ForecastModel(ForecastConfig(horizon=2, hidden_size=4)))
    with pytest.raises(ValueError) as err:
        online.forecast  # noqa: B018
    assert str(err.value) == "OnlineForecaster: no value seen yet; call update(value) first"


def test_a_forecast_run_whose_anchor_is_no_anchor() -> None:
    # What rnnkit.load, eval and forecast check in a hand-edited config.json.
    from rnnkit.tasks.forecast import check_derived

    derived = {"source": {"path": "/data/shops.csv"}, "horizon": 4, "seasonality": 4,
               "origins": 1, "scale_window": 4, "anchor": "mean"}  # fmt: skip
    _raises(ValueError, "run/config.json: derived: anchor must be one of seasonal-naive, "
            "climatology, drift; got 'mean'", check_derived, derived,
            "run/config.json: derived")  # fmt: skip
    check_derived({**derived, "anchor": "drift"}, "run/config.json: derived")


# ---- numbers --------------------------------------------------------------------------


def test_a_numbers_run_whose_derived_lost_keys(capsys, tmp_path: Path) -> None:
    run = tmp_path / "run"
    options = dict(max_number=99, embed_size=4, encoder_hidden=4, decoder_hidden=4, n_valid=4,
                   n_test=4)  # fmt: skip
    train("numbers", options, TrainConfig(steps=1, eval_every=1), out=run, **quiet())
    config = json.loads((run / "config.json").read_text())
    del config["derived"]["source_chars"], config["derived"]["max_target_length"]
    (run / "config.json").write_text(json.dumps(config))
    assert refused(capsys, ["train", "--resume", str(run), "--steps", "2"], tmp_path) == (
        f"rnnkit train: error: {run / 'config.json'}: derived: missing key(s) source_chars, "
        "max_target_length of a numbers run"
    )


# ---- rnnkit.train and rnnkit.load -----------------------------------------------------


def test_train_and_load_messages(tmp_path: Path) -> None:
    import rnnkit
    from rnnkit.train import RunFolderError

    _raises(TypeError, "options of task 'adding' must be a MemoryOptions or a dict; got int",
            train, "adding", 3)  # fmt: skip
    run = tmp_path / "fit"
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    data = torch.utils.data.TensorDataset(torch.randn(8, 2), torch.randint(0, 2, (8,)))
    rnnkit.fit(model, torch.utils.data.DataLoader(data, batch_size=4), out=run, steps=1,
               eval_every=1, **quiet())  # fmt: skip
    _raises(RunFolderError, f"{run} is a run of rnnkit.fit: give the model to load its weights "
            "into, rnnkit.load(run, model=MyModel(...))", rnnkit.load, run)  # fmt: skip


# ---- a run's training state -----------------------------------------------------------


def test_resume_of_a_run_whose_training_state_does_not_fit(
    capsys, adding_run: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    state = json.loads((adding_run / "train_state.json").read_text())["tensors"]

    def copy(name: str) -> Path:
        return Path(shutil.copytree(adding_run, tmp_path / name))

    def resume(run: Path) -> str:
        return refused(capsys, ["train", "--resume", str(run), "--steps", "3"], tmp_path)

    gone = copy("gone")
    (gone / state).unlink()
    assert resume(gone) == f"rnnkit train: error: {gone} has no {state}"

    for name, optimizer, got in (
        ("empty", {}, "param_groups missing, scalars missing"),
        ("number", {"param_groups": 3, "scalars": {}}, "param_groups int, scalars dict"),
        ("strings", {"param_groups": ["lr"], "scalars": {}},
         "param_groups a list holding a non-object, scalars dict"),
    ):  # fmt: skip
        run = copy(name)
        info = json.loads((run / "train_state.json").read_text())
        (run / "train_state.json").write_text(json.dumps({**info, "optimizer": optimizer}))
        assert resume(run) == (
            f"rnnkit train: error: the checkpoint {run / 'train_state.json'} and {state} is "
            "corrupt or does not fit (the optimiser "
            "state does not fit the model: expected a list 'param_groups' of objects and an "
            f"object 'scalars'; got {got})"
        )

    run = copy("shape")
    tensors = load_file(run / state)
    tensors["optim.0.exp_avg"] = torch.zeros(7, 3)
    save_file(tensors, run / state)
    shape = tuple(load_file(adding_run / state)["optim.0.exp_avg"].shape)
    assert resume(run) == (
        f"rnnkit train: error: the checkpoint {run / 'train_state.json'} and {state} is "
        "corrupt or does not fit (the optimiser's "
        f"exp_avg of parameter 0 has shape (7, 3); the model's is {shape})"
    )


# ---- inputs once taken without a word -------------------------------------------------


def test_sequence_classifier_checks_x_without_lengths_too() -> None:
    """Without lengths, a NaN step made a series' logits NaN and a series of no steps was
    classified from the bias alone; a complex x lost its imaginary part with a warning."""
    model = SequenceClassifier(2, 3, hidden_size=4).eval()
    x = torch.randn(2, 4, 2)
    x[1, 2, 0] = float("nan")
    _raises(ValueError, "SequenceClassifier: x must be finite at every valid step (fill "
            "missing values first); got nan in series 1, step 2", model, x)  # fmt: skip
    _raises(ValueError, "SequenceClassifier: x must have at least one step (a series of no "
            "steps has nothing to classify); got shape (2, 0, 2)", model,
            torch.ones(2, 0, 2))  # fmt: skip
    _raises(TypeError, "SequenceClassifier: x must hold real values; got torch.complex64", model,
            torch.ones(2, 3, 2, dtype=torch.complex64))  # fmt: skip
    assert model(torch.ones(0, 3, 2)).shape == (0, 3)


def test_cell_and_pool_of_the_wrong_type() -> None:
    from rnnkit.tasks.tag import TaggerConfig

    cells = "rnn, lstm, gru, mingru, minlstm"
    _raises(ValueError, f"cell must be one of {cells}; got ['lstm']", SequenceClassifier, 2, 3,
            cell=["lstm"])  # fmt: skip
    _raises(ValueError, "pool must be one of last, mean, max; got ['max']", SequenceClassifier,
            2, 3, pool=["max"])  # fmt: skip
    _raises(ValueError, f"cell must be one of {cells}; got ['gru']", TaggerConfig, num_tags=2,
            vocab_size=3, cell=["gru"])  # fmt: skip


def test_tag_loss_names_arguments_that_are_no_tensors_or_bool_targets() -> None:
    from rnnkit.tasks.tag import tag_loss

    logits = torch.randn(2, 3, 4)
    _raises(TypeError, "tag_loss: logits must be a torch.Tensor (B, T, K); got list", tag_loss,
            logits.tolist(), torch.zeros(2, 3, dtype=torch.long))  # fmt: skip
    _raises(TypeError, "tag_loss: target must be a torch.Tensor (B, T) of tag ids; got list",
            tag_loss, logits, [[0, 0, 0]] * 2)  # fmt: skip
    _raises(TypeError, "tag_loss: target must hold integer tag ids; got torch.bool", tag_loss,
            logits, torch.zeros(2, 3, dtype=torch.bool))  # fmt: skip
    target = torch.tensor([[0, 1, -100], [2, 4, -100]])  # -100 pads; 4 is no tag of K = 4
    _raises(ValueError, "tag_loss: target must hold tag ids in [0, 4) (K = logits.size(-1)), "
            "or -100 for padding; got min 0, max 4", tag_loss, logits, target)  # fmt: skip
    _raises(ValueError, "tag_loss: target must hold tag ids in [0, 4) (K = logits.size(-1)), "
            "or -100 for padding; got min -1, max 2", tag_loss, logits,
            torch.tensor([[0, -1, 2], [2, 1, 0]]))  # fmt: skip


def test_write_card_of_no_run_folder(tmp_path: Path) -> None:
    from rnnkit.train import RunFolderError, write_card

    _raises(RunFolderError, f"run folder not found: {tmp_path / 'no'}", write_card,
            tmp_path / "no")  # fmt: skip
    (tmp_path / "f").write_text("x")
    _raises(RunFolderError, f"{tmp_path / 'f'} is a file; expected a run folder", write_card,
            tmp_path / "f")  # fmt: skip


def test_train_arguments_it_would_ignore_or_fail_on_later(adding_run: Path, tmp_path: Path) -> None:
    """Each once ran: steps without resume was ignored (the run took train_config's
    budget), and options, train_config or out with resume too; a dict train_config, a
    number out or a string log failed in Python's words (the log after the folder was
    made)."""
    small = {"length": 10, "hidden_size": 4}
    config = TrainConfig(steps=1, eval_every=1)
    out = tmp_path / "new"
    _raises(ValueError, "rnnkit.train: steps change the budget of a resumed run; a new run "
            "takes its budget from train_config (TrainConfig(steps=..., minutes=...))", train,
            "adding", small, config, out=out, steps=5)  # fmt: skip
    _raises(ValueError, "rnnkit.train: steps and minutes change the budget of a resumed run; "
            "a new run takes its budget from train_config (TrainConfig(steps=..., "
            "minutes=...))", train, "adding", small, out=out, steps=5, minutes=1.0)  # fmt: skip
    _raises(ValueError, f"rnnkit.train: resume continues {adding_run} with its own "
            "config.json; options, out cannot be given with it (only steps and minutes)", train,
            "adding", small, resume=adding_run, out=out)  # fmt: skip
    _raises(ValueError, f"rnnkit.train: {adding_run} is a run of task 'adding'; "
            "got task 'copy'", train,
            "copy", resume=adding_run, steps=5)  # fmt: skip
    _raises(TypeError, "rnnkit.train: train_config must be a TrainConfig (e.g. "
            "TrainConfig(steps=100)) or None; got dict", train, "adding", small,
            {"steps": 1}, out=out)  # fmt: skip
    _raises(TypeError, "rnnkit.train: out must be a path; got int", train, "adding", small,
            config, out=3)  # fmt: skip
    _raises(TypeError, "rnnkit.train: resume must be a path; got bool", train, "adding",
            resume=True)  # fmt: skip
    _raises(TypeError, "rnnkit.train: log must be a callable or None; got str", train, "adding",
            small, config, out=out, log="x")  # fmt: skip
    _raises(TypeError, "rnnkit.train: on_step must be a callable or None; got int", train,
            "adding", small, config, out=out, on_step=1, **quiet())  # fmt: skip
    assert not out.exists()


def test_load_names_a_device_it_cannot_use(adding_run: Path) -> None:
    """torch refused these last, naming no argument ('Invalid device string', or for a
    missing GPU an AssertionError)."""
    import rnnkit

    _raises(ValueError, "rnnkit.load: device must name a torch device such as 'cpu' or "
            "'cuda:0'; got 'tpu9'", rnnkit.load, adding_run, device="tpu9")  # fmt: skip
    _raises(TypeError, "rnnkit.load: device must be a str or torch.device such as 'cpu' or "
            "'cuda:0'; got int", rnnkit.load, adding_run, device=3)  # fmt: skip
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    _raises(ValueError, f"rnnkit.load: device 'cuda:{count}' is not available; this torch "
            f"sees {count} CUDA device(s)", rnnkit.load, adding_run,
            device=f"cuda:{count}")  # fmt: skip
    assert next(rnnkit.load(adding_run, device=torch.device("cpu")).parameters()).device.type == (
        "cpu"
    )
