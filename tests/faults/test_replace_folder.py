"""schema.replace_folder: an output folder is swapped in with no instant where it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kemp_kg import schema


def make(folder: Path, tag: str) -> Path:
    folder.mkdir()
    (folder / "marker").write_text(tag)
    (folder / "sub").mkdir()
    (folder / "sub" / "data").write_text(tag * 10)
    return folder


def test_replace_folder_creates_and_replaces(tmp_path: Path) -> None:
    final = tmp_path / "index"
    schema.replace_folder(make(tmp_path / "index.tmp-1", "one"), final)
    assert (final / "marker").read_text() == "one"
    schema.replace_folder(make(tmp_path / "index.tmp-2", "two"), final)
    assert (final / "marker").read_text() == "two" and (
        final / "sub" / "data"
    ).read_text() == "two" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # old copy and temp gone


def test_the_final_folder_is_never_missing_during_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not schema._rename_exchange(make(tmp_path / "a", "a"), make(tmp_path / "b", "b")):
        pytest.skip("this kernel/filesystem has no renameat2(RENAME_EXCHANGE)")
    final = make(tmp_path / "index", "old")
    seen: list[bool] = []
    real_replace, real_rename = os.replace, os.rename

    def watched(real):
        def call(src, dst, *args, **kwargs):
            out = real(src, dst, *args, **kwargs)
            seen.append((final / "marker").is_file())  # a kill -9 here would leave... this state
            return out

        return call

    monkeypatch.setattr(os, "replace", watched(real_replace))
    monkeypatch.setattr(os, "rename", watched(real_rename))
    schema.replace_folder(make(tmp_path / "index.tmp-x", "new"), final)
    monkeypatch.undo()
    assert all(seen), seen
    assert (final / "marker").read_text() == "new"


def test_two_rename_fallback_still_ends_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "_rename_exchange", lambda a, b: False)  # e.g. macOS
    final = make(tmp_path / "index", "old")
    schema.replace_folder(make(tmp_path / "index.tmp-x", "new"), final)
    assert (final / "marker").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
