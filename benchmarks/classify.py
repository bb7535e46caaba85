"""The classification table: rnnkit vs MiniRocket vs 1-NN DTW on UEA/UCR datasets aeon ships.

Every method trains on the official _TRAIN file and is scored once on the official _TEST
file (both read with :func:`rnnkit.data.ts_format.read_ts`), all in the same process:

- rnnkit: ``rnnkit train classify`` with its defaults, once per candidate of
  ``--candidates`` (a cell and an input-noise level: the default 1.5 was chosen on
  JapaneseVowels, and smooth univariate shapes want less); a seeded stratified 20 % of the
  training file validates, and the candidate whose run reached the highest validation
  accuracy (ties: the lower validation loss at that evaluation) is the pick - the test
  file never chooses. Each run has 1500 steps (``--minutes-per-run X`` also caps its
  wall-clock time; then the picks depend on the machine's load). The pick is then trained again on
  every training series (``--val-fraction 0``: a refit, the last model kept) for the
  steps its validated run took (``--refit-steps all``; ``best``: the steps at which it was
  best, its schedule compressed to them), once per seed of ``--seeds``, and each refit is
  scored on the test file; the table shows their mean. Its time is the training time of every
  candidate and of one refit, plus the test predictions.
- MiniRocket (``aeon.classification.convolution_based.MiniRocketClassifier``, 10,000
  kernels, ridge classifier), once per seed of ``--seeds`` (its kernels' biases come from
  random draws of the training series; on JapaneseVowels its test accuracy moves from
  97.6 % to 99.5 % between seeds): needs series of one length, of at least 9 steps, so
  unequal-length sets are right-padded with zeros to the longest series of the train and
  test files (what aeon's ``Padder`` does by default), and shorter ones to 9.
- 1-NN DTW (``aeon.classification.distance_based.KNeighborsTimeSeriesClassifier``,
  ``distance="dtw"``, full window): takes unequal lengths as they are. Its cost is at
  prediction, so its time is fit + predict (the others' too, for the same footing).

Each dataset runs to the end before the next starts, on ``--threads`` threads (1 by
default, for torch, numba and BLAS alike). Each finished dataset is saved as JSON under
``--results``, and the markdown table (accuracy per dataset and method, seconds, each
method's mean rank) is assembled from the saved rows, so datasets can be run in several
calls:

    python benchmarks/classify.py --datasets JapaneseVowels           # one dataset
    python benchmarks/classify.py --out docs/classify-table.md        # all six, then table
    python benchmarks/classify.py --table-only --out docs/classify-table.md --overwrite
    python benchmarks/classify.py --data mine_TRAIN.ts --test-data mine_TEST.ts

``--data TRAIN.ts --test-data TEST.ts`` runs the same comparison on your own files instead
of the shipped datasets (the test file's labels matched to the training file's classes by
name); the row is named by the training file as given (``mine_TRAIN.ts``) and saved with
the others, in a file of its own (:func:`user_row`): never a shipped dataset's row.

``--cv`` is how the task's defaults were chosen, on the training file alone: each
configuration of ``--grid`` (JSON objects of task options, e.g. ``{"noise": 1.5}``) is
trained with half of the training file held out for validation (``--val-fraction 0.5``),
with split seeds 0, 1 and 2, evaluated every 100 steps; the mean best and last
validation accuracy and loss are printed. The test file is not read.

    python benchmarks/classify.py --cv --datasets JapaneseVowels \
        --grid '{"noise": 0.5}' '{"noise": 1.5}' '{"noise": 1.5, "pool": "max"}'
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _args

DATASETS = (
    "JapaneseVowels",
    "BasicMotions",
    "ArrowHead",
    "GunPoint",
    "ItalyPowerDemand",
    "PickupGestureWiimoteZ",
)
METHODS = ("rnnkit", "MiniRocket", "1-NN DTW")
MINIROCKET_MIN = 9  # the fewest steps aeon's MiniRocket takes
CANDIDATES = "gru:1.5,lstm:1.5,gru:0.5,lstm:0.5"


def limit_threads(n: int) -> None:
    """One budget of threads for torch, numba and BLAS (set before they start)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def source(name: str, args: argparse.Namespace) -> dict[str, str]:
    """The task options that read the set ``name``: a shipped dataset, or --data's files."""
    if args.data is not None:
        return {"data": args.data, "test_data": args.test_data}
    return {"dataset": name}


