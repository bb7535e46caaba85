"""rnnkit's custom operators carry in their names the revision of their shape functions and
autograd formulas, so that graphs torch.compile cached on disk for another revision are not
reused (``rnnkit.kernels.ops``).

torch's compile caches key a graph on the operators' names only. When the shape functions
of stop-40's layout fix changed under unchanged names, a machine whose cache held graphs
compiled before the fix failed every compiled training step of a ``batch_first`` layer:
"expected size 7==7, stride 24==8 ... Error in op:
torch.ops.rnnkit.native_rnn_backward.default" - while the same tests passed with an empty
cache. The fingerprint below fails this test whenever those functions change, until
``REVISION`` is raised and the new fingerprint recorded.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import rnnkit  # noqa: F401 - registers the operators
from rnnkit.backends import opaque
from rnnkit.kernels import native_rnn as native_rnn_module
from rnnkit.kernels import ops, scan

# The operators with a gradient, and their backward operators.
FORWARD = [native_rnn_module.native_rnn, opaque.cell_loop, scan._scan_op]
BACKWARD = [
    native_rnn_module.native_rnn_backward, opaque.cell_loop_backward, scan._scan_backward_op,
]  # fmt: skip
NAMES = [
    "native_rnn", "cell_loop", "linear_scan",
    "native_rnn_backward", "cell_loop_backward", "linear_scan_backward",
]  # fmt: skip

# revision -> fingerprint of the operators' contract. Keep the entries of past revisions.
FINGERPRINTS = {2: "380c37e0a1385244"}

SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


def _tokens(fn: Callable[..., Any]) -> str:
    """fn's source without comments or white space: the same text on Pythons 3.10 to 3.13
    (3.12 tokenizes an f-string in parts, dropping the spaces inside its braces)."""
    source = textwrap.dedent(inspect.getsource(fn))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return "".join("".join(t.string.split()) for t in tokens if t.type not in SKIPPED)


def _contract() -> list[str]:
    """What a compiled graph bakes in of each operator: its shape function (whose
    signature is the operator's schema) with the helper they share, and for a forward
    operator the autograd formula AOTAutograd traces into the backward graph."""
    parts = [_tokens(native_rnn_module.like)]
    for op in [*FORWARD, *BACKWARD]:
        parts.append(_tokens(op._abstract_fn))
    for op in FORWARD:
        parts += [_tokens(op._setup_context_fn), _tokens(op._backward_fn)]
    return parts


def fingerprint() -> str:
    return hashlib.sha256("\n".join(_contract()).encode()).hexdigest()[:16]


def test_the_revision_is_raised_whenever_a_shape_function_or_autograd_formula_changes() -> None:
    got = fingerprint()
    assert got == FINGERPRINTS.get(ops.REVISION), (
        f"the shape functions or autograd formulas of rnnkit's operators changed"
        f" (fingerprint {got}): raise rnnkit.kernels.ops.REVISION to {ops.REVISION + 1} and"
        f" add {{{ops.REVISION + 1}: {got!r}}} to FINGERPRINTS here, so that graphs"
        f" torch.compile cached for revision {ops.REVISION} are not reused"
    )


def test_every_operator_is_named_with_the_revision() -> None:
    names = [op._name for op in [*FORWARD, *BACKWARD]]
    assert names == [f"{n}_r{ops.REVISION}" for n in NAMES]
    assert ops.op_name("native_rnn") == f"rnnkit::native_rnn_r{ops.REVISION}"
    for n in NAMES:
        assert hasattr(torch.ops.rnnkit, f"{n}_r{ops.REVISION}")


def test_the_fingerprint_sees_a_changed_shape_function(monkeypatch: pytest.MonkeyPatch) -> None:
    def copies_strides(*args: Any) -> tuple[Any, ...]:
        x, hx, weights = args[1:4]  # revision 1's promise: the inputs' strides
        return torch.empty_like(x), [torch.empty_like(h) for h in hx], weights

    backward = native_rnn_module.native_rnn_backward
    monkeypatch.setattr(backward, "_abstract_fn", copies_strides)
    assert fingerprint() != FINGERPRINTS[ops.REVISION]


# A training step compiled in a fresh process. "old": the operators as they were before
# names carried a revision (unsuffixed; shape functions copying the inputs' strides);
# "old names": today's shape functions under those names; "current": rnnkit as it is.
STEP = """
import sys, types
import torch
if sys.argv[1] != "current":  # in place before rnnkit's modules import it
    ops = types.ModuleType("rnnkit.kernels.ops")
    ops.op_name = lambda name: "rnnkit::" + name
    sys.modules["rnnkit.kernels.ops"] = ops
import rnnkit
import rnnkit.kernels.native_rnn as k
if sys.argv[1] == "old":
    k.like = torch.empty_like
torch.manual_seed(0)
layer = rnnkit.LSTM(3, 4, num_layers=2, batch_first=True)
x = torch.randn(2, 5, 3, requires_grad=True)
step = torch.compile(lambda x: layer(x, lengths=torch.tensor([5, 3]))[0].sum().backward())
step(x)
print("trained")
"""


def _step(version: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", STEP, version], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


STALE = "AssertionError: expected size 5==5, stride 6==3 at dim=0"


@pytest.mark.slow
def test_graphs_cached_before_a_revision_are_not_reused(tmp_path: Path) -> None:
    """Processes sharing one compile cache. The first compiles a training step of the
    operators as they were before the layout fix; the step fails (the bug that fix
    removed), but its graph stays in the cache. Today's shape functions under the old
    names reuse that graph and fail alike, though they train in a cache of their own;
    under the revised names the graph is compiled afresh and trains."""
    old = _step("old", tmp_path / "shared")
    assert STALE in old.stderr, old.stderr[-2000:]
    assert _step("old names", tmp_path / "own").stdout.strip() == "trained"
    kept_names = _step("old names", tmp_path / "shared")
    assert STALE in kept_names.stderr, kept_names.stderr[-2000:]
    current = _step("current", tmp_path / "shared")
    assert current.returncode == 0, current.stderr[-2000:]
    assert current.stdout.strip() == "trained"
