"""kemp_kg.index: manifest, tables and view, no-op rebuild, --force, atomic failure, queries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kemp_kg import index as index_module
from kemp_kg.errors import IndexNotFoundError, InputError
from kemp_kg.index import INDEX_FORMAT, build_index, open_index
from kemp_kg.intensity import load_lexicon

HEADER = "head\trelation\ttail\tweight\n"


def write_triples(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def test_manifest_and_files(
    sample_index: Path, sample_knowledge: Path, sample_lexicon: Path
) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    assert sample_index.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    names = {p.name for p in sample_index.iterdir()}
    assert names == {
        "index.duckdb",
        "edges.parquet",
        "lexicon.parquet",
        "concepts.parquet",
        "manifest.json",
    }
    manifest = json.loads((sample_index / "manifest.json").read_text())
    assert manifest["format"] == INDEX_FORMAT
    assert set(manifest) >= {
        "format",
        "tool_version",
        "built_at",
        "source",
        "lexicon",
        "counts",
        "relations",
        "skipped",
    }
    assert manifest["source"]["kind"] == "triples"
    assert manifest["source"]["bytes"] == sample_knowledge.stat().st_size
    import xxhash

    digest = xxhash.xxh3_128(sample_knowledge.read_bytes()).hexdigest()
    assert manifest["source"]["xxh3_128"] == digest
    lexicon = load_lexicon(sample_lexicon)
    assert manifest["lexicon"]["sha256"] == lexicon.sha256
    assert manifest["lexicon"]["words"] == len(lexicon)
    assert manifest["lexicon"]["raw_min"] == pytest.approx(lexicon.raw_min)
    data_lines = len(sample_knowledge.read_text().splitlines()) - 1
    assert manifest["counts"]["lines_read"] == data_lines
    assert manifest["counts"]["edges"] == data_lines  # the sample has no duplicates/self-loops
    assert sum(manifest["relations"].values()) == manifest["counts"]["edges"]
    assert manifest["skipped"] == {}
    # Parquet exports equal the tables.
    con = open_index(sample_index).connect()
    try:
        for table in ("edges", "lexicon", "concepts"):
            (count,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert pq.read_metadata(sample_index / f"{table}.parquet").num_rows == count
    finally:
        con.close()


def test_tables_follow_the_interface(sample_index: Path) -> None:
    con = open_index(sample_index).connect()
    try:
        columns = {
            table: [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
            for table in ("edges", "lexicon", "concepts", "neighbours")
        }
        assert columns["edges"] == [
            ("head", "VARCHAR"),
            ("head_pos", "VARCHAR"),
            ("relation", "VARCHAR"),
            ("tail", "VARCHAR"),
            ("tail_pos", "VARCHAR"),
            ("weight", "DOUBLE"),
            ("dataset", "VARCHAR"),
        ]
        assert [c for c, _ in columns["lexicon"]] == [
            "word",
            "valence",
            "arousal",
            "dominance",
            "intensity",
        ]
        assert columns["concepts"] == [
            ("term", "VARCHAR"),
            ("intensity", "DOUBLE"),
            ("degree", "INTEGER"),
        ]
        assert [c for c, _ in columns["neighbours"]] == [
            "word",
            "concept",
            "relation",
            "weight",
            "concept_intensity",
            "word_pos",
        ]
        # phrases keep their spaces; every edge term is a concept; degree counts both ends
        assert con.execute("SELECT count(*) FROM edges WHERE head = 'ice cream'").fetchone()[0] > 0
        assert (
            con.execute(
                "SELECT count(*) FROM (SELECT head t FROM edges UNION SELECT tail FROM edges) "
                "WHERE t NOT IN (SELECT term FROM concepts)"
            ).fetchone()[0]
            == 0
        )
        (degree,) = con.execute("SELECT degree FROM concepts WHERE term = 'happy'").fetchone()
        (edges,) = con.execute(
            "SELECT count(*) FROM edges WHERE head = 'happy' OR tail = 'happy'"
        ).fetchone()
        assert degree == edges
        # outside the lexicon: intensity 0 ('roller coaster' is deliberately not in the sample)
        assert (
            con.execute("SELECT intensity FROM concepts WHERE term = 'roller coaster'").fetchone()[
                0
            ]
            == 0.0
        )
        # the view is undirected: 'smile' sees 'happy' through the edge happy -> smile
        assert (
            con.execute(
                "SELECT count(*) FROM neighbours WHERE word = 'smile' AND concept = 'happy' "
                "AND relation = 'RelatedTo'"
            ).fetchone()[0]
            == 1
        )
        (lo, hi) = con.execute("SELECT min(intensity), max(intensity) FROM lexicon").fetchone()
        assert lo == 0.0 and hi == 1.0
    finally:
        con.close()


def test_neighbours_ranked_by_intensity(sample_index: Path) -> None:
    knowledge = open_index(sample_index)
    rows = knowledge.neighbours("Happy", top=50)
    assert len(rows) >= 8
    values = [r.concept_intensity for r in rows]
    assert values == sorted(values, reverse=True)
    assert {"joy", "sad", "smile"} <= {r.concept for r in rows}
    assert all(r.relation and r.weight > 0 for r in rows)
    assert len(knowledge.neighbours("happy", top=3)) == 3
    assert knowledge.neighbours("no such word") == []
    with pytest.raises(ValueError, match="top"):
        knowledge.neighbours("happy", top=0)
    assert knowledge.intensity("happy") > 0.8


def test_dedupe_self_loops_relations_and_uris(tmp_path: Path) -> None:
    triples = write_triples(
        tmp_path / "t.tsv",
        [
            "Dog\tIsA\tanimal\t1.0",
            "dog\t/r/IsA\tanimal\t3.5",  # same edge after normalising: keep 3.5
            "dog\tIsA\tanimal\t2.0",
            "dog\tRelatedTo\tdog\t1.0",  # self-loop
            "/c/en/ice_cream/n\tIsA\t/c/en/dessert/n/wn/food\t2.0",
            "ice_cream\t/r/dbpedia/genre\tfood\t0.5",
            "cat\tIsA\tanimal\tnot-a-number",  # bad weight
            "cat\tIsA",  # wrong column count
        ],
    )
    manifest = build_index(triples, None, tmp_path / "idx")
    assert manifest["counts"]["self_loops_dropped"] == 1
    assert manifest["counts"]["duplicates_merged"] == 2
    assert manifest["skipped"] == {"bad weight": 1, "wrong column count": 1}
    assert manifest["lexicon"] == {
        "path": None,
        "sha256": None,
        "words": 0,
        "raw_min": None,
        "raw_max": None,
    }
    con = open_index(tmp_path / "idx").connect()
    try:
        rows = con.execute(
            "SELECT head, head_pos, relation, tail, tail_pos, weight FROM edges ORDER BY ALL"
        ).fetchall()
        assert rows == [
            ("dog", None, "IsA", "animal", None, 3.5),
            ("ice cream", "n", "IsA", "dessert", "n", 2.0),
            ("ice cream", None, "dbpedia", "food", None, 0.5),
        ]
        assert con.execute("SELECT max(intensity) FROM concepts").fetchone()[0] == 0.0
    finally:
        con.close()


def test_parquet_triples(tmp_path: Path) -> None:
    table = pa.table(
        {
            "head": ["a", "b"],
            "relation": ["RelatedTo", "IsA"],
            "tail": ["b", "c"],
            "weight": [1.0, 2.0],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    manifest = build_index(tmp_path / "t.parquet", None, tmp_path / "idx")
    assert manifest["counts"]["edges"] == 2 and manifest["source"]["kind"] == "triples"
    pq.write_table(pa.table({"head": ["a"], "tail": ["b"]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r"lacks column\(s\) \['relation', 'weight'\]"):
        build_index(tmp_path / "bad.parquet", None, tmp_path / "idx2")
    assert not (tmp_path / "idx2").exists()


def test_rebuild_is_noop_unless_forced_or_changed(
    tmp_path: Path, sample_knowledge: Path, sample_lexicon: Path
) -> None:
    folder = tmp_path / "idx"
    first = build_index(sample_knowledge, sample_lexicon, folder)
    assert first["rebuilt"] is True
    stamp = (folder / "index.duckdb").stat().st_mtime_ns
    second = build_index(sample_knowledge, sample_lexicon, folder)
    assert second["rebuilt"] is False and second["built_at"] == first["built_at"]
    assert (folder / "index.duckdb").stat().st_mtime_ns == stamp
    forced = build_index(sample_knowledge, sample_lexicon, folder, force=True)
    assert forced["rebuilt"] is True
    # a different lexicon (same source) is not the same input
    no_lexicon = build_index(sample_knowledge, None, folder)
    assert no_lexicon["rebuilt"] is True and no_lexicon["lexicon"]["words"] == 0
    # same size, different bytes: the checksum decides
    changed = tmp_path / "k.tsv"
    changed.write_bytes(sample_knowledge.read_bytes())
    build_index(changed, None, tmp_path / "idx3")
    data = bytearray(changed.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")
    changed.write_bytes(bytes(data))
    assert build_index(changed, None, tmp_path / "idx3")["rebuilt"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "idx3", "k.tsv"]


def test_failed_build_leaves_no_index(
    tmp_path: Path, sample_knowledge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("subject\tpredicate\tobject\n")
    with pytest.raises(InputError, match=r"bad.tsv: line 1: header"):
        build_index(bad, None, tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]

    # a crash late in the build (after the database is written) also leaves nothing
    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(index_module, "_fsync_tree", boom)
    with pytest.raises(RuntimeError):
        build_index(sample_knowledge, None, tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]
    monkeypatch.undo()

    # and a failed REbuild keeps the previous index intact
    build_index(sample_knowledge, None, tmp_path / "idx")
    before = (tmp_path / "idx" / "manifest.json").read_text()
    monkeypatch.setattr(index_module, "_fsync_tree", boom)
    with pytest.raises(RuntimeError):
        build_index(sample_knowledge, None, tmp_path / "idx", force=True)
    assert (tmp_path / "idx" / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "idx"]


def test_refuses_to_replace_a_folder_that_is_not_an_index(
    tmp_path: Path, sample_knowledge: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a kemp index|without a kemp index manifest"):
        build_index(sample_knowledge, None, folder)
    assert (folder / "precious.txt").read_text() == "keep me"


def test_open_index_errors(tmp_path: Path, sample_index: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="run `kemp-kg build-index"):
        open_index(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(IndexNotFoundError, match="not a complete knowledge index"):
        open_index(tmp_path / "half")
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.duckdb").write_bytes(b"")
    (other / "manifest.json").write_text(json.dumps({"format": "kemp-index/99"}))
    with pytest.raises(IndexNotFoundError, match="kemp-index/99"):
        open_index(other)
    knowledge = open_index(sample_index)
    con = knowledge.connect()
    try:
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM edges")  # read-only
    finally:
        con.close()


def test_source_kind_errors(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="unknown source type"):
        build_index(tmp_path / "x.json", None, tmp_path / "idx")
    with pytest.raises(InputError, match="no such file"):
        build_index(tmp_path / "nope.tsv", None, tmp_path / "idx")
    with pytest.raises(InputError, match="is a folder"):
        build_index(tmp_path, None, tmp_path / "idx")


def test_progress_reports_stages(tmp_path: Path, sample_knowledge: Path) -> None:
    seen: list[tuple[str, float | None]] = []
    build_index(sample_knowledge, None, tmp_path / "idx", progress=lambda s, f: seen.append((s, f)))
    stages = [stage for stage, _ in seen]
    assert stages[0] == "reading triples" and "writing Parquet" in stages
    assert all(f is None or 0.0 <= f <= 1.0 for _, f in seen)


def test_rebuild_swaps_atomically(
    tmp_path: Path, sample_knowledge: Path, sample_lexicon: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "idx"
    build_index(sample_knowledge, None, folder)  # old index: no lexicon
    # a crash right after the swap (before the old copy is removed) leaves the NEW index in place
    removed: list[Path] = []
    real_rmtree = index_module.shutil.rmtree

    def crash_after_swap(path, ignore_errors=False):
        if Path(path).parent == tmp_path:  # the swapped-out folder, not the build's scratch
            removed.append(Path(path))
            raise KeyboardInterrupt
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(index_module.shutil, "rmtree", crash_after_swap)
    with pytest.raises(KeyboardInterrupt):
        build_index(sample_knowledge, sample_lexicon, folder)  # new index: with the lexicon
    monkeypatch.undo()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["lexicon"]["words"] > 0 and open_index(folder).manifest == manifest
    con = open_index(folder).connect()
    con.close()
    old = [p for p in tmp_path.iterdir() if p.name.startswith("idx.tmp-")]
    assert removed == old and len(old) == 1  # the previous index, swapped out, not yet deleted
    assert json.loads((old[0] / "manifest.json").read_text())["lexicon"]["words"] == 0

    # where the exchange is unsupported, the two-rename fallback still replaces the index
    monkeypatch.setattr(index_module.schema, "_rename_exchange", lambda a, b: False)
    build_index(sample_knowledge, None, tmp_path / "other")
    assert build_index(sample_knowledge, None, tmp_path / "other", force=True)["rebuilt"]
    assert not [p for p in tmp_path.iterdir() if ".old-" in p.name]
