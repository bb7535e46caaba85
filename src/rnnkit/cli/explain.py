"""`rnnkit explain`: the chapter's claims, each run as an experiment and plotted.

Each sub-command prints the numbers behind its figure and writes one PNG into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from rnnkit.cli._lm_args import (
    add_runtime,
    folder_path,
    integer,
    nonnegative_int,
    positive_int,
    runtime,
    seed,
)
from rnnkit.cli._outputs import (
    check_new_folder,
    check_out_folder,
    check_outside_runs,
    probe_new_folder,
    writing,
)


def _lengths(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers; got {text!r}"
        ) from None


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, an experiment's own lower bound checked
    while parsing, so that its refusal names the flag rather than the API's argument."""

    def parse(text: str) -> int:
        value = integer(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}; got {value}")
        return value

    return parse


def _draw_steps(text: str) -> int:
    from rnnkit.explain.draw import MAX_STEPS  # here: the explain package loads slowly

    value = integer(text)
    if not 1 <= value <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_STEPS}; got {value}")
    return value


def _gradient_flow_hidden(text: str) -> int:
    from rnnkit.explain.gradient_flow import MEMORY_RULE, max_hidden

    value = integer(text)
    if not 1 <= value <= max_hidden():
        raise argparse.ArgumentTypeError(
            f"expected an integer from 1 to {max_hidden()} (memory: {MEMORY_RULE}); got {value}"
        )
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="run the chapter's claims as experiments and plot them",
        description="Run one of the chapter's claims as an experiment: print the numbers "
        "and write a PNG whose title states the claim tested.",
        epilog="example: rnnkit explain gradient-flow --init chrono --out figures",
    )
    experiments = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--out",
        type=folder_path,
        default=Path("."),
        help="folder for the PNG (default: .)",
    )
    common.add_argument(
        "--force",
        action="store_true",
        help="replace a file of the figure's name in --out that rnnkit did not write "
        "(one it wrote is replaced without it)",
    )
    common.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    add_runtime(common)

    g = experiments.add_parser(
        "gradient-flow",
        parents=[common],
        help="gradient norms back through time: RNN (tanh, relu), GRU, LSTM (10.14)",
        description="‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against the distance from the loss, and the "
        "spectral norm of the product of step Jacobians, at initialisation and after "
        "training on the adding problem. Writes gradient-flow-INIT.png.",
    )
    g.add_argument(
        "--length", type=_at_least(2), default=50, help="sequence length T, >= 2 (default: 50)"
    )
    g.add_argument(
        "--hidden",
        type=_gradient_flow_hidden,
        default=32,
        help="hidden size H (default: 32); every step's graph and Jacobian are kept: "
        "T·(160 KiB + 2 KiB·H + 32 B·H²) + 640 B·H² must stay within 2 GiB",
    )
    g.add_argument(
        "--init",
        choices=("default", "orthogonal", "chrono", "forget-bias"),
        default="default",
        help="initialisation: torch's default, orthogonal W_hh, chrono (Tallec & Ollivier "
        "2018) or forget-gate bias 1 (default: default)",
    )
    g.add_argument(
        "--steps",
        type=nonnegative_int,
        default=300,
        help="adding-problem training steps before the second measurement; 0 skips it "
        "(default: 300)",
    )
    g.set_defaults(func=run_gradient_flow)

    a = experiments.add_parser(
        "gates",
        parents=[common],
        help="an LSTM language model's gates and the cell units that track the text",
        description="Recompute the forget, input and output gates and the cell state of a "
        "trained LSTM language model over a text, draw them as heat maps and find the cell "
        "units that track strings, comments, brackets, indentation and line position "
        "(Karpathy et al. 2015). Without RUN_DIR it first trains the reference model (a "
        "1-layer, 128-unit LSTM on the standard library, --steps steps from --seed on one "
        "thread), so the figures repeat exactly. Writes gates.png.",
    )
    a.add_argument(
        "run_dir",
        type=Path,
        nargs="?",
        metavar="RUN_DIR",
        help="a language-model run folder (default: train the reference model)",
    )
    a.add_argument(
        "--steps",
        type=positive_int,
        help="training steps of the reference model, without RUN_DIR (default: 2000)",
    )
    a.add_argument(
        "--save-run",
        type=Path,
        metavar="DIR",
        help="keep the reference model's run folder in DIR, a new folder (default: discard it)",
    )
    source = a.add_mutually_exclusive_group()
    source.add_argument("--text", help="text to read (default: a short Python snippet)")
    source.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    a.add_argument("--layer", type=integer, help="stacked layer to show (default: the last)")
    a.add_argument(
        "--units", help="comma-separated cell units to show (default: the best per property)"
    )
    a.add_argument(
        "--max-chars",
        type=positive_int,
        default=100,
        help="characters shown in the heat maps (default: 100; all are used for correlations)",
    )
    a.set_defaults(func=run_gates)

    c = experiments.add_parser(
        "compare",
        parents=[common],
        help="parameters, time and results of RNN, GRU, LSTM, ...; time against T (10.17, 10.20)",
        description="Parameter counts, training-step and inference times, and adding-problem "
        "results of every recurrent layer, at equal hidden size and at the LSTM's "
        "parameter budget. Writes compare.png.",
    )
    c.add_argument("--hidden", type=positive_int, default=64, help="hidden size H (default: 64)")
    c.add_argument("--input-size", type=positive_int, default=32, help="input size I (default: 32)")
    c.add_argument(
        "--length", type=positive_int, default=50, help="sequence length T (default: 50)"
    )
    c.add_argument("--batch", type=positive_int, default=32, help="batch size B (default: 32)")
    c.add_argument(
        "--repeats", type=positive_int, default=20, help="timed repeats, median kept (default: 20)"
    )
    c.add_argument(
        "--steps",
        type=nonnegative_int,
        default=300,
        help="adding-problem training steps per layer; 0 skips training (default: 300)",
    )
    c.add_argument(
        "--scaling-lengths",
        type=_lengths,
        default=(25, 50, 100, 200, 400),
        metavar="T1,T2,...",
        help="sequence lengths for the time-against-T panel; '' skips it "
        "(default: 25,50,100,200,400)",
    )
    c.set_defaults(func=run_compare)

    b = experiments.add_parser(
        "bidirectional",
        parents=[common],
        help="uni- against bidirectional layers on labels from the future (10.18)",
        description="Train unidirectional and bidirectional layers to output, at each step t, "
        "the inputs x_(t+d) for offsets d from -K to K; only the bidirectional layer can "
        "know the future. Writes bidirectional.png.",
    )
    b.add_argument(
        "--cell", choices=("rnn", "gru", "lstm"), default="lstm", help="layer (default: lstm)"
    )
    b.add_argument("--hidden", type=positive_int, default=32, help="hidden size H (default: 32)")
    b.add_argument(
        "--length", type=positive_int, default=20, help="sequence length T (default: 20)"
    )
    b.add_argument(
        "--vocab", type=_at_least(2), default=4, help="alphabet size V, >= 2 (default: 4)"
    )
    b.add_argument(
        "--max-offset",
        type=positive_int,
        default=3,
        help="largest offset K; --length must exceed 2K (default: 3)",
    )
    b.add_argument("--steps", type=positive_int, default=300, help="training steps (default: 300)")
    b.set_defaults(func=run_bidirectional)

    r = experiments.add_parser(
        "rnn-loop",
        parents=[common],
        help="a sentence fed to a word RNN one word at a time: h^t = f(x^t, h^(t-1)) (10.4)",
        description="Train a word-level language model (embedding, one recurrent layer, "
        "linear head) on the standard library's docstrings for a fixed number of steps, "
        "print its validation perplexity next to the unigram baseline's, then feed a "
        "sentence through the cell one word at a time in a Python loop, printing ‖h^t‖ and "
        "the top-5 next words after each word; checks the loop against the layer run on "
        "the whole sentence at once. Writes rnn-loop.png.",
    )
    r.add_argument(
        "--sentence",
        help='the sentence to feed in (default: "If the file does not exist, raise an")',
    )
    r.add_argument(
        "--cell", choices=("rnn", "gru", "lstm"), default="rnn", help="layer (default: rnn)"
    )
    r.add_argument(
        "--vocab",
        type=_at_least(2),
        default=5000,
        help="vocabulary size, <unk> included: the most frequent training words (default: 5000)",
    )
    r.add_argument("--embed", type=positive_int, default=64, help="embedding size (default: 64)")
    r.add_argument("--hidden", type=positive_int, default=128, help="hidden size H (default: 128)")
    r.add_argument("--steps", type=positive_int, default=600, help="training steps (default: 600)")
    r.add_argument(
        "--seq-len", type=positive_int, default=32, help="words per training window (default: 32)"
    )
    r.add_argument("--batch", type=positive_int, default=32, help="windows per step (default: 32)")
    r.set_defaults(func=run_rnn_loop)

    e = experiments.add_parser(
        "lstm-example",
        parents=[common],
        help="a 1-unit LSTM with hand-set weights stores, holds and erases a value (10.16)",
        description="Trace a 1-unit LSTM whose weights are set by hand, step by step in "
        "float64: inputs (value, store, recall, erase), the gates f, i, c̃, o, the cell state "
        "c and the output h, each recomputed from the layer's parameters and checked against "
        "the layer. The cell state holds a stored value through distractors while the forget "
        "gate stays open and drops it when it closes. Writes lstm-example.png "
        "(lstm-example-trained.png with --trained).",
    )
    e.add_argument(
        "--sequence",
        type=_lstm_example_sequence,
        metavar="STEPS",
        help="comma-separated steps: a number in [-1, 1] is a distractor value, S<v> stores "
        "v, R recalls, E erases (R and E may carry a value: R0.4) "
        "(default: 0.3,S0.8,-0.5,0.9,-1,R,0.4,E,-0.7,R,S-0.6,0.5,0.2,R,S0.9,R)",
    )
    e.add_argument(
        "--trained",
        action="store_true",
        help="also train an LSTM of the same size on the task from --seed and trace it",
    )
    e.add_argument(
        "--steps", type=positive_int, help="training steps with --trained (default: 1000)"
    )
    e.set_defaults(func=run_lstm_example)

    t = experiments.add_parser(
        "bptt",
        parents=[common],
        help="backpropagation through time by its recurrences, checked against autograd "
        "(10.7, 10.15)",
        description="The backward pass of a small Elman RNN (tanh) and LSTM written as the "
        "BPTT recurrences in plain tensor code, in float64: prints ‖δh^t‖ (and ‖δc^t‖, the "
        "mean forget gate) from t = T-1 down to 0 and every weight gradient next to "
        "autograd's. Writes bptt.png.",
    )
    t.add_argument(
        "--cell", choices=("rnn", "lstm", "both"), default="both", help="cell (default: both)"
    )
    t.add_argument(
        "--length", type=positive_int, default=12, help="sequence length T (default: 12)"
    )
    t.add_argument("--hidden", type=positive_int, default=4, help="hidden size H (default: 4)")
    t.add_argument("--batch", type=positive_int, default=2, help="batch size B (default: 2)")
    t.set_defaults(func=run_bptt)

    dr = experiments.add_parser(
        "draw",
        parents=[common],
        help="the chapter's figures drawn from a real module: unrolled RNN, LSTM, GRU, "
        "bidirectional, seq2seq (10.2-10.19)",
        description="Draw one of the chapter's figures: the unrolled RNN (10.2, 10.5), the LSTM "
        "cell (10.8-10.13), the GRU (10.17), the bidirectional RNN (10.18) or the "
        "encoder-decoder of rnnkit train numbers (10.19), from a module built with the given "
        "sizes or the recurrent layer of a run folder. Every size and gate label is read from "
        "the module. Writes draw-KIND.png (or .svg).",
        epilog="example: rnnkit explain draw lstm --hidden 32 --format svg --out figures",
    )
    dr.add_argument(
        "kind",
        nargs="?",
        choices=("rnn", "lstm", "gru", "bidirectional", "seq2seq"),
        metavar="KIND",
        help="rnn | lstm | gru | bidirectional | seq2seq (with --run, default: the run's layer)",
    )
    dr.add_argument(
        "--input-size",
        type=positive_int,
        help="input size I (default: 8; seq2seq: its embedding size, 32)",
    )
    dr.add_argument(
        "--hidden",
        type=positive_int,
        help="hidden size H (default: 16; seq2seq: encoder and decoder, by default 64 per "
        "direction and 128)",
    )
    dr.add_argument(
        "--layers", type=positive_int, help="stacked layers (default: 1; the rnn figure: <= 4)"
    )
    dr.add_argument(
        "--cell",
        choices=("rnn", "lstm", "gru", "mingru", "minlstm"),
        help="layer of the rnn and bidirectional figures, encoder and decoder of seq2seq "
        "(default: rnn; seq2seq: gru)",
    )
    dr.add_argument(
        "--steps", type=_draw_steps, default=3, help="time steps drawn, 1 to 6 (default: 3)"
    )
    dr.add_argument(
        "--format", choices=("png", "svg"), default="png", help="file format (default: png)"
    )
    dr.add_argument(
        "--run",
        type=Path,
        metavar="RUN_DIR",
        help="draw the recurrent layer (or the encoder-decoder) of this training run folder",
    )
    dr.set_defaults(func=run_draw)


