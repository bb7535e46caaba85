"""`rnnkit train`'s language model against a same-size transformer at equal CPU time.

Every model trains on the same corpus, vocabulary, split, characters per step, optimiser
(AdamW, decay on matrices only, clipping at 1), warm-up and cosine schedule over the same
wall-clock budget, and thread count. The recurrent models are `rnnkit train`'s own:
`rnnkit.tasks.lm` with the step of `rnnkit.train.Trainer` (B streams of T characters,
state carried and detached). The transformer is a decoder-only model in the nanoGPT style
written here from torch's own blocks: learned positions, pre-norm blocks of causal
`scaled_dot_product_attention` and a 4x GELU MLP, the output layer tied to the embedding.
It reads the same characters per step as B' = B·T / context windows of its context, and
trains through the same `Trainer` step. Its width is given (``--tf-width``, several
allowed) and its depth chosen to match the parameter count of `rnnkit train`'s LSTM (the
run fails if no depth is within 10 %); every other cell is sized to the same count.

Only training steps count against the budget: held-out bits per character (on the first
``--eval-chars`` of the corpus's test split) are measured at every ``--curve-s`` seconds
of training and at the marks, with the clock stopped. The recurrent model is scored as it
trains, B streams with the state carried; the transformer on windows of its context that
overlap by half, every character after the first window scored with at least half a
context before it. Each model runs in its own process, one after another (``--jobs 2``
runs two at once: faster, noisier), and reports its peak resident memory while training
above what it held before, training characters per second, and generation speed at batch
1 after a 2,000-character context: the recurrent model's one step per character against
the transformer's full forward pass over the context, and its forward pass with a
key-value cache. (The transformer's generation is timed on a model of the trained shape
with positions for the whole context; the speed does not depend on the weights.)

    python benchmarks/lm_vs_transformer.py --minutes 3                     # stdlib, 3 min
    python benchmarks/lm_vs_transformer.py --corpus docs --minutes 10 --models lstm,transformer
    python benchmarks/lm_vs_transformer.py --minutes 1 --models transformer --tf-lr 1e-3,3e-3
    python benchmarks/lm_vs_transformer.py --minutes 3 --grid hidden=128,256 lr=3e-3,6e-3

``--grid KEY=V1,V2 ...`` trains every combination of recurrent-model settings (keys:
cell, hidden, layers, embed, batch, seq_len, lr, warmup, threads, dropout), ``--variants
KEY=V,KEY=V ...`` each setting listed (``default``: none changed), and ranks them by
validation bpc: how the defaults of `rnnkit train` were chosen (docs/language-model.md).
The table, a JSON file of every result and a plot of the learning curves go to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import _args
from rnnkit.data.vocab import Vocabulary
from rnnkit.models._sampling import pick_index
from rnnkit.models.lm import CELLS, CharLM
from rnnkit.tasks.lm import LanguageModelTask, LMOptions
from rnnkit.train import RunFolder, Trainer
from rnnkit.train.distributed import Context
from rnnkit.train.evaluate import bits_per_char

CPU = Context(0, 1, torch.device("cpu"))
LN2 = math.log(2.0)
GEN_CONTEXT = 2000  # characters read before generation is timed
# Each --grid and --variants key and the values it takes: a bad one is refused before any
# model trains, not by its worker after the earlier models' minutes.
GRID_KEYS = {
    "cell": _args.one_of(CELLS, "cells"),
    "hidden": _args.positive_int,
    "layers": _args.positive_int,
    "embed": _args.positive_int,
    "batch": _args.positive_int,
    "seq_len": _args.positive_int,
    "lr": _args.positive_float,
    "warmup": _args.nonnegative_int,
    "threads": _args.threads,
    "dropout": _args.float_in(0, 1),
}


# ---- the transformer ------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm decoder block: x + attn(ln(x)), then x + mlp(ln(x)) (GPT-2's layout)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, T, dh)
        causal = True
        if cache is not None:
            if cache:  # a cached past: the one new position sees all of it
                if T != 1:
                    raise ValueError(f"after the prompt, one position at a time; got {T}")
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
                causal = False
            cache[:] = [k, v]
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Decoder-only character model: ids (T, B) -> logits (T, B, V), as `CharLM` without
    a state (its context is the window)."""

    def __init__(self, vocab: Vocabulary, d: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.vocab, self.context = vocab, context
        self.embedding = nn.Embedding(len(vocab), d)
        self.position = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if p.dim() >= 2:
                std = (
                    0.02 / math.sqrt(2 * layers)
                    if name.endswith(("proj.weight", "out.weight"))
                    else 0.02
                )
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(
        self, ids: Tensor, state: Any = None, caches: list[list[Tensor]] | None = None
    ) -> tuple[Tensor, None]:
        ids = ids.t()  # (B, T)
        start = caches[0][0].size(2) if caches and caches[0] else 0
        pos = torch.arange(start, start + ids.size(1), device=ids.device)
        x = self.embedding(ids) + self.position(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        logits = self.ln(x) @ self.embedding.weight.t()  # tied output layer
        return logits.transpose(0, 1), None


def gpt_shape(target: int, V: int, d: int, heads: int, context: int) -> int:
    """The depth whose parameter count is nearest ``target`` (at width ``d``)."""
    per_block = 12 * d * d + 13 * d
    fixed = V * d + context * d + 2 * d
    layers = max(1, round((target - fixed) / per_block))
    n = fixed + layers * per_block
    if abs(n - target) > 0.1 * target:
        raise SystemExit(
            f"--tf-width {d}: no depth gives {target:,} parameters within 10 % "
            f"({layers} layer(s) give {n:,}); choose another width"
        )
    return layers


class TransformerTask(LanguageModelTask):
    """The `lm` task with a TinyGPT: same corpus, vocabulary and windows; no carried state."""

    shape: dict[str, int]

    def build_model(self) -> TinyGPT:
        vocab = Vocabulary.from_dict(self.derived["vocab"])
        s = self.shape
        return TinyGPT(vocab, s["width"], s["layers"], s["heads"], self.options.seq_len)

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        x, y, _ = batch
        logits, _ = net(x.to(device, torch.long))
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.to(device, torch.long).reshape(-1)
        )

    def carried(self, ctx: Context) -> dict[str, Tensor]:
        return {}


@torch.no_grad()
def gpt_bits_per_char(model: TinyGPT, ids: Tensor, batch: int = 16) -> float:
    """Held-out bpc on windows of the context overlapping by half (see the docstring)."""
    ids = ids.long()
    N = ids.numel()
    C = min(model.context, N)
    half = max(C // 2, 1)
    starts = list(range(0, max(N - C, 0) + 1, half))
    if starts[-1] + C < N:
        starts.append(N - C)
    total, scored, done = 0.0, 0, 0  # `done`: characters (targets) already scored
    model.eval()
    try:
        for i in range(0, len(starts), batch):
            group = starts[i : i + batch]
            x = torch.stack([ids[s : s + C] for s in group], 1)  # (C, b)
            logits, _ = model(x)
            nll = F.cross_entropy(
                logits[:-1].reshape(-1, logits.size(-1)), x[1:].reshape(-1), reduction="none"
            ).view(-1, len(group))  # (C-1, b): target s+1+t
            for j, s in enumerate(group):
                first = max(done - s - 1, 0)  # targets up to `done` were scored before
                total += float(nll[first:, j].sum())
                scored += nll.size(0) - first
                done = s + C
    finally:
        model.train()
    return total / scored / LN2


# ---- one model, one process -------------------------------------------------------------


def reset_peak() -> int:
    """Start a new peak-memory window (Linux: "5" to clear_refs resets VmHWM); the
    resident bytes now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_bytes() -> int:
    try:
        return _status_bytes("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def build_task(spec: dict[str, Any]) -> LanguageModelTask:
    options = LMOptions(
        corpus=spec["corpus"],
        cell=spec.get("cell", "lstm"),
        num_layers=spec.get("layers", 2),
        hidden_size=spec.get("hidden", 128),
        embed_size=spec.get("embed", 64),
        seq_len=spec["seq_len"],
        batch_size=spec["batch"],
        dropout=spec.get("dropout"),  # None: rnnkit train's default for the corpus
        sample_chars=0,
    )
    task: LanguageModelTask
    if spec["kind"] == "transformer":
        task = TransformerTask(options)
        task.shape = spec["shape"]
    else:
        task = LanguageModelTask(options)
    return task


def heldout(model: nn.Module, ids: Tensor, spec: dict[str, Any]) -> float:
    if isinstance(model, TinyGPT):
        return gpt_bits_per_char(model, ids)
    assert isinstance(model, CharLM)
    return bits_per_char(model, ids, spec["batch"], spec["seq_len"])[0]


@torch.inference_mode()
def generation_speed(model: nn.Module, text: str, chars: int, cache: bool = True) -> float:
    """Characters per second sampled at batch 1 after the prompt ``text`` (not timed).

    The recurrent model through `CharLM.sample`, what `rnnkit generate` runs; the
    transformer with the same pick of the next character
    (`rnnkit.models._sampling.pick_index`).
    """
    g = torch.Generator().manual_seed(0)
    model.eval()
    if isinstance(model, CharLM):
        characters = model.sample(text, chars + 1, temperature=1.0, generator=g)
        next(characters)  # reads the prompt and picks the first character
        start = time.perf_counter()
        for _ in characters:
            pass
        return chars / (time.perf_counter() - start)
    assert isinstance(model, TinyGPT)
    seq = model.vocab.encode(text).unsqueeze(1)  # (C, 1)
    caches: list[list[Tensor]] | None = [[] for _ in model.blocks] if cache else None
    logits, _ = model(seq, caches=caches)
    u = torch.rand(chars, dtype=torch.float64, generator=g).tolist()
    start = time.perf_counter()
    for i in range(chars):
        nxt = torch.tensor([[pick_index(logits[-1, 0], u[i], 1.0, None)]])
        if caches is not None:
            logits, _ = model(nxt, caches=caches)
        else:
            seq = torch.cat([seq, nxt])
            logits, _ = model(seq)
    return chars / (time.perf_counter() - start)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one model for ``spec["minutes"]`` of training time; its curve and speeds."""
    torch.manual_seed(spec["seed"])
    task = build_task(spec)
    train = LanguageModelTask.default_train(
        minutes=spec["minutes"],
        lr=spec["lr"],
        warmup_steps=spec["warmup"],
        threads=spec["threads"],
        seed=spec["seed"],
        eval_every=10**9,
    )
    task.prepare(train, CPU)
    test = task.vocab.encode(task.corpus.test[: spec["eval_chars"]], torch.int32)
    val = task.vocab.encode(task.corpus.validation[: spec["eval_chars"]], torch.int32)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(task, train, RunFolder(run_dir), CPU)
        model = trainer.model
        # One untimed forward and backward: builds a compiled kernel on first use and
        # warms the allocator, so neither is charged to the first timed steps.
        x, y, _ = next(iter(task.batches(train, CPU)))
        task.loss(trainer.net, (x, y, True), CPU.device).backward()
        trainer.optimizer.zero_grad(set_to_none=True)
        task.state = None
        before = reset_peak()
        budget = spec["minutes"] * 60
        marks = sorted({m * 60 for m in spec["marks"] if m * 60 <= budget} | {budget})
        curve, at_marks = [], {}
        next_curve, mark_i = spec["curve_s"], 0
        train_s, chars, steps = 0.0, 0, 0
        while train_s < budget:
            trainer.elapsed = train_s  # the schedule's clock: training time only
            t0 = time.perf_counter()
            trainer._one_step()
            train_s += time.perf_counter() - t0
            chars += trainer._last_items
            steps += 1
            at_mark = mark_i < len(marks) and train_s >= marks[mark_i]
            if train_s >= next_curve or at_mark or train_s >= budget:
                bpc = heldout(model, test, spec)
                curve.append((train_s, chars, bpc))
                next_curve = train_s + spec["curve_s"]
                while mark_i < len(marks) and train_s >= marks[mark_i]:
                    at_marks[f"{marks[mark_i] / 60:g}"] = bpc
                    mark_i += 1
        peak = peak_bytes() - before
        val_bpc = heldout(model, val, spec)
    prompt = task.corpus.test[:GEN_CONTEXT]
    speeds: dict[str, float] = {}
    if isinstance(model, TinyGPT):
        s = spec["shape"]
        need = GEN_CONTEXT + spec["gen_chars"]
        wide = TinyGPT(model.vocab, s["width"], s["layers"], s["heads"], need)
        speeds["gen_kv"] = generation_speed(wide, prompt, spec["gen_chars"], cache=True)
        speeds["gen"] = generation_speed(wide, prompt, max(spec["gen_chars"] // 10, 5), False)
    else:
        speeds["gen"] = generation_speed(model, prompt, spec["gen_chars"])
    return {
        **spec,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "chars": chars,
        "train_s": train_s,
        "chars_per_s": chars / train_s,
        "peak_mb": peak / 2**20,
        "curve": curve,
        "marks_bpc": at_marks,
        "test_bpc": curve[-1][2],
        "val_bpc": val_bpc,
        **speeds,
    }


# ---- the driver ------------------------------------------------------------------------


def rnn_hidden_for(cell: str, target: int, V: int, E: int, L: int) -> int:
    """The width H at which a ``cell`` CharLM has the parameter count nearest ``target``."""
    lo, hi = 1, 4096  # the count grows with H: bisect for the first H at or above target
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if lm_parameters(cell, V, E, mid, L) < target else (lo, mid)
    return min((lo - 1, lo), key=lambda H: abs(lm_parameters(cell, V, E, H, L) - target))


def lm_parameters(cell: str, V: int, E: int, H: int, L: int) -> int:
    return V * E + sum(p.numel() for p in CELLS[cell](E, H, L).parameters()) + H * V + V


def grid_values(flag: str, key: str, texts: list[str]) -> list[Any]:
    """The values of one --grid or --variants key, each checked as its option is."""
    try:
        return [GRID_KEYS[key](v) for v in texts]
    except argparse.ArgumentTypeError as e:
        raise SystemExit(f"{flag}: {key}: {e}") from None


def specs_of(args: argparse.Namespace, V: int) -> list[dict[str, Any]]:
    """The runs to train, one spec each (SystemExit with its message: a --grid,
    --variants, --models or --tf-width the runs cannot take)."""
    base = {
        "corpus": args.corpus,
        "minutes": args.minutes,
        "marks": [float(m) for m in args.marks.split(",")],
        "curve_s": args.curve_s,
        "eval_chars": args.eval_chars,
        "gen_chars": args.gen_chars,
        "seed": args.seed,
        "threads": args.threads,
        "warmup": args.warmup,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "embed": args.embed,
        "layers": args.layers,
    }
    target = lm_parameters("lstm", V, args.embed, args.hidden, args.layers)
    specs = []
    settings: list[list[tuple[str, Any]]] = []
    if args.grid:
        keys, values = [], []
        for item in args.grid:
            key, _, vals = item.partition("=")
            if key not in GRID_KEYS or not vals:
                raise SystemExit(
                    f"--grid: expected KEY=V1,V2 with KEY in {', '.join(GRID_KEYS)}; got {item!r}"
                )
            keys.append(key)
            values.append(grid_values("--grid", key, vals.split(",")))
        settings = [list(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    for item in args.variants or []:
        pairs = [pair.partition("=") for pair in item.split(",")] if item != "default" else []
        if any(k not in GRID_KEYS or not v for k, _, v in pairs):
            raise SystemExit(
                f"--variants: expected KEY=V,KEY=V (or default) with KEY in "
                f"{', '.join(GRID_KEYS)}; got {item!r}"
            )
        settings.append([(k, *grid_values("--variants", k, [v])) for k, _, v in pairs])
    for setting in settings:
        spec = {**base, "kind": "rnn", "cell": "lstm", "hidden": args.hidden, "lr": args.lr}
        spec.update(dict(setting))
        spec["name"] = " ".join(f"{k}={v}" for k, v in setting) or "default"
        specs.append(spec)
    models = args.models or ("" if settings else "lstm,gru,mingru,minlstm,transformer")
    for name in filter(None, models.split(",")):
        if name == "transformer":
            batch = max(1, args.batch * args.seq_len // args.tf_context)
            for width, lr in itertools.product(args.tf_width.split(","), args.tf_lr.split(",")):
                d = int(width)
                layers = gpt_shape(target, V, d, args.tf_heads, args.tf_context)
                specs.append(
                    {
                        **base,
                        "kind": "transformer",
                        "name": f"transformer {layers}x{d} lr={lr}",
                        "shape": {"width": d, "heads": args.tf_heads, "layers": layers},
                        "seq_len": args.tf_context,
                        "batch": batch,
                        "lr": float(lr),
                    }
                )
        elif name in CELLS:
            H = (
                args.hidden
                if name == "lstm"
                else rnn_hidden_for(name, target, V, args.embed, args.layers)
            )
            specs.append(
                {
                    **base,
                    "kind": "rnn",
                    "name": f"{name} H={H}",
                    "cell": name,
                    "hidden": H,
                    "lr": args.lr,
                }
            )
        else:
            raise SystemExit(
                f"--models: expected names from {', '.join([*CELLS, 'transformer'])}; got {name!r}"
            )
    return specs


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    """Each spec in its own process (``jobs`` at a time), in order. However this ends (a
    failed run, Ctrl-C, SIGTERM), no worker is left running."""
    results: list[dict[str, Any] | None] = [None] * len(specs)
    pending = list(enumerate(specs))
    running: list[tuple[int, subprocess.Popen[str]]] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                i, spec = pending.pop(0)
                print(f"  training {spec['name']} for {spec['minutes']:g} min ...", flush=True)
                cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
                # SIGINT ignored: a worker importing torch would else end in a traceback
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                        preexec_fn=_ignore_sigint)  # fmt: skip
                running.append((i, proc))
            i, proc = running[0]
            out, _ = proc.communicate()
            running.pop(0)
            if proc.returncode != 0:
                raise SystemExit(f"the run of {specs[i]['name']} failed (exit {proc.returncode})")
            results[i] = json.loads(out.strip().splitlines()[-1])
            r = results[i]
            assert r is not None
            print(f"  {r['name']}: test bpc {r['test_bpc']:.3f} after {r['steps']} steps",
                  flush=True)  # fmt: skip
    finally:
        for _, proc in running:
            proc.terminate()
        for _, proc in running:
            proc.wait()
    return [r for r in results if r is not None]


def table(results: list[dict[str, Any]], marks: list[str]) -> list[str]:
    head = [
        "model",
        "parameters",
        *(f"bpc @ {m} min" for m in marks),
        "validation bpc",
        "train chars/s",
        "peak MB",
        "gen chars/s @2000",
        "gen chars/s, KV cache",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["name"], f"{r['parameters']:,}"]
        cells += [f"{r['marks_bpc'][m]:.3f}" if m in r["marks_bpc"] else "" for m in marks]
        cells += [
            f"{r['val_bpc']:.3f}",
            f"{r['chars_per_s']:,.0f}",
            f"{r['peak_mb']:.0f}",
            f"{r['gen']:,.0f}",
            f"{r['gen_kv']:,.0f}" if "gen_kv" in r else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def generation_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Each recurrent model's generation speed over each transformer's with its KV cache."""
    rnns = [r for r in results if r["kind"] == "rnn"]
    tfs = [r for r in results if "gen_kv" in r]
    return [
        f"generation at {GEN_CONTEXT:,} characters: {r['name']} / {t['name']} with KV cache = "
        f"{r['gen'] / t['gen_kv']:.2f}x (goal >= 5)"
        for r in rnns
        for t in tfs
    ]


def plot(results: list[dict[str, Any]], path: Path, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        xs = [c[0] for c in r["curve"]]
        ys = [c[2] for c in r["curve"]]
        ax.plot(xs, ys, marker=".", label=f"{r['name']} ({r['parameters'] / 1e3:.0f}k)")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("held-out bits per character")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    data = _args.figure_bytes(fig, path, dpi=110)
    plt.close(fig)
    return data


def parser() -> argparse.ArgumentParser:
    p = _args.parser(__doc__.splitlines()[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--corpus", default="stdlib", choices=("stdlib", "docs"))
    p.add_argument(
        "--models",
        help="comma-separated: lstm, gru, mingru, minlstm, rnn, transformer (default: all "
        "but rnn; none beside --grid or --variants)",
    )
    p.add_argument(
        "--minutes", type=_args.positive_float, default=3.0, help="training budget of each model"
    )
    p.add_argument("--marks", default="1,3,10", help="minutes at which held-out bpc is reported")
    p.add_argument(
        "--curve-s", type=_args.positive_float, default=30.0, help="seconds between curve points"
    )
    p.add_argument(
        "--eval-chars", type=_args.positive_int, default=200_000, help="held-out characters scored"
    )
    p.add_argument(
        "--gen-chars", type=_args.positive_int, default=200, help="characters generated per timing"
    )
    p.add_argument("--seed", type=_args.seed, default=0)
    p.add_argument("--threads", type=_args.threads, default=1)
    p.add_argument("--jobs", type=_args.positive_int, default=1, help="models trained at once")
    train = LanguageModelTask.default_train(minutes=1)
    p.add_argument(
        "--lr",
        type=_args.positive_float,
        default=train.lr,
        help="peak learning rate of the recurrent models",
    )
    p.add_argument(
        "--warmup",
        type=_args.nonnegative_int,
        default=train.warmup_steps,
        help="warm-up steps (all)",
    )
    defaults = LMOptions()
    p.add_argument(
        "--hidden", type=_args.positive_int, default=defaults.hidden_size, help="LSTM width"
    )
    p.add_argument("--layers", type=_args.positive_int, default=defaults.num_layers)
    p.add_argument("--embed", type=_args.positive_int, default=defaults.embed_size)
    p.add_argument(
        "--batch", type=_args.positive_int, default=defaults.batch_size, help="recurrent streams B"
    )
    p.add_argument(
        "--seq-len", type=_args.positive_int, default=defaults.seq_len, help="recurrent window T"
    )
    p.add_argument("--tf-width", default="128", help="transformer width(s) d, comma-separated")
    p.add_argument("--tf-heads", type=_args.positive_int, default=4)
    p.add_argument(
        "--tf-context", type=_args.positive_int, default=256, help="transformer context (window)"
    )
    p.add_argument("--tf-lr", default="3e-3", help="peak learning rate(s), comma-separated")
    p.add_argument("--grid", nargs="*", help="KEY=V1,V2 ...: rank recurrent settings instead")
    p.add_argument(
        "--variants", nargs="*", help="KEY=V,KEY=V ... (or default): rank these settings instead"
    )
    p.add_argument(
        "--out",
        type=_args.folder,
        default="runs/lm-vs-transformer",
        help="folder for table, JSON, plot",
    )
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The comma-separated options, which stay text (the specs read them as such)."""
    _args.check(p, "--marks", _args.listed(_args.positive_float, "minutes"), args.marks)
    if args.models is not None:
        known = _args.one_of([*CELLS, "transformer"], "models")
        _args.check(p, "--models", _args.listed(known, "models"), args.models)
    widths = _args.check(p, "--tf-width", _args.listed(_args.positive_int, "widths"), args.tf_width)
    _args.check(p, "--tf-lr", _args.listed(_args.positive_float, "learning rates"), args.tf_lr)
    transformer = "transformer" in (
        args.models or ("" if args.grid or args.variants else "transformer")
    )
    for d in widths if transformer else []:  # each head takes d / heads of the width
        if d % args.tf_heads:
            _args.refuse(
                p, "--tf-width", f"expected multiples of --tf-heads {args.tf_heads}; got {d}"
            )


def main() -> None:
    p = parser()
    args = p.parse_args()
    if args.worker:
        # Ctrl-C reaches the driver alone (the workers ignore SIGINT, see run_all), whose
        # SIGTERM ends a worker without a traceback.
        signal.signal(signal.SIGTERM, lambda received, _: sys.exit(128 + received))
        print(json.dumps(worker(json.loads(args.worker))))
        return
    _args.exit_on_signals()  # the driver's exit then terminates its workers (run_all)
    check(p, args)
    _args.writable(p, "--out", args.out)

    from rnnkit.data.corpus import load_corpus

    corpus = load_corpus({"kind": args.corpus})
    V = len(Vocabulary.from_text(corpus.train))
    try:
        specs = specs_of(args, V)
    except SystemExit as e:  # a message naming the option: exit 2, as a bad type
        p.error(str(e.code))
    load = os.getloadavg()[0]
    print(f"{corpus.describe()}; vocabulary {V}")
    print(
        f"{len(specs)} run(s) of {args.minutes:g} min, {args.threads} thread(s), "
        f"{args.jobs} at a time; load average before: {load:.2f}"
    )
    started = time.time()
    results = run_all(specs, args.jobs)
    marks = sorted(
        {f"{float(m):g}" for m in args.marks.split(",") if float(m) <= args.minutes}
        | {f"{args.minutes:g}"},
        key=float,
    )
    if args.grid or args.variants:
        results.sort(key=lambda r: r["val_bpc"])
    lines = table(results, marks)
    ratios = generation_ratios(results)
    if ratios:
        lines += ["", *ratios]
    print()
    print("\n".join(lines))
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _args.refuse(p, "--out", f"expected a folder you may write to; got {out} ({err.strerror})")
    stamp = f"{args.corpus}-{args.minutes:g}min-{time.strftime('%Y%m%d-%H%M%S')}"
    title = f"{args.corpus}: held-out bpc, {args.threads} thread(s)"
    files: dict[str, str | bytes] = {
        f"{stamp}.json": json.dumps(results, indent=1),
        f"{stamp}.md": "\n".join(lines) + "\n",
        f"{stamp}.png": plot(results, out / f"{stamp}.png", title),
    }
    for name, data in files.items():
        _args.write_file(p, "--out", out / name, data, overwrite=False)
    print(
        f"\n{time.time() - started:.0f} s wall-clock; load average after: "
        f"{os.getloadavg()[0]:.2f}; results in {out}/{stamp}.*"
    )


if __name__ == "__main__":
    main()
