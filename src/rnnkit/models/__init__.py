"""Models built from rnnkit's layers: the character-level language model."""

from rnnkit.models.lm import CELLS, CharLM, CharLMConfig

__all__ = ["CELLS", "CharLM", "CharLMConfig"]
