"""Faults around the graph file (the contract): truncation, disk full, kill -9, concurrent writers.

Each test states the protection it checks; `tests/faults/README.md` says how each was seen to fail
with the protection removed.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from kemp_kg import schema

VOCAB = list(schema.SPECIAL_TOKENS) + ["i", "feel", "happy", "joy", "sad"]


def rows(n: int, tag: str = "a") -> pa.Table:
    """``n`` valid rows of GRAPH_SCHEMA; ``tag`` marks which writer produced them."""
    return pa.table(
        {
            "example_id": [f"{tag}{i}:1" for i in range(n)],
            "conv_id": [f"{tag}{i}" for i in range(n)],
            "split": ["train"] * n,
            "emotion": [i % 32 for i in range(n)],
            "history": [["i feel happy"]] * n,
            "target": [tag] * n,
            "context_ids": [[schema.CLS_ID, 8, 9, 10]] * n,
            "context_roles": [[0, 1, 1, 1]] * n,
            "context_intensity": [[0.0, 0.1, 0.2, 0.89]] * n,
            "concept_ids": [[11]] * n,
            "concept_anchor": [[3]] * n,
            "concept_relation": [[0]] * n,
            "concept_weight": [[1.0]] * n,
            "concept_intensity": [[0.8]] * n,
            "target_ids": [[11]] * n,
        }
    )


def graph_file(path: Path, n: int = 200, tag: str = "a") -> Path:
    return schema.write_graphs(path, [rows(n, tag)], vocab=VOCAB, provenance={"tag": tag})


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------------
# Truncation: every 10% of the length (and a few single bytes off the end)


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = graph_file(tmp_path_factory.mktemp("good") / "g.arrow", n=500)
    return path.read_bytes()


TRUNCATIONS = [f"{p}%" for p in range(0, 100, 10)] + ["-1B", "-8B", "-100B"]


def cut(data: bytes, where: str) -> bytes:
    if where.endswith("%"):
        return data[: len(data) * int(where[:-1]) // 100]
    return data[: len(data) - int(where[1:-1])]


@pytest.mark.parametrize("where", TRUNCATIONS)
def test_truncated_graph_file_raises_graph_file_error(
    tmp_path: Path, good_bytes: bytes, where: str
) -> None:
    path = tmp_path / "g.arrow"
    path.write_bytes(cut(good_bytes, where))
    with pytest.raises(schema.GraphFileError) as caught:
        schema.open_graphs(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "rerun" in message


def test_garbage_and_foreign_files_raise_graph_file_error(
    tmp_path: Path, good_bytes: bytes
) -> None:
    cases = {
        "random.arrow": os.urandom(4096),
        "empty.arrow": b"",
        "text.arrow": b"example_id,conv_id\n1,2\n",
        "magic-only.arrow": b"ARROW1\x00\x00" + b"\x00" * 64 + b"ARROW1",
        "stream.arrow": _stream_format_bytes(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(schema.GraphFileError):
            schema.open_graphs(tmp_path / name)


def _stream_format_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    table = rows(3).cast(schema.GRAPH_SCHEMA)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# ------------------------------------------------------------------------------------------------
# Disk full while exporting


class _DiskFull:
    """A file-like sink that accepts ``limit`` bytes, then raises ENOSPC like a full disk."""

    def __init__(self, path: str, limit: int) -> None:
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._path, self._limit, self._written = path, limit, 0
        self.closed = False

    def write(self, data: bytes) -> int:
        if self._written + len(data) > self._limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)
        self._written += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
        self.closed = True

    def tell(self) -> int:
        return self._written

    def writable(self) -> bool:
        return True


@pytest.mark.parametrize("limit", [0, 100, 5_000, 40_000])
def test_disk_full_during_export_leaves_previous_file_and_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    final = graph_file(tmp_path / "out.arrow", n=50, tag="old")
    before = final.read_bytes()

    def full_disk(path: str, mode: str = "rb") -> pa.NativeFile:
        assert mode == "wb"
        return pa.PythonFile(_DiskFull(path, limit), mode="w")

    monkeypatch.setattr(schema.pa, "OSFile", full_disk)
    with pytest.raises(OSError) as caught:
        schema.write_graphs(final, [rows(2000, "new")], vocab=VOCAB, provenance={})
    assert caught.value.errno == errno.ENOSPC and "No space left" in str(caught.value)
    assert caught.value.filename == str(final)  # the name the user gave, not the temp file
    monkeypatch.undo()
    assert final.read_bytes() == before  # untouched
    assert entries(tmp_path) == ["out.arrow"]  # temp file removed
    assert schema.open_graphs(final).table.column("target")[0].as_py() == "old"


# ------------------------------------------------------------------------------------------------
# kill -9 while writing; two writers at once

WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    sys.path.insert(0, {tests!r})
    from faults.test_graph_file_faults import rows, VOCAB
    from kemp_kg import schema
    path, tag, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def slow():
        for i in range(batches):
            yield rows(200, tag)
            print("batch", i, flush=True)
            time.sleep(0.01)
    schema.write_graphs(path, slow(), vocab=VOCAB, provenance={{"tag": tag}})
    print("done", flush=True)
    """
).format(tests=str(Path(__file__).resolve().parents[1]))


