"""`accuracy` and `confusion_matrix` check their inputs with one helper, which takes the
names its messages use from its caller, and read what a notebook holds: pandas Series,
numpy arrays, tensors and lists of class indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _refusals import raises_exactly
from rnnkit.tasks.classify import scoring as C


def test_the_helper_takes_the_names_of_its_caller() -> None:
    # It looked them up in a table keyed by the caller: any other caller was a KeyError.
    raises_exactly(
        TypeError,
        "mine: guess must be a 1-D tensor, array or list of class indices; got shape (2,) "
        "of torch.float32",
        C._class_indices,
        "mine",
        ("guess", "label"),
        [0.5, 1.0],
        [0, 1],
    )
    raises_exactly(
        ValueError,
        "mine: guess and label must have one entry per series; got 2 and 1",
        C._class_indices,
        "mine",
        ("guess", "label"),
        [0, 1],
        [0],
    )
    a, b = C._class_indices("mine", ("guess", "label"), np.array([1, 0]), (0, 0))
    assert a.tolist() == [1, 0] and b.tolist() == [0, 0] and a.dtype == torch.long


def test_the_callers_messages_are_unchanged() -> None:
    raises_exactly(
        ValueError,
        "accuracy: predicted and truth must have one entry per series; got 2 and 3",
        C.accuracy, [0, 1], [0, 1, 1],
    )  # fmt: skip
    raises_exactly(
        ValueError,
        "confusion_matrix: truth and predicted must have one entry per series; got 3 and 2",
        C.confusion_matrix, [0, 1, 1], [0, 1], 2,
    )  # fmt: skip
    raises_exactly(
        TypeError,
        "confusion_matrix: predicted must be a 1-D tensor, array or list of class indices; "
        "got shape (2, 2) of torch.float32",
        C.confusion_matrix, [0, 1], torch.zeros(2, 2), 2,
    )  # fmt: skip


def test_pandas_series_and_empty_lists_are_class_indices() -> None:
    pd = pytest.importorskip("pandas")
    truth = pd.Series([0, 1, 0, 0], index=[10, 11, 12, 13])  # not indexed from 0
    predicted = np.array([0, 1, 1, 0])
    assert C.accuracy(predicted, truth) == 0.75
    assert C.confusion_matrix(truth, predicted, 2).tolist() == [[2, 1], [0, 1]]
    # [] read as float32 and was refused as "shape (0,) of torch.float32"
    assert C.accuracy([], []) == 0.0
    assert C.confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
    raises_exactly(
        TypeError,
        "accuracy: truth must be a 1-D tensor, array or list of class indices; got Series",
        C.accuracy, [0, 1], pd.Series(["a", "b"]),
    )  # fmt: skip
