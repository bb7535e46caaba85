"""The names of rnnkit's custom operators, which carry the revision of their contract.

torch.compile keeps compiled graphs on disk (inductor's FX graph cache and the AOTAutograd
cache, under ``TORCHINDUCTOR_CACHE_DIR``) and reuses them across processes and installs.
A cached graph bakes in what each opaque operator's shape function promised (the sizes
and strides inductor asserts on every call) and the backward graph its autograd formula
traced, but the cache key holds only the operator's name: torch hashes neither function.
A release that changes a shape function under the same name therefore runs graphs cached
by the old release, which assert the old layout ("expected size 7==7, stride 24==8 ...
Error in op: torch.ops.rnnkit.native_rnn_backward.default").

So every operator is named with ``REVISION``, raised whenever a shape function or an
autograd formula of any of them changes; ``tests/test_custom_op_revision.py`` keeps a
fingerprint of those functions for each revision and fails until it is raised.

Revisions: 1 (unsuffixed names) - shape functions copied the inputs' strides; 2 - they
promise contiguous outputs (``rnnkit.kernels.native_rnn.like``).
"""

from __future__ import annotations

REVISION = 2


def op_name(name: str) -> str:
    """The qualified name of rnnkit's operator ``name``: ``rnnkit::<name>_r<REVISION>``."""
    return f"rnnkit::{name}_r{REVISION}"