@contextlib.contextmanager
def _start(args: argparse.Namespace, name: str | None) -> Iterator[torch.device]:
    """Threads, seed, and the device and autocast precision the experiment runs under:
    tensors and modules it creates go to ``--device`` (torch's default-device context).
    The figure ``name`` (None: not known yet) is checked first, before any work."""
    check_out_folder("--out", str(args.out))  # a file, or a link: refused as by every command
    check_outside_runs("--out", args.out, folder=True)
    # A folder the system will not let us write into is named now, not after the work:
    # an existing one must be writable, a new one is made and removed at once.
    if args.out.exists():
        check_new_folder("--out", str(args.out))
    else:
        probe_new_folder("--out", str(args.out))
    if name is not None:
        _check_figure(args, args.out / name)
    device, precision = runtime(args)
    torch.manual_seed(args.seed)
    with torch.device(device), precision:
        yield device


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _check_figure(args: argparse.Namespace, path: Path) -> None:
    """Refuse to replace a file rnnkit did not write (a user's own ``bptt.png``) without
    --force; a figure rnnkit wrote, as the docs' commands rewrite, is replaced."""
    from rnnkit.explain.plotting import written_by_rnnkit

    taken = path.exists() or path.is_symlink()
    if taken and not args.force and not written_by_rnnkit(path):
        raise ValueError(
            f"--out {args.out} already holds {path.name}, which rnnkit did not write; pass "
            "--force to replace it, or name another folder"
        )


