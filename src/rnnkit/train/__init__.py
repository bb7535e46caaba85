"""Training: truncated BPTT over streams, checkpoints in a run folder, DDP.

``train(...)`` is what ``rnnkit train`` runs; :class:`Trainer` is the loop itself.
"""

from rnnkit.train.checkpoint import RunConfig, load
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char, bits_per_char_of_text
from rnnkit.train.loop import Summary, Trainer, prepare_new_run, prepare_resume, train
from rnnkit.train.tbptt import StreamWindows, detach_state, truncated_bptt, windows

__all__ = [
    "RunConfig",
    "StreamWindows",
    "Summary",
    "TrainConfig",
    "Trainer",
    "bits_per_char",
    "bits_per_char_of_text",
    "detach_state",
    "load",
    "prepare_new_run",
    "prepare_resume",
    "train",
    "truncated_bptt",
    "windows",
]
