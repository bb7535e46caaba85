"""The cost of recalibrating a forecaster's intervals over a long stream.

``rnnkit.deploy.Recalibration`` scores every arriving value against each forecast of it
still open (``horizon`` scores per value) and gives each new forecast the conformal factor
of every score so far. It keeps the scores in sorted blocks (``SortedScores``), so that
the factor is one walk over the blocks; the baseline is the same recalibration with the
factor taken afresh from all the scores at each update (``conformal_factor`` over a
list: a partition of everything so far). Both run the same stream of N values (random
errors against fixed intervals, as a forecaster's would be), interleaved, and the factors
they give are checked to be equal.

    python benchmarks/recalibration.py                   # N = 1000, 4000, 8000; horizon 24
    python benchmarks/recalibration.py --values 20000 --repeats 1
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

import _args
from _timing import interleaved_medians, machine
from rnnkit.deploy import Forecast, Recalibration, conformal_factor


class FullQuantile(Recalibration):
    """The baseline: every score in a list, the factor recomputed from all of them."""

    def __init__(self, horizon: int, validated: float) -> None:
        super().__init__(horizon, validated)
        self.scores: list[float] = []

    @property
    def factor(self) -> float:
        return conformal_factor(self.scores) if self.scores else self.validated

    def score(self, ratios: Sequence[float], factors: Sequence[float]) -> None:
        self.scores += [float(r) for r in ratios]


def stream(kind: type[Recalibration], values: np.ndarray, horizon: int) -> list[float]:
    """Recalibrate over ``values``: each step a value arrives, then a new forecast is added;
    the factors given to the forecasts."""
    r = kind(horizon, 1.0)
    zero = np.zeros(horizon)
    factors = []
    for t, v in enumerate(values):
        r.observe(t, float(v))
        f = r.add(t + 1, Forecast(zero, zero - 1.28, zero + 1.28))
        factors.append(float(f.upper[0]) / 1.28)
    return factors


def scored(n: int, horizon: int) -> int:
    """Scores in a stream of n values: the value at t meets the forecasts from 1..t still
    open (at most ``horizon``)."""
    return sum(min(t, horizon) for t in range(n))


def main(argv: list[str] | None = None) -> int:
    p = _args.parser(__doc__.splitlines()[0])
    p.add_argument("--values", type=_args.listed(_args.positive_int, "stream lengths"),
                   default="1000,4000,8000", help="stream lengths, comma-separated")  # fmt: skip
    p.add_argument("--horizon", type=_args.positive_int, default=24)
    p.add_argument("--repeats", type=_args.positive_int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"horizon {args.horizon}; {machine()}")
    head = ("values", "scores", "sorted blocks (s)", "full quantile (s)", "ratio")
    print("{:>8} {:>9} {:>18} {:>18} {:>7}".format(*head))
    for n in args.values:
        values = rng.normal(size=n)
        ours = stream(Recalibration, values, args.horizon)
        if ours != stream(FullQuantile, values, args.horizon):
            raise AssertionError("the two recalibrations gave different factors")
        # bound first: given the parameter's type as context, mypy cannot infer a lambda
        # with a default argument, though the lambdas are callables of no argument
        fns = {
            "ours": lambda v=values: stream(Recalibration, v, args.horizon),
            "full": lambda v=values: stream(FullQuantile, v, args.horizon),
        }
        t = interleaved_medians(fns, repeats=args.repeats, warmup=0)
        scores = scored(n, args.horizon)
        print(f"{n:8d} {scores:9,d} {t['ours']:18.3f} {t['full']:18.3f} "
              f"{t['full'] / t['ours']:6.1f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
