"""``rnnkit train forecast``: :class:`ForecastTask`, the training loop's task - it reads the
data and splits it, builds the model, draws the batches and computes the loss, evaluates
on validation (the anchor check, the interval scale) and scores the test against
seasonal naive.

It ties the other modules together, and none of them imports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.deploy import ANCHORS, Forecast, scaled
from rnnkit.layers.members import Members
from rnnkit.tasks.base import Task, report_folder
from rnnkit.tasks.forecast.anchors import (
    AnchorCheck,
    anchor_check,
    anchor_forecasts,
    anchor_line,
    anchor_mase,
)
from rnnkit.tasks.forecast.api import plot_forecasts
from rnnkit.tasks.forecast.batches import Batch, Windows, _shared, check_targets
from rnnkit.tasks.forecast.features import prepare_series
from rnnkit.tasks.forecast.intervals import calibration, model_forecasts, recalibrated, recalibrates
from rnnkit.tasks.forecast.metrics import (
    Scores,
    Window,
    distinct_horizons,
    mase_scale,
    naive_forecasts,
    score,
    shown,
    training_end,
    window_mases,
    windows,
)
from rnnkit.tasks.forecast.model import ForecastModel, output_loss
from rnnkit.tasks.forecast.options import ForecastOptions
from rnnkit.tasks.forecast.rundata import (
    check_derived,
    derive,
    model_config,
    read_new,
    read_recorded,
)
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig

PLOTTED = 4  # series drawn in forecast.png


class ForecastTask(Task):
    name = "forecast"
    summary = (
        "time-series forecasting: one global recurrent model over many series, 80% "
        "intervals, scored against seasonal naive (default: M1 yearly)"
    )
    Options = ForecastOptions
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup_steps": 50,
        "eval_every": 100,
        "clip_norm": 1.0,
    }
    metric = "mase"
    higher_is_better = False
    item_name = "windows"
    extra_files = ("forecast.png",)
    # runs before --adapt and --test-data
    added_options: ClassVar[dict[str, Any]] = {"adapt": 0.0, "test_data": None}

    options: ForecastOptions

    @property
    def selects(self) -> bool:
        """A refit (``--train-until test``) trains on the validation windows: they choose
        nothing, and the model kept is the last."""
        return self.options.train_until != "test"

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        if not self.derived:
            data = read_new(o)
            self.derived = derive(o, data)
        else:
            check_derived(self.derived, "derived")
            data = read_recorded(self.derived)
        self.data = data
        self.values = [np.asarray(v, dtype=np.float64) for v in data.values]
        d = self.derived
        self.config = model_config(o, d)
        h, m, r = d["horizon"], d["seasonality"], d["origins"]
        lengths = [len(v) for v in self.values]
        self.valid = windows(lengths, h, r, "validation")
        self.test = windows(lengths, h, r, "test")
        if o.train_until == "test":  # a refit: every value before the first test origin
            self.ends = [max(0, n - h - r + 1) for n in lengths]
        else:
            self.ends = [training_end(n, h, r) for n in lengths]
        if not self.valid or not any(e >= 3 for e in self.ends):
            need = 2 * h + 2 * r + 1
            raise ValueError(
                f"{data.source}: the series are too short for --horizon {h} with --origins "
                f"{r}: a series needs at least {need} values (training, validation and test "
                f"each need their share); the longest has {max(lengths)}"
            )
        longest = max(w.origin for w in self.test)
        if m > 1 and m >= longest:
            # Seasonal naive and MASE's scale would fall back to lag 1 at every origin
            # (mase_scale, seasonal_naive): the season named would be used nowhere. Only a
            # season the user gave gets here: the data's falls back to none (derive).
            raise ValueError(
                f"{data.source}: --seasonality {m} is as long as every series' history at its last "
                f"test origin or longer (the longest holds {longest} values), so no "
                f"forecast could use the season; give --seasonality below {longest}, or 1 "
                "for none"
            )
        if not any(mase_scale(self.values[w.series][: w.origin], m) > 0 for w in self.valid):
            # Else every validation MASE is 0/0: no model would ever be kept (or saved).
            raise ValueError(
                f"{data.source}: MASE, the validation metric, is undefined: no series "
                f"changes at the seasonal lag (m = {m}) in the values before its validation "
                "forecasts, and MASE divides by the mean absolute change at that lag"
            )
        check_targets(data, self.values, self.ends, self.config)
        self.naive_valid = score(
            self.values, self.valid, naive_forecasts(self.values, self.valid, h, m), h, m
        )
        # What the network must beat, window by window (--margin).
        alone = anchor_forecasts(self.values, self.valid, h, m, self.config.anchor)
        self.anchor_valid = window_mases(self.values, self.valid, alone, h, m)
        self.check: AnchorCheck | None = None

    def describe(self) -> str:
        d = self.derived
        positions = sum(max(0, e - 1) for e in self.ends)
        refit = (
            " (a refit: training sees the validation values too, and they choose nothing)"
            if self.options.train_until == "test"
            else ""
        )
        return (
            f"{self.data.describe()}; horizon {d['horizon']}, seasonality "
            f"{d['seasonality']}{self.season_source()}, {d['origins']} origin(s) per series: "
            f"{len(self.test)} test "
            f"and {len(self.valid)} validation forecasts, {positions:,} training "
            f"positions{refit}{self.unscored()}; seasonal naive on validation: "
            f"{self.naive_valid.line()}; {anchor_line(d)}"
        )

    def season_source(self) -> str:
        """Where the seasonality came from, when not from the data as read now: the
        option, none where the data's season is longer than every test forecast's
        history, or the run's record (a run started before its file's dates gave one)."""
        m, own = self.derived["seasonality"], self.data.seasonality or 1
        if m == own:
            return ""
        if self.options.seasonality:
            return " (--seasonality)"
        if m == 1 and own >= max(w.origin for w in self.test):
            return f" (the data's {own} is as long as the history before any test forecast)"
        return f" (as the run recorded it; its data now gives {own})"

    def unscored(self) -> str:
        """The series with no test forecast, too short for one, named (they are left out
        of the test's scores, which would else not say so)."""
        scored = {w.series for w in self.test}
        names = [n for k, n in enumerate(self.data.names) if k not in scored]
        if not names:
            return ""
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        return (
            f" ({len(names)} series too short for a test forecast, which needs "
            f"{self.derived['horizon'] + 2} values, left out of the test: {shown})"
        )

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> ForecastModel:
        check_derived(self.derived, "derived")
        return ForecastModel(model_config(self.options, self.derived))

    def title(self, model: nn.Module) -> str:
        o, d = self.options, self.derived
        where = Path(d["source"].get("path", "")).name or d["source"].get("dataset", "")
        many = f"{o.members} x " if o.members > 1 else ""
        return (
            f"forecast {where}, h = {d['horizon']}: {many}{o.cell.upper()} {o.num_layers}x"
            f"{o.hidden_size}, {o.head} head"
        )

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> Windows:
        o = self.options
        prepared = [
            prepare_series(v[: max(e, 1)], self.config)
            for v, e in zip(self.values, self.ends, strict=True)
        ]
        return Windows(
            prepared, self.ends, o.context, o.batch_size, train.seed,
            distributed.rows(ctx, o.batch_size), o.members, ctx.world_size,
        )  # fmt: skip

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        b: Batch = batch
        # The task's own model, or DistributedDataParallel's wrapper around it.
        model = cast(ForecastModel, getattr(net, "module", net))
        K = model.config.members
        state = None
        if b.burn.size(0) > 0:
            with torch.no_grad():
                if K == 1:
                    _, state = model.rnn(b.burn.to(device), lengths=b.burn_lengths)
                else:  # each member over the values before its own windows
                    assert isinstance(model.rnn, Members)
                    burns = zip(model.rnn.layers, b.burn.to(device).chunk(K, 1),
                                b.burn_lengths.chunk(K), strict=True)  # fmt: skip
                    state = model.rnn.join_state([layer(x, lengths=n)[1] for layer, x, n in burns])
        target, mask = b.target.to(device), b.mask.to(device)
        shares = [None] * K if b.share is None else [float(v) for v in b.share]
        if K == 1:
            raw, _ = net(b.x.to(device), state, lengths=b.lengths)
            return _shared(output_loss(model, raw, target, mask), mask, shares[0])
        # Each member scored on its own windows (the mean of their losses), so that the
        # members train as independent networks would - not as one mixture fitted together.
        raws, _ = net(b.x.to(device), state, lengths=b.lengths, members=True)
        losses = zip(raws, target.chunk(K, 1), mask.chunk(K, 1), shares, strict=True)
        return torch.stack(
            [_shared(output_loss(model, r, t, m), m, s) for r, t, m, s in losses]
        ).mean()

    def items(self, batch: Any) -> int:
        return int(batch.lengths.numel())

    # ---- evaluation -------------------------------------------------------------------

    def scores(self, model: nn.Module, split: str) -> tuple[Scores, Scores]:
        """(model, seasonal naive) on the validation or test windows."""
        assert isinstance(model, ForecastModel)
        h, m = self.derived["horizon"], self.derived["seasonality"]
        scored = self.valid if split == "validation" else self.test
        if split == "test":
            fcs = self.test_forecasts(model, scored)
        else:  # scored with the factor evaluate() fitted on these windows
            fcs = model_forecasts(model, self.values, scored)
        ours = score(self.values, scored, fcs, h, m)
        if split == "validation":
            return ours, self.naive_valid
        naive = naive_forecasts(self.values, scored, h, m)
        return ours, score(self.values, scored, naive, h, m)

    @property
    def recalibrates(self) -> bool:
        """Whether test intervals are calibrated on every outcome known at their origin."""
        return recalibrates(self.options.calibrate, self.options.train_until)

    def test_forecasts(
        self, model: ForecastModel, scored: Sequence[Window], adapt: float | None = None
    ) -> list[Forecast]:
        """The forecasts the test scores and the plot show (``adapt``: :func:`recalibrated`'s;
        default ``--adapt``)."""
        if self.recalibrates:
            # ForecastOptions.__post_init__ sets a step where --adapt was not given.
            assert self.options.adapt is not None
            a = float(self.options.adapt) if adapt is None else adapt
            return recalibrated(model, self.values, scored, self.derived["origins"], adapt=a)
        return model_forecasts(model, self.values, scored)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation MASE, sMAPE and interval coverage of the forecasts this step would
        keep: the network's, or its anchor's where the network does not beat them by
        ``--margin`` (:func:`anchor_check`; ``network_mase`` is the network's own and
        ``correction`` the verdict); with ``--calibrate`` the interval scale is set first
        (the head's own coverage is reported as ``raw_coverage``)."""
        assert isinstance(model, ForecastModel)
        h, m = self.derived["horizon"], self.derived["seasonality"]
        o = self.options
        model.interval_scale.fill_(1.0)
        model.correction.fill_(1.0)
        raw = model_forecasts(model, self.values, self.valid)
        network = window_mases(self.values, self.valid, raw, h, m)
        self.check = None
        if self.selects:  # (a refit's validation values are training data: no check)
            self.check = anchor_check(
                network, self.anchor_valid, distinct_horizons(self.valid, h), o.margin
            )
            if not self.check.kept:  # the anchor's point forecasts, the network's widths
                model.correction.fill_(0.0)
                raw = model_forecasts(model, self.values, self.valid)
        if o.train_until == "test":  # the validation values were trained on: the given scale
            c = 1.0 if o.interval_scale is None else o.interval_scale
        else:
            c = calibration(self.values, self.valid, raw, h) if o.calibrate else 1.0
        model.interval_scale.fill_(c)
        ours = score(self.values, self.valid, [scaled(f, c) for f in raw], h, m)
        return {
            "mase": ours.mase,
            "smape": ours.smape,
            "coverage": ours.coverage,
            "raw_coverage": score(self.values, self.valid, raw, h, m).coverage,
            "interval_scale": c,
            "network_mase": float(np.nanmean(network)) if np.isfinite(network).any() else math.nan,
            "correction": float(model.correction),
        }

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        lines = [f"seasonal naive on validation: {self.naive_valid.line()}"]
        if self.options.train_until == "test":
            lines.append("(a refit: the validation values are training data)")
        elif self.options.calibrate:
            lines.append(
                f"80% intervals scaled by {metrics['interval_scale']:.3g}: the head's own "
                f"covered {metrics['raw_coverage']:.1%} of the validation values"
            )
        if self.check is not None:
            k = self.check
            verdict = (
                "kept"
                if k.kept
                else f"not lower by {self.options.margin:g} standard error(s): the "
                "model forecasts its anchor (with the network's intervals)"
            )
            lines.append(
                f"the network's MASE {shown(k.network)}, its anchor's alone "
                f"{shown(k.anchor)} (standard error of the difference {shown(k.error)}): "
                f"{verdict}"
            )
        return lines

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        lines = self.test_lines(model)
        path = self.plot(model, Path(run_dir) / "forecast.png")
        return [*lines, f"test forecasts of {min(PLOTTED, len(self.values))} series: {path}"]

    def report(self, model: nn.Module, run_dir: Any, out_dir: Any) -> list[str]:
        lines = self.test_lines(model)
        path = self.plot(model, report_folder(out_dir, "forecast.png") / "forecast.png")
        return [*lines, f"figure: {path}"]

    def test_lines(self, model: nn.Module) -> list[str]:
        ours, naive = self.scores(model, "test")
        d = self.derived
        test = d["source"].get("test")
        if test is not None:
            what = f"{Path(test['path']).name}: the next {d['horizon']} values of each of "
            what += f"{len(self.values)} series"
        elif d["origins"] == 1:
            what = f"the last {d['horizon']} values of each of {len(self.values)} series"
        else:
            what = f"{d['origins']} rolling origins x horizon {d['horizon']}"
        verdict = "better than" if ours.mase < naive.mase else "not better than"
        lines = [
            f"test ({what}, {ours.windows} forecasts):",
            f"  model:          {ours.line()}",
            f"  seasonal naive: {naive.line()} (m = {d['seasonality']})",
        ]
        anchor = model.config.anchor if isinstance(model, ForecastModel) else ANCHORS[0]
        if anchor != ANCHORS[0]:  # what the network adds to the forecast it corrects
            alone = anchor_mase(self.values, self.test, d["horizon"], d["seasonality"], anchor)
            if alone is not None:
                lines.append(f"  its anchor alone ({anchor}): MASE {shown(alone)}")
        if isinstance(model, ForecastModel) and float(model.correction) == 0.0:
            lines.append(
                f"  (the model's point forecasts are its anchor's, {anchor}: the network "
                "did not beat them on validation by --margin)"
            )
        step = float(self.options.adapt or 0.0)
        if self.recalibrates and step > 0:
            lines.append(
                "  (80% intervals recalibrated at each origin, their level adapting from "
                f"the first test origin on: --adapt {step:g})"
            )
        lines.append(
            f"  the model is {verdict} seasonal naive in MASE ({shown(ours.mase / naive.mase, 2)}x "
            "its error)"
        )
        return lines

    def plot(self, model: nn.Module, path: Path) -> Path:
        """The test forecasts of the first series with their intervals."""
        assert isinstance(model, ForecastModel)
        h = self.derived["horizon"]
        picks = [w for w in self.test if w.origin == len(self.values[w.series]) - h][:PLOTTED]
        fcs = self.test_forecasts(model, picks)
        return plot_forecasts(
            path,
            [self.data.names[w.series] for w in picks],
            [self.values[w.series] for w in picks],
            [w.origin for w in picks],
            fcs,
            f"{self.title(model)}: test forecasts, 80% intervals",
        )
