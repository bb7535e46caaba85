"""torch's own test entries for its RNN classes, run against rnnkit's drop-ins.

``torch.testing._internal.common_modules.module_db`` holds one ``ModuleInfo`` per torch.nn
class: how to build it and what to feed it (``module_inputs_func``), the inputs that must
fail and how (``module_error_inputs_func``), whether training mode matters
(``train_and_eval_differ``), second derivatives (``supports_gradgrad``) and the
``skips``/``decorators`` torch declares for its own class. PyTorch's ``test/test_modules.py``
puts every entry through the same generic checks. This module takes the entries for
nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell and nn.GRUCell and runs checks of the
same kinds (written here afresh) with torch.nn's class swapped for rnnkit's, each rnnkit
module loaded with the weights of a torch.nn module built from the same arguments:

- forward: the same output (and output structure) as torch.nn, and as the sample's
  ``reference_fn``; the caller's tensors left unmodified;
- backward: the same input and parameter gradients as torch.nn;
- errors: the exception type torch's entry declares and a message naming the problem;
- pickling: ``torch.save``/``torch.load`` with ``weights_only=False``, and with
  ``weights_only=True`` inside ``rnnkit.safe_globals()``;
- ``gradcheck`` and ``gradgradcheck`` in float64, with torch's settings;
- non-contiguous inputs and hidden states, and non-contiguous parameters;
- ``repr``/``str``, factory kwargs (``device=``, ``dtype=``, the meta device), ``.to(dtype)``
  round trips, train/eval behaviour, memory format, and (with a GPU) device transfers.

Each check runs per sample (``sNN`` in the test id), dtype and, where torch's entry says
train and eval differ, mode, so a failure names the exact case. Every sample and error
input comes from the installed torch, so a torch upgrade that adds cases tests them here.
"""

from __future__ import annotations

import fnmatch
import io
import itertools
import re
import unittest
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

# torch.testing._internal imports expecttest, a dependency of the `test` extra: without it
# this module fails to collect, on purpose, rather than skipping unnoticed.
from torch.testing._internal.common_device_type import skipMPS
from torch.testing._internal.common_methods_invocations import DecorateInfo
from torch.testing._internal.common_modules import (
    ModuleErrorEnum,
    ModuleInfo,
    ModuleInput,
    module_db,
)
from torch.utils._pytree import tree_flatten, tree_map, tree_structure, tree_unflatten

import rnnkit

# ---- The to-do list: torch features rnnkit has not built yet ------------------------------
#
# Each key is a test's name and a glob over its ids, ``test_x[id-glob]``; each case it
# matches is marked ``xfail(strict=True)``, so a case that starts passing fails the run
# until its line is deleted here. Nothing outside this list is allowed to fail.
XFAIL: dict[str, str] = {}

# -------------------------------------------------------------------------------------------

OURS: dict[type[nn.Module], type[nn.Module]] = {
    nn.RNN: rnnkit.RNN,
    nn.LSTM: rnnkit.LSTM,
    nn.GRU: rnnkit.GRU,
    nn.RNNCell: rnnkit.RNNCell,
    nn.LSTMCell: rnnkit.LSTMCell,
    nn.GRUCell: rnnkit.GRUCell,
}
ENTRIES: dict[str, ModuleInfo] = {info.name: info for info in module_db if info.module_cls in OURS}
DTYPES = (torch.float32, torch.float64)
CPU = torch.device("cpu")
HAS_CUDA = torch.cuda.is_available()

# This module's checks named as test_modules.py names them, so that the decorators torch's
# entries attach to its tests (``DecorateInfo(..., "TestModule", "test_grad")``) apply here.
TORCH_TEST_NAME = {
    "test_forward": "test_forward",
    "test_backward_matches_torch": "test_cpu_gpu_parity",  # torch's nearest: it compares grads
    "test_errors": "test_errors",
    "test_pickle": "test_pickle",
    "test_pickle_weights_only": "test_pickle",
    "test_gradcheck": "test_grad",
    "test_gradgradcheck": "test_gradgrad",
    "test_non_contiguous_inputs": "test_non_contiguous_tensors",
    "test_non_contiguous_parameters": "test_non_contiguous_tensors",
    "test_repr": "test_repr",
    "test_factory_kwargs": "test_factory_kwargs",
    "test_device_ctx_init": "test_device_ctx_init",
    "test_to_dtype_round_trip": "test_forward",
    "test_train_eval": "test_if_train_and_eval_modes_differ",
    "test_memory_format": "test_memory_format",
    "test_multiple_device_transfer": "test_multiple_device_transfer",
    "test_cpu_gpu_parity": "test_cpu_gpu_parity",
}