def _finish(result: object, path: Path, args: argparse.Namespace) -> int:
    _check_figure(args, path)  # again: draw --run knows its name only now
    print(result.report())  # type: ignore[attr-defined]
    with writing("--out", path):  # a refusal of the system, in one line naming --out
        written = result.plot(path)  # type: ignore[attr-defined]
    print(f"wrote {written}")
    return 0


def run_gradient_flow(args: argparse.Namespace) -> int:
    from rnnkit.explain import run_gradient_flow as experiment
    from rnnkit.explain.gradient_flow import check_memory

    # Before any work: a length past it was killed for memory (exit 137), with no message.
    check_memory({"--hidden": args.hidden, "--length": args.length}, flags=True)
    with _start(args, f"gradient-flow-{args.init}.png"):
        result = experiment(
            length=args.length, hidden=args.hidden, init=args.init, steps=args.steps,
            seed=args.seed,
        )  # fmt: skip
    return _finish(result, args.out / f"gradient-flow-{args.init}.png", args)


def run_gates(args: argparse.Namespace) -> int:
    from rnnkit.explain.gates import (
        REFERENCE_OPTIONS,
        REFERENCE_STEPS,
        SAMPLE_TEXT,
        analyse_gates,
        load_model,
        train_reference_model,
    )
    from rnnkit.layers import LSTM
    from rnnkit.models.lm import CharLM

    text = _gates_text(args, SAMPLE_TEXT)
    units = None
    if args.units:
        try:
            units = [int(u) for u in args.units.split(",")]
        except ValueError:
            raise ValueError(
                f"--units must be comma-separated integers; got {args.units!r}"
            ) from None
    if args.run_dir is not None and (args.steps is not None or args.save_run is not None):
        raise ValueError("--steps and --save-run train the reference model: give no RUN_DIR")
    if len(text) < 2:  # checked before the reference model trains
        raise ValueError(f"the text must have at least 2 characters; got {len(text)}")
    if args.run_dir is None:  # the reference model's sizes are known before it trains
        sizes = REFERENCE_OPTIONS["num_layers"], REFERENCE_OPTIONS["hidden_size"]
        _check_shown(args.layer, units, *sizes)
    if args.save_run is not None:
        check_outside_runs("--save-run", args.save_run)
    with _start(args, "gates.png") as device:
        if args.run_dir is None:
            model, result = train_reference_model(
                steps=args.steps or REFERENCE_STEPS, seed=args.seed, out=args.save_run,
                log=_stderr,
            )  # fmt: skip
            print(
                f"reference model: LSTM 1x128 on the standard library, {result['steps']} steps "
                f"from seed {result['seed']}, validation {result['metric']} {result['value']:.4f}"
            )
        else:
            model = load_model(args.run_dir)
            rnn = getattr(model, "rnn", None)
            if not isinstance(model, CharLM) or not isinstance(rnn, LSTM):
                # Any other run lacks the character vocabulary or the gates to trace.
                kind = type(rnn).__name__ if isinstance(model, CharLM) else type(model).__name__
                raise ValueError(
                    f"RUN_DIR {args.run_dir}: expected a language-model run (rnnkit train lm) "
                    f"with --cell lstm; got a {kind}"
                )
            _check_shown(args.layer, units, rnn.num_layers, rnn.hidden_size)
        analysis = analyse_gates(model.to(device), text, layer=args.layer, units=units)
    print(analysis.report())
    with writing("--out", args.out / "gates.png"):
        written = analysis.plot(args.out / "gates.png", max_chars=args.max_chars)
    print(f"wrote {written}")
    return 0


