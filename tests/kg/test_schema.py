"""The data contract: round trip, zero-copy open, version refusal, shards, atomic write."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from kemp_kg import schema

VOCAB = list(schema.SPECIAL_TOKENS) + ["i", "feel", "happy", "joy", "sad"]


def rows(n: int, split: str = "train", start: int = 0) -> pa.Table:
    data = {
        "example_id": [f"c{start + i}:1" for i in range(n)],
        "conv_id": [f"c{start + i}" for i in range(n)],
        "split": [split] * n,
        "emotion": [i % 32 for i in range(n)],
        "history": [["i feel happy"]] * n,
        "target": ["joy"] * n,
        "context_ids": [[schema.CLS_ID, 8, 9, 10]] * n,
        "context_roles": [[0, 1, 1, 1]] * n,
        "context_intensity": [[0.0, 0.1, 0.2, 0.89]] * n,
        "concept_ids": [[11]] * n,
        "concept_anchor": [[3]] * n,
        "concept_relation": [[schema.RELATION_INDEX["RelatedTo"]]] * n,
        "concept_weight": [[1.0]] * n,
        "concept_intensity": [[0.8]] * n,
        "target_ids": [[11]] * n,
    }
    return pa.table(data)


def test_round_trip_keeps_rows_vocab_and_provenance(tmp_path: Path) -> None:
    path = schema.write_graphs(
        tmp_path / "g.arrow", [rows(3)], vocab=VOCAB, provenance={"preset": "paper"}
    )
    graphs = schema.open_graphs(path)
    assert len(graphs) == 3
    assert graphs.vocab == tuple(VOCAB)
    assert graphs.provenance == {"preset": "paper"}
    assert graphs.table.schema.field("context_ids").type == pa.list_(pa.int32())
    assert graphs.table.column("context_ids").to_pylist()[0] == [schema.CLS_ID, 8, 9, 10]


def test_file_is_plain_arrow_ipc_readable_by_pyarrow_and_polars(tmp_path: Path) -> None:
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(2)], vocab=VOCAB, provenance={})
    with pa.memory_map(str(path)) as source:
        assert ipc.open_file(source).read_all().num_rows == 2
    frame = pl.read_ipc(path)
    assert frame.height == 2 and frame["target"].to_list() == ["joy", "joy"]


def test_other_major_version_is_refused_with_what_to_rerun(tmp_path: Path) -> None:
    table = rows(1).cast(schema.GRAPH_SCHEMA)
    meta = {schema.META_VERSION: b"2.0", schema.META_VOCAB: json.dumps(VOCAB).encode()}
    path = tmp_path / "future.arrow"
    with (
        pa.OSFile(str(path), "wb") as sink,
        ipc.new_file(sink, table.schema.with_metadata(meta)) as w,
    ):
        w.write_table(table)
    with pytest.raises(schema.GraphFileError, match=r"version 2\.0.*rerun `kemp-kg enrich`"):
        schema.open_graphs(path)


def test_truncated_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(50)], vocab=VOCAB, provenance={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(schema.GraphFileError) as info:
        schema.open_graphs(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_shards_folder_concatenates_in_name_order(tmp_path: Path) -> None:
    schema.write_graphs(
        tmp_path / "s" / "part-1.arrow", [rows(2, start=10)], vocab=VOCAB, provenance={}
    )
    schema.write_graphs(tmp_path / "s" / "part-0.arrow", [rows(3)], vocab=VOCAB, provenance={})
    graphs = schema.open_graphs(tmp_path / "s")
    assert graphs.table.column("conv_id").to_pylist() == ["c0", "c1", "c2", "c10", "c11"]


def test_shards_with_different_vocabularies_are_refused(tmp_path: Path) -> None:
    a = schema.write_graphs(tmp_path / "a.arrow", [rows(1)], vocab=VOCAB, provenance={})
    b = schema.write_graphs(tmp_path / "b.arrow", [rows(1)], vocab=VOCAB + ["x"], provenance={})
    with pytest.raises(schema.GraphFileError, match="vocabulary differs"):
        schema.open_graphs([a, b])


def test_failed_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(2)], vocab=VOCAB, provenance={})
    before = path.read_bytes()

    def exploding():
        yield rows(1)
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        schema.write_graphs(path, exploding(), vocab=VOCAB, provenance={})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.arrow"]


def test_edge_lists_derive_the_three_edge_types() -> None:
    edges = schema.edge_lists(num_words=4, concept_anchor=[3, 1])
    assert edges["temporary"] == [(1, 2), (2, 3)]
    assert edges["emotion"] == [(3, 4), (1, 5)]
    assert edges["globality"] == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]


def test_verify_catches_damage_inside_a_record_batch(tmp_path: Path) -> None:
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(64)], vocab=VOCAB, provenance={})
    schema.open_graphs(path).verify()  # intact file passes
    # damage the file bytes: every context_ids list has 4 ids, so its offsets run 0, 4, 8, ...;
    # point the second offset far outside the values buffer (the footer stays intact)
    data = bytearray(path.read_bytes())
    needle = (0).to_bytes(4, "little") + (4).to_bytes(4, "little") + (8).to_bytes(4, "little")
    at = data.find(needle)
    assert at > 0, "offsets run of context_ids not found"
    data[at + 4 : at + 8] = (10**6).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(schema.GraphFileError, match="damaged record batch"):
        schema.open_graphs(path).verify()


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(1)], vocab=VOCAB, provenance={})
    assert path.stat().st_mode & 0o777 == 0o666 & ~schema._umask()


def test_split_copies_the_list_columns(tmp_path: Path) -> None:
    # GraphFile.split's docstring says Arrow's filter copies every column: pin that, so the
    # docstring is revisited if pyarrow ever returns views of the mapped file instead
    path = schema.write_graphs(tmp_path / "g.arrow", [rows(64)], vocab=VOCAB, provenance={})
    graphs = schema.open_graphs(path)
    before = pa.total_allocated_bytes()  # the mapped file is not allocated from Arrow's pool
    part = graphs.split("train")
    values = sum(c.values.nbytes for c in part.column("context_ids").chunks)
    assert part.num_rows == 64 and values > 0
    assert pa.total_allocated_bytes() - before >= values  # the list values were copied