# ---- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    entry: str  # torch's name for the class, "nn.LSTM"
    dtype: torch.dtype
    training: bool
    index: int  # which of the entry's samples (or error inputs)

    @property
    def info(self) -> ModuleInfo:
        return ENTRIES[self.entry]

    @property
    def ours(self) -> type[nn.Module]:
        return OURS[self.info.module_cls]

    @property
    def is_layer(self) -> bool:
        return self.info.module_cls in (nn.RNN, nn.LSTM, nn.GRU)

    def samples(self, *, requires_grad: bool, device: torch.device = CPU) -> list[ModuleInput]:
        return list(
            self.info.module_inputs_func(
                self.info,
                device=device,
                dtype=self.dtype,
                requires_grad=requires_grad,
                training=self.training,
            )
        )

    def sample(self, *, requires_grad: bool = False, device: torch.device = CPU) -> ModuleInput:
        return self.samples(requires_grad=requires_grad, device=device)[self.index]


_SHORT = {"input_size": "i", "hidden_size": "h", "num_layers": "l", "proj_size": "proj"}


def _sample_id(index: int, sample: ModuleInput) -> str:
    """A readable id: ``s05-i2-h3-l2-proj2-bias-batch_first-bidirectional-hx``."""
    parts = [f"s{index:02d}", *(str(a) for a in sample.constructor_input.args)]
    for key, value in sample.constructor_input.kwargs.items():
        if isinstance(value, bool):
            parts.append(key if value else f"no_{key}")
        elif key in _SHORT:
            parts.append(f"{_SHORT[key]}{value}")
        else:
            parts.append(str(value))
    parts.append("hx" if len(sample.forward_input.args) > 1 else "no_hx")
    return "-".join(parts)


def _modes(info: ModuleInfo) -> tuple[bool, ...]:
    # As torch: both modes only where the entry says they differ.
    return (True, False) if info.train_and_eval_differ else (True,)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _collect() -> dict[str, list[ModuleInput]]:
    """Each entry's samples, once, for the test ids (the tests make fresh ones)."""
    return {
        name: list(
            info.module_inputs_func(
                info, device=CPU, dtype=torch.float32, requires_grad=False, training=True
            )
        )
        for name, info in ENTRIES.items()
    }


SAMPLES = _collect()
_USED_XFAILS: set[str] = set()


def _param(test: str, case: Case, case_id: str) -> Any:
    """A pytest.param for one case, marked xfail if the to-do list names it."""
    marks = []
    for pattern, reason in XFAIL.items():
        name, id_glob = re.fullmatch(r"(\w+)\[(.*)\]", pattern).groups()
        if name == test and fnmatch.fnmatchcase(case_id, id_glob):
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
            _USED_XFAILS.add(pattern)
    return pytest.param(case, id=case_id, marks=marks)


def cases(
    test: str,
    *,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    modes: bool = True,
) -> list[Any]:
    """Parameters of ``test``: entry x dtype x mode (where modes differ) x sample."""
    params = []
    for name, info in ENTRIES.items():
        training_flags = _modes(info) if modes else (True,)
        indices = range(len(SAMPLES[name]))
        for dtype, training, index in itertools.product(dtypes, training_flags, indices):
            parts = [name, _dtype_name(dtype)]
            if len(training_flags) > 1:
                parts.append("train" if training else "eval")
            parts.append(_sample_id(index, SAMPLES[name][index]))
            params.append(_param(test, Case(name, dtype, training, index), "-".join(parts)))
    return params


def error_cases(test: str) -> list[Any]:
    """Parameters of ``test``: entry x dtype x error input (``eNN-<torch's regex>``)."""
    params = []
    for name, info in ENTRIES.items():
        errors = info.module_error_inputs_func(
            info, device=CPU, dtype=torch.float32, requires_grad=False, training=True
        )
        for dtype, (index, error) in itertools.product(DTYPES, enumerate(errors)):
            slug = re.sub(r"\W+", "_", error.error_regex)[:40].strip("_")
            case_id = f"{name}-{_dtype_name(dtype)}-e{index:02d}-{slug}"
            params.append(_param(test, Case(name, dtype, True, index), case_id))
    return params


