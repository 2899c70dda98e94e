"""Machine paths out of recorded bench results: bench/results/*.json are committed, so the
commands and outputs they quote name files relative to the repository (``../shared`` for the
shared data beside it), not this machine's absolute paths."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


SHARED = (REPO.parent / "shared").resolve()  # a link in a worktree: name its target too


def repo_relative(text: str) -> str:
    """``text`` with the repository's absolute path removed and the shared data shown as
    ``../shared`` (also where ``../shared`` is a link); other paths are left as they are (the
    parent folder may be ``/tmp``, which is no name for it)."""
    for shared in {str(SHARED), str(REPO.parent / "shared")}:
        text = text.replace(shared + "/", "../shared/")
    return text.replace(str(REPO) + "/", "")
