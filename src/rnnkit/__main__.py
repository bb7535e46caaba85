"""``python -m rnnkit`` (and ``torchrun -m rnnkit``) runs the command line."""

from rnnkit.cli import entry

if __name__ == "__main__":
    entry()