# ---- torch's own skips and decorators ---------------------------------------------------
#
# The RNN entries declare (torch 2.13):
# - rnn_gru_lstm_module_info_decorators on nn.RNN, nn.GRU, nn.LSTM: unittest.expectedFailure
#   for test_grad and test_gradgrad on CUDA with cuDNN (no batching rule and no double
#   backward for _cudnn_rnn_backward), and for test_non_contiguous_tensors on CUDA with
#   cuDNN (cuDNN's GRU rejects a non-contiguous hx) and with MIOpen in float32;
# - skipMPS on nn.LSTM (LSTM with projections is not supported on MPS).
# _honour_torch_decorators applies them to the same checks here: an expected failure of
# torch's becomes a skip (the reason is a cuDNN limit, not rnnkit's), skipMPS skips on MPS.
# test_torch_declares_only_known_decorators fails if torch adds one this does not know.


def _decorator_kind(decorator: Any) -> str:
    if decorator is unittest.expectedFailure:
        return "expectedFailure"
    if decorator is skipMPS:
        return "skipMPS"
    return repr(decorator)


def _honour_torch_decorators(test: str, case: Case, device: torch.device = CPU) -> None:
    torch_test = TORCH_TEST_NAME[test]
    params = {"module_info": case.info, "dtype": case.dtype, "training": case.training}
    for info in case.info.decorators:
        if not isinstance(info, DecorateInfo) or not info.is_active(
            "TestModule", torch_test, device.type, case.dtype, params
        ):
            continue
        for decorator in info.decorators:
            kind = _decorator_kind(decorator)
            if kind == "expectedFailure":
                pytest.skip(f"torch's {case.entry} entry expects {torch_test} to fail here")
            elif kind == "skipMPS":
                if device.type == "mps":
                    pytest.skip(f"torch's {case.entry} entry skips MPS")
            else:
                pytest.fail(f"unknown decorator on torch's {case.entry} entry: {kind}")


# ---- helpers --------------------------------------------------------------------------------


def _build(case: Case, sample: ModuleInput, device: torch.device = CPU):
    """(rnnkit's module, torch.nn's), both from the sample's constructor arguments, with
    torch's freshly initialised weights loaded into rnnkit's."""
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    ref = case.info.module_cls(*args, **kwargs).to(device=device, dtype=case.dtype)
    ours = case.ours(*args, **kwargs).to(device=device, dtype=case.dtype)
    ours.load_state_dict(ref.state_dict())
    return ours.train(case.training), ref.train(case.training)


def _call(module: nn.Module, sample: ModuleInput) -> Any:
    return module(*sample.forward_input.args, **sample.forward_input.kwargs)


def _tensors(obj: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _inputs_of(sample: ModuleInput) -> list[torch.Tensor]:
    return _tensors((sample.forward_input.args, sample.forward_input.kwargs))


def _fresh_leaves(obj: Any) -> Any:
    """The same values as new leaf tensors, keeping each one's requires_grad."""
    return tree_map(
        lambda t: (
            t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
        ),
        obj,
    )


def _non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """``t``'s values in every other element of a buffer twice as wide, a strided view."""
    if t.dim() == 0:
        return t
    wide = t.new_zeros(*t.shape[:-1], 2 * t.shape[-1])
    view = wide[..., ::2]
    view.copy_(t.detach())
    assert not view.is_contiguous() or t.numel() <= 1, "the view must really be strided"
    return view.requires_grad_(t.requires_grad)


def _grad_outputs(out: Any) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in _tensors(out)]


def _grads(module: nn.Module, sample_args: Any, out: Any, grad_out: list[torch.Tensor]):
    """Gradients of sum(out * grad_out) w.r.t. the sample's inputs and the parameters."""
    wrt = [*(t for t in _tensors(sample_args) if t.requires_grad), *module.parameters()]
    outs = _tensors(out)
    return torch.autograd.grad(outs, wrt, grad_out, allow_unused=False)


