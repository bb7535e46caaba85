#!/usr/bin/env bash
# rnnkit's CUDA kernels on a machine with a GPU, as one short run (about 5 minutes on one
# GPU): the kernels' tests there, then the benchmarks timed to the end of the queued work.
# Needs torch's CUDA build, which brings Triton; prints the GPU's name first.
#
#     bash benchmarks/gpu_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
quick="${1:-}"
python - <<'PY'
import torch

assert torch.cuda.is_available(), "no CUDA device: this script is for a machine with a GPU"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
PY
# The Triton kernels against the reference loops, on the GPU (no interpreter), and the
# layers' CUDA cases of the conformance and torch.nn behaviour tests.
python -m pytest -q -o addopts= tests/test_fused_cuda.py tests/test_minimal.py \
    tests/test_torch_nn_behaviours.py tests/test_autocast.py
python benchmarks/bench_layers.py --options --device cuda ${quick:+--quick}
python benchmarks/bench_layers.py --gru --device cuda ${quick:+--quick}
python benchmarks/bench_mingru.py --device cuda ${quick:+--quick}