def user_row(data: str, test_data: str) -> tuple[str, str]:
    """The saved row's file stem and the table's name of a comparison on the user's own
    files. The name is the training file as given (``./`` before a bare name without an
    extension, which could read as a dataset's): a path, where the shipped datasets have
    names. The stem is the training file's name and a digest of both files' full paths:
    the row of two files of one name in different folders is two rows, a rerun on the
    same files replaces its own, and none is a shipped dataset's ``NAME.json``."""
    both = f"{Path(data).resolve()}\n{Path(test_data).resolve()}"
    digest = hashlib.sha256(both.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = data if Path(data).suffix or os.sep in data or "/" in data else f"./{data}"
    return f"{Path(data).name}-{digest}", name


def files(source: dict[str, str]) -> tuple[Path, Path]:
    """The _TRAIN and _TEST files of a source."""
    from rnnkit.tasks.classify import dataset_files

    if "dataset" in source:
        return dataset_files(source["dataset"])
    return Path(source["data"]), Path(source["test_data"])


def load(source: dict[str, str]) -> dict[str, Any]:
    """The train and test files as numpy arrays: lists of (D, T_i) series and label
    indices, the test file's labels those of the training file's classes, by name."""
    import numpy as np

    from rnnkit.data.ts_format import read_ts

    train_path, test_path = files(source)
    train_file = read_ts(train_path)
    test_file = read_ts(test_path, classes=train_file.classes)
    return {
        "X_train": [x.numpy().T.astype(np.float64) for x, _ in train_file],
        "y_train": np.array(train_file.labels),
        "X_test": [x.numpy().T.astype(np.float64) for x, _ in test_file],
        "y_test": np.array(test_file.labels),
        "classes": len(train_file.classes),
    }


def run_rnnkit(
    name: str,
    read: dict[str, str],
    candidates: list[str],
    seeds: list[int],
    threads: int,
    minutes: float,
    members: int = 1,
    refit: bool = True,
    refit_steps: str = "all",
) -> dict[str, Any]:
    """Train the task once per candidate ("cell:noise") with a 20 % validation split, pick
    on validation, then - with ``refit`` - train the pick again on every training series
    (``--val-fraction 0``, the last model kept) for as many steps as its validated run
    (``refit_steps`` "all") or for those at which it was best ("best"), once per seed, and
    score each refit on the test file. Without ``refit`` the validated runs themselves
    are scored (the candidates are trained once per seed).
    ``members`` > 1 trains what is scored as an ensemble of that many networks. ``read``:
    the options that read the data (:func:`source`)."""
    import torch

    from rnnkit.tasks.classify import ClassifyTask, accuracy, predict
    from rnnkit.train import load as load_run
    from rnnkit.train import train
    from rnnkit.train.distributed import Context

    root = Path(tempfile.mkdtemp(prefix=f"classify-{name}-"))
    quiet: dict[str, Any] = {"log": lambda _: None, "progress": io.StringIO()}

    def choose(seed: int) -> tuple[str, dict[str, Any]]:
        tried = {}
        for candidate in candidates:
            cell, noise = candidate.split(":")
            out = root / f"{candidate.replace(':', '-')}-{seed}"
            options = {**read, "cell": cell, "noise": float(noise)}
            config = ClassifyTask.default_train(
                seed=seed, threads=threads, steps=1500, minutes=minutes or None
            )
            t0 = time.perf_counter()
            summary = _args.stop_if_signalled(
                train("classify", options, config, out=out, **quiet), saved=False
            )
            at = {step: m for step, _, m in summary.history}[summary.best["step"]]
            tried[candidate] = {
                "val_accuracy": summary.best["value"],
                "val_loss": at["loss"],
                "best_step": summary.best["step"],
                "steps": summary.step,
                "seconds": time.perf_counter() - t0,
                "out": out,
                "options": options,
            }
            print(
                f"  rnnkit {candidate}: validation accuracy {summary.best['value']:.4f} (loss "
                f"{at['loss']:.4f}) at step {summary.best['step']} of {summary.step}, "
                f"{tried[candidate]['seconds']:.0f} s",
                flush=True,
            )
        pick = max(candidates, key=lambda c: (tried[c]["val_accuracy"], -tried[c]["val_loss"]))
        return pick, tried

    def again(pick: dict[str, Any], seed: int, more: dict[str, Any], tag: str) -> Path:
        """The pick trained again: as an ensemble, or on every training series."""
        out = root / tag
        # A refit trains for the whole schedule the validated run had ("all": the
        # configuration that was chosen), or for the steps at which it was best ("best",
        # the schedule compressed to them, as a forecast refit does).
        steps = pick["best_step"] if refit and refit_steps == "best" else pick["steps"]
        every = steps if refit else None  # a refit has nothing to choose on: the last
        config = ClassifyTask.default_train(seed=seed, threads=threads, steps=steps,
                                            eval_every=every)  # fmt: skip
        t0 = time.perf_counter()
        summary = _args.stop_if_signalled(
            train("classify", {**pick["options"], **more}, config, out=out, **quiet), saved=False
        )
        print(f"  rnnkit {tag}: {summary.step} steps, {time.perf_counter() - t0:.0f} s",
              flush=True)  # fmt: skip
        return out

    def test_accuracy(run: Path, options: dict[str, Any]) -> float:
        task = ClassifyTask(ClassifyTask.Options(**options))
        task.prepare(ClassifyTask.default_train(), Context(0, 1, torch.device("cpu")))
        predicted, _ = predict(load_run(run), task.test_split)
        return accuracy(predicted, task.test_split.y)

    accuracies, seconds, picks, all_tried = [], [], [], {}
    start = time.perf_counter()
    try:
        for k, seed in enumerate(seeds):
            t0 = time.perf_counter()
            if k == 0 or not refit:
                pick, tried = choose(seed)
                all_tried[seed] = tried
                chosen = time.perf_counter() - t0
            t0 = time.perf_counter()
            more: dict[str, float] = {"members": members} if members > 1 else {}
            if refit:
                more["val_fraction"] = 0.0
            scored = (
                again(tried[pick], seed, more, f"{'refit' if refit else 'ensemble'}-{seed}")
                if more else tried[pick]["out"]
            )  # fmt: skip
            accuracies.append(test_accuracy(scored, tried[pick]["options"]))
            seconds.append(time.perf_counter() - t0 + (chosen if k == 0 or not refit else 0))
            picks.append(pick)
            print(f"  rnnkit seed {seed}: {pick}, test accuracy {accuracies[-1]:.4f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "accuracy": sum(accuracies) / len(accuracies),
        "accuracies": accuracies,
        "seeds": seeds,
        "seconds": seconds[0],  # choosing + the first scored model: one user's run
        "total_seconds": time.perf_counter() - start,
        "cell": picks[0],  # "cell:noise"
        "picks": picks,
        "members": members,
        "refit": refit,
        "refit_steps": refit_steps,
        "tried": {
            seed: {c: {k: v for k, v in t.items() if k != "out"} for c, t in tried.items()}
            for seed, tried in all_tried.items()
        },
    }


def run_minirocket(data: dict[str, Any], seeds: list[int], threads: int) -> dict[str, Any]:
    """MiniRocket once per seed (its random kernels' biases are drawn from the data)."""
    import numpy as np
    from aeon.classification.convolution_based import MiniRocketClassifier

    series = data["X_train"] + data["X_test"]
    # Its dilated kernels span 9 steps: aeon refuses a shorter series and asks for zero
    # padding, which the unequal lengths get anyway.
    longest = max(MINIROCKET_MIN, *(x.shape[1] for x in series))
    padded = any(x.shape[1] != longest for x in series)

    def pad(X: list[Any]) -> Any:
        return np.stack([np.pad(x, ((0, 0), (0, longest - x.shape[1]))) for x in X])

    accuracies, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        model = MiniRocketClassifier(random_state=seed, n_jobs=threads)
        model.fit(pad(data["X_train"]), data["y_train"])
        predicted = model.predict(pad(data["X_test"]))
        accuracies.append(float((predicted == data["y_test"]).mean()))
        seconds.append(time.perf_counter() - start)
    return {
        "accuracy": sum(accuracies) / len(accuracies),
        "accuracies": accuracies,
        "seeds": seeds,
        "seconds": seconds[0],
        "padded_to": longest if padded else None,
    }


def run_dtw(data: dict[str, Any], threads: int) -> dict[str, Any]:
    import numpy as np
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    equal = len({x.shape[1] for x in data["X_train"] + data["X_test"]}) == 1

    def as_input(X: list[Any]) -> Any:
        return np.stack(X) if equal else X  # aeon takes a list of (D, T_i) when unequal

    start = time.perf_counter()
    model = KNeighborsTimeSeriesClassifier(distance="dtw", n_neighbors=1, n_jobs=threads)
    model.fit(as_input(data["X_train"]), data["y_train"])
    predicted = model.predict(as_input(data["X_test"]))
    return {
        "accuracy": float((predicted == data["y_test"]).mean()),
        "seconds": time.perf_counter() - start,
    }


def cross_validate(read: dict[str, str], grid: list[str], threads: int) -> None:
    """Each configuration of ``grid`` on half of the training file, three split seeds."""
    from rnnkit.tasks.classify import ClassifyTask
    from rnnkit.train import train

    print("| options | best val accuracy | last val accuracy | last val loss | s/run |")
    print("|---|---|---|---|---|")
    for text in grid:
        given = json.loads(text)
        runs = []
        for seed in (0, 1, 2):
            root = Path(tempfile.mkdtemp(prefix="classify-cv-"))
            options = {**read, "val_fraction": 0.5, **given, "split_seed": seed}
            config = ClassifyTask.default_train(seed=seed, threads=threads, eval_every=100)
            t0 = time.perf_counter()
            try:
                s = _args.stop_if_signalled(train("classify", options, config, out=root / "run",
                          log=lambda _: None, progress=io.StringIO()), saved=False)  # fmt: skip
            finally:
                shutil.rmtree(root, ignore_errors=True)
            runs.append((s.best["value"], s.metrics["accuracy"], s.metrics["loss"],
                         time.perf_counter() - t0))  # fmt: skip
        mean = [sum(r[k] for r in runs) / len(runs) for k in range(4)]
        print(f"| `{json.dumps(given)}` | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.3f} | "
              f"{mean[3]:.0f} |", flush=True)  # fmt: skip


def warm_up_numba() -> None:
    """Compile aeon's numba kernels on toy sets, so no dataset's time includes it: a
    univariate and a multivariate one of unequal lengths (MiniRocket and DTW compile
    other kernels for several channels: JapaneseVowels' row once took 18 s for it)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for channels, lengths in ((1, (16,)), (3, (16, 20))):
        toy = {
            "X_train": [rng.normal(size=(channels, lengths[i % len(lengths)])) for i in range(6)],
            "y_train": np.array([0, 1] * 3),
            "X_test": [rng.normal(size=(channels, lengths[-1])) for _ in range(2)],
            "y_test": np.array([0, 1]),
        }
        run_minirocket(toy, [0], 1)
        run_dtw(toy, 1)


def ranks(row: dict[str, float]) -> dict[str, float]:
    """Rank 1 = the highest accuracy; ties share the mean of their ranks."""
    out = {}
    for m, acc in row.items():
        better = sum(a > acc for a in row.values())
        same = sum(a == acc for a in row.values())
        out[m] = better + (same + 1) / 2
    return out


def table(rows: dict[str, dict[str, Any]], machine: str) -> str:
    """The markdown table of the saved ``rows`` (by file stem): the shipped datasets in
    their order, then the others by name (a user's row: its files, :func:`user_row`)."""

    def label(stem: str) -> str:
        return str(rows[stem].get("name", stem))

    names = [d for d in DATASETS if d in rows]
    names += sorted(set(rows) - set(DATASETS), key=lambda stem: (label(stem), stem))
    head = (
        "| dataset | rnnkit | rnnkit's pick | MiniRocket | 1-NN DTW | rnnkit s | MiniRocket s "
        "| DTW s |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines, all_ranks = [], []
    for name in names:
        r = rows[name]
        acc = {m: round(r[m]["accuracy"], 6) for m in METHODS}  # float32 vs float64
        best = max(acc.values())
        all_ranks.append(ranks(acc))

        def cell(m: str, acc: dict[str, float] = acc, best: float = best, r: Any = r) -> str:
            text = f"{100 * acc[m]:.1f}"
            text = f"**{text}**" if acc[m] == best else text
            each = r[m].get("accuracies", [])
            if len(set(each)) > 1:
                text += f" ({100 * min(each):.1f}-{100 * max(each):.1f})"
            return text

        pad = " †" if r["MiniRocket"].get("padded_to") else ""
        k = r["rnnkit"].get("members", 1)
        pick = r["rnnkit"]["cell"] + (f", {k} members" if k > 1 else "")
        if r["rnnkit"].get("refit"):
            pick += ", refit" + (" (best step)" if r["rnnkit"].get("refit_steps") == "best" else "")
        shown = label(name).replace("|", "\\|")  # a path may hold the table's |
        lines.append(
            f"| {shown} | {cell('rnnkit')} | {pick} | {cell('MiniRocket')}{pad} "
            f"| {cell('1-NN DTW')} | {r['rnnkit']['seconds']:.0f} | "
            f"{r['MiniRocket']['seconds']:.1f} | {r['1-NN DTW']['seconds']:.1f} |"
        )
    mean = {m: sum(rk[m] for rk in all_ranks) / len(all_ranks) for m in METHODS}
    lines.append(
        f"| **mean rank** (1 = best) | {mean['rnnkit']:.2f} | | {mean['MiniRocket']:.2f} | "
        f"{mean['1-NN DTW']:.2f} | | | |"
    )
    seeds = sorted({len(r[m].get("accuracies", [0])) for r in rows.values() for m in METHODS})
    notes = (
        "\nTest accuracy (%) on the official test split, the mean over seeds where a method "
        f"draws random numbers ({' or '.join(map(str, seeds))} runs; lowest-highest in "
        "brackets); the best mean of each row in bold, and the ranks are of the means. "
        "Seconds are fit + predict of one seed on one thread (rnnkit's include training "
        "every candidate it chose among and one refit; its pick: cell:noise). "
        "† series of unequal length (or under 9 steps), right-padded with zeros to the "
        "longest (at least 9) for MiniRocket. Machine: " + machine + ".\n"
    )
    return head + "\n".join(lines) + "\n" + notes


def read_rows(
    p: argparse.ArgumentParser, results: Path, names: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The rows saved in ``results`` (those of ``names``, or all): each must be a row this
    script wrote, else it is refused in one line naming the file (it would end the table's
    assembly in a KeyError or a JSON error)."""
    rows = {}
    for path in sorted(results.glob("*.json")):
        if names is not None and path.stem not in names:
            continue
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            row = None
        if not _is_row(row):
            _args.refuse(
                p,
                "--results",
                f"expected a folder of this script's rows (NAME.json); got {results}, whose "
                f"{path.name} is not one",
            )
        rows[path.stem] = row
    return rows


def _is_row(row: Any) -> bool:
    """Whether ``row`` holds what :func:`table` reads."""
    if not isinstance(row, dict) or not isinstance(row.get("machine"), str):
        return False
    if not isinstance(row.get("name", ""), str):  # a user's row: its training file
        return False
    for m in METHODS:
        r = row.get(m)
        if not isinstance(r, dict) or not all(
            isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
            for k in ("accuracy", "seconds")
        ):
            return False
    return isinstance(row["rnnkit"].get("cell"), str)


def candidate(text: str) -> str:
    """A --candidates item, "cell:noise" (the cell and the noise are checked against the
    task's options once rnnkit is imported)."""
    cell, colon, noise = text.partition(":")
    if not cell or not colon:
        raise argparse.ArgumentTypeError(f"expected cell:noise, e.g. gru:1.5; got {text!r}")
    _args.finite_float(noise)
    return text


def check_names(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The datasets, candidates and --grid's options as the task takes them, before any
    is trained (a bad one found later would end the run after hours)."""
    from rnnkit.tasks.classify import DATASETS as KNOWN
    from rnnkit.tasks.classify import ClassifyTask

    if args.data is None:
        for name in args.datasets:
            _args.check(p, "--datasets", _args.one_of(KNOWN, "datasets"), name)
    else:  # both files read as the task reads them, before any training
        _args.check(p, "--data", ClassifyTask.parse_options, source("", args), "--data",
                    partial=True)  # fmt: skip
        _args.check(p, "--data", load, source("", args))
    for text in args.candidates:
        cell, _, noise = text.partition(":")
        options = {"cell": cell, "noise": float(noise)}
        _args.check(p, "--candidates", ClassifyTask.parse_options, options, text, partial=True)
    for text in args.grid if args.cv else []:
        try:
            given = json.loads(text)
        except ValueError:
            _args.refuse(p, "--grid", f"expected a JSON object of task options; got {text!r}")
        _args.check(p, "--grid", ClassifyTask.parse_options, given, text, partial=True)


def main(argv: list[str] | None = None) -> int:
    p = _args.parser(__doc__.split("\n\n")[0])
    # Options left None when not given, so that one with no effect in the mode asked for
    # (--cv, --table-only) is refused; their defaults are filled in below.
    p.add_argument(
        "--datasets",
        type=_args.listed(_args.nonempty, "dataset names"),
        help="comma-separated names (default: " + ",".join(DATASETS) + ")",
    )
    p.add_argument(
        "--candidates",
        type=_args.listed(candidate, "candidates"),
        help="what rnnkit chooses among on validation: cell:noise, comma-separated "
        f"(default: {CANDIDATES})",
    )
    p.add_argument(
        "--minutes-per-run",
        type=_args.nonnegative_float,
        help="time cap of each rnnkit run in minutes; 0 (default): none, every run takes "
        "its 1500 steps, so that the table does not depend on the machine's load",
    )
    p.add_argument(
        "--members",
        type=_args.int_in(1, 64),  # the task's --members
        help="train rnnkit's validation pick again as an ensemble of this many networks",
    )
    p.add_argument(
        "--seeds",
        type=_args.listed(_args.seed, "seeds"),
        help="comma-separated: rnnkit's refit and MiniRocket run once per seed (their mean "
        "is the table's); rnnkit chooses its candidate with the first (default: 0,1,2,3,4)",
    )
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        default=None,
        help="score rnnkit's validated runs themselves (choosing once per seed) instead of "
        "a refit on every training series",
    )
    p.add_argument(
        "--refit-steps",
        choices=("all", "best"),
        help="the refit's steps: as many as the validated run took, or those at which it "
        "was best (its schedule compressed to them) (default: all)",
    )
    p.add_argument("--threads", type=_args.threads, default=1)
    p.add_argument("--data", type=_args.existing_file, metavar="TRAIN.ts",
                   help="your own training file instead of --datasets")  # fmt: skip
    p.add_argument("--test-data", type=_args.existing_file, metavar="TEST.ts",
                   help="your own test file (needed with --data): every method is scored "
                   "on it")  # fmt: skip
    p.add_argument(
        "--results",
        type=_args.folder,
        help="folder of the JSON rows (default: runs/classify-bench)",
    )
    p.add_argument("--out", type=_args.new_file, help="write the markdown table to this file")
    p.add_argument("--table-only", action="store_true", help="assemble the saved rows only")
    p.add_argument("--cv", action="store_true", help="choose defaults: see the module's text")
    p.add_argument("--grid", nargs="+", help="--cv: JSON objects of options")
    args = p.parse_args(argv)
    training = {
        "--candidates": args.candidates,
        "--minutes-per-run": args.minutes_per_run,
        "--members": args.members,
        "--seeds": args.seeds,
        "--no-refit": args.refit,
        "--refit-steps": args.refit_steps,
    }
    if args.cv:
        _args.no_effect(p, "with --cv", {"--table-only": args.table_only or None, **training,
                                    "--results": args.results, "--out": args.out})  # fmt: skip
    else:
        _args.no_effect(p, "without --cv", {"--grid": args.grid})
    if args.table_only:
        _args.no_effect(p, "with --table-only", {"--datasets": args.datasets, **training})
        _args.check(p, "--results", _args.existing_folder, args.results or "runs/classify-bench")
    if args.data is not None or args.test_data is not None:
        _args.no_effect(p, "with --data", {"--datasets": args.datasets})
        _args.no_effect(p, "with --data", {"--table-only": args.table_only or None})
        if args.data is None or args.test_data is None:
            flag = "--test-data" if args.data is None else "--data"
            _args.refuse(p, flag, "--data and --test-data go together: every method is "
                         "trained on the one and scored on the other")  # fmt: skip
        # The row of the user's files: saved under a stem of its own, named by the files.
        stem, shown_as = user_row(args.data, args.test_data)
        args.datasets = [stem]
    args.datasets = args.datasets or list(DATASETS)
    shown = {d: d for d in args.datasets}  # the name each row has in the table
    if args.data is not None:
        shown[stem] = shown_as
    args.candidates = args.candidates or CANDIDATES.split(",")
    args.minutes_per_run = args.minutes_per_run or 0
    args.members = args.members or 1
    args.seeds = args.seeds or [0, 1, 2, 3, 4]
    args.refit = args.refit is not False
    args.refit_steps = args.refit_steps or "all"
    args.results = args.results or "runs/classify-bench"
    args.grid = args.grid or ["{}"]
    limit_threads(args.threads)
    check_names(p, args)
    if args.cv:
        for name in args.datasets:
            print(f"{shown[name]}, trained on half of its training file, validated on the "
                  "other half:")  # fmt: skip
            cross_validate(source(name, args), args.grid, args.threads)
        return 0
    results = Path(args.results)
    saved: dict[str, dict[str, Any]] = {}
    if args.table_only:  # every saved row, read before anything else
        saved = read_rows(p, results)
        if not saved:
            _args.refuse(
                p,
                "--results",
                f"expected a folder of this script's rows (NAME.json); got {results}, which "
                "holds none",
            )
    else:
        _args.writable(p, "--results", args.results)
        results.mkdir(parents=True, exist_ok=True)
    import platform

    import torch

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}, "
        f"{args.threads} thread(s)"
    )
    seeds = args.seeds
    if not args.table_only:
        warm_up_numba()
        for name in args.datasets:
            print(f"{shown[name]}:", flush=True)
            data = load(source(name, args))
            row: dict[str, Any] = {
                "rnnkit": run_rnnkit(
                    name,
                    source(name, args),
                    args.candidates,
                    seeds,
                    args.threads,
                    args.minutes_per_run,
                    args.members,
                    args.refit,
                    args.refit_steps,
                ),
                "MiniRocket": run_minirocket(data, seeds, args.threads),
                "1-NN DTW": run_dtw(data, args.threads),
                "machine": machine,
            }
            if args.data is not None:  # the table's name of the row, and what it read
                row.update(name=shown[name], data=args.data, test_data=args.test_data)
            for m in METHODS:
                print(f"  {m}: {row[m]['accuracy']:.4f} in {row[m]['seconds']:.1f} s", flush=True)
            row_file = results / f"{name}.json"  # a rerun of the set replaces its row
            _args.write_file(p, "--results", row_file, json.dumps(row, indent=2) + "\n", True)
    rows = saved if args.table_only else read_rows(p, results, args.datasets)
    text = table(rows, next(iter(rows.values()))["machine"])
    print(text)
    if args.out:
        _args.write_file(p, "--out", args.out, text, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
