"""Property tests: the input parsers never crash, whatever the bytes, except with InputError.

* ConceptNet: the URI parsers (`parse_concept_uri`, `parse_relation_uri`) on any text, and
  `load_dump` on dumps mixing valid English rows with random binary lines (plain and gzip,
  whole and truncated): it keeps exactly the valid rows, or raises InputError.
* EmpatheticDialogues CSV (`read_ed_csv`) on arbitrary bytes and on mutated real-layout lines.
* kemp dialogues JSONL/JSON (`read_jsonl`, `read_json`) on arbitrary JSON values, records with
  wrong types, and non-JSON bytes.

Whatever a reader returns must satisfy the documented invariants (known split, known emotion,
speaker/listener roles, no blank turn, ends with a listener turn). Example counts are kept small
so the file runs in a few seconds; `tests/fuzz/README.md` has the longer fuzzing commands.
"""

from __future__ import annotations

import gzip
import json
import os
import string
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemp_kg import conceptnet, dialogues
from kemp_kg.errors import InputError
from kemp_kg.schema import EMOTIONS, SPLITS

#: KEMP_FUZZ_SCALE=50 multiplies the example counts for a longer hunt (see tests/fuzz/README.md).
_SCALE = int(os.environ.get("KEMP_FUZZ_SCALE", "1"))
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
FAST = settings(max_examples=60 * _SCALE, deadline=None, suppress_health_check=_QUIET)
SLOW_IO = settings(max_examples=15 * _SCALE, deadline=None, suppress_health_check=_QUIET)

# ------------------------------------------------------------------------------------------------
# ConceptNet URIs


@FAST
@given(st.text(max_size=80))
def test_parse_concept_uri_never_raises_and_returns_a_clean_term(uri: str) -> None:
    parsed = conceptnet.parse_concept_uri(uri)
    if parsed is not None:
        assert parsed.term.strip(" ") and parsed.language and "_" not in parsed.term
        assert parsed.pos in conceptnet.POS_TAGS or parsed.pos is None


@FAST
@given(
    st.sampled_from(["en", "fr", "zh"]),
    st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
        lambda t: t.strip("_")
    ),
    st.sampled_from(["", "/n", "/v", "/a", "/r", "/s", "/n/wn/food", "/x"]),
)
def test_parse_concept_uri_reads_well_formed_uris(lang: str, term: str, tail: str) -> None:
    parsed = conceptnet.parse_concept_uri(f"/c/{lang}/{term}{tail}")
    assert parsed is not None and parsed.language == lang and parsed.term == term.replace("_", " ")
    assert parsed.pos == (tail[1] if tail[1:2] in conceptnet.POS_TAGS and tail else None)


@FAST
@given(st.text(max_size=60))
def test_parse_relation_uri_never_raises(uri: str) -> None:
    relation = conceptnet.parse_relation_uri(uri)
    assert isinstance(relation, str)


# ------------------------------------------------------------------------------------------------
# ConceptNet dumps with garbage lines

WORDS = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)


def valid_line(head: str, rel: str, tail: str, weight: float) -> bytes:
    meta = json.dumps({"dataset": "/d/test", "weight": weight})
    return (
        f"/a/[/r/{rel}/,/c/en/{head}/,/c/en/{tail}/]\t/r/{rel}\t/c/en/{head}\t/c/en/{tail}\t{meta}"
    ).encode()


VALID_LINES = st.builds(
    valid_line,
    WORDS,
    st.sampled_from(["IsA", "RelatedTo", "Causes"]),
    WORDS,
    st.floats(min_value=0.1, max_value=10, allow_nan=False),
)
# Garbage: random bytes (no newline: one line each) that can never be an English-English row.
GARBAGE_LINES = (
    st.binary(min_size=0, max_size=60)
    .map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))
    .filter(lambda b: b"/c/en/" not in b)
)


def _load(path: Path, scratch: Path) -> conceptnet.DumpLoad:
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE edges(head VARCHAR, head_pos VARCHAR, relation VARCHAR, tail VARCHAR, "
            "tail_pos VARCHAR, weight DOUBLE, dataset VARCHAR)"
        )
        load = conceptnet.load_dump(con, path, "edges", scratch=scratch)
        rows = con.execute("SELECT count(*) FROM edges").fetchone()[0]
        # Written rows are unique on (head, relation, tail) and hold no self-loop.
        assert rows == load.counts["rows_kept"] - load.counts.get(
            "self_loops_dropped", 0
        ) - load.counts.get("duplicates_merged", 0)
        return load
    finally:
        con.close()


@SLOW_IO
@given(
    good=st.lists(VALID_LINES, min_size=0, max_size=20),
    bad=st.lists(GARBAGE_LINES, min_size=0, max_size=20),
    order=st.randoms(use_true_random=False),
    compress=st.booleans(),
)
def test_load_dump_keeps_exactly_the_valid_rows_among_garbage(
    tmp_path_factory: pytest.TempPathFactory,
    good: list[bytes],
    bad: list[bytes],
    order,
    compress: bool,
) -> None:
    folder = tmp_path_factory.mktemp("dump")
    lines = good + bad
    order.shuffle(lines)
    body = b"\n".join(lines) + b"\n"
    path = folder / ("dump.csv.gz" if compress else "dump.csv")
    path.write_bytes(gzip.compress(body) if compress else body)
    try:
        load = _load(path, folder / "scratch")
    except InputError as exc:
        assert "\n" not in str(exc)
        assert not good  # only a dump without one good line may be refused as a whole
        return
    assert load.counts["rows_kept"] == len(good)
    triples = {tuple(line.split(b"\t")[2:4]) + (line.split(b"\t")[1],) for line in good}
    distinct = {t for t in triples if t[0] != t[1]}
    assert load.counts["rows_kept"] - load.counts["self_loops_dropped"] - load.counts[
        "duplicates_merged"
    ] == len(distinct)


