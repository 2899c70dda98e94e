"""Bounded inputs and the last tracebacks, through the real commands (issue 12 items 3, 5, 10).

* a 200-turn conversation with a 12,000-character turn enriches to histories of at most
  ``--max-history-turns`` turns and turns of at most ``--max-turn-chars`` characters, each cut
  counted in the summary (before: every history kept every earlier turn, so memory grew with the
  square of the conversation);
* a dump line with an empty or bare ``/r/`` relation is skipped and counted (before: a NOT NULL
  traceback, or relation '' kept); an empty dump warns; a BOM no longer eats the first record or
  the lexicon header; DuckDB's FatalException on a full disk is one line; an index whose database
  lacks its tables is one line in query, enrich and chat.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_pipeline_faults import one_line_error, run

from kemp_kg import schema


def test_a_huge_conversation_is_bounded_and_the_cuts_are_counted(tmp_path: Path, golden) -> None:
    turns = [
        {"role": ("speaker", "listener")[i % 2], "text": f"turn {i} my happy dog"}
        for i in range(200)
    ]
    turns[5]["text"] = "happy " * 2000
    lines = (golden["inputs"] / "dialogues.jsonl").read_text().splitlines()
    lines.append(
        json.dumps(
            {
                "id": "huge",
                "split": "train",
                "emotion": "joyful",
                "situation": "a long day",
                "turns": turns,
            }
        )
    )
    dialogues = tmp_path / "d.jsonl"
    dialogues.write_text("\n".join(lines) + "\n")
    out = tmp_path / "g.arrow"
    argv = [
        "enrich",
        str(dialogues),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
        "--max-history-turns",
        "6",
    ]
    result = run("kemp_kg", argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = " ".join(result.stdout.split())
    assert "notice: history_cut │ 97" in text and "notice: turn_cut │ 1" in text, text[-3000:]
    table = schema.open_graphs(out).table
    huge = [r for r in table.to_pylist() if r["conv_id"] == "huge"]
    assert len(huge) == 100 and max(len(r["history"]) for r in huge) == 6
    assert max(len(t) for r in huge for t in r["history"]) <= 1000  # the default --max-turn-chars
    last = huge[-1]
    assert (
        last["history"][0] == "turn 193 my happy dog" and last["target"] == "turn 199 my happy dog"
    )


def _dump_line(relation: str, start: str, end: str) -> str:
    meta = json.dumps({"dataset": "/d/test", "weight": 1.0})
    return f"/a/[{relation}/,{start}/,{end}/]\t{relation}\t{start}\t{end}\t{meta}"


def test_dump_lines_without_a_relation_are_skipped_and_counted(tmp_path: Path) -> None:
    dump = tmp_path / "dump.csv"
    dump.write_text(
        "\n".join(
            [
                _dump_line("/r/IsA", "/c/en/dog/n", "/c/en/pet/n"),
                _dump_line("", "/c/en/cat/n", "/c/en/pet/n"),
                _dump_line("/r/", "/c/en/cow/n", "/c/en/animal/n"),
                _dump_line("/r/RelatedTo", "/c/en/happy", "/c/en/joy"),
            ]
        )
        + "\n"
    )
    result = run(
        "kemp_kg", ["build-index", str(dump), "--index", str(tmp_path / "idx")], cwd=tmp_path
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["skipped"] == {"bad relation URI": 2}
    assert manifest["counts"]["edges"] == 2 and "" not in manifest["relations"]


def test_an_empty_dump_builds_with_a_warning(tmp_path: Path) -> None:
    dump = tmp_path / "empty.csv"
    dump.write_text("")
    result = run(
        "kemp_kg", ["build-index", str(dump), "--index", str(tmp_path / "idx")], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning:" in result.stderr and "no edges" in result.stderr


def test_a_bom_does_not_eat_the_first_record_or_the_lexicon_header(tmp_path: Path, golden) -> None:
    inputs = golden["inputs"]
    lexicon = tmp_path / "lexicon.tsv"
    lexicon.write_bytes(b"\xef\xbb\xbf" + (inputs / "lexicon.tsv").read_bytes())
    index = tmp_path / "index"
    argv = [
        "build-index",
        str(inputs / "knowledge.tsv"),
        "--lexicon",
        str(lexicon),
        "--index",
        str(index),
    ]
    result = run("kemp_kg", argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    words = json.loads((golden["index"] / "manifest.json").read_text())["lexicon"]["words"]
    assert json.loads((index / "manifest.json").read_text())["lexicon"]["words"] == words
    dialogues = tmp_path / "d.jsonl"
    dialogues.write_bytes(b"\xef\xbb\xbf" + (inputs / "dialogues.jsonl").read_bytes())
    out = tmp_path / "g.arrow"
    result = run(
        "kemp_kg",
        ["enrich", str(dialogues), "--index", str(index), "--out", str(out)],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(schema.open_graphs(out)) == len(schema.open_graphs(golden["graphs"]))


def test_duckdb_fatal_error_on_a_full_disk_is_one_line(tmp_path: Path, golden) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    before = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    patch = """
        import duckdb, kemp_kg.index as m
        class _Con:
            def __init__(self, con): self._con = con
            def __getattr__(self, name): return getattr(self._con, name)
            def execute(self, sql, *a, **k):
                if sql.strip().upper() == "CHECKPOINT":
                    raise duckdb.FatalException("failed to write: No space left on device")
                return self._con.execute(sql, *a, **k)
        _connect = duckdb.connect
        m.duckdb = type("D", (), {"connect": staticmethod(lambda *a, **k: _Con(_connect(*a, **k))),
                                   "__getattr__": lambda self, n: getattr(duckdb, n)})()
    """
    argv = [
        "build-index",
        str(golden["inputs"] / "knowledge.tsv"),
        "--index",
        str(index_dir),
        "--force",
    ]
    line = one_line_error(run("kemp_kg", argv, cwd=tmp_path, patch=patch))
    assert "No space left on device" in line and "previous index is kept" in line, line
    assert {p.name: p.read_bytes() for p in index_dir.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


@pytest.fixture(scope="module")
def tableless_index(tmp_path_factory: pytest.TempPathFactory, golden) -> Path:
    """An index folder with a valid manifest whose DuckDB file holds no tables."""
    import duckdb

    folder = tmp_path_factory.mktemp("tableless") / "index"
    folder.mkdir()
    shutil.copy(golden["index"] / "manifest.json", folder / "manifest.json")
    duckdb.connect(str(folder / "index.duckdb")).close()
    return folder


@pytest.mark.parametrize("command", ["query", "enrich", "chat"])
def test_an_index_without_its_tables_is_one_line(
    tmp_path: Path, golden, golden_run, tableless_index, command: str
) -> None:
    package, argv = {
        "query": ("kemp_kg", ["query", "happy", "--index", str(tableless_index)]),
        "enrich": (
            "kemp_kg",
            [
                "enrich",
                str(golden["inputs"] / "dialogues.jsonl"),
                "--index",
                str(tableless_index),
                "--out",
                str(tmp_path / "g.arrow"),
            ],
        ),
        "chat": (
            "kemp_model",
            ["chat", str(golden_run), "--index", str(tableless_index), "--device", "cpu"],
        ),
    }[command]
    line = one_line_error(run(package, argv, cwd=tmp_path))
    assert "lacks the table(s)" in line and "build-index" in line, line
    assert not (tmp_path / "g.arrow").exists()
