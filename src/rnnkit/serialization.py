"""Loading whole pickled models that hold rnnkit modules with ``weights_only=True``.

``torch.load(path, weights_only=True)`` (the default since torch 2.6) unpickles only
tensors, containers and the classes on an allow-list, so a model saved whole with
``torch.save(model, path)`` loads only once its classes are allowed. :func:`safe_globals`
lists the classes rnnkit's layers and cells are pickled as, and is itself a context
manager that allows them:

>>> import io, torch, rnnkit
>>> buffer = io.BytesIO()
>>> torch.save(torch.nn.Sequential(rnnkit.LSTM(3, 4)), buffer)
>>> _ = buffer.seek(0)
>>> with rnnkit.safe_globals(), torch.serialization.safe_globals([torch.nn.Sequential]):
...     model = torch.load(buffer, weights_only=True)
>>> type(model[0]).__name__
'LSTM'

Classes of the user's own model (``torch.nn.Sequential`` above) are the user's to allow;
a parametrized module (``torch.nn.utils.parametrize``) has a class made at run time and
loads with ``weights_only=False`` only, as in torch. Saving the ``state_dict`` remains the
portable way: it needs no allow-list at all.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
from torch import nn

from rnnkit.cells import GRUCell, LSTMCell, MinGRUCell, MinLSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM


class SafeGlobals(list):
    """A list of classes for ``torch.serialization``'s allow-list, usable as ``with`` too.

    As a list it goes to ``torch.serialization.safe_globals(...)`` or
    ``torch.serialization.add_safe_globals(...)``; as a context manager it allows its
    classes for the ``torch.load`` calls inside the block.
    """

    def __init__(self, classes: list[Any]) -> None:
        super().__init__(classes)
        self._active: list[Any] = []  # one torch context per ``with``, so nesting works

    def __enter__(self) -> SafeGlobals:
        allow = getattr(torch.serialization, "safe_globals", None)
        if allow is None:
            raise RuntimeError(
                f"rnnkit.safe_globals: torch {torch.__version__} has no "
                "torch.serialization.safe_globals (torch >= 2.5); expected a newer torch, or "
                "call torch.serialization.add_safe_globals(rnnkit.safe_globals()) (torch 2.4)"
            )
        context = allow(list(self))
        context.__enter__()
        self._active.append(context)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._active.pop().__exit__(exc_type, exc, traceback)


def safe_globals() -> SafeGlobals:
    """The classes a pickled rnnkit layer or cell is made of: the layers, the cells, and
    ``torch.nn.ModuleList`` (a layer keeps its per-layer cells in one).

    Example (a layer saved whole, loaded with ``weights_only=True``)::

        >>> import io, torch, rnnkit
        >>> buffer = io.BytesIO()
        >>> torch.save(rnnkit.GRU(3, 4), buffer)
        >>> _ = buffer.seek(0)
        >>> with rnnkit.safe_globals():
        ...     layer = torch.load(buffer, weights_only=True)
        >>> type(layer).__name__, rnnkit.GRU in rnnkit.safe_globals()
        ('GRU', True)
    """
    layers = [RNN, LSTM, GRU, MinGRU, MinLSTM]
    cells = [RNNCell, LSTMCell, GRUCell, MinGRUCell, MinLSTMCell]
    return SafeGlobals([*layers, *cells, nn.ModuleList])


__all__ = ["SafeGlobals", "safe_globals"]
