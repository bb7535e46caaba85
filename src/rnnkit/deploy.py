"""Run rnnkit's ONNX graphs with onnxruntime and numpy alone: streams, sequences, text.

This file imports nothing from rnnkit and nothing but ``numpy`` and ``onnxruntime`` (the
latter only to run a graph): copy it next to an exported graph and a deployment needs
neither torch nor rnnkit::

    pip install numpy onnxruntime
    python -c "from deploy import OnnxStream; ..."

The graphs are those of ``rnnkit.export.export_onnx`` (or ``rnnkit export RUN --format
onnx``), which keep the recurrent state outside the graph: a step graph is
``(x_t, h, [c]) -> (y_t, h', [c'])``, each state (L, B, S). The file says what it is in
its ``rnnkit`` metadata (JSON), which this module reads through onnxruntime:

- :class:`OnnxStream` runs a step graph one step at a time and carries the state, as
  ``rnnkit.Stream`` does for the PyTorch layer;
- :func:`run_sequence` runs a sequence graph on a whole (T, B, ...) batch;
- :func:`generate` writes text with a character language model's step graph;
- :class:`OnnxForecaster` updates a forecaster's forecast, with its 80 % interval, as
  each new value of a series arrives;
- :func:`translate` decodes with an encoder-decoder's two graphs (the encoder's sequence
  graph and the decoder's step graph), greedily, one token per step.
"""

from __future__ import annotations

import bisect
import json
import math
import numbers
import os
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

try:  # the graphs need onnxruntime; the forecasting features below need numpy only
    import onnxruntime as ort
except ImportError:  # pragma: no cover - exercised where onnxruntime is absent
    ort = None

__all__ = [
    "Forecast",
    "ForecastFeatures",
    "OnnxForecaster",
    "OnnxStream",
    "generate",
    "load_session",
    "read_metadata",
    "run_sequence",
    "translate",
]

FORMAT = "rnnkit.onnx"
VERSION = 1  # the newest metadata version this file reads
# A sequence graph's axis order (metadata "layout"): x (T, B, ...). Graphs exported before
# the key was written are time-major too.
LAYOUT = "time_major"

State = Any  # one array (L, B, S), or a tuple of them (h, c) for an LSTM


