"""Training: the one loop and the one run folder that every task stands on.

- :func:`train` starts or resumes a run of a registered task (what ``rnnkit train`` runs);
- :func:`fit` trains your own model on your own ``DataLoader`` with the same loop;
- :func:`load` returns the trained model of any run folder;
- :func:`save_pretrained`, :func:`load_pretrained` write and read pretrained folders, and
  :func:`write_card` regenerates a folder's model card (README.md);
- :class:`Trainer` is the loop itself; :class:`TrainConfig` its options.
"""

from rnnkit.train.card import write_card
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char, bits_per_char_of_text
from rnnkit.train.fit import FitTask, LoaderBatches, accuracy, fit
from rnnkit.train.loop import Summary, Trainer, TrainingDivergedError
from rnnkit.train.pretrained import load_pretrained, save_pretrained
from rnnkit.train.run import load, train
from rnnkit.train.runfolder import RunConfig, RunFolder, RunFolderError
from rnnkit.train.tbptt import StreamWindows, detach_state, truncated_bptt, windows

__all__ = [
    "FitTask",
    "LoaderBatches",
    "RunConfig",
    "RunFolder",
    "RunFolderError",
    "StreamWindows",
    "Summary",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "accuracy",
    "bits_per_char",
    "bits_per_char_of_text",
    "detach_state",
    "fit",
    "load",
    "load_pretrained",
    "save_pretrained",
    "train",
    "truncated_bptt",
    "windows",
    "write_card",
]
