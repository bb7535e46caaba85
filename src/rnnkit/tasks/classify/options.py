"""The options of ``rnnkit train classify``: :class:`ClassifyOptions` (the data, its
splits and the model), each with its default, its help and its checks, and the names they
choose from: the datasets aeon ships and the treatments of missing values.

Apart from the task because they are its interface, read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit import _options
from rnnkit._options import option
from rnnkit.models.lm import CELLS
from rnnkit.tasks.classify.model import POOLS

# The classification sets aeon ships with official _TRAIN/_TEST .ts files, under
# aeon/datasets/data/NAME/ (its _eq variants and the regression sets are left out).
DATASETS = (
    "JapaneseVowels",
    "BasicMotions",
    "ArrowHead",
    "GunPoint",
    "ItalyPowerDemand",
    "PickupGestureWiimoteZ",
    "ACSF1",
    "OSULeaf",
    "Covid3Month_disc",
    "UnitTest",
)
DEFAULT_DATASET = "JapaneseVowels"
TEST_FRACTION = 0.25  # the default --test-fraction: any other value asks for a held-out split
MISSING = ("ffill", "error")
AUTO_STEPS = 64  # --downsample 0 shortens the longest training series to at most this


@dataclass
class ClassifyOptions:
    """The classification task's data and model options."""

    # -- the data
    dataset: str | None = option(
        None,
        "a UEA/UCR dataset aeon ships, read from its official _TRAIN/_TEST .ts files "
        f"(default {DEFAULT_DATASET} when --data is not given)",
        choices=DATASETS,
    )
    data: str | None = option(
        None,
        "your own labelled .ts file (UEA/UCR format) to train on, instead of --dataset",
        metavar="FILE",
    )
    test_data: str | None = option(
        None,
        "your own .ts test file (default: a seeded stratified --test-fraction of --data is "
        "held out)",
        metavar="FILE",
    )
    # Its range, (0, 1), is checked in __post_init__: option() has no open low bound, and
    # a declared [0, 1) would have the parser announce a range that 0 is not in.
    test_fraction: float = option(
        TEST_FRACTION,
        "share of --data held out as the test split when --test-data is not given, in (0, 1)",
    )
    val_fraction: float = option(
        0.2,
        "share of the training series held out (stratified) to validate and pick the best "
        "model; 0: none - every training series trains, the training series are scored and "
        "the last model is kept (a refit)",
        low=0,
        high=0.9,
    )
    split_seed: int = option(
        0, "seeds the stratified test and validation splits", low=0, high=2**63 - 1
    )
    missing: str = option(
        "ffill",
        "missing values ('?' or NaN): ffill carries the last value forward within the "
        "series (a leading gap takes the first value); error refuses the file",
        choices=MISSING,
    )
    # -- the model
    cell: str = option("gru", "recurrent cell", choices=tuple(CELLS))
    hidden_size: int = option(128, "hidden units per layer and direction H", flag="--hidden",
                              low=1, high=65536)  # fmt: skip
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    bidirectional: bool = option(True, "read each series in both directions")
    pool: str = option(
        "mean",
        "read-out: the last state (last), or the mean or maximum of the outputs over the "
        "valid steps",
        choices=POOLS,
    )
    dropout: float = option(
        0.1,
        "dropout between stacked layers and before the output layer",
        low=0,
        high=1,
        open_high=True,
    )
    downsample: int = option(
        0,
        "average every K steps into one before the recurrent layer (piecewise aggregate "
        f"approximation); 0: the smallest K that leaves the longest training series at most "
        f"{AUTO_STEPS} steps",
        low=0,
        high=10**6,
    )
    noise: float = option(
        1.5,
        "standard deviation of Gaussian noise added to the normalised inputs in training "
        "(0: none), a regulariser for small training sets; 1.5 was chosen on JapaneseVowels, "
        "smooth univariate shapes want less (0.5)",
        low=0,
        high=10,
    )
    members: int = option(
        1,
        "train an ensemble of this many independent networks together and average their "
        "class probabilities (a deep ensemble; each costs one network's time)",
        low=1,
        high=64,
    )
    batch_size: int = option(32, "series per step, summed over all processes", low=1, high=10**6)

    def __post_init__(self) -> None:
        _options.check(self)
        for flag, value in (("--data", self.data), ("--test-data", self.test_data)):
            if value is not None and not value.strip():
                raise ValueError(f"{flag} must name a .ts file; got {value!r}")
        if self.dataset is not None and self.data is not None:
            raise ValueError(
                f"give --dataset or --data, not both; got --dataset {self.dataset} and "
                f"--data {self.data}"
            )
        if self.test_data is not None and self.data is None:
            raise ValueError("--test-data needs --data (the training file of your own data)")
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"--test-fraction must be a finite number in (0, 1); got {self.test_fraction!r}"
            )
