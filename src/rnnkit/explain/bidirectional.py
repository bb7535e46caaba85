"""Outputs that depend on future inputs: uni- against bidirectional layers (chapter 10.18).

The chapter: "output at time t may not only depend on the previous elements in the
sequence, but also future elements"; a bidirectional RNN runs a second RNN backwards and
reads both hidden states (Schuster & Paliwal 1997). The task makes this a measurement:
a sequence of random symbols x^0..x^{T-1} from an alphabet of V, and at every step t one
label per offset d in -K..K, y^t_d = x^{t+d} (steps with t + d outside the sequence are
not scored). A unidirectional layer can recall the past (d ≤ 0) but can only guess the
future (accuracy 1/V for d > 0); a bidirectional layer sees both.

Three layers are trained on the same batches: unidirectional of hidden size H,
bidirectional of hidden size H (per direction), and unidirectional with the
bidirectional layer's parameter count, so that extra capacity is not what helps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

import rnnkit
from rnnkit.explain import _memory
from rnnkit.explain.compare import CellKind, count_parameters, hidden_for_budget

LAYERS = {"rnn": rnnkit.RNN, "gru": rnnkit.GRU, "lstm": rnnkit.LSTM}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # G: blocks of H in a layer's gates
VALIDATION = 512  # sequences in the validation batch
# Peak resident memory on the CPU, measured with the LSTM: ~200 MiB whatever the sizes (the
# first training step and Adam's); a model and its Adam state, ~64 B per weight of layer and
# head; a training step ~26 B per step, sample and unit of G·H, and
# ~8 B per logit, (2K+1)·V a step; the validation batch of 512 ~5 B per unit and per logit.
MEMORY_RULE = (
    "256 MiB + 64 B·H·(G·(H + V) + (2K+1)·V) + T·(26 B·B + 2.5 KiB)·G·H "
    "+ T·(8 B·B + 2.5 KiB)·(2K+1)·V within 2 GiB, G = 1, 3, 4 for rnn, gru, lstm"
)


def memory_estimate(
    cell: str, vocab: int, hidden: int, batch: int, max_offset: int, length: int
) -> int:
    """Bytes ``run_bidirectional`` holds at its peak, about."""
    GH, logits = GATES[cell] * hidden, (2 * max_offset + 1) * vocab
    weights = 64 * hidden * (GATES[cell] * (hidden + vocab) + logits)
    steps = length * ((26 * batch + 5 * VALIDATION) * GH + (8 * batch + 5 * VALIDATION) * logits)
    return 256 * 2**20 + weights + steps


def check_memory(cell: str, sizes: dict[str, int], *, flags: bool = False) -> None:
    """Refuse sizes past the memory bound, before any work. ``sizes`` holds vocab, hidden,
    batch, max_offset and length in that order, under their API names or (``flags``)
    their flags; the length is bounded last, at the others given."""
    (_, max_offset) = list(sizes.items())[3]
    least = (2, 1, 1, 1, 2 * max_offset + 1)
    order = [(name, v, low) for (name, v), low in zip(sizes.items(), least, strict=True)]
    _memory.check(
        "bidirectional", order, lambda *v: memory_estimate(cell, *v), MEMORY_RULE, flags=flags
    )


def shifted_symbols(
    batch: int, length: int, vocab: int, offsets: range, *, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """x (T, B, V) one-hot symbols; y (T, B, len(offsets)) with y[t, b, j] = x^{t+d_j}, or -100.

    -100 is cross-entropy's ``ignore_index``: the label lies outside the sequence.
    """
    tokens = torch.randint(0, vocab, (length, batch), generator=generator)
    x = nn.functional.one_hot(tokens, vocab).float()
    y = torch.full((length, batch, len(offsets)), -100, dtype=torch.long)
    for j, d in enumerate(offsets):
        lo, hi = max(0, -d), min(length, length - d)  # steps t with 0 <= t + d < T
        y[lo:hi, :, j] = tokens[lo + d : hi + d]
    return x, y


class Tagger(nn.Module):
    """A recurrent layer and one linear head per offset (V logits each)."""

    def __init__(self, rnn: nn.Module, vocab: int, n_offsets: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.vocab = vocab
        output_size = cast(int, rnn.output_size)  # an rnnkit layer's D*H, an int
        self.head = nn.Linear(output_size, vocab * n_offsets)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)  # (T, B, D*H)
        T, B, _ = out.shape
        return self.head(out).reshape(T, B, -1, self.vocab)  # (T, B, offsets, V)


def accuracy_per_offset(logits: Tensor, y: Tensor) -> Tensor:
    """Share of correct labels per offset, (offsets,), over the scored steps."""
    scored = y >= 0
    correct = (logits.argmax(-1) == y) & scored
    return correct.sum((0, 1)).float() / scored.sum((0, 1)).clamp(min=1).float()


@dataclass
class ModelCurve:
    name: str
    hidden: int
    params: int  # of the recurrent layer
    steps: list[int]
    future_accuracy: list[float]  # accuracy at offset +K during training
    final: list[float]  # accuracy per offset on the validation batch


@dataclass
class BidirectionalResult:
    cell: str
    length: int
    vocab: int
    offsets: list[int]
    steps: int
    models: list[ModelCurve]
    seconds: float

    def report(self) -> str:
        lines = [
            f"tagging task: {self.cell.upper()}, T = {self.length}, V = {self.vocab} symbols, "
            f"label y^t_d = x^(t+d); chance = 1/V = {1 / self.vocab:.3f}; "
            f"{self.steps} Adam steps ({self.seconds:.1f} s)",
            f"{'model':<42}{'H':>5}{'params':>9}"
            + "".join(f"{'d=' + format(d, '+d'):>8}" for d in self.offsets),
        ]
        for m in self.models:
            lines.append(
                f"{m.name:<42}{m.hidden:>5}{m.params:>9}" + "".join(f"{a:>8.3f}" for a in m.final)
            )
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(1, 2, width=12.0, height=4.6)
            styles = [("tab:red", "-"), ("tab:orange", "--"), ("tab:blue", "-")]
            K = self.offsets[-1]
            ax = axes[0, 0]
            for m, (colour, ls) in zip(self.models, styles, strict=False):
                ax.plot(m.steps, m.future_accuracy, ls, color=colour, label=m.name)
            ax.axhline(
                1 / self.vocab, color="black", ls="--", label=f"chance 1/V = {1 / self.vocab:.2f}"
            )
            ax.set_xlabel("training step")
            ax.set_ylabel(f"accuracy of y^t = x^(t+{K})")
            ax.set_title(f"learning to output a future input (d = +{K})", loc="left")
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=8)
            ax = axes[0, 1]
            for m, (colour, ls) in zip(self.models, styles, strict=False):
                ax.plot(self.offsets, m.final, "o" + ls, color=colour, label=m.name)
            ax.axhline(1 / self.vocab, color="black", ls="--", label="chance")
            ax.axvline(0, color="gray", lw=0.8)
            ax.set_xlabel("offset d of the label y^t = x^(t+d)  (d > 0: the future)")
            ax.set_ylabel("validation accuracy")
            ax.set_xticks(self.offsets)
            ax.set_ylim(0, 1.02)
            ax.set_title("after training: past (d < 0) against future (d > 0)", loc="left")
            ax.legend(fontsize=8)
            title = (
                "Claim (10.18): a bidirectional RNN's output at time t depends on future elements "
                "too\n"
                f"{self.cell.upper()} layers, T = {self.length}, {self.vocab} symbols, "
                f"{self.steps} training steps"
            )
            return plotting.save(fig, path, title)


def run_bidirectional(
    *,
    cell: str = "lstm",
    hidden: int = 32,
    length: int = 20,
    vocab: int = 4,
    max_offset: int = 3,
    steps: int = 300,
    batch: int = 64,
    seed: int = 0,
) -> BidirectionalResult:
    """Train uni-, bidirectional and parameter-matched unidirectional taggers; measure them."""
    if cell not in LAYERS:
        raise ValueError(f"bidirectional: cell must be one of {sorted(LAYERS)}; got {cell!r}")
    # A string ended in Python's "'<' not supported", a batch of 0 in a reshape error.
    integers = {"hidden": hidden, "length": length, "vocab": vocab, "max_offset": max_offset,
                "steps": steps, "batch": batch, "seed": seed}  # fmt: skip
    for name, value in integers.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"bidirectional: {name} must be an integer; got {value!r}")
    if batch < 1:
        raise ValueError(f"bidirectional: batch must be >= 1; got {batch}")
    if max_offset < 1 or length <= 2 * max_offset:
        raise ValueError(
            f"bidirectional: max_offset must be >= 1 and length > 2 * max_offset; got "
            f"max_offset={max_offset}, length={length}"
        )
    if vocab < 2 or hidden < 1 or steps < 1:
        raise ValueError(
            f"bidirectional: vocab must be >= 2, hidden >= 1, steps >= 1; got vocab={vocab}, "
            f"hidden={hidden}, steps={steps}"
        )
    sizes = {"vocab": vocab, "hidden": hidden, "batch": batch, "max_offset": max_offset,
             "length": length}  # fmt: skip
    check_memory(cell, sizes)
    start = time.perf_counter()
    layer_class = LAYERS[cell]
    offsets = range(-max_offset, max_offset + 1)
    bi_params = count_parameters(layer_class(vocab, hidden, bidirectional=True))
    kind = CellKind(cell, lambda i, h: layer_class(i, h))
    wide = hidden_for_budget(kind, vocab, bi_params)
    configs = [
        (f"unidirectional, H = {hidden}", hidden, False),
        (f"unidirectional, H = {wide} (same params)", wide, False),
        (f"bidirectional, H = {hidden} per direction", hidden, True),
    ]
    x_val, y_val = shifted_symbols(
        512, length, vocab, offsets, generator=torch.Generator().manual_seed(seed + 1)
    )
    every = max(1, steps // 30)
    models = []
    for name, h, bidirectional in configs:
        torch.manual_seed(seed)
        rnn = layer_class(vocab, h, bidirectional=bidirectional)
        net = Tagger(rnn, vocab, len(offsets))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(seed)  # the same batches for every model
        curve_steps, curve = [], []
        for step in range(1, steps + 1):
            x, y = shifted_symbols(batch, length, vocab, offsets, generator=gen)
            logits = net(x)
            loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % every == 0 or step == steps:
                curve_steps.append(step)
                curve.append(float(accuracy_per_offset(logits.detach(), y)[-1]))
        with torch.no_grad():
            final = accuracy_per_offset(net(x_val), y_val).tolist()
        models.append(ModelCurve(name, h, count_parameters(rnn), curve_steps, curve, final))
    return BidirectionalResult(
        cell, length, vocab, list(offsets), steps, models, time.perf_counter() - start
    )
