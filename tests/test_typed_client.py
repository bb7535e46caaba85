"""Client code as a user with a type checker writes it: it runs here, and CI's ``mypy``
checks it (pyproject.toml lists this file), so the public annotations admit what the
functions accept and what the docs show - NumPy arrays and lists where a docstring says
"arrays or lists", the ``nn.Module`` that :func:`rnnkit.load` returns where a run's model
is wanted, a ``.ts`` file's data in a ``DataLoader``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import rnnkit
from rnnkit.data import pad_collate
from rnnkit.data.ts_format import TSData, read_ts, write_ts
from rnnkit.tasks.classify import SequenceClassifier, accuracy, confusion_matrix
from rnnkit.tasks.forecast import (
    Forecast,
    ForecastConfig,
    ForecastModel,
    OnlineForecaster,
    forecast,
)
from rnnkit.train import Summary


def test_a_torch_nn_model_with_rnnkit_layers_trains_with_fit(tmp_path: Path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnnkit.LSTM(3, 8, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(16, 2)

        def forward(self, x: Tensor) -> Tensor:
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 5, 3), torch.randint(0, 2, (16,)))
    loader: DataLoader[tuple[Tensor, ...]] = DataLoader(data, batch_size=4)
    summary: Summary = rnnkit.fit(Net(), loader, loader, steps=2, out=tmp_path / "run")
    assert summary.step == 2
    model: nn.Module = rnnkit.load(tmp_path / "run", model=Net())
    assert not model.training


def test_stream_chunks_equal_one_call() -> None:
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4)
    x = torch.randn(6, 2, 3)
    stream = rnnkit.Stream(layer)
    chunks: list[Tensor] = [stream(x[:2]), stream(x[2:5]), stream.step(x[5]).unsqueeze(0)]
    torch.testing.assert_close(torch.cat(chunks), layer(x)[0], atol=1e-6, rtol=1e-5)


def test_a_ts_file_of_numpy_arrays_trains_a_classifier(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(n, 2)) for n in (5, 7, 6, 8)]  # arrays of unequal length
    labels = np.array(["up", "down", "up", "down"])
    write_ts(tmp_path / "mine.ts", series, labels)
    train: TSData = read_ts(tmp_path / "mine.ts")
    loader: DataLoader[tuple[Tensor, int]] = DataLoader(train, batch_size=2, collate_fn=pad_collate)
    model = SequenceClassifier(train.dimensions, len(train.classes), hidden_size=4)
    rnnkit.fit(model, loader, steps=1, out=tmp_path / "run")
    x, lengths, y = next(iter(loader))
    predicted = model(x, lengths).argmax(-1)
    assert 0 <= accuracy(predicted.tolist(), np.asarray(y)) <= 1
    counts: Tensor = confusion_matrix([0, 1, 1], np.array([0, 1, 0]), 2)
    assert counts.tolist() == [[1, 0], [1, 1]]


def test_a_forecaster_typed_as_a_module_forecasts_numpy_series() -> None:
    torch.manual_seed(0)
    # rnnkit.load(run) types its model as nn.Module, whatever the task
    model: nn.Module = ForecastModel(ForecastConfig(horizon=3, hidden_size=4)).eval()
    history = np.linspace(1.0, 2.0, 12)
    [whole] = forecast(model, [history])
    online = OnlineForecaster(model, history=history[:-1])
    last: Forecast = online.update(float(history[-1]))
    np.testing.assert_allclose(last.mean, whole.mean, rtol=1e-5)
