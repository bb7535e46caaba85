"""Data that works offline: task generators and corpora read from what is installed, and
:func:`pad_collate` for your own variable-length sequences."""

from rnnkit.data.collate import pad_collate

__all__ = ["pad_collate"]
