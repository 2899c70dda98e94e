"""`just demo` (scripts/demo.py): the pipeline on the built-in sample ends by explaining what it
showed and what to run next, and its chat replies are recognisably shaped by the sample."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import demo  # noqa: E402


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory, nltk_data: Path) -> str:
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "NLTK_DATA": str(nltk_data), "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_demo_ends_with_what_it_showed_and_what_to_run_next(demo_output: str) -> None:
    tail = demo_output[demo_output.index("What you just saw") :]
    assert "tiny" in tail and "600 steps" in tail and "babble" in tail
    assert "What to run next" in tail
    for command in (
        "kemp-model chat",
        "kemp-kg enrich dialogues.json",
        "kemp-model train",
        "--preset kemp",
        "Dialogue formats",
    ):
        assert command in tail, command
    assert re.search(r"\(\d[\d,]* parameters\)", tail)


def test_demo_chat_is_shaped_by_the_data(demo_output: str) -> None:
    """The tiny model names the emotion of messages like its training conversations, and at
    least one reply repeats a listener's words from the sample."""
    chat = demo_output[demo_output.index("kemp-model chat") : demo_output.index("What you just")]
    emotions = demo.chat_emotions(chat)
    assert len(emotions) == len(demo.CHAT_MESSAGES)
    pairs = zip(emotions, demo.CHAT_MESSAGES, strict=True)
    right = sum(got == want for got, (_, want) in pairs)
    assert right >= 3, emotions
    assert f"right for\n     {right} of {len(demo.CHAT_MESSAGES)}" in demo_output
    replies = re.findall(r"kemp> (.*)", chat)
    sample = (REPO / "packages/kemp-kg/src/kemp_kg/samples/dialogues.jsonl").read_text("utf-8")
    listener = {
        " ".join(re.findall(r"[a-z']+", t.lower()))
        for t in re.findall(r'"role": "listener", "text": "([^"]+)"', sample)
    }
    echoed = [
        r
        for r in replies
        if any(" ".join(re.findall(r"[a-z']+", r))[:20] in line for line in listener)
    ]
    assert echoed, replies


def test_justfile_demo_runs_the_script_after_setup() -> None:
    justfile = (REPO / "justfile").read_text(encoding="utf-8")
    recipe = justfile[justfile.index("\ndemo ") + 1 :]
    recipe = recipe[: recipe.index("\n\n")]
    assert "setup" in recipe.splitlines()[0]
    assert "scripts/demo.py" in recipe