def _assert_same_params(a: nn.Module, b: nn.Module) -> None:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert list(pa) == list(pb)
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=0, atol=0, msg=name)


def _assert_on(module: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
        assert t.device == device, f"{name} is on {t.device}, expected {device}"
        if t.is_floating_point():
            assert t.dtype == dtype, f"{name} is {t.dtype}, expected {dtype}"


# ---- the entries themselves -------------------------------------------------------------


def test_module_db_has_the_six_rnn_entries():
    assert sorted(ENTRIES) == sorted(
        ["nn.RNN", "nn.LSTM", "nn.GRU", "nn.RNNCell", "nn.LSTMCell", "nn.GRUCell"]
    )
    for name, info in ENTRIES.items():
        assert SAMPLES[name], f"torch's {name} entry has no samples"
        assert info.module_error_inputs_func is not None, name


def test_torch_declares_only_known_decorators():
    # A decorator this module does not map would silently not be honoured.
    for name, info in ENTRIES.items():
        for decorate in info.decorators:
            assert isinstance(decorate, DecorateInfo), (name, decorate)
            assert decorate.test_name in (None, *TORCH_TEST_NAME.values()), (name, decorate)
            for decorator in decorate.decorators:
                assert _decorator_kind(decorator) in ("expectedFailure", "skipMPS"), (
                    name,
                    decorator,
                )


def test_every_xfail_pattern_matches_a_case():
    # A to-do line that matches nothing is a typo, or a case torch no longer generates.
    assert set(XFAIL) <= _USED_XFAILS, sorted(set(XFAIL) - _USED_XFAILS)


# ---- forward and backward against torch.nn ----------------------------------------------


@pytest.mark.parametrize("case", cases("test_forward"))
def test_forward(case: Case):
    _honour_torch_decorators("test_forward", case)
    sample = case.sample()
    ours, ref = _build(case, sample)
    versions = [t._version for t in _inputs_of(sample)]
    out = _call(ours, sample)
    # rnnkit must not write into the caller's input or hx.
    assert [t._version for t in _inputs_of(sample)] == versions
    expected = _call(ref, sample)
    # Same nesting (tuples, not lists) so that unpacking and isinstance checks carry over.
    assert tree_structure(out) == tree_structure(expected)
    torch.testing.assert_close(out, expected)
    if sample.reference_fn is not None:
        # torch's reference: the unbatched input run as a batch of one, through rnnkit.
        torch.testing.assert_close(out, sample.reference_fn(ours, *sample.forward_input.args))


@pytest.mark.parametrize("case", cases("test_backward_matches_torch"))
def test_backward_matches_torch(case: Case):
    _honour_torch_decorators("test_backward_matches_torch", case)
    sample = case.sample(requires_grad=True)
    ours, ref = _build(case, sample)
    args = sample.forward_input.args
    out, expected = ours(*args), ref(*args)
    grad_out = _grad_outputs(expected)
    got = _grads(ours, args, out, grad_out)
    want = _grads(ref, args, expected, grad_out)
    torch.testing.assert_close(got, want)


# ---- errors -------------------------------------------------------------------------------
#
# torch's error inputs give torch's exception type and a regex over torch's own message.
# rnnkit words its messages its own way, so each must instead name the problem: the terms
# below (any of a tuple) must all appear in it. torch's regex and rnnkit's message are
# recorded as junit properties (``--junitxml``), and both are in a failure's message.

_PROBLEM_TERMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "input has inconsistent input_size: got 11 expected 10": (("input_size",), ("11",)),
    "hidden0 has inconsistent hidden_size: got 21, expected 20": (("hx", "hidden"), ("21",)),
    "Input batch size 3 doesn't match hidden0 batch size 5": (("hx", "hidden"), ("5",)),
    "Expected hidden to be 1D or 2D, got 4D instead": (("hx", "hidden"), ("4D", "4-D", "20)")),
    r"Expected hx\[0\] to be 1D or 2D, got 4D instead": (("hx", "hidden"), ("4D", "4-D", "20)")),
    "hidden_size must be greater than zero": (("hidden_size",), ("0",)),
    "num_layers must be greater than zero": (("num_layers",), ("0",)),
    "input_size must be greater than zero": (("input_size",),),
    "bias should be of type bool, got: int": (("bias",), ("bool",)),
    "bias should be of type bool, got: str": (("bias",), ("bool",)),
    "batch_first should be of type bool, got: int": (("batch_first",), ("bool",)),
    "batch_first should be of type bool, got: str": (("batch_first",), ("bool",)),
    "input_size should be of type int, got: float": (("input_size",), ("int",)),
    "input_size should be of type int, got: str": (("input_size",), ("int",)),
    "hidden_size should be of type int, got: float": (("hidden_size",), ("int",)),
    (
        r"RNN input dtype .* does not match weight dtype .* "
        r"Convert input: input\.to\(.*\), or convert model: model\.to\(.*\)"
    ): (("dtype",), ("float32",), ("float64",)),
}


