"""Run folders the tests change by hand."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def edited(run: Path, where: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of ``run`` in ``where``/edited whose config.json's ``derived`` went through
    ``change`` (as a user editing the file by hand would leave it)."""
    copy = where / "edited"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    change(config["derived"])
    (copy / "config.json").write_text(json.dumps(config))
    return copy
