"""User-facing errors of kemp-kg: each carries a one-line message naming the file, line or field."""

from __future__ import annotations


class KempError(Exception):
    """A problem with the user's input or environment (not a bug): the CLI prints it on one line
    and exits with :attr:`exit_code`, no traceback."""

    exit_code = 1


class InputError(KempError):
    """A file that cannot be read or parsed as the documented format."""

    exit_code = 2


class IndexNotFoundError(KempError):
    """No usable knowledge index where one was expected."""

    exit_code = 3
