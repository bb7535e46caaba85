"""Parameters, time and results of the recurrent cells side by side (chapter 10.17).

The chapter says GRUs have fewer parameters than LSTMs ("as they lack an output gate"),
need less computation and perform similarly. Per layer the weights are G·H·(I + H) plus
2·G·H biases, with G = 1 (RNN), 3 (GRU), 4 (LSTM) gate blocks — the GRU's saving is one
block of four, whatever the sizes. Two comparisons answer the claim fairly:

- equal hidden size H: what the chapter compares, and what a drop-in swap gives;
- equal parameter budget: each cell's H solved so its parameter count matches the LSTM's,
  the comparison that separates "fewer parameters" from "better use of them".

Times are taken on random inputs of size I; the results are on the adding problem, whose
two features a trained linear layer embeds into I (so a cell without a recurrent matrix,
whose parameters grow only linearly in H, is not compared at a degenerate I = 2).

Cells are listed by :func:`available_cells`; a new layer joins the comparison by being
added there (minGRU/minLSTM join automatically when rnnkit provides them).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

import rnnkit
import rnnkit.layers
from rnnkit.explain import _memory
from rnnkit.explain.gradient_flow import BASELINE_MSE, LastStep, train_adding

Builder = Callable[[int, int], nn.Module]  # (input_size, hidden_size) -> layer


@dataclass(frozen=True)
class CellKind:
    name: str
    build: Builder


def available_cells() -> list[CellKind]:
    """The layers compared: RNN, GRU, LSTM, then MinGRU and MinLSTM where rnnkit has them."""
    cells = [
        CellKind("RNN tanh", lambda i, h: rnnkit.RNN(i, h)),
        CellKind("GRU", lambda i, h: rnnkit.GRU(i, h)),
        CellKind("LSTM", lambda i, h: rnnkit.LSTM(i, h)),
    ]
    for name in ("MinGRU", "MinLSTM"):
        layer_class = getattr(rnnkit.layers, name, None)
        if layer_class is not None:
            cells.append(CellKind(name, _builder(layer_class)))
    return cells


def _builder(layer_class: type[rnnkit.RecurrentLayer]) -> Builder:
    """A :data:`Builder` of ``layer_class`` (a closure per class, bound here)."""
    return lambda i, h: layer_class(i, h)


def _checked_cells(cells: object) -> list[CellKind]:
    """``cells`` as a non-empty list of :class:`CellKind`: a name ("GRU") ended in an
    AttributeError, an empty list in an IndexError when the result was reported."""
    if not isinstance(cells, (tuple, list)) or not cells:
        raise TypeError(
            "compare: cells must be a non-empty list of CellKind (see available_cells()); "
            f"got {cells!r}"
        )
    for kind in cells:
        if not isinstance(kind, CellKind):
            raise TypeError(
                f"compare: cells must hold CellKind entries (see available_cells()); got {kind!r}"
            )
    return list(cells)


# Peak resident memory on the CPU, measured: ten layers (each cell at H and at the LSTM's
# parameter count P) keep their weights and gradients, ~72 B per parameter of P; a timed
# training step holds ~25 B per step, sample and unit of G·H, and a layer at P has at most
# G·H = P/(I+1) units in its gates (a minGRU's 2·H·(I+1) parameters are all input weights);
# training on the adding problem adds batches of 32 and 256 at T = length (~2.9 KiB·T·W).
MEMORY_RULE = (
    "96 MiB + 96 B·P + 28 B·W·(T'·B + 160·T) within 2 GiB, P = 4H·(I + H + 2) the LSTM's "
    "parameters, W = P/(I + 1), T' the longest of T and the scaling lengths, 160·T only "
    "with steps > 0"
)


def memory_estimate(
    input_size: int, hidden: int, batch: int, longest: int, length: int, steps: int
) -> int:
    """Bytes ``run_compare`` holds at its peak, about; ``longest`` the longest scaling length."""
    P = 4 * hidden * (input_size + hidden + 2)
    W = P // (input_size + 1) + 1
    trained = 160 * length if steps > 0 else 0
    return 96 * 2**20 + 96 * P + 28 * W * (max(length, longest) * batch + trained)


def check_memory(sizes: dict[str, int], steps: int, *, flags: bool = False, shown: str) -> None:
    """Refuse sizes past the memory bound, before any work. ``sizes`` holds input_size,
    hidden, batch, the longest scaling length (0 for none) and length in that order,
    under their API names or (``flags``) their flags; ``shown`` writes the scaling lengths."""
    least = (1, 1, 1, 0, 1)
    order = [(name, v, low) for (name, v), low in zip(sizes.items(), least, strict=True)]
    _memory.check(
        "compare",
        order,
        lambda i, h, b, s, t: memory_estimate(i, h, b, s, t, steps),
        MEMORY_RULE,
        flags=flags,
        shown={order[3][0]: shown},
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hidden_for_budget(kind: CellKind, input_size: int, budget: int) -> int:
    """The hidden size whose parameter count is closest to ``budget``.

    A recurrent layer's count is a polynomial of degree at most 2 in H (the H² of W_hh, the
    H·I of W_ih, the biases), so three tiny layers give its coefficients exactly.
    """
    counts = [count_parameters(kind.build(input_size, h)) for h in (1, 2, 3)]
    a = (counts[2] - 2 * counts[1] + counts[0]) / 2
    b = counts[1] - counts[0] - 3 * a
    c = counts[0] - a - b
    root = (
        (-b + math.sqrt(b * b - 4 * a * (c - budget))) / (2 * a)
        if a > 0
        else (budget - c) / b  # linear in H: a layer without a recurrent matrix
    )
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(candidates, key=lambda h: abs(a * h * h + b * h + c - budget))


def time_layers(layers: list[nn.Module], x: Tensor, repeats: int) -> list[tuple[float, float]]:
    """Median milliseconds of a training step (forward + backward) and of an inference.

    The layers take turns within each repeat, so a change in the load of a shared
    machine during the run slows all of them alike instead of one.
    """

    def train_step(layer: nn.Module) -> None:
        layer.zero_grad(set_to_none=True)
        out, _ = layer(x)
        out.sum().backward()

    def infer(layer: nn.Module) -> None:
        with torch.no_grad():
            layer(x)

    times: list[tuple[list[float], list[float]]] = [([], []) for _ in layers]
    for layer in layers:  # warm-up: first-call allocations and kernel selection
        train_step(layer)
        infer(layer)
    for _ in range(repeats):
        for layer, (train_times, infer_times) in zip(layers, times, strict=True):
            for fn, out in ((train_step, train_times), (infer, infer_times)):
                start = time.perf_counter()
                fn(layer)
                out.append(time.perf_counter() - start)
    return [(1000 * statistics.median(tr), 1000 * statistics.median(inf)) for tr, inf in times]


@dataclass
class Row:
    name: str
    hidden: int
    params: int
    train_ms: float
    infer_ms: float
    mse: float | None = None  # adding-problem validation MSE after training, if measured


@dataclass
class CompareResult:
    input_size: int
    length: int
    batch: int
    steps: int
    threads: int
    equal_hidden: list[Row]
    equal_budget: list[Row]
    scaling_lengths: list[int] = field(default_factory=list)  # T of the scaling measurement
    scaling: dict[str, list[float]] = field(default_factory=dict)  # inference ms per T, equal H

    def report(self) -> str:
        lines = [
            f"input size I = {self.input_size}, T = {self.length}, B = {self.batch}, "
            f"{self.threads} CPU thread(s); times are medians; 'x RNN' is the ratio to the "
            "RNN measured in the same run"
        ]
        for title, rows in (
            ("equal hidden size", self.equal_hidden),
            ("equal parameter budget (the LSTM's)", self.equal_budget),
        ):
            ref = rows[0]
            lines.append(f"-- {title}")
            head = f"{'cell':<10}{'H':>6}{'params':>10}{'train ms':>10}{'x RNN':>7}"
            head += f"{'infer ms':>10}{'x RNN':>7}"
            if any(r.mse is not None for r in rows):
                head += f"{'MSE':>9}"
            lines.append(head)
            for r in rows:
                line = f"{r.name:<10}{r.hidden:>6}{r.params:>10}"
                line += f"{r.train_ms:>10.2f}{r.train_ms / ref.train_ms:>7.2f}"
                line += f"{r.infer_ms:>10.2f}{r.infer_ms / ref.infer_ms:>7.2f}"
                if r.mse is not None:
                    line += f"{r.mse:>9.4f}"
                lines.append(line)
        if any(r.mse is not None for r in self.equal_budget):
            lines.append(
                f"MSE: adding problem after {self.steps} Adam steps; predicting 1 always "
                f"gives {BASELINE_MSE:.4f}"
            )
        if self.scaling:
            lines.append("-- inference time (ms) against sequence length T, equal hidden size")
            lines.append(
                f"{'cell':<10}" + "".join(f"{'T=' + str(t):>9}" for t in self.scaling_lengths)
            )
            for name, times in self.scaling.items():
                lines.append(f"{name:<10}" + "".join(f"{v:>9.2f}" for v in times))
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        with_mse = any(r.mse is not None for r in self.equal_budget)
        n_panels = 2 + with_mse + bool(self.scaling)
        rows = 1 if n_panels <= 2 else 2
        with plotting.style():  # the caller's rcParams are restored after
            fig, grid = plotting.figure(rows, 2, width=12, height=4.8 * rows)
            axes = grid.reshape(1, -1)  # panels left to right, top to bottom
            if n_panels == 3:
                axes[0, 3].set_visible(False)
            names = [r.name for r in self.equal_hidden]
            colours = [plotting.COLOURS.get(n, "tab:gray") for n in names]
            pos = range(len(names))
            ax = axes[0, 0]
            ax.bar(pos, [r.params for r in self.equal_hidden], color=colours)
            for j, r in enumerate(self.equal_hidden):
                ax.text(j, r.params, f"{r.params}", ha="center", va="bottom", fontsize=9)
            ax.set_xticks(pos, names)
            ax.set_ylabel("parameters")
            ax.set_title(
                f"parameters at equal hidden size H = {self.equal_hidden[0].hidden}", loc="left"
            )
            ax = axes[0, 1]
            width = 0.2
            series = [
                ("train, equal H", [r.train_ms for r in self.equal_hidden], -1.5, ""),
                ("train, equal budget", [r.train_ms for r in self.equal_budget], -0.5, "//"),
                ("inference, equal H", [r.infer_ms for r in self.equal_hidden], 0.5, ".."),
                ("inference, equal budget", [r.infer_ms for r in self.equal_budget], 1.5, "xx"),
            ]
            for label, values, shift, hatch in series:
                ax.bar(
                    [p + shift * width for p in pos],
                    values,
                    width,
                    color=colours,
                    hatch=hatch,
                    edgecolor="black",
                    linewidth=0.5,
                    label=label,
                )
            ax.set_xticks(pos, names)
            ax.set_ylabel(
                f"ms per batch (I = {self.input_size}, T = {self.length}, B = {self.batch})"
            )
            ax.set_title("time per training step and per inference (median)", loc="left")
            # Below the axes: inside, the legend would cover the tallest bars.
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
            if with_mse:
                ax = axes[0, 2]
                mses = [r.mse if r.mse is not None else float("nan") for r in self.equal_budget]
                ax.bar(pos, mses, color=colours)
                for j, mse in enumerate(mses):
                    ax.text(j, mse, f"{mse:.4f}", ha="center", va="bottom", fontsize=9)
                ax.set_yscale("log")  # a solved task sits orders of magnitude below the baseline
                ax.axhline(BASELINE_MSE, color="black", ls="--", label="predict the mean (1/6)")
                labels = [f"{r.name}\nH = {r.hidden}" for r in self.equal_budget]
                ax.set_xticks(pos, labels)
                ax.set_ylabel("validation MSE, log scale (lower is better)")
                ax.set_title(f"adding problem after {self.steps} steps, equal budget", loc="left")
                ax.legend(fontsize=8)
            if self.scaling:
                ax = axes[0, 2 + with_mse]
                for name, times in self.scaling.items():
                    colour = plotting.COLOURS.get(name, "tab:gray")
                    ax.loglog(self.scaling_lengths, times, "o-", color=colour, label=name)
                T0, T1 = self.scaling_lengths[0], self.scaling_lengths[-1]
                ref = statistics.median(times[0] for times in self.scaling.values())
                ax.loglog(
                    [T0, T1], [ref, ref * T1 / T0], "k:", label="∝ T (one step after another)"
                )
                ax.set_xticks(self.scaling_lengths, [str(T) for T in self.scaling_lengths])
                ax.minorticks_off()
                ax.set_xlabel("sequence length T")
                ax.set_ylabel(f"inference ms (B = {self.batch}, H = {self.equal_hidden[0].hidden})")
                ax.set_title("(10.20) time against sequence length, equal H", loc="left")
                ax.legend(fontsize=8)
            title = (
                "Claim (10.17): GRUs have fewer parameters than LSTMs and need less computation, "
                "with similar results"
            )
            if self.scaling:
                title += "\nClaim (10.20): RNNs are slow, with no parallelization over time"
            return plotting.save(fig, path, title)


def run_compare(
    *,
    hidden: int = 64,
    input_size: int = 32,
    length: int = 50,
    batch: int = 32,
    repeats: int = 20,
    steps: int = 300,
    seed: int = 0,
    cells: list[CellKind] | None = None,
    scaling_lengths: tuple[int, ...] = (25, 50, 100, 200, 400),
) -> CompareResult:
    """Count, time and (with ``steps`` > 0) train every cell at equal H and equal budget."""
    if not isinstance(scaling_lengths, (tuple, list)):
        # A string was read digit by digit: "25" as the lengths 2 and 5.
        raise TypeError(
            "compare: scaling_lengths must be a tuple of integers such as (25, 50); got "
            f"{scaling_lengths!r}"
        )
    # A size of the wrong type ended in Python's "'<' not supported" or range()'s error.
    integers = {"hidden": hidden, "input_size": input_size, "length": length, "batch": batch,
                "repeats": repeats, "steps": steps, "seed": seed}  # fmt: skip
    integers.update({f"scaling_lengths[{k}]": T for k, T in enumerate(scaling_lengths)})
    for name, value in integers.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"compare: {name} must be an integer; got {value!r}")
    positive = (
        ("hidden", hidden),
        ("input_size", input_size),
        ("length", length),
        ("batch", batch),
    )
    for name, value in positive:
        if value < 1:
            raise ValueError(f"compare: {name} must be >= 1; got {value}")
    if any(T < 1 for T in scaling_lengths):
        raise ValueError(f"compare: scaling lengths must be >= 1; got {scaling_lengths}")
    if repeats < 1 or steps < 0:
        raise ValueError(f"compare: repeats must be >= 1 and steps >= 0; got {repeats}, {steps}")
    longest = max(scaling_lengths, default=0)
    memory = {"input_size": input_size, "hidden": hidden, "batch": batch,
              "scaling_lengths": longest, "length": length}  # fmt: skip
    check_memory(memory, steps, shown=repr(tuple(scaling_lengths)))
    cells = available_cells() if cells is None else _checked_cells(cells)
    x = torch.randn(length, batch, input_size, generator=torch.Generator().manual_seed(seed))
    budget = count_parameters(rnnkit.LSTM(input_size, hidden))
    hiddens = [(hidden, hidden_for_budget(kind, input_size, budget)) for kind in cells]
    layers = []
    for kind, pair in zip(cells, hiddens, strict=True):
        for h in pair:
            torch.manual_seed(seed)
            layers.append(kind.build(input_size, h))
    timings = time_layers(layers, x, repeats)
    equal_hidden: list[Row] = []
    equal_budget: list[Row] = []
    for j, kind in enumerate(cells):
        for rows, h, k in (
            (equal_hidden, hiddens[j][0], 2 * j),
            (equal_budget, hiddens[j][1], 2 * j + 1),
        ):
            rows.append(Row(kind.name, h, count_parameters(layers[k]), *timings[k]))
        if steps > 0:
            torch.manual_seed(seed)
            net = LastStep(kind.build(input_size, hiddens[j][1]))
            equal_budget[-1].mse = train_adding(net, steps=steps, length=length, seed=seed)
    scaling: dict[str, list[float]] = {kind.name: [] for kind in cells}
    equal_h_layers = layers[0::2]
    for T in scaling_lengths:
        x_T = torch.randn(T, batch, input_size, generator=torch.Generator().manual_seed(seed))
        timed = time_layers(equal_h_layers, x_T, max(3, repeats // 2))
        for kind, (_, infer_ms) in zip(cells, timed, strict=True):
            scaling[kind.name].append(infer_ms)
    threads = torch.get_num_threads()
    return CompareResult(
        input_size,
        length,
        batch,
        steps,
        threads,
        equal_hidden,
        equal_budget,
        list(scaling_lengths),
        scaling if scaling_lengths else {},
    )