def _raised(fn: Callable[[], Any]) -> BaseException | None:
    try:
        fn()
    except Exception as error:
        return error
    return None


@pytest.mark.parametrize("case", error_cases("test_errors"))
def test_errors(case: Case, record_property):
    _honour_torch_decorators("test_errors", case)
    info = case.info
    error = info.module_error_inputs_func(
        info, device=CPU, dtype=case.dtype, requires_grad=False, training=True
    )[case.index]
    sample = error.module_error_input
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    on_forward = error.error_on == ModuleErrorEnum.FORWARD_ERROR

    def run(cls: type[nn.Module]) -> BaseException | None:
        if not on_forward:
            return _raised(lambda: cls(*args, **kwargs))
        # It must build: torch's entry expects the forward to fail, not the constructor.
        built = _raised(lambda: cls(*args, **kwargs))
        assert built is None, f"{cls.__name__}{args} fails to build: {built!r}"
        module = cls(*args, **kwargs)
        if "dtype" not in kwargs:
            # The cell entries build in the default float32 and feed inputs of the test's
            # dtype, so in float64 they carry a second mistake that torch's check order
            # hides and rnnkit reports first. Only the dtype entry means a mismatch.
            module.to(case.dtype)
        return _raised(lambda: _call(module, sample))

    # torch itself, as its entry says: keeps this table honest across torch versions.
    theirs = run(info.module_cls)
    assert isinstance(theirs, error.error_type) and re.search(error.error_regex, str(theirs))

    ours = run(case.ours)
    message = f"{type(ours).__name__}: {ours}" if ours is not None else "(nothing raised)"
    record_property("torch_regex", error.error_regex)
    record_property("rnnkit_message", message)
    where = "forward" if on_forward else "construction"
    assert isinstance(ours, error.error_type), (
        f"at {where}: expected {error.error_type.__name__} like torch "
        f"({error.error_regex!r}); rnnkit gave {message}"
    )
    if re.search(error.error_regex, str(ours)):
        return  # torch's own wording
    assert error.error_regex in _PROBLEM_TERMS, f"new torch error input {error.error_regex!r}"
    terms = _PROBLEM_TERMS[error.error_regex]
    missing = [alts for alts in terms if not any(term in str(ours) for term in alts)]
    assert not missing, (
        f"rnnkit's message {message!r} does not name the problem: missing any of "
        f"{missing} (torch: {error.error_regex!r})"
    )


# ---- serialization ------------------------------------------------------------------------


def _round_trip(case: Case, load: Callable[[io.BytesIO], nn.Module]) -> None:
    """The whole module through torch.save and ``load``: same class, mode, weights, output."""
    sample = case.sample()
    ours, _ = _build(case, sample)
    out = _call(ours, sample)
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    copy = load(buffer)
    assert type(copy) is type(ours)
    assert copy.training == ours.training
    _assert_same_params(copy, ours)
    torch.testing.assert_close(_call(copy, sample), out, rtol=0, atol=0)


@pytest.mark.parametrize("case", cases("test_pickle"))
def test_pickle(case: Case):
    _honour_torch_decorators("test_pickle", case)
    _round_trip(case, lambda buffer: torch.load(buffer, weights_only=False))


def _load_weights_only(buffer: io.BytesIO) -> nn.Module:
    with rnnkit.safe_globals():
        return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("case", cases("test_pickle_weights_only"))
def test_pickle_weights_only(case: Case):
    # torch.load's default since torch 2.6, with rnnkit's classes allowed.
    _honour_torch_decorators("test_pickle_weights_only", case)
    _round_trip(case, _load_weights_only)


# ---- gradients ----------------------------------------------------------------------------