def is_count(value: object, low: int = 0) -> bool:
    """Whether ``value`` is an integer >= ``low``: a numpy integer is one (a count read
    from an array), a bool is not (True would be read as 1)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) >= low


# ---- loading ------------------------------------------------------------------------


def load_session(
    path: str | os.PathLike[str] | bytes,
    *,
    threads: int | None = None,
    options: ort.SessionOptions | None = None,
    where: str = "load_session",
) -> ort.InferenceSession:
    """An onnxruntime CPU session of ``path`` (a file, or the graph's bytes).

    ``threads`` sets onnxruntime's intra-op threads: 1 is usually fastest for one
    stream at batch 1, where a step is too small to split.
    """
    if ort is None:
        raise ValueError(f"{where}: running a graph needs onnxruntime (pip install onnxruntime)")
    # Named here: int() read "x" in its own words and 2.5 as 2, and a number given as the
    # graph failed inside os.fspath.
    if threads is not None and not is_count(threads, 1):
        raise ValueError(f"{where}: threads must be a positive integer or None; got {threads!r}")
    if not isinstance(path, (bytes, str, os.PathLike)):
        raise TypeError(
            f"{where}: graph must be the path of an ONNX file, its bytes or an "
            f"onnxruntime.InferenceSession; got {type(path).__name__}"
        )
    if options is None:
        options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if isinstance(path, bytes):
        source: str | bytes = path
        name = "the given bytes"
    else:
        source = os.fspath(path)
        name = source
        if os.path.isdir(source):  # it exists: "does not exist" sent the user looking
            raise ValueError(f"{where}: expected an ONNX file; {source!r} is a directory")
        if not os.path.isfile(source):
            raise ValueError(f"{where}: expected an ONNX file; {source!r} does not exist")
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own classes, one per failure kind
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{where}: expected an ONNX graph; onnxruntime cannot load {name} ({reason})"
        ) from error


def read_metadata(session: ort.InferenceSession, where: str = "read_metadata") -> dict[str, Any]:
    """The ``rnnkit`` JSON of a loaded graph; ValueError if the graph is not rnnkit's."""
    raw = session.get_modelmeta().custom_metadata_map.get("rnnkit")
    if raw is None:
        raise ValueError(
            f"{where}: expected a graph exported by rnnkit (metadata key 'rnnkit'); "
            "this ONNX graph has none"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: the graph's 'rnnkit' metadata is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{where}: expected metadata format {FORMAT!r}; got {got!r}")
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(
            f"{where}: this file reads metadata version {VERSION} or older; got {version!r} "
            "(take deploy.py from the rnnkit that exported the graph)"
        )
    return meta


def _open(
    source: str | os.PathLike[str] | bytes | ort.InferenceSession,
    mode: str,
    where: str,
    threads: int | None = None,
) -> tuple[ort.InferenceSession, dict[str, Any]]:
    session = (
        source
        if ort is not None and isinstance(source, ort.InferenceSession)
        else load_session(source, threads=threads, where=where)
    )
    meta = read_metadata(session, where)
    if meta.get("mode") != mode:
        other = "run_sequence()" if mode == "step" else "OnnxStream"
        raise ValueError(
            f"{where}: expected a graph exported with mode={mode!r}; got mode="
            f"{meta.get('mode')!r} (use {other} for it)"
        )
    layout = meta.get("layout", LAYOUT)
    if mode == "sequence" and layout != LAYOUT:
        # Read as time-major, another axis order would swap T and B without a word.
        raise ValueError(
            f"{where}: expected a sequence graph of layout {LAYOUT!r} (x (T, B, ...)); got "
            f"layout {layout!r} (take deploy.py from the rnnkit that exported the graph)"
        )
    return session, meta


def _describe(a: np.ndarray) -> str:
    return f"{a.dtype} array of shape {tuple(a.shape)}"


def _as_array(value: Any, what: str, where: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except Exception:
        raise ValueError(
            f"{where}: {what} must be array-like; got {type(value).__name__}"
        ) from None


def _floats(
    value: Any,
    shape: str,
    sizes: Sequence[int | None],
    what: str,
    where: str,
    *,
    finite: bool = True,
) -> np.ndarray:
    """``value`` as float32 with the given sizes (None: any), or a one-line ValueError.

    The graphs compute in float32: any real dtype (float64, float16, integers) is accepted
    and converted, as torch's default dtype would be. With ``finite``, a NaN or an inf is
    refused, and so is a value past float32's range, which the conversion would make inf.
    """
    a = _as_array(value, what, where)
    fits = a.ndim == len(sizes) and all(
        s is None or s == n for s, n in zip(sizes, a.shape, strict=True)
    )
    if not fits or a.dtype.kind not in "fiu":
        raise ValueError(f"{where}: {what} must be a float32 array {shape}; got {_describe(a)}")
    with np.errstate(over="ignore"):  # past float32's range: inf, refused below
        out = np.ascontiguousarray(a, dtype=np.float32)
    if finite:
        _check_finite(out, a, what, where)
    return out


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_finite(
    x: np.ndarray, given: np.ndarray, what: str, where: str, valid: np.ndarray | None = None
) -> None:
    """Refuse a NaN or inf in ``x`` (``given`` cast to float32) where ``valid`` (a mask
    over its leading axes; default everywhere) holds: the graph would carry it into every
    later output and state without a word."""
    bad = ~np.isfinite(x)
    if valid is not None:
        bad &= valid.reshape(valid.shape + (1,) * (x.ndim - valid.ndim))
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: {what} must be finite and within float32's range (|value| <= "
            f"{FLOAT32_MAX:.4g}); got {given[at]} at index {list(at)}"
        )


def _not_empty(a: np.ndarray, axes: Sequence[tuple[int, str, str]], what: str, where: str) -> None:
    """Refuse ``a`` where one of ``axes`` - (axis, its letter, what it counts) - is empty,
    as rnnkit's layers refuse T = 0: onnxruntime ends the whole process on some graphs of
    an empty batch or sequence ("terminate called without an active exception") and
    fails inside a Scan on others."""
    for axis, letter, counts in axes:
        if a.shape[axis] == 0:
            raise ValueError(
                f"{where}: {what} has {letter} = 0 {counts}; expected {letter} >= 1; got shape "
                f"{tuple(a.shape)}"
            )


def _ids(value: Any, shape: str, ndim: int, vocab: int, what: str, where: str) -> np.ndarray:
    """Character ids as int64 in [0, vocab), or a one-line ValueError."""
    a = _as_array(value, what, where)
    if a.ndim != ndim or a.dtype.kind not in "iu":
        raise ValueError(
            f"{where}: {what} must be an int64 array {shape} of ids; got {_describe(a)}"
        )
    if a.size and (int(a.min()) < 0 or int(a.max()) >= vocab):
        raise ValueError(
            f"{where}: {what} must hold ids in [0, {vocab}); got values in "
            f"[{int(a.min())}, {int(a.max())}]"
        )
    return np.ascontiguousarray(a, dtype=np.int64)


def _state_arrays(
    state: State, meta: dict[str, Any], batch: int | None, where: str
) -> tuple[np.ndarray, ...]:
    """A user's state (one array or a tuple, in the graph's state order) checked and cast."""
    specs = meta["states"]
    parts = state if isinstance(state, (tuple, list)) else (state,)
    if len(parts) != len(specs):
        names = ", ".join(s["name"] for s in specs)
        raise ValueError(
            f"{where}: state must hold {len(specs)} array(s) ({names}); got {len(parts)}"
        )
    out = []
    b = "B" if batch is None else str(batch)  # the batch size it must have, where known
    for spec, part in zip(specs, parts, strict=True):
        rows, _, size = spec["shape"]
        out.append(
            _floats(
                part, f"({rows}, {b}, {size})", (rows, batch, size), f"state {spec['name']}", where
            )
        )
    batches = {a.shape[1] for a in out}
    if len(batches) > 1:
        raise ValueError(f"{where}: state arrays must share one batch size; got {sorted(batches)}")
    return tuple(out)


def _vocab_size(meta: dict[str, Any]) -> int:
    """How many ids a graph that reads ids takes (graphs before ``vocab_size``: the vocab)."""
    return int(meta.get("vocab_size") or len(meta.get("vocab") or ()))


def _zeros(meta: dict[str, Any], batch: int) -> tuple[np.ndarray, ...]:
    return tuple(
        np.zeros((s["shape"][0], batch, s["shape"][2]), dtype=np.float32) for s in meta["states"]
    )


def _user_state(arrays: tuple[np.ndarray, ...]) -> State:
    return arrays[0] if len(arrays) == 1 else arrays


# ---- streams ------------------------------------------------------------------------


class OnnxStream:
    """Run a step graph on an unbounded stream, one step at a time, with its state carried.

    Args:
        graph: the path of a graph exported with ``mode="step"``, its bytes, or an
            ``onnxruntime.InferenceSession`` of it.
        batch_size: B of every step; by default the first step's.
        threads: onnxruntime's intra-op threads (default: onnxruntime's choice).

    Shape:
        a layer's step: x (B, I) float32 -> y (B, O) float32;
        a character language model's: x (B,) int64 ids -> y (B, V) float32 logits.
        :attr:`state`: one array (L, B, S), or ``(h, c)`` for an LSTM.
    """

    def __init__(
        self,
        graph: str | os.PathLike[str] | bytes | ort.InferenceSession,
        *,
        batch_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.session, self.metadata = _open(graph, "step", "OnnxStream", threads)
        if self.metadata.get("model") == "seq2seq":
            # Its inputs are the previous token, the encoder's memory and the decoder's
            # state: step(x) said "x must hold ids in [0, 0)".
            raise ValueError(
                "OnnxStream: expected the step graph of a layer or a task model; got an "
                "encoder-decoder's decoder step (decode with translate(encoder, decoder, text))"
            )
        if batch_size is not None and not is_count(batch_size, 1):
            raise ValueError(
                f"OnnxStream: batch_size must be a positive integer; got {batch_size!r}"
            )
        meta = self.metadata
        self.model: str = meta["model"]  # "layer", "char_lm", "forecast", "tagger", ...
        self.kind: str = meta["kind"]  # "LSTM", "GRU", ...
        self.input_size: int | None = meta.get("input_size")
        self.output_size: int = meta["output_size"]
        self.vocab: list[str] | None = meta.get("vocab")
        self.state_names: tuple[str, ...] = tuple(s["name"] for s in meta["states"])
        self._inputs = list(meta["inputs"])
        self._outputs = list(meta["outputs"])
        if batch_size is not None:
            batch_size = int(batch_size)  # a numpy integer too, as numpy's shapes are ints
        self.batch_size: int | None = batch_size
        self._fixed = batch_size  # the batch size asked for, kept through reset()
        self._state: tuple[np.ndarray, ...] | None = None
        self.steps = 0  # steps taken since the last full reset

    @property
    def state(self) -> State:
        """The carried state: one array (L, B, S) or a tuple; None before the first step."""
        return None if self._state is None else _user_state(self._state)

    @state.setter
    def state(self, value: State) -> None:
        if value is None:
            self._state = None
            return
        # Of any batch size, unless one was given to the constructor: batch_size follows
        # it, as rnnkit.Stream's does (a state saved from another stream; the batch size
        # of the steps run before was refused as "(L, B, S)" though B was not the point).
        arrays = _state_arrays(value, self.metadata, self._fixed, "OnnxStream.state")
        # A stream of no samples: its steps would be refused (a batch size is >= 1).
        _not_empty(
            arrays[0], [(1, "B", "samples")], f"state {self.state_names[0]}", "OnnxStream.state"
        )
        self._state = tuple(a.copy() for a in arrays)  # the stream owns its state
        self.batch_size = arrays[0].shape[1]

    def step(self, x: Any) -> np.ndarray:
        """Feed one time step x; returns its output y (B, O), or logits (B, V)."""
        B = self.batch_size
        b = "B" if B is None else str(B)
        if self.input_size is None:  # the graph reads ids (an embedding inside)
            x = _ids(x, f"({b},)", 1, _vocab_size(self.metadata), "x", "OnnxStream.step")
        else:
            x = _floats(
                x, f"({b}, {self.input_size})", (None, self.input_size), "x", "OnnxStream.step"
            )
        _not_empty(x, [(0, "B", "samples")], "x", "OnnxStream.step")
        if B is not None and x.shape[0] != B:
            # reset() keeps a batch size given to the constructor: it cannot be the way out.
            way = (
                "reset() starts a new stream"
                if self._fixed is None
                else f"batch_size={self._fixed} was given to OnnxStream; a new OnnxStream "
                "takes another"
            )
            raise ValueError(
                f"OnnxStream.step: x's batch size must equal the stream's; expected {B}, got "
                f"{x.shape[0]} ({way})"
            )
        if self._state is None:
            self._state = _zeros(self.metadata, x.shape[0])
        feed = dict(zip(self._inputs, (x, *self._state), strict=True))
        y, *state = self.session.run(self._outputs, feed)
        self._state = tuple(state)
        self.batch_size = x.shape[0]
        self.steps += 1
        return y

    def reset(self, samples: Sequence[int] | np.ndarray | None = None) -> None:
        """Zero the whole state (``samples=None``) or that of chosen samples.

        ``samples`` is a 1-D list (or array) of batch indices, one index, or a (B,) bool
        mask. A full reset also frees the batch size, unless it was given to the constructor.
        """
        if samples is None:
            self._state, self.batch_size, self.steps = None, self._fixed, 0
            return
        chosen = _reset_samples(samples)  # before any step too, as rnnkit.Stream's reset
        if self._state is None:
            return  # nothing has run yet: every state is already zero
        B = self._state[0].shape[1]
        if chosen.size == 0 and chosen.dtype != bool:
            return  # no index: nothing to reset
        if chosen.dtype == bool:
            if chosen.shape != (B,):
                raise ValueError(
                    f"OnnxStream.reset: a mask must have shape ({B},); got {tuple(chosen.shape)}"
                )
        elif chosen.min() < -B or chosen.max() >= B:
            raise ValueError(
                f"OnnxStream.reset: samples must be batch indices in [0, {B}) (or from the "
                f"end, -{B} to -1); got {chosen.tolist()}"
            )
        zeroed = tuple(a.copy() for a in self._state)  # arrays handed out stay as they were
        for a in zeroed:
            a[:, chosen] = 0.0  # assigned, not scaled: a NaN or an inf becomes 0 too
        self._state = zeroed


def _reset_samples(samples: object) -> np.ndarray:
    """``samples`` of :meth:`OnnxStream.reset` as a bool mask or integer indices (empty:
    none), or a one-line TypeError (not indices) or ValueError (not 1-D): a string was read
    as the index it spells and shown as one ("in [0, 2); got 0"), and nothing was checked
    before the first step."""
    expected = "OnnxStream.reset: samples must be integer batch indices or a (B,) bool mask"
    if isinstance(samples, (str, bytes)):
        raise TypeError(f"{expected}; got {type(samples).__name__} {samples!r}")
    try:
        chosen = np.asarray(samples)
    except (TypeError, ValueError):  # a ragged list: numpy's words
        raise TypeError(f"{expected}; got {type(samples).__name__} {samples!r}") from None
    if chosen.size and chosen.dtype != bool and chosen.dtype.kind not in "iu":
        # 0.5 would index sample 0, "0" read as 0
        raise TypeError(f"{expected}; got {chosen.dtype} array {chosen.tolist()}")
    if chosen.ndim == 0 and chosen.dtype != bool:
        return chosen.reshape(1)  # one index, reset(3), as a list of one
    if chosen.ndim != 1:
        # Indexed as given, [[0]] or a (1, B) mask was read as the 1-D one it resembles.
        raise ValueError(
            "OnnxStream.reset: samples must be a 1-D list of integer batch indices or a (B,) "
            f"bool mask; got {_describe(chosen)}"
        )
    if chosen.size == 0 and chosen.dtype != bool:
        return chosen.astype(np.int64)  # [] reads as float64: no index, nothing to reset
    return chosen


# ---- sequences ----------------------------------------------------------------------


def run_sequence(
    graph: str | os.PathLike[str] | bytes | ort.InferenceSession,
    x: Any,
    lengths: Any = None,
    state: State = None,
    *,
    batch_first: bool = False,
) -> tuple[np.ndarray, State]:
    """Run a sequence graph on ``x``; returns ``(y, final state)``.

    ``x`` is time-major, as the graph reads it whatever the layer's ``batch_first``: (T, B, I)
    float32 for a layer, (T, B) int64 ids for a character language model; y is
    (T, B, D·H) (logits (T, B, V)), zero past each sequence's length. ``batch_first=True``
    takes x as a ``batch_first`` layer's forward does, (B, T, I) or (B, T), transposes it
    for the graph and returns y as (B, T, ...) (a classifier's (B, C) as it is).
    ``lengths`` (B,) needs a graph exported with ``lengths=True`` (without it every
    sequence is T long); ``state`` defaults to zeros. Pass a loaded session as ``graph``
    to run many batches without loading the file each time.
    """
    where = "run_sequence"
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"{where}: batch_first must be a bool; got {batch_first!r}")
    session, meta = _open(graph, "sequence", where)
    if batch_first and meta.get("model") == "seq2seq":
        raise ValueError(
            f"{where}: batch_first must be False for an encoder-decoder's encoder graph (it "
            "takes x (S, B) and returns its memory time-major); got True"
        )
    # The caller's axes: x[t, b] time-major, x[b, t] with batch_first.
    t_axis, b_axis = (1, 0) if batch_first else (0, 1)
    order = "(B, T" if batch_first else "(T, B"
    given = _as_array(x, "x", where)  # as given: a refused value is shown so
    if meta["input_size"] is None:  # the graph reads ids
        x = _ids(given, f"{order})", 2, _vocab_size(meta), "x", where)
    else:
        I = meta["input_size"]
        # Checked once the lengths are known: the padding past them is not read.
        x = _floats(given, f"{order}, {I})", (None, None, I), "x", where, finite=False)
    _not_empty(x, [(t_axis, "T", "time steps"), (b_axis, "B", "sequences")], "x", where)
    T, B = x.shape[t_axis], x.shape[b_axis]
    feed: dict[str, np.ndarray] = {}
    if meta["lengths"]:
        if lengths is None:
            lengths = np.full((B,), T, dtype=np.int64)
        lens = _as_array(lengths, "lengths", where)
        if lens.shape != (B,) or lens.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: lengths must be an int64 array of shape ({B},); got {_describe(lens)}"
            )
        if B and (lens.min() < 0 or lens.max() > T):
            raise ValueError(f"{where}: lengths must lie in [0, T] = [0, {T}]; got {lens.tolist()}")
        if meta.get("model") == "seq2seq" and B and lens.min() < 1:
            # An empty source masks every position: the decoder's attention is then nan, and
            # Seq2Seq.encode refuses it.
            raise ValueError(
                f"{where}: an encoder-decoder's source lengths must lie in [1, T] = [1, {T}] "
                f"(an empty source has nothing to attend to); got {lens.tolist()}"
            )
        feed["lengths"] = lens.astype(np.int64)
    elif lengths is not None:
        raise ValueError(
            f"{where}: this graph takes no lengths (exported with lengths=False); got lengths "
            "- export with lengths=True, or leave lengths out"
        )
    if meta["input_size"] is not None:
        valid = np.arange(T)[:, None] < feed.get("lengths", np.full((B,), T))[None, :]
        _check_finite(x, given, "x", where, valid.T if batch_first else valid)
    feed["x"] = np.ascontiguousarray(x.swapaxes(0, 1)) if batch_first else x
    arrays = _zeros(meta, B) if state is None else _state_arrays(state, meta, B, where)
    feed.update(zip((s["name"] for s in meta["states"]), arrays, strict=True))
    y, *final = session.run(list(meta["outputs"]), feed)
    if batch_first and meta.get("model") != "classifier":  # a classifier's y is (B, C)
        y = np.ascontiguousarray(y.swapaxes(0, 1))
    return y, _user_state(tuple(final))


# ---- text ---------------------------------------------------------------------------


def generate(
    graph: str | os.PathLike[str] | bytes | OnnxStream,
    prompt: str = "",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = 0,
) -> str:
    """The ``length`` characters a character language model writes after ``prompt``.

    ``graph`` is a char_lm step graph (or an :class:`OnnxStream` of one, which is reset
    first and holds the final state afterwards). The prompt primes the state from zeros;
    with no prompt the model starts as at the top of a file, after a newline.
    ``temperature`` divides the logits (0 always picks the most likely character) and
    ``top_k`` keeps only the k most likely; the unknown class (id 0) is never written.
    The same ``seed`` gives the same text.
    """
    where = "generate"
    # A numpy integer counts as one here, as in every count deploy takes: it was refused as
    # "must be an integer; got np.int64(5)".
    if not is_count(length):
        raise ValueError(f"{where}: length must be an integer >= 0; got {length!r}")
    # An inf temperature sampled from NaN probabilities (numpy's words), True read as 1.
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not (math.isfinite(temperature) and temperature >= 0)
    ):
        raise ValueError(f"{where}: temperature must be a number >= 0; got {temperature!r}")
    if top_k is not None and not is_count(top_k, 1):
        raise ValueError(f"{where}: top_k must be a positive integer or None; got {top_k!r}")
    if not isinstance(prompt, str):  # a number failed late, in the loop over its characters
        raise TypeError(f"{where}: prompt must be a string; got {type(prompt).__name__}")
    # numpy's generator refused the others in its own words ("SeedSequence expects ...").
    if seed is not None and not is_count(seed):
        raise ValueError(f"{where}: seed must be an integer >= 0 or None; got {seed!r}")
    if isinstance(graph, OnnxStream) and graph._fixed not in (None, 1):
        # Its first step refused the one sample as "x's batch size must equal the stream's".
        raise ValueError(
            f"{where}: a stream given as graph must be of batch size 1 (or none fixed); got "
            f"an OnnxStream of batch_size={graph._fixed}"
        )
    if isinstance(graph, OnnxStream):
        model, vocab = graph.model, graph.vocab
    else:
        # Read before an OnnxStream is made of it: a graph no stream runs (an
        # encoder-decoder's decoder step) is refused here as any other model is.
        session, meta = _open(graph, "step", "OnnxStream")
        model, vocab = meta.get("model"), meta.get("vocab")
    if model != "char_lm" or not vocab:
        raise ValueError(
            f"{where}: expected a character language model's graph (model 'char_lm'); got "
            f"model {model!r}"
        )
    stream = graph if isinstance(graph, OnnxStream) else OnnxStream(session, batch_size=1)
    vocab = stream.vocab
    ids = {ch: i for i, ch in enumerate(vocab) if i}  # vocab[0] is the unknown class
    stream.reset()
    start = prompt or ("\n" if "\n" in ids else vocab[1])
    logits = None
    for ch in start:
        logits = stream.step(np.array([ids.get(ch, 0)], dtype=np.int64))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(length):
        assert logits is not None
        nxt = _pick(logits[0], temperature, top_k, rng)
        out.append(vocab[nxt])
        logits = stream.step(np.array([nxt], dtype=np.int64))
    return "".join(out)


