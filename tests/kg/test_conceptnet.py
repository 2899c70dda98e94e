"""kemp_kg.conceptnet: the real ConceptNet fixture, the URI parser (Python and SQL), bad dumps."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemp_kg.conceptnet import (
    POS_TAGS,
    ConceptURI,
    concept_pos_sql,
    concept_term_sql,
    parse_concept_uri,
    parse_relation_uri,
    relation_sql,
)
from kemp_kg.errors import InputError
from kemp_kg.index import build_index, open_index

# ------------------------------------------------------------------------------------------------
# The real fixture (764 rows of the official dump format, 96 English-English)


def expected_edges(path: Path) -> tuple[int, dict[tuple[str, str, str], float]]:
    """English-English rows and deduplicated edges, computed in plain Python independently of
    kemp_kg: split on tabs, both ends /c/en/, term = 4th path part, max weight per triple."""
    english = 0
    edges: dict[tuple[str, str, str], float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        uri, rel, start, end, meta = line.split("\t")
        if not (start.startswith("/c/en/") and end.startswith("/c/en/")):
            continue
        english += 1
        head = start.split("/")[3].replace("_", " ")
        tail = end.split("/")[3].replace("_", " ")
        relation = "dbpedia" if rel.startswith("/r/dbpedia/") else rel[len("/r/") :]
        if head == tail:
            continue
        weight = json.loads(meta)["weight"]
        edges[(head, relation, tail)] = max(weight, edges.get((head, relation, tail), weight))
    return english, edges


def test_real_fixture_keeps_exactly_the_english_english_edges(
    shared_data: Path, nrc_vad: Path, tmp_path: Path
) -> None:
    dump = shared_data / "conceptnet" / "conceptnet5_testdata_assertions.csv"
    english, expected = expected_edges(dump)
    assert english == 96  # SOURCES.md
    manifest = build_index(dump, nrc_vad, tmp_path / "idx")
    assert manifest["source"]["kind"] == "conceptnet"
    assert manifest["counts"]["lines_read"] == 764
    assert manifest["counts"]["english_rows"] == english
    assert manifest["counts"]["edges"] == len(expected)
    assert manifest["skipped"] == {}
    con = open_index(tmp_path / "idx").connect()
    try:
        rows = con.execute("SELECT head, relation, tail, weight FROM edges").fetchall()
        poses = set(
            con.execute(
                "SELECT DISTINCT head_pos FROM edges UNION SELECT DISTINCT tail_pos FROM edges"
            ).fetchall()
        )
        datasets = {d for (d,) in con.execute("SELECT DISTINCT dataset FROM edges").fetchall()}
    finally:
        con.close()
    assert {(h, r, t): w for h, r, t, w in rows} == expected
    assert {p for (p,) in poses} <= POS_TAGS | {None}
    assert all(d.startswith("/d/") for d in datasets)
    # a cross-language edge (head English, tail not) must not get in
    assert not any(t.startswith("/c/") for _, _, t, _ in rows)


# ------------------------------------------------------------------------------------------------
# The URI parser (Python) and its SQL twin

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\t\n\r"),
    min_size=1,
    max_size=12,
)
# Characters whose lowercase is one character and context-free (Python's full case mapping and
# DuckDB's simple one agree on them; see parse_concept_uri's docstring).
simple_segment = segment.filter(lambda t: all(len(c.lower()) == 1 and c not in "Σ" for c in t))
language = st.sampled_from(["en", "fr", "de", "ja", "zh", "es", "xx"])


@given(
    language,
    segment,
    st.one_of(st.none(), st.sampled_from(sorted(POS_TAGS))),
    st.lists(segment, max_size=3),
)
def test_parse_concept_uri_roundtrip(lang: str, term: str, pos, rest: list[str]) -> None:
    parts = ["", "c", lang, term] + ([pos] if pos else []) + (rest if pos else [])
    uri = "/".join(parts)
    parsed = parse_concept_uri(uri)
    if not term.replace("_", " ").strip(" "):
        assert parsed is None
        return
    assert parsed == ConceptURI(lang, term.replace("_", " ").lower(), pos)


@given(st.text(max_size=30))
def test_parse_concept_uri_never_raises(text: str) -> None:
    parsed = parse_concept_uri(text)
    assert parsed is None or (parsed.term and parsed.pos in POS_TAGS | {None})


@given(st.sampled_from(["IsA", "RelatedTo", "HasA", "Synonym"]), st.lists(segment, max_size=2))
def test_parse_relation_uri(name: str, extra: list[str]) -> None:
    assert parse_relation_uri(f"/r/{name}") == name
    assert parse_relation_uri(f"/r/{name}/") == name
    assert parse_relation_uri("/r/dbpedia/" + "/".join(extra or ["genre"])) == "dbpedia"
    assert parse_relation_uri(name) == name


_con = duckdb.connect()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            language, simple_segment, st.one_of(st.none(), segment), st.lists(segment, max_size=2)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_sql_parser_agrees_with_python(rows) -> None:
    uris = [
        "/".join(["", "c", lang, term] + ([pos] if pos is not None else []) + rest)
        for lang, term, pos, rest in rows
    ]
    got = _con.execute(
        f"SELECT {concept_term_sql('u')}, {concept_pos_sql('u')} FROM unnest(?) AS t(u)", [uris]
    ).fetchall()
    for uri, (term, pos) in zip(uris, got):
        parsed = parse_concept_uri(uri)
        if parsed is None:
            assert not term.strip(" ")
        else:
            assert (term, pos) == (parsed.term, parsed.pos), uri


def test_sql_relation_agrees_with_python() -> None:
    rels = ["/r/IsA", "/r/dbpedia/genre", "/r/dbpedia", "/r/ExternalURL", "IsA", "/r/HasA/"]
    got = _con.execute(f"SELECT {relation_sql('r')} FROM unnest(?) AS t(r)", [rels]).fetchall()
    assert [g for (g,) in got] == [parse_relation_uri(r) for r in rels]


# ------------------------------------------------------------------------------------------------
# Bad input: skip and count, or one-line error naming the file


def line(rel: str, start: str, end: str, weight: float = 1.0, meta: str | None = None) -> bytes:
    meta = meta if meta is not None else json.dumps({"dataset": "/d/test", "weight": weight})
    return f"/a/[{rel},{start},{end}]\t{rel}\t{start}\t{end}\t{meta}\n".encode()


GOOD = [
    line("/r/IsA", "/c/en/dog/n", "/c/en/animal/n", 2.0),
    line("/r/RelatedTo", "/c/en/happy", "/c/en/joy", 1.5),
    line("/r/IsA", "/c/fr/chien/n", "/c/fr/animal/n"),  # not English
    line("/r/RelatedTo", "/c/en/happy", "/c/fr/heureux"),  # cross-language: dropped
    line("/r/Synonym", "/c/fr/heureux", "/c/en/happy"),  # cross-language the other way
]


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    data = b"".join(GOOD) + b"".join(
        [
            b"/a/x\t/r/IsA\t/c/en/cat/n\n",  # 3 columns
            b"/a/x\t/r/IsA\t/c/en/cat/n\t/c/en/pet\t{}\textra\n",  # 6 columns
            line("/r/IsA", "/c/en/cat/n", "/c/en/pet/n", meta="{not json"),  # bad JSON
            line("/r/IsA", "/c/en/cat/n", "/c/en/pet/n", meta='{"dataset": "/d/x"}'),  # no weight
            b'/a/x\t/r/IsA\t/c/en/caf\xe9\t/c/en/place\t{"weight": 1.0}\n',  # latin-1 byte
            line("/r/IsA", "/c/en/", "/c/en/pet/n"),  # empty term
            line("/r/IsA", "/c/en/bird/n", "/c/en/animal/n", 3.0),
        ]
    )
    dump = tmp_path / "dump.csv"
    dump.write_bytes(data)
    manifest = build_index(dump, None, tmp_path / "idx")
    assert manifest["skipped"] == {
        "bad JSON": 1,
        "bad concept URI": 1,
        "missing weight": 1,
        "non-UTF-8": 1,
        "wrong column count": 2,
    }
    assert manifest["counts"]["lines_read"] == 12
    assert manifest["counts"]["english_rows"] == 6  # dog, happy, 3 bad-meta/URI cat lines, bird
    assert manifest["counts"]["edges"] == 3
    con = open_index(tmp_path / "idx").connect()
    try:
        assert sorted(con.execute("SELECT head, relation, tail, weight FROM edges").fetchall()) == [
            ("bird", "IsA", "animal", 3.0),
            ("dog", "IsA", "animal", 2.0),
            ("happy", "RelatedTo", "joy", 1.5),
        ]
    finally:
        con.close()


def test_stray_carriage_return_rereads_leniently(tmp_path: Path) -> None:
    # DuckDB's strict CSV mode stops at a CR inside a line; the build re-reads and says so.
    dump = tmp_path / "cr.csv"
    dump.write_bytes(b"".join(GOOD[:2]) + b"/a/x\t/r/IsA\t/c/en/a\rb\t/c/en/c\t{}\n" + GOOD[2])
    manifest = build_index(dump, None, tmp_path / "idx")
    assert manifest["counts"]["edges"] == 2
    assert any("strict_mode=false" in note for note in manifest["notes"])


def test_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    rows = [line("/r/RelatedTo", f"/c/en/w{i}", f"/c/en/v{i}", 1.0) for i in range(20000)]
    full = gzip.compress(b"".join(rows))
    (tmp_path / "full.csv.gz").write_bytes(full)
    manifest = build_index(tmp_path / "full.csv.gz", None, tmp_path / "a")
    assert manifest["counts"]["edges"] == 20000 and manifest["skipped"] == {}

    (tmp_path / "cut.csv.gz").write_bytes(full[: len(full) // 2])
    manifest = build_index(tmp_path / "cut.csv.gz", None, tmp_path / "b")
    assert manifest["skipped"] == {"truncated gzip": 1}
    assert any("gzip stream ends early" in note for note in manifest["notes"])
    assert 1000 < manifest["counts"]["edges"] < 20000
    assert manifest["counts"]["lines_read"] == manifest["counts"]["edges"] + 1
    # the recovered prefix is not left behind
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "concepts.parquet",
        "edges.parquet",
        "index.duckdb",
        "lexicon.parquet",
        "manifest.json",
    ]


def test_unreadable_dumps_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    cases = {}
    cases["missing"] = tmp_path / "missing.csv"
    (tmp_path / "folder.csv").mkdir()
    cases["folder"] = tmp_path / "folder.csv"
    (tmp_path / "fake.csv.gz").write_bytes(b"this is not gzip\n")
    cases["not gzip"] = tmp_path / "fake.csv.gz"
    (tmp_path / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-after-a-gzip-magic")
    cases["corrupt gzip"] = tmp_path / "broken.csv.gz"
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 8)
    cases["binary"] = tmp_path / "binary.csv"
    if os.geteuid() != 0:
        locked = tmp_path / "locked.csv"
        locked.write_bytes(b"".join(GOOD))
        locked.chmod(0)
        cases["no permission"] = locked
    for why, path in cases.items():
        with pytest.raises(InputError) as info:
            build_index(path, None, tmp_path / "idx")
        message = str(info.value)
        assert str(path) in message and "\n" not in message, (why, message)
        assert not (tmp_path / "idx").exists(), why
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_out_of_memory_is_a_one_line_error_and_leaves_nothing(tmp_path: Path) -> None:
    from kemp_kg.errors import KempError
    from kemp_kg.index import BuildOptions

    rows = [line("/r/RelatedTo", f"/c/en/w{i}", f"/c/en/v{i}", 1.0) for i in range(20000)]
    (tmp_path / "d.csv").write_bytes(b"".join(rows))
    with pytest.raises(KempError, match="ran out of memory") as info:
        build_index(
            tmp_path / "d.csv", None, tmp_path / "idx", options=BuildOptions(memory_limit="1MB")
        )
    assert "\n" not in str(info.value) and "--memory-limit" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]
