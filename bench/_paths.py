"""Machine paths out of recorded bench results: bench/results/*.json are committed, so the
commands and outputs they quote name files relative to the repository (``../shared`` for the
shared data beside it). The rule lives in scripts/repo_paths.py; this module re-exports it for
the bench scripts (bench/ is their sys.path[0])."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from repo_paths import REPO, SHARED, repo_relative  # noqa: E402

__all__ = ["REPO", "SHARED", "repo_relative"]