def _pick(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> int:
    z = logits.astype(np.float64)  # a copy; float64 keeps exp() of large logits finite
    z[0] = -np.inf  # the unknown class is never written
    if temperature == 0:
        return int(np.argmax(z))
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    z = z / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(p.size, p=p))


# ---- forecasting ----------------------------------------------------------------------

CLIP = 10.0  # a forecaster's inputs are clipped to [-CLIP, CLIP]
D_FLOOR = 0.01  # d_t is at least this fraction of s_t (a constant history has d = 0)
# A window whose mean |y| (s_t) is below this, the smallest normal float64, is scaled as an
# all-zero window is: by 1. Below it a value keeps few significant bits and D_FLOOR of it
# rounds to 0 (1e-322 * 0.01), so d_t would be 0 and every input 0/0, every forecast NaN.
S_MIN = sys.float_info.min
Z80 = 1.2815515655446004  # the 0.9 quantile of the standard normal
# What a forecaster's outputs are relative to (ForecastConfig.anchor): the last season
# repeated; the season's mean so far plus the last value's deviation from it, damped by
# DAMPING per step ahead (anomaly persistence, as climate forecasts' baseline); or the last
# season repeated plus the mean change over a season so far, once per season ahead
# (seasonal naive with drift; for m = 1 the drift method, y_t + k (y_t - y_0) / t).
ANCHORS = ("seasonal-naive", "climatology", "drift")
DAMPING = 0.8