def _gates_text(args: argparse.Namespace, default: str) -> str:
    """The text gates reads: --text, the UTF-8 file --file, or ``default``."""
    from rnnkit.data.corpus import read_text_file

    if args.file is None:
        return default if args.text is None else args.text
    if not args.file.is_file():
        what = "a folder" if args.file.is_dir() else "not found"
        raise ValueError(f"--file: expected a UTF-8 text file; got {args.file} ({what})")
    try:
        return read_text_file(args.file)
    except ValueError as err:  # empty, binary or not UTF-8: the reader says which
        raise ValueError(f"--file: {err}") from None


def _check_shown(layer: int | None, units: list[int] | None, layers: int, hidden: int) -> None:
    """Refuse a --layer or --units the model does not have, before any work is done."""
    if layer is not None and not 0 <= layer < layers:
        raise ValueError(f"--layer: expected an integer in [0, {layers - 1}]; got {layer}")
    bad = [u for u in units or [] if not 0 <= u < hidden]
    if bad:
        raise ValueError(
            f"--units: expected units in [0, {hidden - 1}]; got {','.join(map(str, bad))}"
        )


def run_compare(args: argparse.Namespace) -> int:
    from rnnkit.explain import run_compare as experiment
    from rnnkit.explain.compare import check_memory

    longest = max(args.scaling_lengths, default=0)
    sizes = {"--input-size": args.input_size, "--hidden": args.hidden, "--batch": args.batch,
             "--scaling-lengths": longest, "--length": args.length}  # fmt: skip
    shown = ",".join(map(str, args.scaling_lengths)) or "''"
    check_memory(sizes, args.steps, flags=True, shown=shown)  # before any work
    with _start(args, "compare.png"):
        result = experiment(
            hidden=args.hidden,
            input_size=args.input_size,
            length=args.length,
            batch=args.batch,
            repeats=args.repeats,
            steps=args.steps,
            seed=args.seed,
            scaling_lengths=args.scaling_lengths,
        )
    return _finish(result, args.out / "compare.png", args)


