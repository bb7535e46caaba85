"""The configuration of a forecaster: :class:`ForecastConfig`, everything that builds a
:class:`~rnnkit.tasks.forecast.model.ForecastModel` (stored in a run's config.json), and
the heads it names.

Apart from the model because the features, the anchors, the options and the task read
it too, and none of them needs the network to do so.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.deploy import ANCHORS
from rnnkit.models.lm import CELLS

HEADS = ("quantile", "gaussian")


@dataclass
class ForecastConfig:
    """Everything that builds a :class:`ForecastModel` (stored in the run's config)."""

    horizon: int
    seasonality: int = 1
    scale_window: int = 1
    head: str = "quantile"
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    members: int = 1
    anchor: str = ANCHORS[0]  # what the outputs are relative to (rnnkit.deploy.ANCHORS)

    def __post_init__(self) -> None:
        if self.anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}; got {self.anchor!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {self.head!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")
        names = ("horizon", "seasonality", "scale_window", "hidden_size", "num_layers", "members")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1); got {d!r}")