def damping(horizon: int) -> np.ndarray:
    """DAMPING ** k for k = 1 .. horizon: how much of the last deviation from the season's
    mean a climatology anchor keeps k steps ahead (one array, for both feature paths)."""
    return DAMPING ** np.arange(1, horizon + 1, dtype=np.float64)


class Forecast(NamedTuple):
    """A forecast of the next steps: the point forecast and the 80 % interval."""

    mean: np.ndarray  # (h,) the median (quantile head) or mean (gaussian head)
    lower: np.ndarray  # (h,) the 10 % quantile
    upper: np.ndarray  # (h,)  the 90 % quantile


# The largest magnitude of a value a forecaster takes. A series is scaled by running sums
# of its values and of their changes (the sums of up to 10^8 values at 1e300 stay below
# float64's 1.8e308) and a forecast adds the unit times the model's outputs to the anchor:
# near 1e308 these overflow to inf and the forecast comes back NaN.
FORECAST_MAX = 1e300


def forecast_value(value: object, what: str) -> float:
    """``value`` as a float, refused unless it is one finite real number of magnitude at
    most :data:`FORECAST_MAX`: ``float`` would read a string ("12") as a number, and a NaN
    or inf would spread through the running sums into every later forecast, as a value
    whose sums overflow would."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what}: a forecast value must be a number; got the string {value!r}")
    not_real = _not_a_real_number(value)
    if not_real is not None:
        raise TypeError(f"{what}: a forecast value must be a real number; got {not_real}")
    try:
        y = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"{what}: a forecast value must be a number; got {type(value).__name__}"
        ) from None
    if not math.isfinite(y):
        raise ValueError(f"{what}: a forecast value must be a finite number; got {y!r}")
    if abs(y) > FORECAST_MAX:
        raise ValueError(
            f"{what}: a forecast value must be of magnitude at most {FORECAST_MAX:g} (the sums "
            f"that scale a series overflow past it); got {y:g}"
        )
    return y


def _not_a_real_number(value: object) -> str | None:
    """What ``value`` is, where ``float`` would read it as a number it is not: a bool
    (True as 1.0), a complex number (its imaginary part dropped with a warning), or an
    array or tensor of one element (a 1-element series read as one value); None where it
    is a real number, or for ``float`` to refuse in its own way."""
    if isinstance(value, (bool, np.bool_)):
        return f"bool {value!r}"
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return f"complex {value!r}"
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    dtype = getattr(value, "dtype", None)  # a 0-d array or tensor; torch's dtypes have no kind
    kind = getattr(dtype, "kind", None)
    if kind in ("b", "c") or getattr(dtype, "is_complex", False) or str(dtype) == "torch.bool":
        return f"{type(value).__name__} of dtype {dtype}"
    return None


def forecast_values(values: object, what: str, name: str | None = None) -> list[float]:
    """``values`` (a sequence of numbers) as floats, each checked by :func:`forecast_value`
    and named "{what}: {name}, value k" ("{what}, value k" without ``name``); a string or
    a single number is refused rather than read as a series (``name``: the argument, when
    ``what`` is its owner)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(
            f"{what}{': ' + name if name else ''} must be a sequence of numbers (e.g. a list "
            f"or a 1-D array); got {type(values).__name__}"
        )
    owner = f"{what}: {name}" if name else what  # "OnlineForecaster: history, value 3"
    return [forecast_value(v, f"{owner}, value {k + 1}") for k, v in enumerate(values)]