def run_bidirectional(args: argparse.Namespace) -> int:
    from rnnkit.explain import run_bidirectional as experiment

    if args.length <= 2 * args.max_offset:  # the offsets -K..K must fit in the sequence
        raise ValueError(
            f"bidirectional: --length must be more than twice --max-offset; got --length "
            f"{args.length}, --max-offset {args.max_offset}"
        )
    from rnnkit.explain.bidirectional import check_memory

    sizes = {"--vocab": args.vocab, "--hidden": args.hidden, "batch": 64,
             "--max-offset": args.max_offset, "--length": args.length}  # fmt: skip
    check_memory(args.cell, sizes, flags=True)  # before any work
    with _start(args, "bidirectional.png"):
        result = experiment(
            cell=args.cell,
            hidden=args.hidden,
            length=args.length,
            vocab=args.vocab,
            max_offset=args.max_offset,
            steps=args.steps,
            seed=args.seed,
        )
    return _finish(result, args.out / "bidirectional.png", args)


def run_rnn_loop(args: argparse.Namespace) -> int:
    from rnnkit.explain.rnn_loop import DEFAULT_SENTENCE, check_memory
    from rnnkit.explain.rnn_loop import run_rnn_loop as experiment

    sizes = {"--vocab": args.vocab, "--embed": args.embed, "--hidden": args.hidden,
             "--batch": args.batch, "--seq-len": args.seq_len}  # fmt: skip
    check_memory(args.cell, sizes, flags=True)  # before any work
    with _start(args, "rnn-loop.png"):
        result = experiment(
            sentence=DEFAULT_SENTENCE if args.sentence is None else args.sentence,
            cell=args.cell,
            vocab=args.vocab,
            embed=args.embed,
            hidden=args.hidden,
            steps=args.steps,
            seq_len=args.seq_len,
            batch=args.batch,
            seed=args.seed,
        )
    return _finish(result, args.out / "rnn-loop.png", args)