def _check_gradients(case: Case, check: Callable[..., bool]) -> None:
    """torch's recipe: the parameters themselves are gradcheck inputs (perturbed in place,
    so this also checks the module reads its weights at call time); first the total
    derivative, then each parameter alone with the inputs."""
    sample = case.sample(requires_grad=True)
    ours, _ = _build(case, sample)
    args = sample.forward_input.args
    params = tuple(ours.parameters())
    flat, spec = tree_flatten((args, params))

    def fn(*flat_inputs: torch.Tensor) -> list[torch.Tensor]:
        new_args, _ = tree_unflatten(list(flat_inputs), spec)
        return tree_flatten(ours(*new_args))[0]

    # The settings of torch's test: the entry's fast mode, else its wrapper's default (fast),
    # batched gradients (vmap) checked; the entry's nondet_tol is for cuDNN only, 0 on CPU.
    fast = case.info.gradcheck_fast_mode
    settings = {
        "fast_mode": True if fast is None else fast,
        "check_batched_grad": True,
        "nondet_tol": 0.0,
    }
    assert check(fn, flat, **settings)
    for p in params:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
        assert check(fn, tree_flatten((args, params))[0], **settings)
        p.requires_grad_(False)


@pytest.mark.parametrize("case", cases("test_gradcheck", dtypes=(torch.float64,)))
def test_gradcheck(case: Case):
    _honour_torch_decorators("test_gradcheck", case)
    _check_gradients(case, torch.autograd.gradcheck)


_GRADGRAD = [info.name for info in ENTRIES.values() if info.supports_gradgrad]


@pytest.mark.parametrize(
    "case",
    [
        p
        for p in cases("test_gradgradcheck", dtypes=(torch.float64,))
        if p.values[0].entry in _GRADGRAD
    ],
)
def test_gradgradcheck(case: Case):
    _honour_torch_decorators("test_gradgradcheck", case)
    _check_gradients(case, torch.autograd.gradgradcheck)


# ---- non-contiguous tensors ---------------------------------------------------------------