class ForecastFeatures:
    """A forecaster's inputs, one observed value at a time, in bounded memory.

    ``push(value)`` returns the step's inputs x (N_FEATURES,), the anchors (horizon,) - the
    seasonal naive forecast, the ``"climatology"`` or the ``"drift"`` anchor
    (:data:`ANCHORS`) - and the unit d_t of the outputs. It is
    ``rnnkit.tasks.forecast.features.prepare_series`` one value at a time - the same sums in the
    same order, so the same numbers - and what
    ``rnnkit.tasks.forecast.OnlineForecaster`` uses too.
    """

    def __init__(
        self, seasonality: int, scale_window: int, horizon: int, anchor: str = ANCHORS[0]
    ) -> None:
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}; got {anchor!r}")
        self.m, self.w, self.h = seasonality, scale_window, horizon
        self.anchor = anchor
        self.phase_sums = [0.0] * max(self.m, 1)  # per phase of the season: the sum of its values
        self.damping = damping(horizon)
        self.t = -1
        self.cum = deque([0.0], maxlen=self.w + 1)  # cumulative |y|, the last w + 1
        self.cum_signed = deque([0.0], maxlen=self.w + 1)  # cumulative y
        self.recent: deque[float] = deque(maxlen=max(self.m, 1) + 1)
        self.sum1 = 0.0
        self.summ = 0.0
        self.drift_sum = 0.0  # the signed changes over a season (over a step for m = 1)
        self.seasons_ahead = np.arange(horizon) // max(self.m, 1) + 1.0

    def push(self, value: float) -> tuple[np.ndarray, np.ndarray, float]:
        """The inputs, anchors and unit of the step that ``value`` ends."""
        y = forecast_value(value, "value")
        self.check([y])  # before anything changes
        self.t += 1
        t, m = self.t, self.m
        self.cum.append(self.cum[-1] + abs(y))
        self.cum_signed.append(self.cum_signed[-1] + y)
        count = min(t + 1, self.w)
        s = (self.cum[-1] - self.cum[-1 - count]) / count
        level = (self.cum_signed[-1] - self.cum_signed[-1 - count]) / count
        if s < S_MIN:  # all zero, or too near it to divide by: as prepare_series
            s = 1.0
        diff1 = y - self.recent[-1] if t >= 1 else 0.0
        drift = 0.0
        if t >= 1:
            self.sum1 += abs(diff1)
            if m == 1:
                self.drift_sum += diff1
                drift = self.drift_sum / t
        d = self.sum1 / t if t >= 1 else s
        diffm = 0.0
        if m > 1 and t >= m:
            diffm = y - self.recent[-m]
            self.summ += abs(diffm)
            self.drift_sum += diffm
            d = self.summ / (t - m + 1)
            drift = self.drift_sum / (t - m + 1)
        d = max(d, D_FLOOR * s)
        self.recent.append(y)
        self.phase_sums[t % m] += y
        if m > 1 and t + 1 < m:  # less than a season seen: every anchor is the last value
            anchor = np.full(self.h, y)
        elif self.anchor == "climatology":
            anchor = self._climatology(y)
        elif m > 1:
            history = list(self.recent)
            anchor = np.array([history[-m + (k % m)] for k in range(self.h)])
        else:
            anchor = np.full(self.h, y)
        if self.anchor == "drift" and not (m > 1 and t + 1 < m):
            anchor = anchor + self.seasons_ahead * drift
        x = np.array([y / s, diff1 / d, diffm / d, math.log(d / s), 1.0 / (t + 1), (y - level) / d])
        return x.clip(-CLIP, CLIP).astype(np.float32), anchor, d

    def check(self, values: Sequence[float]) -> None:
        """Refuse ``values`` (numbers :func:`forecast_value` took) whose running sum of
        magnitudes would overflow once pushed: checked before any is, so that a batch is
        taken whole or not at all."""
        total = self.cum[-1]
        for k, v in enumerate(values):
            total += abs(v)
            if not math.isfinite(total):
                raise ValueError(sum_overflow(self.t + 2 + k))

    def _climatology(self, y: float) -> np.ndarray:
        """Each step ahead's season mean so far (its phase's values up to t: the latest of
        them is t+1+k - m(k//m + 1), as seasonal naive's) plus DAMPING^k times y_t's
        deviation from its own phase's mean."""
        t, m = self.t, self.m
        j = np.array([t + 1 + k - m * (k // m + 1) for k in range(self.h)])
        mean = np.array([self.phase_sums[i % m] for i in j]) / (j // m + 1)
        return mean + self.damping * (y - self.phase_sums[t % m] / (t // m + 1))


def sum_overflow(n: int) -> str:
    """Why a series of ``n`` values cannot be scaled: the sum of their magnitudes overflows."""
    return (
        f"the magnitudes of a series' values must sum to a finite number (below 1.8e308) "
        f"to scale it; got a sum past it at value {n}"
    )


def scaled(f: Forecast, c: float) -> Forecast:
    """``f`` with its interval stretched by ``c`` about the point forecast."""
    return Forecast(f.mean, f.mean - c * (f.mean - f.lower), f.mean + c * (f.upper - f.mean))


def outside(actual: Any, f: Forecast, k: Any) -> np.ndarray:
    """How far each value lies out along its side of the 80 % interval (1: on the bound):
    the values ``actual`` at the steps ``k`` (0-based) of the forecast ``f``. A distance
    past float64's range (a huge miss of a narrow interval) is inf: still outside."""
    m, lower, upper = f.mean[k], f.lower[k], f.upper[k]
    # From 2^1021 on, a difference of two values can overflow where their ratio does not:
    # there every value is taken at a quarter, which is exact (a power of two), so the
    # ratio is the one the plain formula gives wherever it is finite.
    big = np.maximum.reduce([np.abs(actual), np.abs(m), np.abs(lower), np.abs(upper)])
    s = np.where(big >= 2.0**1021, 0.25, 1.0)
    a, m, lower, upper = actual * s, m * s, lower * s, upper * s
    with np.errstate(over="ignore"):  # a ratio past the range: inf, no warning
        up = (a - m) / np.maximum(upper - m, 1e-12 * s)
        down = (m - a) / np.maximum(m - lower, 1e-12 * s)
    return np.where(a >= m, up, down)


def conformal_rank(n: int, coverage: float) -> int:
    """The rank (1-based) of the split-conformal quantile of n scores: ceil((n + 1)
    coverage), within [1, n]. For exchangeable scores a new one is at most the score of
    that rank with probability rank / (n + 1) >= coverage (Vovk et al. 2005; Angelopoulos
    & Bates 2021, section 1)."""
    return min(n, max(1, math.ceil((n + 1) * coverage)))


def _factor(c: float) -> float:
    return min(max(c, 0.05), 100.0) if math.isfinite(c) else 1.0


def conformal_factor(ratios: Any, coverage: float = 0.8) -> float:
    """The split-conformal factor (Vovk et al. 2005) that makes intervals cover the share
    ``coverage`` of values whose :func:`outside` ratios are ``ratios``: their
    :func:`conformal_rank`-th smallest, clipped to [0.05, 100]; 1 for none."""
    r = np.asarray(ratios, dtype=np.float64)
    if len(r) == 0:
        return 1.0
    k = conformal_rank(len(r), coverage)
    return _factor(float(np.partition(r, k - 1)[k - 1]))


class SortedScores:
    """Numbers kept in order as they come, for the k-th smallest of a growing stream: a
    list of sorted blocks of ``block`` to 2 * ``block`` numbers. Adding one costs a binary
    search and an insertion into one block, the k-th smallest a walk over the blocks'
    lengths: about n / ``block`` steps, where taking it from all the numbers again
    would pass over every one at each update (a recalibrating forecaster scores
    ``horizon`` values at every step)."""

    def __init__(self, block: int = 512) -> None:
        self.block = block
        self.blocks: list[list[float]] = []
        self.maxes: list[float] = []  # the last (largest) number of each block
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        for b in self.blocks:
            yield from b

    def add(self, x: float) -> None:
        x = float(x)
        if math.isnan(x):  # no interval can hold it: a miss, ordered as np.partition does
            x = math.inf
        self.n += 1
        if not self.blocks:
            self.blocks.append([x])
            self.maxes.append(x)
            return
        i = min(bisect.bisect_left(self.maxes, x), len(self.blocks) - 1)
        block = self.blocks[i]
        bisect.insort(block, x)
        self.maxes[i] = block[-1]
        if len(block) > 2 * self.block:  # split in two halves
            self.blocks[i : i + 1] = [block[: self.block], block[self.block :]]
            self.maxes[i : i + 1] = [block[self.block - 1], block[-1]]

    def kth(self, k: int) -> float:
        """The k-th smallest (1-based, 1 <= k <= len)."""
        if not 1 <= k <= self.n:
            raise IndexError(f"k must be in [1, {self.n}]; got {k}")
        if k > self.n // 2:  # walk from the nearer end: conformal ranks sit high
            rest = self.n - k  # numbers above the one wanted
            for b in reversed(self.blocks):
                if rest < len(b):
                    return b[len(b) - 1 - rest]
                rest -= len(b)
        for b in self.blocks:
            if k <= len(b):
                return b[k - 1]
            k -= len(b)
        raise AssertionError("unreachable: k was checked against n")


MISS = 0.2  # an 80 % interval's target share of values outside it
# The default step of the adaptive level (Gibbs & Candes 2021): over 60 and more rolling
# origins what keeps the coverage near 80 %, over 10-12 as good as split conformal once
# the level holds still at first (docs/forecast.md, "An adaptive level, measured").
ADAPT = 0.05


def recalibration_options(
    owner: str, recalibrate: object, adapt: float | None, hold: int | None
) -> float:
    """The step ``adapt`` of an online forecaster's :class:`Recalibration` (default
    :data:`ADAPT`), once ``recalibrate`` is a bool and ``adapt`` and ``hold`` are given
    only with ``recalibrate=True``: without it they would be ignored without a word."""
    if not isinstance(recalibrate, bool):  # "no" would read as True
        raise TypeError(f"{owner}: recalibrate must be True or False; got {recalibrate!r}")
    # Checked here, naming the owner: Recalibration's own check failed on a string in
    # math's words and read True as a step of 1.
    if adapt is not None and (
        isinstance(adapt, bool)
        or not isinstance(adapt, numbers.Real)
        or not (math.isfinite(adapt) and adapt >= 0)
    ):
        raise ValueError(f"{owner}: adapt must be a number >= 0; got {adapt!r}")
    if hold is not None and not is_count(hold):
        raise ValueError(f"{owner}: hold must be a count of time steps >= 0; got {hold!r}")
    if not recalibrate and (adapt is not None or hold is not None):
        given = ", ".join(
            f"{k}={v!r}" for k, v in (("adapt", adapt), ("hold", hold)) if v is not None
        )
        raise ValueError(
            f"{owner}: adapt and hold set the recalibration of recalibrate=True; got {given} "
            "with recalibrate=False"
        )
    return ADAPT if adapt is None else adapt


def default_hold(horizon: int) -> int:
    """The time steps an online forecaster's level holds still by default: 2 * horizon -
    1, the values of a single series' validation windows at its default origins (one per
    step of the horizon), over which the test intervals' level holds too. Moving from the
    first value, it overshot on short streams (docs/forecast.md, "Online use")."""
    return 2 * horizon - 1


class Recalibration:
    """The 80 % interval factor of a stream of forecasts, recalibrated on their outcomes
    as the values arrive: every forecast (with the head's own interval) is kept until its
    horizon has passed, each arriving value is scored against every kept forecast of it
    (:func:`outside`), and the factor is the conformal one of all scores so far - the
    ``validated`` factor until the first.

    ``adapt`` > 0 is adaptive conformal inference (Gibbs & Candes 2021): the level of that
    quantile is ``1 - alpha``, and after each arriving value ``alpha`` moves by ``adapt``
    times (0.2 - the share of its scores outside the intervals their forecasts were
    given), kept in [0, 1]. Plain split conformal (``adapt=0``, the default) assumes the
    errors to come are like those seen; when they grow over a long stream its intervals
    cover too little for as long as the old errors outnumber the new, and an adaptive
    level widens them as soon as the misses come (docs/forecast.md: 0.05 over 60 rolling
    origins). Moving from the first of a few dozen values it overshoots, so the level
    holds still over the first ``hold`` time steps whose values arrive (their scores
    count in the quantile all the same) and moves from the next on:
    ``rnnkit.tasks.forecast.intervals.recalibrated`` holds it over the validation values, the
    online forecasters over :func:`default_hold` steps.
    """

    def __init__(self, horizon: int, validated: float, adapt: float = 0.0, hold: int = 0) -> None:
        if not (math.isfinite(adapt) and adapt >= 0):
            raise ValueError(f"adapt must be a number >= 0; got {adapt!r}")
        if not is_count(hold):
            raise ValueError(f"hold must be a count of time steps >= 0; got {hold!r}")
        self.horizon, self.validated, self.adapt, self.hold = horizon, validated, adapt, int(hold)
        # (origin, the head's own interval, the factor it was given)
        self._pending: list[tuple[int, Forecast, float]] = []
        self.ratios = SortedScores()  # every score so far, in order
        self.alpha = MISS
        self.steps = 0  # time steps scored so far

    @property
    def factor(self) -> float:
        """:func:`conformal_factor` of every score so far, at the level ``1 - alpha``."""
        n = len(self.ratios)
        if n == 0:
            return self.validated
        return _factor(self.ratios.kth(conformal_rank(n, 1 - self.alpha)))

    def score(self, ratios: Sequence[float], factors: Sequence[float]) -> None:
        """The values of one time step have arrived: the :func:`outside` ratios of the
        forecasts of them, and the factors those forecasts were given."""
        if not len(ratios):
            return
        for r in ratios:
            self.ratios.add(r)
        self.steps += 1
        if self.steps <= self.hold:
            return
        missed = float(np.mean(np.asarray(ratios) > np.asarray(factors)))
        self.alpha = min(1.0, max(0.0, self.alpha + self.adapt * (MISS - missed)))

    def observe(self, t: int, value: float) -> None:
        """The value at position t (0-based) has arrived."""
        self._pending = [p for p in self._pending if t < p[0] + self.horizon]
        ratios = [float(outside(value, f, t - o)) for o, f, _ in self._pending]
        self.score(ratios, [c for _, _, c in self._pending])

    def add(self, origin: int, f: Forecast) -> Forecast:
        """A forecast made from ``origin`` (its first step is the value at that position)
        with the ``validated`` factor; returns it with the current factor."""
        c = self.factor
        self._pending.append((origin, scaled(f, 1 / self.validated), c))
        return scaled(f, c / self.validated)


class OnnxForecaster:
    """Update a forecast as each new value of one series arrives, from a step graph.

    The exported forecaster (``rnnkit export RUN --mode step`` of a forecast run) reads
    the step's features (:class:`ForecastFeatures`) and returns raw outputs (horizon,
    3 or 2); they become values as in ``ForecastModel.bands``: the median and the 10 % and
    90 % quantiles (quantile head), or the mean and ±z₀.₉σ (Gaussian head), the interval
    scaled by the run's calibration, in units of d_t around the run's anchor.
    Equals ``rnnkit.tasks.forecast.OnlineForecaster`` to float32 rounding; with
    ``recalibrate=True`` both recalibrate the interval on the outcomes of the forecasts
    made after ``history`` as they arrive (:class:`Recalibration`): the level adapting by
    ``adapt`` (default :data:`ADAPT`) after holding still over the first ``hold`` time
    steps (default :func:`default_hold`; ``adapt=0``: split conformal throughout).
    """

    def __init__(
        self,
        graph: str | os.PathLike[str] | bytes | ort.InferenceSession,
        history: Iterable[float] = (),
        *,
        threads: int | None = None,
        recalibrate: bool = False,
        adapt: float | None = None,
        hold: int | None = None,
    ) -> None:
        adapt = recalibration_options("OnnxForecaster", recalibrate, adapt, hold)
        self.stream = OnnxStream(graph, batch_size=1, threads=threads)
        meta = self.stream.metadata
        if meta["model"] != "forecast":
            raise ValueError(
                f"OnnxForecaster: graph must be a forecaster's step graph; got a "
                f"{meta['model']} graph"
            )
        spec = meta["forecast"]
        self.horizon: int = spec["horizon"]
        self.head: str = spec["head"]
        self.interval_scale = float(spec["interval_scale"])
        # 0: the point forecasts are the anchor's (graphs exported before it: 1)
        self.correction = float(spec.get("correction", 1.0))
        self.features = ForecastFeatures(
            spec["seasonality"], spec["scale_window"], self.horizon,
            spec.get("anchor", ANCHORS[0]),  # graphs exported before anchors: seasonal naive
        )  # fmt: skip
        self._last: Forecast | None = None
        self.recalibration: Recalibration | None = None
        for value in forecast_values(history, "OnnxForecaster", "history"):
            self.update(value)
        if recalibrate:
            hold = default_hold(self.horizon) if hold is None else hold
            self.recalibration = Recalibration(self.horizon, self.interval_scale, adapt, hold)
            if self._last is not None:
                self.recalibration.add(self.seen, self._last)

    @property
    def forecast(self) -> Forecast:
        """The forecast after the values seen so far."""
        if self._last is None:
            raise ValueError("OnnxForecaster: no value seen yet; call update(value) first")
        return self._last

    @property
    def seen(self) -> int:
        return self.features.t + 1

    def update(self, value: float) -> Forecast:
        """Take the next observed value; returns the forecast of the steps after it."""
        value = forecast_value(value, "OnnxForecaster")
        x, anchor, unit = self.features.push(value)
        raw = self.stream.step(x[None]).reshape(self.horizon, -1).astype(np.float64)
        mid = raw[:, 0] * self.correction
        if self.head == "quantile":
            below, above = _softplus(raw[:, 1]), _softplus(raw[:, 2])
        else:
            below = above = Z80 * (_softplus(raw[:, 1]) + 1e-3)
        c = self.interval_scale
        bands = (mid, mid - c * below, mid + c * above)
        self._last = Forecast(*(anchor + unit * b for b in bands))
        if self.recalibration is not None:
            self.recalibration.observe(self.seen - 1, float(value))
            self._last = self.recalibration.add(self.seen, self._last)
        return self._last


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


# ---- encoder-decoder ------------------------------------------------------------------


def _open_part(
    source: str | os.PathLike[str] | bytes | ort.InferenceSession, part: str, where: str
) -> tuple[ort.InferenceSession, dict[str, Any]]:
    """The session and metadata of an encoder-decoder's ``part`` ("encoder" or "decoder").

    The part is checked before the mode: the two graphs given the other way round were
    refused as "use OnnxStream for it", which cannot run a decoder step."""
    mode = "sequence" if part == "encoder" else "step"
    session = (
        source
        if ort is not None and isinstance(source, ort.InferenceSession)
        else load_session(source, where=where)
    )
    meta = read_metadata(session, where)
    if meta.get("model") != "seq2seq" or meta.get("part") != part:
        raise ValueError(
            f"{where}: expected an encoder-decoder's {part} graph; got a "
            f"{meta.get('model')} {meta.get('mode')} graph"
        )
    return _open(session, mode, where)


def translate(
    encoder: str | os.PathLike[str] | bytes | ort.InferenceSession,
    decoder: str | os.PathLike[str] | bytes | ort.InferenceSession,
    text: str,
    max_length: int | None = None,
) -> str:
    """Greedy decoding of ``text`` with an exported encoder-decoder.

    ``encoder`` is the sequence graph and ``decoder`` the step graph of the same model
    (``rnnkit export RUN --mode sequence`` and ``--mode step`` of a numbers run): the
    source is encoded once, then each step feeds the previous token and carries the
    decoder's state, until the end token or ``max_length`` tokens (default: twice the
    longest training target plus 8, as rnnkit decodes).
    """
    where = "translate"
    enc, enc_meta = _open_part(encoder, "encoder", where)
    dec, dec_meta = _open_part(decoder, "decoder", where)
    if "src_vocab" not in enc_meta:
        raise ValueError(
            f"{where}: the encoder graph carries no vocabulary; export it from a run folder "
            "(rnnkit export RUN) rather than from a bare model"
        )
    if not isinstance(text, str) or not text:
        raise ValueError(f"{where}: text must be a non-empty string; got {text!r}")
    # A negative count decoded nothing without a word, a float failed inside range().
    if max_length is not None and not is_count(max_length):
        raise ValueError(f"{where}: max_length must be an integer >= 0 or None; got {max_length!r}")
    specials = enc_meta["specials"]
    stoi = {c: i for i, c in enumerate(enc_meta["src_vocab"])}
    ids = np.array([[stoi.get(c, specials["unk"])] for c in text], dtype=np.int64)  # (S, 1)
    feed: dict[str, np.ndarray] = {"x": ids, "lengths": np.array([len(text)], np.int64)}
    feed.update(zip((s["name"] for s in enc_meta["states"]), _zeros(enc_meta, 1), strict=True))
    memory = dict(zip(enc_meta["outputs"], enc.run(list(enc_meta["outputs"]), feed), strict=True))
    if max_length is None:
        longest = enc_meta.get("max_target_length") or 28
        max_length = 2 * int(longest) + 8
    names = dec_meta["decoder_states"]
    state = {"feed": memory["feed"], **{n: memory[n] for n in names}}
    y = specials["bos"]
    tokens: list[int] = []
    for _ in range(max_length):
        inputs = {"y_prev": np.array([y], np.int64), **state}
        inputs.update({k: memory[k] for k in ("values", "keys", "mask", "summary")})
        logits, feed_out, *rest = dec.run(list(dec_meta["outputs"]), inputs)
        state = {"feed": feed_out, **dict(zip(names, rest[: len(names)], strict=True))}
        scores = logits[0].copy()
        scores[[specials["pad"], specials["bos"]]] = -np.inf  # never outputs, as in rnnkit
        y = int(np.argmax(scores))
        if y == specials["eos"]:
            break
        tokens.append(y)
    vocab = enc_meta["tgt_vocab"]
    return "".join(vocab[t] for t in tokens if t >= len(specials))
