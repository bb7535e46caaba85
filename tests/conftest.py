import shutil
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors gain nothing from a second thread, and on a loaded machine torch's
    # thread pool can be 50x slower than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def adding_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the adding task, two steps: a run folder for tests that only
    read one (each module gets its own, so a test that changes it changes no other's)."""
    from rnnkit.cli import main

    out = tmp_path_factory.mktemp("adding") / "run"
    argv = ["train", "adding", "--length", "10", "--hidden", "4", "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--n-val", "8", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def textwrap_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """textwrap.py's source as a text file: a small corpus for language-model runs. Shared
    by every test that asks for it, so read only: a test that edits a text copies it."""
    import textwrap

    path = tmp_path_factory.mktemp("text") / "textwrap.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the folder of the module's own ``run`` fixture, for a test to edit."""
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target
