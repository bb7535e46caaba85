"""Leaf operations under the cells and backends: they import torch, and of rnnkit only the
operators' names (``rnnkit.kernels.ops``)."""