@SLOW_IO
@given(
    good=st.lists(VALID_LINES, min_size=1, max_size=30),
    cut=st.floats(min_value=0.0, max_value=0.99),
)
def test_truncated_gzip_dump_keeps_a_prefix_or_raises_input_error(
    tmp_path_factory: pytest.TempPathFactory, good: list[bytes], cut: float
) -> None:
    folder = tmp_path_factory.mktemp("gz")
    data = gzip.compress(b"\n".join(good) + b"\n")
    path = folder / "dump.csv.gz"
    path.write_bytes(data[: max(1, int(len(data) * cut))])
    try:
        load = _load(path, folder / "scratch")
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert load.counts["rows_kept"] <= len(good)
    assert load.skipped.get("truncated gzip") == 1


# ------------------------------------------------------------------------------------------------
# Dialogue readers


def check_conversations(conversations: list[dialogues.Conversation]) -> None:
    for conv in conversations:
        assert conv.split in SPLITS
        assert conv.emotion is None or conv.emotion in EMOTIONS
        assert conv.turns and all(t.role in dialogues.ROLES and t.text.strip() for t in conv.turns)
        assert conv.turns[-1].role == "listener"
    assert len(dialogues.expand_examples(conversations)) >= len(conversations)


def ed_line(conv: int, idx: int, emotion: str, text: str) -> str:
    return f"hit:{conv}_conv:{conv},{idx},{emotion},a situation_comma_ here,{idx % 2},{text},,"


ED_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\n\r,", blacklist_categories=("Cs",)), max_size=20
)
ED_LINES = st.builds(
    ed_line,
    st.integers(0, 3),
    st.integers(-1, 5),
    st.sampled_from(list(EMOTIONS[:4]) + ["", "not-an-emotion", " sad "]),
    ED_TEXT,
)


def _mutate(line: str, how: int) -> bytes:
    raw = line.encode()
    return [
        raw,
        raw.replace(b",", b"", 1),
        raw + b",extra,fields",
        raw[: len(raw) // 2],
        raw + b"\xff\xfe",
    ][how]


@FAST
@given(
    lines=st.lists(st.tuples(ED_LINES, st.integers(0, 4)), max_size=25),
    noise=st.lists(st.binary(max_size=40), max_size=5),
    strict=st.booleans(),
)
def test_read_ed_csv_never_crashes(tmp_path_factory, lines, noise, strict: bool) -> None:
    path = tmp_path_factory.mktemp("ed") / "train.csv"
    body = [b"conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags"]
    body += [_mutate(line, how) for line, how in lines] + [n.replace(b"\n", b"") for n in noise]
    path.write_bytes(b"\n".join(body) + b"\n")
    try:
        got = dialogues.read_ed_csv(path, strict=strict)
    except InputError as exc:
        assert strict and "\n" not in str(exc)
        return
    check_conversations(got)


@FAST
@given(st.binary(max_size=300))
def test_read_ed_csv_on_arbitrary_bytes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("edb") / "valid.csv"
    path.write_bytes(data)
    check_conversations(dialogues.read_ed_csv(path))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TURNS = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["speaker", "listener", "Listener ", "bot"]) | JSON_VALUES,
            "text": st.text(max_size=15) | JSON_VALUES,
        },
    )
    | JSON_VALUES,
    max_size=5,
)
RECORDS = (
    st.fixed_dictionaries(
        {"id": st.text(max_size=5) | st.integers() | JSON_VALUES, "turns": TURNS | JSON_VALUES},
        optional={
            "split": st.sampled_from(["train", "dev", "valid", "test", "TRAIN", "other"])
            | JSON_VALUES,
            "emotion": st.sampled_from(list(EMOTIONS[:3]) + ["Sad", "nope"]) | JSON_VALUES,
            "situation": st.text(max_size=10) | JSON_VALUES,
        },
    )
    | JSON_VALUES
)


@FAST
@given(
    records=st.lists(RECORDS, max_size=8),
    header=st.sampled_from([None, {"format": "kemp-dialogues/1"}, {"format": "other/9"}]),
    junk=st.lists(st.binary(max_size=30), max_size=3),
    strict=st.booleans(),
)
def test_read_jsonl_never_crashes(tmp_path_factory, records, header, junk, strict: bool) -> None:
    path = tmp_path_factory.mktemp("jl") / "d.jsonl"
    lines = ([json.dumps(header).encode()] if header else []) + [
        json.dumps(r).encode() for r in records
    ]
    lines += [j.replace(b"\n", b"") for j in junk]
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        got = dialogues.read_jsonl(path, split=None, strict=strict)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert (
            strict or (header or {}).get("format") == "other/9" or any(b"format" in j for j in junk)
        )
        return
    check_conversations(got)


@FAST
@given(
    document=st.one_of(
        st.lists(RECORDS, max_size=6),
        st.fixed_dictionaries(
            {
                "format": st.just("kemp-dialogues/1"),
                "dialogues": st.lists(RECORDS, max_size=6) | JSON_VALUES,
            }
        ),
        JSON_VALUES,
    ),
    strict=st.booleans(),
)
def test_read_json_never_crashes(tmp_path_factory, document, strict: bool) -> None:
    path = tmp_path_factory.mktemp("js") / "d.json"
    path.write_text(json.dumps(document))
    try:
        got = dialogues.read_json(path, strict=strict)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    check_conversations(got)


@FAST
@given(st.binary(max_size=200))
def test_read_json_on_arbitrary_bytes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("jsb") / "d.json"
    path.write_bytes(data)
    try:
        check_conversations(dialogues.read_json(path))
    except InputError as exc:
        assert "\n" not in str(exc)
