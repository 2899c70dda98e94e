"""Vocabulary: specials first, frequency order with string ties, min count, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kemp_kg.errors import InputError
from kemp_kg.schema import SPECIAL_TOKENS
from kemp_kg.vocab import build_vocab, load_vocab, save_vocab


def test_frequency_order_ties_by_string_and_min_count() -> None:
    turns = [["b", "a", "c"], ["a", "b"], ["a", "d"], ["<pad>"]]
    assert build_vocab(turns) == [*SPECIAL_TOKENS, "a", "b", "c", "d"]
    assert build_vocab(turns, min_count=2) == [*SPECIAL_TOKENS, "a", "b"]
    with pytest.raises(ValueError, match="min_count"):
        build_vocab(turns, min_count=0)


def test_save_and_load_round_trip_and_bad_files(tmp_path: Path) -> None:
    vocab = [*SPECIAL_TOKENS, "x", "y"]
    assert load_vocab(save_vocab(vocab, tmp_path / "v.json")) == vocab
    (tmp_path / "bad.json").write_text(json.dumps(["x", "y"]))
    with pytest.raises(InputError, match="must start with"):
        load_vocab(tmp_path / "bad.json")
    (tmp_path / "dup.json").write_text(json.dumps([*SPECIAL_TOKENS, "x", "x"]))
    with pytest.raises(InputError, match="duplicate"):
        load_vocab(tmp_path / "dup.json")
    with pytest.raises(InputError, match="no such"):
        load_vocab(tmp_path / "missing.json")
