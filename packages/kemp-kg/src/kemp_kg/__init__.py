"""kemp-kg: knowledge index and emotional context graphs for KEMP (phase A of Li et al., 2022)."""

__version__ = "0.1.0"
