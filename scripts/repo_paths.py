"""Machine paths out of committed files: docs/RESULTS.md, run records and bench/results/*.json
name files relative to the repository (``../shared`` for the shared data beside it), never this
machine's absolute paths. The one copy of that rule (bench/_paths.py re-exports it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The shared data beside the checkout (resolved too: in a worktree ``../shared`` is a link).
SHARED = REPO.parent / "shared"


def repo_relative(text: str) -> str:
    """``text`` with the repository's absolute path removed and the shared data shown as
    ``../shared``; other paths are left as they are (the parent folder may be ``/tmp``, which is
    no name for it)."""
    for shared in {str(SHARED.resolve()), str(SHARED)}:
        text = text.replace(shared + "/", "../shared/")
    return text.replace(str(REPO) + "/", "")
