"""The atheris fuzz target runs (briefly) and its checks can fail: CI keeps it from rotting."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).with_name("fuzz_conceptnet_line.py")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TARGET), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_random_mode_passes_on_the_current_parser(tmp_path: Path) -> None:
    result = run("--random", "300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok: 304 inputs" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_run_is_coverage_guided_and_finds_nothing(tmp_path: Path) -> None:
    result = run("-runs=3000", "-max_len=128", "-seed=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Instrumenting kemp_kg.conceptnet" in result.stderr
    assert "DONE" in result.stderr and " cov: " in result.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_the_checks_catch_a_broken_parser(tmp_path: Path) -> None:
    # A parser that forgets to drop blank terms must be caught by the property check.
    probe = (
        f"import sys; sys.argv = ['x']; sys.path.insert(0, {str(TARGET.parent)!r})\n"
        "import fuzz_conceptnet_line as f\n"
        "from kemp_kg import conceptnet\n"
        "conceptnet.parse_concept_uri = lambda uri: conceptnet.ConceptURI('en', '  ', None)\n"
        "f.check_line(b'x\\t/r/IsA\\t/c/en/_\\t/c/en/a\\t{}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "AssertionError" in result.stderr
