"""kemp-kg test fixtures: the shipped sample knowledge/lexicon and a small index built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "packages" / "kemp-kg" / "src" / "kemp_kg" / "samples"


@pytest.fixture(scope="session")
def sample_knowledge() -> Path:
    """`kemp_kg/samples/knowledge.tsv`: a few hundred everyday triples written for kemp."""
    return SAMPLES / "knowledge.tsv"


@pytest.fixture(scope="session")
def sample_lexicon() -> Path:
    """`kemp_kg/samples/lexicon.tsv`: NRC-VAD layout, values written for kemp."""
    return SAMPLES / "lexicon.tsv"


@pytest.fixture(scope="session")
def sample_index(
    tmp_path_factory: pytest.TempPathFactory, sample_knowledge: Path, sample_lexicon: Path
) -> Path:
    """An index folder built once per session from the samples (treat it as read-only)."""
    from kemp_kg.index import build_index

    folder = tmp_path_factory.mktemp("kg") / "index"
    build_index(sample_knowledge, sample_lexicon, folder)
    return folder
