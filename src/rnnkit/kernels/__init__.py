"""Leaf operations under the cells and backends: they import torch and nothing of rnnkit."""