def spawn_writer(path: Path, tag: str, batches: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), tag, str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_while_writing_keeps_the_previous_file_and_the_rerun_completes(
    tmp_path: Path,
) -> None:
    final = graph_file(tmp_path / "out.arrow", n=50, tag="old")
    before = final.read_bytes()
    proc = spawn_writer(final, "new", batches=10_000)
    assert proc.stdout is not None
    for _ in range(5):  # let it write a few batches, then kill it hard
        assert proc.stdout.readline().startswith("batch")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert final.read_bytes() == before  # the final name still holds the old, valid file
    # Left behind: the killed writer's temp file (never under the final name) and its stale lock
    # file (the kernel released the flock with the process, so it blocks nobody).
    leftovers = [n for n in entries(tmp_path) if n not in ("out.arrow", ".out.arrow.lock")]
    assert (
        len(leftovers) == 1
        and leftovers[0].startswith(".out.arrow.")
        and leftovers[0].endswith(".tmp")
    )
    assert schema.open_graphs(tmp_path).paths == (final,)  # a folder read ignores the temp file
    rerun = spawn_writer(final, "new", batches=3)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    graphs = schema.open_graphs(final)
    assert len(graphs) == 600 and graphs.provenance == {"tag": "new"}


def test_two_writers_of_one_output_never_interleave(tmp_path: Path) -> None:
    final = tmp_path / "out.arrow"
    procs = [spawn_writer(final, tag, batches=20) for tag in ("x", "y")]
    results = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    # One wins; the other either also completed (its rename came last) or failed with a clear error.
    assert 0 in codes, results
    for code, (_, err) in zip(codes, results):
        assert code == 0 or ("another" in err and "Traceback" not in err.splitlines()[-1]), err
    graphs = schema.open_graphs(final)
    tags = set(graphs.table.column("target").to_pylist())
    assert len(tags) == 1 and len(graphs) == 20 * 200  # all rows from exactly one writer
    assert graphs.provenance["tag"] in tags


# ------------------------------------------------------------------------------------------------
# The output lock (schema.output_lock, taken by write_graphs)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from kemp_kg import schema
    with schema.output_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_a_second_writer_fails_clearly_while_the_output_is_locked(tmp_path: Path) -> None:
    final = graph_file(tmp_path / "out.arrow", n=10, tag="old")
    before = final.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(final)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(schema.OutputBusyError) as caught:
            schema.write_graphs(final, [rows(5, "new")], vocab=VOCAB, provenance={})
        assert str(final) in str(caught.value) and "another kemp process" in str(caught.value)
        assert final.read_bytes() == before
        assert entries(tmp_path) == [".out.arrow.lock", "out.arrow"]  # no temp file was even made
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    assert entries(tmp_path) == ["out.arrow"]  # released: the lock file is gone
    schema.write_graphs(final, [rows(5, "new")], vocab=VOCAB, provenance={})  # now free
    assert len(schema.open_graphs(final)) == 5


def test_output_lock_is_reentrant_in_one_process_and_cleans_up(tmp_path: Path) -> None:
    final = tmp_path / "run"
    with schema.output_lock(final):
        with schema.output_lock(final):  # a job holding its output may call write_graphs inside
            assert (tmp_path / ".run.lock").exists()
        assert (tmp_path / ".run.lock").exists()  # the inner exit does not release the outer hold
    assert not (tmp_path / ".run.lock").exists()


# ------------------------------------------------------------------------------------------------
# Corrupt metadata and wrong column types (footer intact, so the file opens as Arrow)


def _write_raw(path: Path, table: pa.Table, metadata: dict[bytes, bytes]) -> Path:
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, table.schema.with_metadata(metadata)) as writer,
    ):
        writer.write_table(table)
    return path


GOOD_META = {
    schema.META_VERSION: schema.SCHEMA_VERSION.encode(),
    schema.META_VOCAB: json.dumps(VOCAB).encode(),
    schema.META_PROVENANCE: b"{}",
}


@pytest.mark.parametrize(
    "patch",
    [
        {schema.META_VOCAB: b'["<pad>", "<unk"'},  # truncated JSON
        {schema.META_VOCAB: b"\xff\xfe[]"},  # not UTF-8
        {schema.META_VOCAB: b'{"a": 1}'},  # wrong JSON type
        {schema.META_VOCAB: b"[1, 2, 3]"},  # not strings
        {schema.META_PROVENANCE: b"[1, 2"},
        {schema.META_PROVENANCE: b'"just a string"'},
        {schema.META_VERSION: b"\xff\xff"},
    ],
    ids=[
        "vocab-truncated",
        "vocab-not-utf8",
        "vocab-object",
        "vocab-ints",
        "prov-truncated",
        "prov-string",
        "version-not-utf8",
    ],
)
def test_corrupt_metadata_is_a_graph_file_error(tmp_path: Path, patch: dict[bytes, bytes]) -> None:
    path = _write_raw(
        tmp_path / "g.arrow", rows(3).cast(schema.GRAPH_SCHEMA), {**GOOD_META, **patch}
    )
    with pytest.raises(schema.GraphFileError) as caught:
        schema.open_graphs(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_wrong_column_type_is_a_graph_file_error(tmp_path: Path) -> None:
    table = rows(3).cast(schema.GRAPH_SCHEMA)
    table = table.set_column(
        table.schema.get_field_index("context_ids"),
        "context_ids",
        table.column("context_ids").cast(pa.list_(pa.int64())),
    )
    path = _write_raw(tmp_path / "g.arrow", table, GOOD_META)
    with pytest.raises(schema.GraphFileError, match="context_ids"):
        schema.open_graphs(path)
