"""Lowering: the uniform syntax tree becomes validated IR, with every problem reported at once."""

from .spec import lower_file

__all__ = ["lower_file"]
