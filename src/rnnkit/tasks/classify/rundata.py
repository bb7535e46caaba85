"""The data of a run: the files it reads (a dataset aeon ships, or the user's own, held to
their recorded SHA-256 when the run is resumed or evaluated), a test file's labels as the
training file's classes, the seeded stratified splits, the channel statistics, and the
checks of a recorded ``derived`` (a hand-edited ``config.json``).

Apart from the task because ``rnnkit predict`` reads a run's ``derived`` and a file's
labels too, without training.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.ts_format import TSData, read_ts
from rnnkit.tasks.base import DerivedError
from rnnkit.tasks.classify.options import DATASETS, DEFAULT_DATASET, TEST_FRACTION, ClassifyOptions
from rnnkit.train.files import file_sha256, refuse_same_file

DERIVED_KEYS = ("source", "classes", "dimensions", "split", "mean", "std", "majority", "downsample")


def aeon_data_dir() -> Path:
    """aeon's folder of shipped datasets (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "--dataset reads the .ts files aeon ships, and aeon is not installed: "
            "pip install 'rnnkit[timeseries]', or give your own file with --data"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def dataset_files(name: str) -> tuple[Path, Path]:
    """The official _TRAIN and _TEST .ts files of a dataset aeon ships."""
    if name not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    folder = aeon_data_dir() / name
    files = (folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts")
    for f in files:
        if not f.is_file():
            raise ValueError(f"--dataset {name}: {f} is missing from this aeon installation")
    return files


def describe_source(o: ClassifyOptions) -> dict[str, Any]:
    """What a new run reads, as config.json records it."""
    if o.data is None:
        name = o.dataset or DEFAULT_DATASET
        train_file, test_file = dataset_files(name)
        return {
            "dataset": name,
            "train": {"file": train_file.name},
            "test": {"file": test_file.name},
        }
    for flag, value in (("--data", o.data), ("--test-data", o.test_data)):
        if value is not None and not Path(value).is_file():
            what = "is a folder" if Path(value).is_dir() else "does not exist"
            raise ValueError(f"{flag} {value} {what}; expected a .ts file")
    if o.test_data is not None:
        refuse_same_file("--test-data", o.test_data, "--data", o.data)
    test = {"path": str(Path(o.test_data).resolve())} if o.test_data else None
    return {"dataset": None, "train": {"path": str(Path(o.data).resolve())}, "test": test}


def read_source(source: dict[str, Any], missing: str, check: bool) -> tuple[TSData, TSData | None]:
    """The training and test files of ``source``; with ``check`` their SHA-256 must be
    the recorded one (a resumed or evaluated run reads the data it was trained on)."""
    if source.get("dataset"):
        paths: list[Path | None] = list(dataset_files(source["dataset"]))
    else:
        test = source.get("test")
        paths = [Path(source["train"]["path"]), Path(test["path"]) if test else None]
    out: list[TSData | None] = []
    for path, part in zip(paths, ("train", "test"), strict=True):
        if path is None:
            out.append(None)
            continue
        if not path.is_file():
            raise ValueError(f"{path}: the {part} file of this run is missing")
        recorded = (source.get(part) or {}).get("sha256")
        if check and recorded is not None and file_sha256(path) != recorded:
            raise ValueError(
                f"{path} changed since the run started (its SHA-256 differs from the one in "
                "config.json); restore it, or start a new run"
            )
        out.append(read_ts(path, missing=missing))
    assert out[0] is not None
    return out[0], out[1]


def map_labels(test: TSData, classes: list[str], train_path: str) -> list[int]:
    """The test file's labels as indices of the training file's classes (by name)."""
    index = {name: k for k, name in enumerate(classes)}
    out = []
    for (_, y), line in zip(test.samples, test.lines, strict=True):
        name = test.classes[y]
        if name not in index:
            raise ValueError(
                f"{test.path}, line {line}: class {name!r} is not a class of the training "
                f"file {train_path} ({', '.join(classes)})"
            )
        out.append(index[name])
    return out


def stratified(
    labels: list[int], index: list[int], fraction: float, g: torch.Generator
) -> list[int]:
    """A seeded, stratified ``fraction`` of ``index`` (sorted): per class round(fraction *
    n_c) series, never all of a class."""
    by_class: dict[int, list[int]] = {}
    for i in index:
        by_class.setdefault(labels[i], []).append(i)
    held = []
    for c in sorted(by_class):
        members = by_class[c]
        k = min(round(fraction * len(members)), len(members) - 1)
        order = torch.randperm(len(members), generator=g).tolist()
        held += [members[j] for j in order[:k]]
    return sorted(held)


def make_split(labels: list[int], o: ClassifyOptions, hold_test: bool) -> dict[str, Any]:
    """The seeded stratified split of the training file: test (when there is no test
    file), then validation from the rest."""
    g = torch.Generator().manual_seed(o.split_seed)
    everything = list(range(len(labels)))
    test = stratified(labels, everything, o.test_fraction, g) if hold_test else None
    if hold_test and not test:
        raise ValueError(
            f"--test-fraction {o.test_fraction:g} of {len(labels)} series holds out none for "
            "the test; give a larger --test-fraction or a --test-data file"
        )
    rest = [i for i in everything if i not in set(test or [])]
    val = stratified(labels, rest, o.val_fraction, g) if o.val_fraction > 0 else []
    if o.val_fraction > 0 and not val:
        raise ValueError(
            f"--val-fraction {o.val_fraction:g} of {len(rest)} training series holds out none; "
            "give a larger one, or --val-fraction 0 to validate on the training series"
        )
    return {"seed": o.split_seed, "test": test, "val": val}


def check_split(split: Any, n: int, hold_test: bool, where: str) -> None:
    """Refuse a recorded split of ``n`` series that no run makes (a hand-edited one)."""
    if not isinstance(split, dict) or not isinstance(split.get("val"), list):
        raise DerivedError(f"{where}: split must be an object with a list 'val'")
    parts = {"val": split["val"]}
    if hold_test:
        if not isinstance(split.get("test"), list):
            raise DerivedError(f"{where}: split must hold the list 'test' of held-out series")
        if not split["test"]:
            raise DerivedError(f"{where}: split.test must hold at least one series; got []")
        parts["test"] = split["test"]
    elif split.get("test") is not None:
        raise DerivedError(f"{where}: split.test must be null: the run has a test file")
    for key, part in parts.items():
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in part):
            raise DerivedError(f"{where}: split.{key}: indices must be integers in [0, {n})")
        twice = sorted({i for i in part if part.count(i) > 1})
        if twice:
            raise DerivedError(f"{where}: split.{key} holds series {twice[0]} twice")
    both = sorted(set(parts["val"]) & set(parts.get("test", [])))
    if both:
        raise DerivedError(f"{where}: split.test and split.val share series {both[0]}")
    if len(set(parts["val"]) | set(parts.get("test", []))) >= n:
        raise DerivedError(
            f"{where}: split.test and split.val hold out all {n} series and leave no training "
            "series"
        )


