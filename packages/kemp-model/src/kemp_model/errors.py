"""User-facing errors of kemp-model: one-line messages saying what to rerun."""

from __future__ import annotations


class KempModelError(Exception):
    """A problem with the user's input (graph file, run folder, checkpoint, flags), not a bug."""

    exit_code = 1


class CheckpointError(KempModelError):
    """A checkpoint that is missing, corrupt, or from another preset/vocabulary."""

    exit_code = 3
