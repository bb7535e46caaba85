"""`rnnkit export`: a trained model as an ONNX graph with its state as inputs and outputs."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from rnnkit.cli._lm_args import nonnegative_float, one_line_errors
from rnnkit.cli._outputs import check_new_file, check_outside_runs, same_file

EXAMPLES = """examples:
  rnnkit export runs/lstm --format onnx --mode step
  rnnkit export runs/lstm --mode sequence --lengths --out lstm-seq.onnx"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model as an ONNX graph (state as inputs and outputs)",
        description=textwrap.fill(
            "Write the model of a run folder as an ONNX graph whose recurrent state is an "
            "input and an output, checked in onnxruntime against PyTorch before it is "
            "written. --mode step gives one step (x_t, state) -> (y_t, state) for streaming; "
            "--mode sequence a whole (T, B) batch with T dynamic. See docs/deploy.md.",
            88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by rnnkit train")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="(default: onnx)")
    p.add_argument("--mode", choices=["step", "sequence"], default="step", help="(default: step)")
    p.add_argument(
        "--lengths",
        action="store_true",
        help="sequence mode: add a (B,) lengths input for right-padded batches",
    )
    p.add_argument(
        "--out", default=None, help="the file to write (default: RUN_DIR/model-MODE.onnx)"
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write an int8-weight copy next to it (FILE with .int8.onnx; "
        "onnxruntime's dynamic quantization)",
    )
    p.add_argument(
        "--tolerance",
        type=nonnegative_float,
        default=1e-5,
        help="the largest |difference| / (1 + |PyTorch's value|) between the graph's outputs "
        "in onnxruntime and PyTorch's before the graph is refused (default: 1e-5)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"RUN_DIR must be a run folder with a config.json; got {run_dir}")
    if args.lengths and args.mode != "sequence":
        raise ValueError(f"--lengths applies to --mode sequence; got --mode {args.mode}")
    default = run_dir / f"model-{args.mode}.onnx"
    if args.out == "":
        raise ValueError("--out: expected a file name; got an empty string")
    out = default if args.out is None else Path(args.out)
    if not same_file(out, default):  # the default names are the run's own files
        check_outside_runs("--out", out)
    int8 = out.with_name(out.name.removesuffix(".onnx") + ".int8.onnx")
    for target in (out, int8) if args.int8 else (out,):
        # Checked before the model is read: a folder or a missing folder is refused now,
        # not after the export has been computed.
        check_new_file("--out", str(target), args.force)
    try:
        from rnnkit.export import export_onnx, read_metadata
    except ImportError as err:
        raise ValueError(
            f"rnnkit export needs the export extra (pip install 'rnnkit[export]'): {err}"
        ) from None
    from rnnkit.export import quantize_onnx
    from rnnkit.train import load

    model = load(run_dir)
    proto = export_onnx(model, out, mode=args.mode, lengths=args.lengths, overwrite=args.force,
                        tolerance=args.tolerance)  # fmt: skip
    meta = read_metadata(proto)
    size = out.stat().st_size
    inputs, outputs = ", ".join(meta["inputs"]), ", ".join(meta["outputs"])
    what = f"{meta['mode']} graph of a {meta['kind']} {meta['model']}"
    print(f"wrote {out} ({size / 1e6:.2f} MB): {what}, ({inputs}) -> ({outputs}); "
          "checked against PyTorch in onnxruntime")  # fmt: skip
    if args.int8:
        quantize_onnx(out, int8, overwrite=args.force)
        print(f"wrote {int8} ({int8.stat().st_size / 1e6:.2f} MB): int8 weights")
    return 0
