"""`rnnkit eval`'s per-class and per-tag lines line up by display width: a CJK character
takes two columns of a terminal, and names padded by len() came out one column short per
such character."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnkit.cli import main
from rnnkit.data.ts_format import write_ts


def test_display_width_counts_wide_characters_twice() -> None:
    from rnnkit.tasks.base import display_width

    assert display_width("dog") == 3
    assert display_width("猫") == 2
    assert display_width("カエル") == 6
    assert display_width("ＡＢ") == 4  # full-width Latin (F)
    assert display_width("e\u0301") == 1  # a combining accent takes no column
    assert display_width("") == 0


def _eval_lines(capsys, run: Path) -> list[str]:
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    return capsys.readouterr().out.splitlines()


def test_classify_eval_aligns_cjk_class_names(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(18, 6, 1))
    y = np.arange(18) % 3
    classes = ["猫", "dog", "カエル"]
    write_ts(tmp_path / "a_TRAIN.ts", x, y, classes)
    write_ts(tmp_path / "a_TEST.ts", x[:9], y[:9], classes)
    run = tmp_path / "run"
    argv = ["train", "classify", "--data", str(tmp_path / "a_TRAIN.ts"), "--test-data",
            str(tmp_path / "a_TEST.ts"), "--out", str(run), "--steps", "2", "--hidden", "4",
            "--batch-size", "4", "--eval-every", "2"]  # fmt: skip
    assert main(argv) == 0
    lines = _eval_lines(capsys, run)
    start = lines.index("per-class accuracy (true class: right/series):") + 1
    rows = lines[start : start + 3]
    # Each name right-aligned to the widest, "カエル" (6 columns): the colon in column 8.
    assert [r.split(":")[0] for r in rows] == ["      猫", "     dog", "  カエル"]


def test_tag_eval_aligns_cjk_tag_names(tmp_path: Path, capsys) -> None:
    lines = []
    for i in range(30):
        text = "ab12"[i % 4 :] + "ab12"[: i % 4] + "a1"
        tags = ["字" if c.isalpha() else "NUMBER_TAG_LONG" for c in text]
        lines.append(json.dumps({"x": text, "y": tags}, ensure_ascii=False))
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "tag", "--data", str(tmp_path / "d.jsonl"), "--out", str(run), "--steps",
            "2", "--hidden", "4", "--embed", "4", "--seq-len", "8"]  # fmt: skip
    assert main(argv) == 0
    out = _eval_lines(capsys, run)
    start = out.index("per-tag accuracy (share of each true tag predicted right):") + 1
    rows = out[start : start + 2]
    # The names left-aligned to the widest, "NUMBER_TAG_LONG" (15 columns), then a space.
    assert [r[:2] for r in rows] == ["  ", "  "]
    names = sorted(rows, key=lambda r: "字" in r)
    assert names[0].startswith("  NUMBER_TAG_LONG ")
    assert names[1].startswith("  字" + " " * 13 + " ")
