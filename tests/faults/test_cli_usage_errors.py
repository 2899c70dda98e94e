"""Usage mistakes on either command print click's short usage message, never a traceback.

Regression test: typer >= 0.16 vendors its own click, whose exceptions are not
``click.ClickException``; `cli/app.py:main` once let them escape as tracebacks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", ["kemp-kg", "kemp-model"])
def test_unknown_option_is_a_usage_error_not_a_traceback(command: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name(command)
    run = subprocess.run(
        [str(exe), "--no-such-option"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "No such option" in run.stderr