@pytest.mark.parametrize("case", cases("test_non_contiguous_inputs"))
def test_non_contiguous_inputs(case: Case):
    # Strided input and hx, and strided output gradients: same output and gradients.
    _honour_torch_decorators("test_non_contiguous_inputs", case)
    sample = case.sample(requires_grad=True)
    ours, _ = _build(case, sample)
    args = sample.forward_input.args
    out = ours(*args)
    grad_out = _grad_outputs(out)
    want = _grads(ours, args, out, grad_out)
    for strided_in, strided_grad in itertools.product([False, True], repeat=2):
        new_args = tree_map(_non_contiguous, args) if strided_in else _fresh_leaves(args)
        g = [_non_contiguous(t) for t in grad_out] if strided_grad else grad_out
        new_out = ours(*new_args)
        torch.testing.assert_close(new_out, out)
        torch.testing.assert_close(_grads(ours, new_args, new_out, g), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", cases("test_non_contiguous_parameters"))
def test_non_contiguous_parameters(case: Case):
    # Weights that are strided views (a user's slicing, or tied storage) give the same
    # output and gradients as torch.nn with contiguous ones.
    _honour_torch_decorators("test_non_contiguous_parameters", case)
    sample = case.sample(requires_grad=True)
    ours, ref = _build(case, sample)
    with torch.no_grad():
        for p in ours.parameters():
            p.data = _non_contiguous(p.data)
    assert not any(p.is_contiguous() for p in ours.parameters())
    args = sample.forward_input.args
    out, expected = ours(*args), ref(*args)
    torch.testing.assert_close(out, expected)
    grad_out = _grad_outputs(expected)
    torch.testing.assert_close(
        _grads(ours, args, out, grad_out), _grads(ref, args, expected, grad_out)
    )


# ---- construction, conversion, repr -------------------------------------------------------


def _repr_items(module: nn.Module) -> set[str]:
    # "5, 10, nonlinearity='relu'" -> {"5", "10", "nonlinearity=relu"}
    return {item.replace("'", "") for item in module.extra_repr().split(", ")}


@pytest.mark.parametrize("case", cases("test_repr", dtypes=(torch.float32,), modes=False))
def test_repr(case: Case):
    _honour_torch_decorators("test_repr", case)
    sample = case.sample()
    ours, ref = _build(case, sample)
    assert repr(ours) and str(ours)
    # The one-line summary says what torch's says (quotes aside); anything more is an
    # argument the caller did pass (torch's layers leave out nonlinearity, rnnkit's not).
    passed = {f"{k}={v}" for k, v in sample.constructor_input.kwargs.items()}
    assert _repr_items(ref) <= _repr_items(ours)
    assert _repr_items(ours) <= _repr_items(ref) | passed


@pytest.mark.parametrize("case", cases("test_factory_kwargs", modes=False))
def test_factory_kwargs(case: Case):
    _honour_torch_decorators("test_factory_kwargs", case)
    sample = case.sample()
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    for device in (CPU, torch.device("meta")):
        ours = case.ours(*args, **kwargs, device=device, dtype=case.dtype)
        _assert_on(ours, device, case.dtype)
        ref = case.info.module_cls(*args, **kwargs, device=device, dtype=case.dtype)
        assert {n: p.shape for n, p in ours.named_parameters()} == {
            n: p.shape for n, p in ref.named_parameters()
        }


@pytest.mark.parametrize("case", cases("test_device_ctx_init", modes=False))
def test_device_ctx_init(case: Case):
    # Built under `with torch.device("meta")`: meta tensors with the CPU build's metadata.
    _honour_torch_decorators("test_device_ctx_init", case)
    sample = case.sample()
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    on_cpu = case.ours(*args, **kwargs)
    with torch.device("meta"):
        on_meta = case.ours(*args, **kwargs)
    cpu_tensors = dict(itertools.chain(on_cpu.named_parameters(), on_cpu.named_buffers()))
    meta_tensors = dict(itertools.chain(on_meta.named_parameters(), on_meta.named_buffers()))
    assert list(meta_tensors) == list(cpu_tensors)
    for name, t in meta_tensors.items():
        ref = cpu_tensors[name]
        assert t.is_meta, name
        assert (t.shape, t.dtype, t.stride()) == (ref.shape, ref.dtype, ref.stride()), name


_METHOD = {torch.float32: "float", torch.float64: "double"}


@pytest.mark.parametrize("case", cases("test_to_dtype_round_trip"))
def test_to_dtype_round_trip(case: Case):
    # To the other float dtype by method (.float()/.double()) and back with .to(dtype):
    # parameters and outputs as torch.nn's after the same round trip, at each stop.
    _honour_torch_decorators("test_to_dtype_round_trip", case)
    sample = case.sample()
    ours, ref = _build(case, sample)
    other = torch.float64 if case.dtype == torch.float32 else torch.float32
    args = tree_map(lambda t: t.to(other), sample.forward_input.args)
    for module in (ours, ref):
        getattr(module, _METHOD[other])()
    _assert_on(ours, CPU, other)
    _assert_same_params(ours, ref)
    torch.testing.assert_close(ours(*args), ref(*args))
    ours.to(case.dtype)
    ref.to(case.dtype)
    _assert_on(ours, CPU, case.dtype)
    _assert_same_params(ours, ref)
    torch.testing.assert_close(_call(ours, sample), _call(ref, sample))


# ---- train and eval -----------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("test_train_eval", modes=False))
def test_train_eval(case: Case):
    _honour_torch_decorators("test_train_eval", case)
    sample = case.sample()
    if not case.info.train_and_eval_differ:
        # torch's entry says the mode does not matter: as torch checks, the forward must
        # not even read `training`.
        ours, ref = _build(case, sample)
        del ours.training
        torch.testing.assert_close(_call(ours, sample), _call(ref, sample))
        return
    # torch's entry says the mode matters (inter-layer dropout): with dropout on, eval's
    # output is torch.nn's, training's varies with the seed; and training differs from eval
    # wherever it does for torch.nn (dropout of an all-zero ReLU output changes nothing).
    args = sample.constructor_input.args
    kwargs = {**sample.constructor_input.kwargs, "dropout": 0.5}
    ref = case.info.module_cls(*args, **kwargs).to(case.dtype).eval()
    ours = case.ours(*args, **kwargs).to(case.dtype).eval()
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(_call(ours, sample), _call(ref, sample))

    def differs_in_training(module: nn.Module) -> bool:
        evaluated = _call(module.eval(), sample)
        with torch.random.fork_rng():
            trained = _call(module.train(), sample)
        with torch.random.fork_rng():
            again = _call(module, sample)
        torch.testing.assert_close(again, trained, rtol=0, atol=0)  # same seed, same masks
        return not torch.equal(tree_flatten(trained)[0][0], tree_flatten(evaluated)[0][0])

    assert differs_in_training(ours) == differs_in_training(ref)


# ---- memory format -----------------------------------------------------------------------
#
# The RNN inputs are 1-D to 3-D, so channels_last never applies (it is for 4-D/5-D
# tensors): torch's check reduces to the module converted with preserve_format and
# contiguous_format, giving the same, contiguous, output and gradients.


@pytest.mark.parametrize("case", cases("test_memory_format"))
def test_memory_format(case: Case):
    _honour_torch_decorators("test_memory_format", case)
    sample = case.sample(requires_grad=True)
    ours, _ = _build(case, sample)
    args = sample.forward_input.args
    out = ours(*args)
    grad_out = _grad_outputs(out)
    want = _grads(ours, args, out, grad_out)
    for memory_format in (torch.preserve_format, torch.contiguous_format):
        ours.to(memory_format=memory_format)
        new_args = _fresh_leaves(args)
        new_out = ours(*new_args)
        torch.testing.assert_close(new_out, out)
        assert all(t.is_contiguous() for t in _tensors(new_out))
        if case.training:
            got = _grads(ours, new_args, new_out, grad_out)
            torch.testing.assert_close(got, want)
            assert all(t.is_contiguous() for t in got)


# ---- devices (need a GPU) -----------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


def _to(obj: Any, device: torch.device) -> Any:
    return tree_map(
        lambda t: (
            t.detach().to(device).requires_grad_(t.requires_grad)
            if isinstance(t, torch.Tensor)
            else t
        ),
        obj,
    )


@needs_cuda
@pytest.mark.parametrize("case", cases("test_multiple_device_transfer"))
def test_multiple_device_transfer(case: Case):
    # GPU -> CPU -> GPU (-> the second GPU): each forward runs where the module now is.
    cuda = torch.device("cuda", 0)
    _honour_torch_decorators("test_multiple_device_transfer", case, cuda)
    sample = case.sample()
    ours, ref = _build(case, sample)
    args_cpu = sample.forward_input.args
    args_cuda = _to(args_cpu, cuda)
    expected = ref(*args_cpu)
    stops = [cuda, CPU, cuda]
    if torch.cuda.device_count() >= 2:
        stops.append(torch.device("cuda", 1))
    for device in stops:
        ours.to(device)
        _assert_on(ours, device, case.dtype)
        args = args_cpu if device == CPU else _to(args_cuda, device)
        with torch.cuda.device(device if device.type == "cuda" else cuda):
            torch.testing.assert_close(_to(ours(*args), CPU), expected)


@needs_cuda
@pytest.mark.parametrize("case", cases("test_cpu_gpu_parity"))
def test_cpu_gpu_parity(case: Case):
    cuda = torch.device("cuda", 0)
    _honour_torch_decorators("test_cpu_gpu_parity", case, cuda)
    if case.is_layer and not case.training and torch.backends.cudnn.enabled:
        # torch skips this too: cuDNN RNNs have no backward in eval mode (pytorch#79161).
        pytest.skip("cuDNN RNNs have no backward in eval mode, as torch's test notes")
    sample = case.sample(requires_grad=True)
    ours_cpu, _ = _build(case, sample)
    ours_cuda, _ = _build(case, sample, cuda)
    ours_cuda.load_state_dict(ours_cpu.state_dict())
    args = sample.forward_input.args
    args_cuda = _to(args, cuda)
    out, out_cuda = ours_cpu(*args), ours_cuda(*args_cuda)
    tol = {"atol": 5e-2, "rtol": 0} if case.dtype == torch.float32 else {"atol": 4e-4, "rtol": 0}
    torch.testing.assert_close(_to(out_cuda, CPU), out, **tol)
    grad_out = _grad_outputs(out)
    got = _grads(ours_cuda, args_cuda, out_cuda, _to(grad_out, cuda))
    torch.testing.assert_close(_to(got, CPU), _grads(ours_cpu, args, out, grad_out), **tol)
