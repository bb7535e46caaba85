"""benchmarks/classify.py on a user's own files (--data TRAIN.ts --test-data TEST.ts):
every method reads the same split, the test file's labels matched to the training file's
classes by name, as `rnnkit train classify --test-data` matches them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import classify as bench
from rnnkit.data.ts_format import write_ts


def test_the_peers_read_the_users_files_with_the_test_labels_by_name(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    train = [torch.randn(5 + i % 3, 2, generator=g) for i in range(6)]
    test = [torch.randn(4 + i % 2, 2, generator=g) for i in range(3)]
    write_ts(tmp_path / "mine_TRAIN.ts", train, ["walk", "run", "sit"] * 2)
    # The test file holds no "sit" and declares its classes in its own order.
    write_ts(tmp_path / "mine_TEST.ts", test, ["walk", "run", "walk"], classes=["walk", "run"])
    args = argparse.Namespace(
        data=str(tmp_path / "mine_TRAIN.ts"), test_data=str(tmp_path / "mine_TEST.ts")
    )
    source = bench.source("mine", args)
    assert source == {"data": args.data, "test_data": args.test_data}
    data = bench.load(source)
    # The training file declares run, sit, walk (sorted): its indices label both files.
    assert data["classes"] == 3
    assert data["y_train"].tolist() == [2, 0, 1, 2, 0, 1]
    assert data["y_test"].tolist() == [2, 0, 2]
    assert [x.shape for x in data["X_test"]] == [(2, 4), (2, 5), (2, 4)]  # (D, T_i)
    assert np.allclose(data["X_train"][0], train[0].numpy().T)
    assert bench.source("GunPoint", argparse.Namespace(data=None)) == {"dataset": "GunPoint"}
