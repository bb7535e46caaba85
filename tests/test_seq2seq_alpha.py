"""The beam length penalty exponent ``alpha`` of numbers runs must be >= 0: `rnnkit
translate --alpha`, `rnnkit eval --alpha` and the Python API's translate/evaluate refuse a
negative one (which favoured the longest outputs) in one line."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest

from _refusals import refused
from rnnkit.seq2seq import evaluate, load_run, translate
from rnnkit.train import TrainConfig, train

TINY_OPTIONS = dict(
    max_number=999, embed_size=8, encoder_hidden=8, decoder_hidden=8, n_valid=10, n_test=12
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alpha") / "en"
    train(
        "numbers",
        TINY_OPTIONS,
        TrainConfig(steps=2, eval_every=2),
        out=out,
        log=lambda _: None,
        progress=io.StringIO(),
    )
    return out


@pytest.mark.parametrize(
    "argv",
    [
        ["translate", "{run}", "seven", "--beam", "2", "--alpha", "-1"],
        ["translate", "{run}", "seven", "--alpha", "-0.5"],
        ["eval", "{run}", "--beam", "2", "--alpha", "-1", "--limit", "2"],
    ],
)
def test_the_cli_refuses_a_negative_alpha(
    run_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{run}", str(run_dir)) for a in argv]
    given = argv[argv.index("--alpha") + 1]
    assert refused(capsys, argv, run_dir.parent) == (
        f"rnnkit {argv[0]}: error: argument --alpha: expected a number >= 0; got {given!r}"
    )


def test_the_cli_takes_alpha_zero_and_above(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnkit.cli import main

    assert main(["eval", str(run_dir), "--beam", "2", "--alpha", "0.6", "--limit", "2"]) == 0
    assert "beam 2, alpha 0.6" in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--beam", "2", "--alpha", "0", "--limit", "2"]) == 0


@pytest.mark.parametrize("alpha", [-1.0, -1e-9, math.inf, math.nan, "0.6", True])
def test_the_api_refuses_an_alpha_below_zero_or_not_a_number(run_dir: Path, alpha: object) -> None:
    run = load_run(run_dir)
    message = f"alpha must be a finite number >= 0 (a length penalty); got {alpha!r}"
    for call in (
        lambda: evaluate(run, beam=2, alpha=alpha, limit=2),  # type: ignore[arg-type]
        lambda: translate(run, ["seven"], beam=2, alpha=alpha),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            call()
    assert len(evaluate(run, beam=2, alpha=0.6, limit=2).examples) == 2
    assert len(evaluate(run, beam=2, alpha=0, limit=2).examples) == 2
