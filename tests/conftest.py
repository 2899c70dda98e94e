"""Shared test fixtures: where the real data lives, and NLTK data pointed at ../shared/nltk_data.

Real-data tests read `../shared` (override with KEMP_SHARED). When it is missing they skip on a
developer machine but FAIL under CI (the `CI` environment variable), where the data must be there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KEMP_SHARED", REPO.parent / "shared")).resolve()
# Absolute, so that tools started in another working directory (subprocess tests) find it too.
os.environ["NLTK_DATA"] = str(Path(os.environ.get("NLTK_DATA", SHARED / "nltk_data")).resolve())


def _need(path: Path) -> Path:
    if not path.exists():
        message = f"real data missing: {path} (set KEMP_SHARED to the shared/ folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: EmpatheticDialogues, NRC-VAD, GloVe, the ConceptNet fixture, KEMP outputs."""
    return _need(SHARED / "data")


@pytest.fixture(scope="session")
def nltk_data() -> Path:
    """`../shared/nltk_data`: stopwords, the perceptron tagger and WordNet 3.0."""
    return _need(Path(os.environ["NLTK_DATA"]))


@pytest.fixture(scope="session")
def nrc_vad(shared_data: Path) -> Path:
    return _need(shared_data / "nrc_vad" / "NRC-VAD-Lexicon.txt")
