"""Graph files whose bytes are sound but whose values break the contract (issue 12 items 5, 9).

Each file below is written with `schema.write_graphs` from the golden sample graphs with ONE
value changed, so Arrow's own validation passes. `kemp-model train`, `evaluate` and `kemp-kg
inspect` check the values once when they open the file (`GraphFile.verify` ->
`schema.content_problem`): one `error:` line naming the file, the row and the field, a non-zero
exit, no traceback, and no run folder. Every case is checked on `verify`; the ones that were
tracebacks or silent through the commands are also run through them. Before, ids outside the
vocabulary, negative ids and emotion 99 were IndexErrors, while
anchors out of range, list length mismatches and NaN intensities trained silently (perplexity
inf) and a shard given twice doubled the rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from test_pipeline_faults import TRAIN_ARGS, one_line_error, run

from kemp_kg import schema


def _edit_values(table: pa.Table, name: str, edit: Callable[[list], list]) -> pa.Table:
    """``table`` with the flattened values of list column ``name`` replaced by ``edit(values)``."""
    column = table[name].combine_chunks()
    values = edit(column.values.to_pylist())
    offsets = column.offsets
    if len(values) != len(column.values):  # one value fewer in the first row
        offsets = pa.array([0] + [o - 1 for o in column.offsets.to_pylist()[1:]], pa.int32())
    rebuilt = pa.ListArray.from_arrays(offsets, pa.array(values, column.type.value_type))
    return table.set_column(table.schema.get_field_index(name), name, rebuilt)


def _first_row_with_concepts(table: pa.Table) -> int:
    return next(i for i, c in enumerate(table["concept_ids"].to_pylist()) if c)


BAD_VALUES: dict[str, tuple[Callable[[pa.Table, int], pa.Table], str]] = {
    # name: (edit, expected part of the message)
    "id-outside-vocab": (
        lambda t, v: _edit_values(t, "context_ids", lambda x: [x[0], v, *x[2:]]),
        "context_ids holds",
    ),
    "negative-target-id": (
        lambda t, v: _edit_values(t, "target_ids", lambda x: [-5, *x[1:]]),
        "target_ids holds -5",
    ),
    "emotion-99": (
        lambda t, v: t.set_column(3, "emotion", pa.array([99] * t.num_rows, pa.int8())),
        "emotion 99",
    ),
    "anchor-out-of-range": (
        lambda t, v: _edit_values(t, "concept_anchor", lambda x: [500, *x[1:]]),
        "concept_anchor 500",
    ),
    "concept-list-length": (
        lambda t, v: _edit_values(t, "concept_weight", lambda x: x[1:]),
        "concept_weight has",
    ),
    "nan-intensity": (
        lambda t, v: _edit_values(t, "concept_intensity", lambda x: [float("nan"), *x[1:]]),
        "nan",
    ),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, golden) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-graphs")
    good = schema.open_graphs(golden["graphs"])
    start = _first_row_with_concepts(good.table)
    table = good.table.slice(start)  # row 0 has concepts: the edits land in row 0
    out = {}
    for name, (edit, _) in BAD_VALUES.items():
        out[name] = schema.write_graphs(
            folder / f"{name}.arrow",
            [edit(table, len(good.vocab))],
            vocab=good.vocab,
            provenance=good.provenance,
        )
    return out


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_verify_names_the_file_row_and_field(bad_files, case: str) -> None:
    graphs = schema.open_graphs(bad_files[case])  # opening stays O(footer): no error yet
    with pytest.raises(schema.GraphFileError) as caught:
        graphs.verify()
    line = str(caught.value)
    assert "\n" not in line and str(bad_files[case]) in line and "row 0" in line, line
    assert BAD_VALUES[case][1] in line and "rerun `kemp-kg enrich`" in line


@pytest.mark.parametrize("case", ["id-outside-vocab", "emotion-99", "nan-intensity"])
def test_bad_graph_values_are_one_line_through_train(tmp_path: Path, bad_files, case: str) -> None:
    """The IndexErrors (ids, emotion) and the silent perplexity inf (NaN), through the CLI."""
    run_dir = tmp_path / "run"
    line = one_line_error(
        run("kemp_model", TRAIN_ARGS(bad_files[case], run_dir, steps=2), cwd=tmp_path)
    )
    assert str(bad_files[case]) in line and "row 0" in line and BAD_VALUES[case][1] in line, line
    assert "rerun `kemp-kg enrich`" in line
    assert not run_dir.exists()


def test_bad_graph_values_are_one_line_through_evaluate(
    tmp_path: Path, golden_run, bad_files
) -> None:
    bad = bad_files["id-outside-vocab"]
    argv = [
        "evaluate",
        str(golden_run),
        "--graphs",
        str(bad),
        "--split",
        "train",
        "--limit",
        "2",
        "--out-dir",
        str(tmp_path / "eval"),
    ]
    line = one_line_error(run("kemp_model", argv, cwd=tmp_path))
    assert str(bad) in line and "outside the vocabulary" in line, line


def test_a_shard_given_twice_is_refused(tmp_path: Path, golden) -> None:
    copy = tmp_path / "copy.arrow"
    shutil.copy(golden["graphs"], copy)
    for graphs in ([golden["graphs"], golden["graphs"]], [golden["graphs"], copy]):
        argv = TRAIN_ARGS(graphs[0], tmp_path / "run", steps=2)
        argv[argv.index("--graphs") + 1 : argv.index("--graphs") + 1] = [str(graphs[1]), "--graphs"]
        line = one_line_error(run("kemp_model", argv, cwd=tmp_path))
        assert "given twice" in line or "appears more than once" in line, line
        assert not (tmp_path / "run").exists()


def test_bad_graph_values_are_one_line_through_inspect(tmp_path: Path, bad_files) -> None:
    bad = bad_files["id-outside-vocab"]
    line = one_line_error(run("kemp_kg", ["inspect", str(bad)], cwd=tmp_path))
    assert str(bad) in line and "outside the vocabulary" in line, line
