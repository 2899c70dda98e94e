"""Machine paths out of recorded bench results: bench/results/*.json are committed, so the
commands and outputs they quote name files relative to the repository (``../shared`` for the
shared data beside it), not this machine's absolute paths."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def repo_relative(text: str) -> str:
    """``text`` with the repository's absolute path removed and its parent's shown as ``..``."""
    return text.replace(str(REPO) + "/", "").replace(str(REPO.parent) + "/", "../")