def check_derived(derived: dict[str, Any], where: str) -> None:
    """Refuse ``derived`` without what a classify run needs (a hand-edited config.json)."""
    missing = [k for k in DERIVED_KEYS if k not in derived]
    if missing:
        raise DerivedError(f"{where}: missing key(s) {', '.join(missing)} of a classify run")
    d = derived
    classes = d["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise DerivedError(
            f"{where}: classes must be a list of at least two names; got {classes!r}"
        )
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise DerivedError(f"{where}: classes: {twice[0]!r} is named twice")
    dims = d["dimensions"]
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise DerivedError(f"{where}: dimensions must be a positive integer; got {dims!r}")
    for key, low in (("mean", None), ("std", 0.0)):
        v = d[key]
        if (
            not isinstance(v, list)
            or len(v) != dims
            or not all(_finite(a) and (low is None or a > low) for a in v)
        ):
            # std divides the inputs: 0 would make them infinite
            more = " > 0" if low is not None else ""
            raise DerivedError(f"{where}: {key} must be {dims} finite numbers{more}; got {v!r}")
    k = d["downsample"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DerivedError(f"{where}: downsample must be a positive integer; got {k!r}")
    m = d["majority"]
    if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < len(classes):
        raise DerivedError(
            f"{where}: majority must be a class index in [0, {len(classes)}); got {m!r}"
        )
    check_source(d["source"], where)


def _finite(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)


def check_source(source: Any, where: str) -> None:
    """Refuse a recorded ``source`` that names no file to read (see :func:`describe_source`)."""
    if not isinstance(source, dict) or "train" not in source:
        raise DerivedError(f"{where}: source must be an object naming the training file")
    dataset = source.get("dataset")
    if dataset is not None and dataset not in DATASETS:
        raise DerivedError(
            f"{where}: source.dataset must be null or one of {', '.join(DATASETS)}; got {dataset!r}"
        )
    if dataset is not None:
        return  # the files are aeon's, found by the name
    for part in ("train", "test"):
        value = source.get(part)
        if part == "test" and value is None:
            continue  # the test split is held out of the training file
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            null = "null or " if part == "test" else ""
            raise DerivedError(
                f"{where}: source.{part} must be {null}an object with the 'path' of the "
                f"{part} file; got {value!r}"
            )


def check_test_fraction_used(o: ClassifyOptions) -> None:
    """Refuse a --test-fraction that a new run would ignore (and yet record as if used):
    it shares out --data only, when no test file is given. The default is no request."""
    if o.test_fraction == TEST_FRACTION:
        return
    if o.test_data is not None:
        split = f"--test-data {o.test_data} is the test split"
    elif o.data is None:
        split = f"--dataset {o.dataset or DEFAULT_DATASET} has its official test split"
    else:
        return
    raise ValueError(
        f"--test-fraction {o.test_fraction:g} holds out a share of --data, and {split}; "
        "leave --test-fraction out"
    )


def channel_stats(series: list[Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every step of ``series`` (a constant
    channel gets 1, so it is only centred)."""
    steps = torch.cat(series).double()  # (sum T_i, D)
    mean = steps.mean(0)
    std = steps.std(0, unbiased=False) if len(steps) > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [float(v) for v in mean], [float(v) for v in std]