def _lstm_example_sequence(text: str) -> str:
    from rnnkit.explain.lstm_example import parse_sequence

    try:
        parse_sequence(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("lstm_example: ")) from None
    return text


def run_lstm_example(args: argparse.Namespace) -> int:
    from rnnkit.explain import run_lstm_example as experiment

    if args.precision != "fp32":
        raise ValueError(
            f"lstm-example: --precision must be fp32 (the example runs in float64, exact to "
            f"the last digit); got {args.precision}"
        )
    if args.steps is not None and not args.trained:
        raise ValueError(f"lstm-example: --steps needs --trained; got --steps {args.steps} alone")
    name = "lstm-example-trained.png" if args.trained else "lstm-example.png"
    steps = {} if args.steps is None else {"steps": args.steps}
    with _start(args, name):
        result = experiment(args.sequence, trained=args.trained, seed=args.seed, **steps)
    return _finish(result, args.out / name, args)


def run_bptt(args: argparse.Namespace) -> int:
    from rnnkit.explain import run_bptt as experiment
    from rnnkit.explain.bptt import check_memory

    # The command keeps the API's input and output sizes, 3 and 2.
    sizes = {"input size": 3, "output size": 2, "--hidden": args.hidden, "--batch": args.batch,
             "--length": args.length}  # fmt: skip
    check_memory(sizes, flags=True)  # before any work
    with _start(args, "bptt.png"):
        result = experiment(
            cell=args.cell,
            length=args.length,
            hidden=args.hidden,
            batch=args.batch,
            seed=args.seed,
        )
    return _finish(result, args.out / "bptt.png", args)


def run_draw(args: argparse.Namespace) -> int:
    from rnnkit.explain.draw import MAX_ROWS, build, check_memory, describe, recurrent_module

    if args.kind is None and args.run is None:
        raise ValueError("draw: give KIND (rnn, lstm, gru, bidirectional, seq2seq) or --run")
    options = {
        "--input-size": args.input_size,
        "--hidden": args.hidden,
        "--layers": args.layers,
        "--cell": args.cell,
    }
    given = [flag for flag, value in options.items() if value is not None]
    if args.run is not None and given:
        raise ValueError(f"draw: --run reads the sizes from the run; got {', '.join(given)} too")
    if args.kind == "rnn" and args.layers is not None and args.layers > MAX_ROWS:
        raise ValueError(
            f"draw: --layers: the unrolled rnn figure draws at most {MAX_ROWS} layers; got "
            f"{args.layers}"
        )
    if args.run is None:  # before any work: the module's weights are allocated
        sizes = {"--input-size": args.input_size, "--layers": args.layers, "--hidden": args.hidden}
        check_memory(args.kind, args.cell, sizes, flags=True)
    # A figure reads shapes only: the module is built on the CPU whatever --device says.
    name = None if args.run is not None else f"draw-{args.kind}.{args.format}"
    with _start(args, name), torch.device("cpu"):
        if args.run is not None:
            import rnnkit

            module = recurrent_module(rnnkit.load(args.run))
        else:
            module = build(
                args.kind,
                input_size=args.input_size,
                hidden=args.hidden,
                layers=args.layers,
                cell=args.cell,
            )
        diagram = describe(module, kind=args.kind, steps=args.steps)
    return _finish(diagram, args.out / f"draw-{diagram.kind}.{args.format}", args)
