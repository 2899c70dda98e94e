"""kemp-model: the KEMP model trained from memory-mapped emotional context graphs (phases B-C)."""

__version__ = "0.1.0"
