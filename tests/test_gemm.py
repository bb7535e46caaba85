"""Large float32 products through oneDNN (rnnkit.kernels.gemm and fused_cpu.cpp's product).

The routing changes where a product runs, not what it computes: F.linear's values and
gradients (float32 rounding apart), the fused layers' outputs and gradients against the
reference loop, and the products really reaching oneDNN's operator at the sizes where
it pays (seen in torch's profiler).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import rnnkit
from rnnkit.kernels import fused, gemm

pytestmark = pytest.mark.skipif(gemm._operator() is None, reason="no oneDNN in this torch build")


@pytest.fixture(autouse=True)
def _onednn_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the products to oneDNN whatever this CPU is (by default only AMD's are)."""
    monkeypatch.setenv("RNNKIT_ONEDNN", "1")


@pytest.mark.parametrize(
    ("setting", "vendor", "on"),
    [
        (None, "AuthenticAMD", True),
        (None, "GenuineIntel", False),
        (None, "", False),
        ("1", "GenuineIntel", True),
        ("0", "AuthenticAMD", False),
        ("yes", "GenuineIntel", False),
    ],
)
def test_enabled_by_the_cpu_unless_rnnkit_onednn_says(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, vendor: str, on: bool
) -> None:
    """oneDNN's GEMM was measured the faster on an AMD EPYC and the slower on an Intel Xeon
    (the module's docstring): by default only AMD CPUs route to it."""
    if setting is None:
        monkeypatch.delenv("RNNKIT_ONEDNN")
    else:
        monkeypatch.setenv("RNNKIT_ONEDNN", setting)
    monkeypatch.setattr(gemm, "cpu_vendor", lambda: vendor)
    assert gemm.enabled() is on
    assert gemm.pays(torch.zeros(1), gemm.MIN_MACS) is on


def test_cpu_vendor_reads_this_machines_cpu() -> None:
    vendor = gemm.cpu_vendor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            named = [line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")]
        assert vendor == (named[0] if named else "")
    assert isinstance(vendor, str)


def test_pays_only_for_large_float32_cpu_products() -> None:
    x32, x64 = torch.zeros(1), torch.zeros(1, dtype=torch.float64)
    assert gemm.pays(x32, gemm.MIN_MACS)
    assert not gemm.pays(x32, gemm.MIN_MACS - 1)
    assert not gemm.pays(x64, 10 * gemm.MIN_MACS)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_f_linear_with_its_gradients(bias: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 50, 128, requires_grad=True)
    w = torch.randn(512, 128, requires_grad=True)
    b = torch.randn(512, requires_grad=True) if bias else None
    assert gemm.pays(x, 7 * 50 * 128 * 512)
    leaves = [t for t in (x, w, b) if t is not None]
    ours, want = gemm.linear(x, w, b), F.linear(x, w, b)
    torch.testing.assert_close(ours, want, rtol=1e-4, atol=1e-4)
    dy = torch.randn_like(want)
    got = torch.autograd.grad(ours, leaves, dy, create_graph=True)
    expected = torch.autograd.grad(want, leaves, dy, create_graph=True)
    for a, e in zip(got, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-3)
    # a double backward runs through the same products
    second = torch.autograd.grad(got[0].square().sum(), w)[0]
    torch.testing.assert_close(
        second, torch.autograd.grad(expected[0].square().sum(), w)[0], rtol=1e-4, atol=1e-2
    )


def test_small_or_float64_products_are_f_linear_itself() -> None:
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    assert torch.equal(gemm.linear(x, w), F.linear(x, w))
    f64 = torch.float64
    x64, w64 = torch.randn(300, 400, dtype=f64), torch.randn(500, 400, dtype=f64)
    assert torch.equal(gemm.linear(x64, w64), F.linear(x64, w64))


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(not fused.available(), reason="no C++ compiler here")
@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(128, 128, layer_norm=True, zoneout=0.1),
        lambda: rnnkit.LSTM(128, 128, zoneout=0.2, bidirectional=True),
        lambda: rnnkit.GRU(128, 128, zoneout=0.1, num_layers=2),
        lambda: rnnkit.RNN(128, 256, zoneout=0.1),
    ],
)
def test_a_large_fused_layer_runs_its_products_on_onednn_and_equals_the_reference(make) -> None:
    """B = 64: every recurrent product is 64 x 128 by 128 x G*128, past MIN_MACS."""
    torch.manual_seed(0)
    ours = make()
    ref = make()
    ref.load_state_dict(ours.state_dict())
    ref.backend = "reference"
    ours.eval(), ref.eval()
    x, lengths = torch.randn(12, 64, 128), torch.randint(1, 13, (64,))
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, _ = layer(xi, lengths=lengths)
        grads = torch.autograd.grad(out.square().sum(), [xi, *layer.parameters()])
        results.append((out, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)

    def step() -> None:
        out, _ = ours(x.clone().requires_grad_())
        out.sum().backward()

    assert ours.backend_for(x).name == "fused"
    assert any("_linear_pointwise" in op for op in _ops(step))


@pytest.mark.skipif(not fused.available(), reason="no C++ compiler here")
@pytest.mark.parametrize("vendor", ["AuthenticAMD", "GenuineIntel"])
def test_the_fused_kernels_follow_the_choice_at_each_call(
    monkeypatch: pytest.MonkeyPatch, vendor: str
) -> None:
    """The C++ products read the choice Python makes at each call (``set_onednn``), so a
    change of ``RNNKIT_ONEDNN`` or of the CPU's rule after the kernels were built counts."""
    monkeypatch.delenv("RNNKIT_ONEDNN")
    monkeypatch.setattr(gemm, "cpu_vendor", lambda: vendor)
    layer = rnnkit.GRU(128, 128, zoneout=0.1)
    x = torch.randn(6, 64, 128)

    def step() -> None:
        out, _ = layer(x.clone().requires_grad_())
        out.sum().backward()

    ops = _ops(step)
    assert any("_linear_pointwise" in op for op in ops) is (vendor == "AuthenticAMD")
    monkeypatch.setenv("RNNKIT_ONEDNN", "1" if vendor == "GenuineIntel" else "0")
    ops = _ops(step)
    assert any("_linear_pointwise" in op for op in ops) is (vendor == "GenuineIntel")


@pytest.mark.skipif(not fused.available(), reason="no C++ compiler here")
def test_rnnkit_onednn_0_keeps_every_product_on_torchs_blas() -> None:
    code = (
        "import torch, rnnkit\n"
        "from torch.profiler import profile\n"
        "layer = rnnkit.LSTM(128, 128, zoneout=0.1).eval()\n"
        "with profile() as prof:\n"
        "    out, _ = layer(torch.randn(6, 64, 128, requires_grad=True))\n"
        "    out.sum().backward()\n"
        "print(sorted({e.key for e in prof.key_averages()}))\n"
    )
    env = {**os.environ, "RNNKIT_ONEDNN": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "aten::mm" in done.stdout and "_linear_pointwise" not in done.stdout
