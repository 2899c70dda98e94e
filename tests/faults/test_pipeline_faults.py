"""Faults through the real commands: kill -9, a full disk, corrupt inputs, concurrent runs.

Every command runs as its own process (`python -c` calling the console entry point), so a
fault can be injected at an exact point by patching one function first: the patched function
prints a marker and sleeps, and the test sends SIGKILL when it reads the marker. Afterwards the
previous outputs must be byte-identical and valid, nothing partial may sit under a final name,
and a plain rerun must complete. User-data failures must be ONE `error:` line, a non-zero exit,
and no traceback.

Tests marked `xfail(strict=True)` pin bugs found in other modules (see tests/faults/README.md):
they fail today and will XPASS (and so fail CI) once fixed, to remind whoever fixes them to drop
the marker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kemp_kg import schema
from kemp_kg.index import open_index

MARKER = "KEMP-FAULT-POINT"
ENV = {**os.environ, "NLTK_DATA": os.environ.get("NLTK_DATA", "")}


def command(package: str, argv: list[str], patch: str = "") -> list[str]:
    """`python -c` running ``package``'s CLI with ``argv`` after executing ``patch``."""
    name = "kemp-kg" if package == "kemp_kg" else "kemp-model"
    code = (
        "import sys, time\n"
        + textwrap.dedent(patch)
        + f"\nsys.argv = {[name, *argv]!r}\nfrom {package}.cli import main\nmain()\n"
    )
    return [sys.executable, "-c", code]


def run(
    package: str, argv: list[str], *, cwd: Path, patch: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(package, argv, patch), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )


def start_held(package: str, argv: list[str], patch: str, *, cwd: Path) -> subprocess.Popen[str]:
    """Start the command with PATCH (which prints MARKER, then holds) and return once MARKER is
    on its stdout (or the process ended without it)."""
    proc = subprocess.Popen(
        command(package, argv, patch),
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if MARKER in line:
            break
    return proc


def kill_at_marker(
    package: str, argv: list[str], patch: str, *, cwd: Path, timeout: float = 120
) -> None:
    """Start the command, wait for MARKER on its stdout, SIGKILL it, and reap it."""
    proc = subprocess.Popen(
        command(package, argv, patch),
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if MARKER in line:
                seen.set()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    reached = seen.wait(timeout)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert reached, f"fault point never reached; stderr: {err[-3000:]}"
    assert proc.returncode == -signal.SIGKILL


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a failed command (asserting there is exactly one, no traceback)."""
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------------------------------------
# The inputs and a first good generation of every output (`golden`, `golden_run`) are made once
# per session by conftest.py and shared read-only by every fault module.


def TRAIN_ARGS(graphs: Path, out: Path, *, steps: int, resume: bool = False) -> list[str]:  # noqa: N802
    args = [
        "train",
        "--graphs",
        str(graphs),
        "--preset",
        "tiny",
        "--max-steps",
        str(steps),
        "--eval-every",
        "2",
        "--eval-examples",
        "4",
        "--batch-size",
        "4",
        "--no-progress",
        "--out",
        str(out),
    ]
    return args + (["--resume"] if resume else [])


def neighbours(index_dir: Path, word: str) -> list[str]:
    return [n.concept for n in open_index(index_dir).neighbours(word, top=50)]


# ------------------------------------------------------------------------------------------------
# kill -9


def _build_v2(golden: dict[str, Path], index_dir: Path) -> list[str]:
    """Rebuild INDEX_DIR (an index of knowledge.tsv) from another source: needs --force."""
    inputs = golden["inputs"]
    return [
        "build-index",
        str(golden["knowledge_v2"]),
        "--lexicon",
        str(inputs / "lexicon.tsv"),
        "--index",
        str(index_dir),
        "--force",
    ]


BUILD_KILL_POINTS = {
    # while DuckDB fills the tables in DIR.tmp-XXXX
    "loading": f"""
        import kemp_kg.index as m
        _orig = m._write_index
        def _slow(*a, **k):
            print("{MARKER}", flush=True); time.sleep(120)
            return _orig(*a, **k)
        m._write_index = _slow
    """,
    # the new folder is complete and fsynced, the swap has not started
    "before-swap": f"""
        import kemp_kg.index as m
        _orig = m._fsync_tree
        def _slow(folder):
            _orig(folder); print("{MARKER}", flush=True); time.sleep(120)
        m._fsync_tree = _slow
    """,
}


@pytest.mark.parametrize("point", sorted(BUILD_KILL_POINTS))
def test_kill_9_during_build_index_keeps_the_previous_index(
    tmp_path: Path, golden, point: str
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    before = tree_bytes(index_dir)
    happy = neighbours(index_dir, "happy")
    kill_at_marker("kemp_kg", _build_v2(golden, index_dir), BUILD_KILL_POINTS[point], cwd=tmp_path)
    assert tree_bytes(index_dir) == before  # byte-identical, and it still opens and answers
    assert neighbours(index_dir, "happy") == happy and neighbours(index_dir, "kempfault") == []
    others = sorted(p.name for p in tmp_path.iterdir() if p.name != "index")
    # never a final name; the killed run's (unlocked) lock file may stay beside it
    assert all(n.startswith("index.tmp-") or n == ".index.lock" for n in others), others
    rerun = run("kemp_kg", _build_v2(golden, index_dir), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert neighbours(index_dir, "kempfault") == ["sentinel"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # the killed run's temp: gone


def test_kill_9_right_after_the_index_swap_leaves_a_complete_index(tmp_path: Path, golden) -> None:
    """Killed between the atomic folder exchange and the removal of the swapped-out index:
    the final name holds the NEW complete index, the old one waits in INDEX.tmp-X for cleanup."""
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    patch = f"""
        import pathlib, shutil
        _orig = shutil.rmtree
        def _rmtree(path, *args, **kwargs):
            if pathlib.Path(path).name.startswith("index.tmp-"):
                print("{MARKER}", flush=True); time.sleep(120)
            return _orig(path, *args, **kwargs)
        shutil.rmtree = _rmtree
    """
    kill_at_marker("kemp_kg", _build_v2(golden, index_dir), patch, cwd=tmp_path)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert open_index(index_dir).manifest == manifest
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("index.tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "manifest.json").is_file()  # the old index
    rerun = run("kemp_kg", _build_v2(golden, index_dir), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # the old copy: cleaned up


def test_kill_9_during_enrich_write_keeps_the_previous_graphs(tmp_path: Path, golden) -> None:
    out = tmp_path / "graphs.arrow"
    shutil.copy(golden["graphs"], out)
    before = out.read_bytes()
    inputs = golden["inputs"]
    argv = [
        "enrich",
        str(inputs / "dialogues.jsonl"),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
    ]
    patch = f"""
        from kemp_kg import schema
        _orig = schema.write_graphs
        def _slow(path, batches, **kw):
            def gen():
                for batch in batches:
                    yield batch
                    print("{MARKER}", flush=True); time.sleep(120)
            return _orig(path, gen(), **kw)
        schema.write_graphs = _slow
    """
    kill_at_marker("kemp_kg", argv, patch, cwd=tmp_path)
    assert out.read_bytes() == before and len(schema.open_graphs(out)) > 0
    others = sorted(p.name for p in tmp_path.iterdir() if p.name != "graphs.arrow")
    assert len(others) == 2 and ".graphs.arrow.lock" in others, others  # + the killed temp file
    assert all(name.startswith(".graphs.arrow.") for name in others)
    assert schema.open_graphs(tmp_path).paths == (out,)  # a folder read sees only the real file
    rerun = run("kemp_kg", argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert schema.open_graphs(out).table.equals(schema.open_graphs(golden["graphs"]).table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.arrow"]  # killed temp: gone


@pytest.mark.slow  # two training processes (~30 s); the trainer's own kill -9 test is slow too
def test_kill_9_during_checkpoint_save_keeps_the_previous_checkpoint(
    tmp_path: Path, golden, golden_run
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(golden_run, run_dir)
    before = tree_bytes(run_dir)
    argv = TRAIN_ARGS(golden["graphs"], run_dir, steps=4, resume=True)
    patch = f"""
        import kemp_model.checkpoint as ck
        _orig = ck.save_file
        def _slow(tensors, filename, metadata=None):
            _orig(tensors, filename, metadata=metadata)  # the temp file is complete, not renamed
            print("{MARKER}", flush=True); time.sleep(120)
        ck.save_file = _slow
    """
    kill_at_marker("kemp_model", argv, patch, cwd=tmp_path, timeout=240)
    after = tree_bytes(run_dir)
    leftovers = sorted(k for k in after if k not in before)
    assert all(k.startswith(".") and k.endswith(".tmp") for k in leftovers), leftovers
    for name, data in before.items():
        if name == "metrics.jsonl":  # may have gained whole lines of the killed run
            assert after[name].startswith(data)
            for line in after[name].decode().splitlines():
                json.loads(line)
        else:
            assert after[name] == data, name
    rerun = run("kemp_model", argv, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed at 2" in rerun.stdout


# ------------------------------------------------------------------------------------------------
# A full disk while exporting

ENOSPC_ARROW = """
    import errno, os
    import pyarrow as pa
    class _Full:
        def __init__(self, path): self._h = open(path, "wb"); self._p = path; self._n = 0; self.closed = False
        def write(self, data):
            if self._n + len(data) > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._p)
            self._n += len(data); return self._h.write(data)
        def flush(self): self._h.flush()
        def close(self): self._h.close(); self.closed = True
        def tell(self): return self._n
        def writable(self): return True
    pa.OSFile = lambda path, mode="rb": pa.PythonFile(_Full(path), mode="w")
"""


def test_disk_full_during_enrich_is_one_line_and_keeps_the_previous_graphs(
    tmp_path: Path, golden
) -> None:
    out = tmp_path / "graphs.arrow"
    shutil.copy(golden["graphs"], out)
    before = out.read_bytes()
    argv = [
        "enrich",
        str(golden["inputs"] / "dialogues.jsonl"),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
    ]
    line = one_line_error(run("kemp_kg", argv, cwd=tmp_path, patch=ENOSPC_ARROW))
    assert "No space left on device" in line and f"{out}: cannot write" in line  # the final name
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.arrow"]


def test_disk_full_during_build_index_is_one_line_and_keeps_the_previous_index(
    tmp_path: Path, golden
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    before = tree_bytes(index_dir)
    patch = """
        import duckdb, kemp_kg.index as m
        class _Con:
            def __init__(self, con): self._con = con
            def __getattr__(self, name): return getattr(self._con, name)
            def execute(self, sql, *a, **k):
                if sql.lstrip().upper().startswith("COPY"):
                    raise duckdb.IOException('Could not write file "x.parquet": No space left on device')
                return self._con.execute(sql, *a, **k)
        _connect = duckdb.connect
        m.duckdb = type("D", (), {"connect": staticmethod(lambda *a, **k: _Con(_connect(*a, **k))),
                                   "__getattr__": lambda self, n: getattr(duckdb, n)})()
    """
    result = run("kemp_kg", _build_v2(golden, index_dir), cwd=tmp_path, patch=patch)
    assert tree_bytes(index_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    assert "No space left" in one_line_error(result)


@pytest.mark.slow
def test_disk_full_during_checkpoint_save_is_one_line(tmp_path: Path, golden, golden_run) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(golden_run, run_dir)
    before = {k: v for k, v in tree_bytes(run_dir).items() if k != "metrics.jsonl"}
    patch = """
        import kemp_model.checkpoint as ck
        from safetensors import SafetensorError
        def _full(*a, **k):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        ck.save_file = _full
    """
    result = run(
        "kemp_model",
        TRAIN_ARGS(golden["graphs"], run_dir, steps=4, resume=True),
        cwd=tmp_path,
        patch=patch,
    )
    assert {k: v for k, v in tree_bytes(run_dir).items() if k != "metrics.jsonl"} == before
    assert "No space left" in one_line_error(result)


# ------------------------------------------------------------------------------------------------
# Corrupt inputs: one line, non-zero exit, no traceback


def _dump_line(head: str, tail: str) -> str:
    meta = json.dumps({"dataset": "/d/test", "weight": 1.0})
    return f"/a/[/r/RelatedTo/,/c/en/{head}/,/c/en/{tail}/]\t/r/RelatedTo\t/c/en/{head}\t/c/en/{tail}\t{meta}\n"


def test_corrupt_dumps_through_build_index(tmp_path: Path, golden) -> None:
    import gzip
    import random

    rng = random.Random(6)
    lexicon = str(golden["inputs"] / "lexicon.tsv")
    good = "".join(_dump_line(f"w{i}", f"v{i}") for i in range(2000)).encode()
    garbage = (
        b"\n".join(
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"")
            for _ in range(300)
        )
        + b"\n"
    )
    (tmp_path / "garbage.csv").write_bytes(garbage)  # random binary lines only
    lines = good.splitlines(keepends=True) + garbage.splitlines(keepends=True)
    rng.shuffle(lines)
    (tmp_path / "mixed.csv").write_bytes(b"".join(lines))  # valid rows among random binary lines
    data = gzip.compress(good)
    cuts = (10, 50, 90)
    for cut in cuts:  # a gzip dump cut short
        (tmp_path / f"cut{cut}.csv.gz").write_bytes(data[: len(data) * cut // 100])
    sources = ["garbage.csv", "mixed.csv", *(f"cut{cut}.csv.gz" for cut in cuts)]
    cases = [
        (
            "kemp_kg",
            [
                "build-index",
                str(tmp_path / name),
                "--lexicon",
                lexicon,
                "--index",
                str(tmp_path / f"index-{name}"),
            ],
        )
        for name in sources
    ]
    results = dict(zip(sources, run_many(cases, cwd=tmp_path)))
    # Only random lines: refused as a whole, one line naming the file, no index folder.
    assert "garbage.csv" in one_line_error(results["garbage.csv"])
    assert not (tmp_path / "index-garbage.csv").exists()
    # Mixed: exactly the valid rows are kept, the bad lines counted by reason.
    assert results["mixed.csv"].returncode == 0, results["mixed.csv"].stderr[-3000:]
    manifest = json.loads((tmp_path / "index-mixed.csv" / "manifest.json").read_text())
    assert manifest["counts"]["edges"] == 2000 and sum(manifest["skipped"].values()) >= 1
    # Truncated gzip: the readable prefix is indexed and the cut reported, or one clean line.
    for cut in cuts:
        name = f"cut{cut}.csv.gz"
        if results[name].returncode == 0:
            manifest = json.loads((tmp_path / f"index-{name}" / "manifest.json").read_text())
            assert (
                manifest["skipped"].get("truncated gzip") == 1
                and manifest["counts"]["edges"] < 2000
            )
        else:
            assert (
                name in one_line_error(results[name]) and not (tmp_path / f"index-{name}").exists()
            )


WRONG_TYPES = {
    "dialogues-not-a-list.json": {"format": "kemp-dialogues/1", "dialogues": {"id": "a"}},
    "records-of-wrong-types.json": [
        {"id": ["x"], "turns": "hello"},
        {"id": "b", "turns": [{"role": 1, "text": None}]},
        {"id": "c", "split": 7, "emotion": {"x": 1}, "turns": [{"role": "speaker", "text": 3.5}]},
        17,
        None,
        "string",
    ],
    "scalar.json": 42,
}


def test_dialogue_json_with_wrong_types_is_one_line(tmp_path: Path, golden) -> None:
    cases = []
    for name, document in WRONG_TYPES.items():
        (tmp_path / name).write_text(json.dumps(document))
        cases.append(
            (
                "kemp_kg",
                [
                    "enrich",
                    str(tmp_path / name),
                    "--index",
                    str(golden["index"]),
                    "--out",
                    str(tmp_path / (name + ".arrow")),
                ],
            )
        )
    for name, result in zip(WRONG_TYPES, run_many(cases, cwd=tmp_path)):
        line = one_line_error(result)
        # The file is named, or (every record skipped) the message says what is missing.
        assert name in line or "no training conversations" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(WRONG_TYPES)  # no output written


RUN_MANY = """
import contextlib, io, json, sys
cases = json.loads(sys.argv[1])
report = []
for package, argv in cases:
    main = __import__(package + ".cli", fromlist=["main"]).main
    err, out = io.StringIO(), io.StringIO()
    sys.argv = [package.replace("_", "-").replace("kemp-model", "kemp-model"), *argv]
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:
            code = "uncaught " + type(exc).__name__
    report.append({"argv": argv, "code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
print(json.dumps(report))
"""


def run_many(
    cases: list[tuple[str, list[str]]], *, cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Run several commands in ONE interpreter (imports paid once); results in order."""
    result = subprocess.run(
        [sys.executable, "-c", RUN_MANY, json.dumps(cases)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return [
        subprocess.CompletedProcess(
            e["argv"],
            e["code"] if isinstance(e["code"], int) else 99,
            e["stdout"],
            e["stderr"] + ("" if isinstance(e["code"], int) else "\nTraceback: " + e["code"]),
        )
        for e in report
    ]


def test_truncated_graph_file_through_kemp_model_and_inspect(tmp_path: Path, golden) -> None:
    data = golden["graphs"].read_bytes()
    cases: list[tuple[str, list[str]]] = []
    paths = []
    for percent in range(0, 100, 10):
        path = tmp_path / f"cut{percent:02d}.arrow"
        path.write_bytes(data[: len(data) * percent // 100])
        paths.append(path)
        cases.append(
            (
                "kemp_model",
                [
                    "train",
                    "--graphs",
                    str(path),
                    "--preset",
                    "tiny",
                    "--max-steps",
                    "1",
                    "--out",
                    f"{path}.run",
                ],
            )
        )
        cases.append(("kemp_kg", ["inspect", str(path), "--example", "0"]))
    results = run_many(cases, cwd=tmp_path)
    assert len(results) == 20
    for result in results:
        line = one_line_error(result)
        assert any(str(p) in line for p in paths), line
    assert not any(Path(f"{p}.run").exists() for p in paths)  # no run folder for a bad input


def _rewrite_checkpoint(path: Path, change: str) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:  # keep the header metadata
        metadata = handle.metadata() or {}
    name = sorted(tensors)[0]
    if change == "wrong-shape":
        tensors[name] = torch.zeros(tuple(s + 1 for s in tensors[name].shape) or (2,))
    elif change == "missing-tensor":
        del tensors[name]
    save_file(tensors, str(path), metadata=metadata)


CHECKPOINT_CHANGES = ("wrong-shape", "missing-tensor", "truncated", "garbage")


def test_bad_checkpoints_are_one_line(tmp_path: Path, golden, golden_run) -> None:
    cases: list[tuple[str, list[str]]] = []
    for change in CHECKPOINT_CHANGES:
        run_dir = tmp_path / change
        shutil.copytree(golden_run, run_dir)
        best = run_dir / "best.safetensors"
        if change == "truncated":
            best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
        elif change == "garbage":
            best.write_bytes(os.urandom(best.stat().st_size))
        else:
            _rewrite_checkpoint(best, change)
        cases.append(
            (
                "kemp_model",
                [
                    "evaluate",
                    str(run_dir),
                    "--graphs",
                    str(golden["graphs"]),
                    "--split",
                    "test",
                    "--limit",
                    "2",
                ],
            )
        )
    for change, result in zip(CHECKPOINT_CHANGES, run_many(cases, cwd=tmp_path)):
        line = one_line_error(result)
        assert change in line, (change, line)  # names the run folder / file


# ------------------------------------------------------------------------------------------------
# Concurrent runs writing the same output


def test_concurrent_enrich_of_one_output_fails_clearly_while_the_first_writes(
    tmp_path: Path, golden
) -> None:
    out = tmp_path / "graphs.arrow"
    argv = [
        "enrich",
        str(golden["inputs"] / "dialogues.jsonl"),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
    ]
    release = tmp_path.parent / f"{tmp_path.name}.release"
    hold = f"""
        import pathlib
        from kemp_kg import schema
        _orig = schema.write_graphs
        def _slow(path, batches, **kw):
            def gen():
                for batch in batches:
                    print("{MARKER}", flush=True)
                    deadline = time.time() + 120
                    while not pathlib.Path({str(release)!r}).exists() and time.time() < deadline:
                        time.sleep(0.05)  # hold the output until the test has run the second enrich
                    yield batch
            return _orig(path, gen(), **kw)
        schema.write_graphs = _slow
    """
    first = start_held("kemp_kg", argv, hold, cwd=tmp_path)
    second = run("kemp_kg", argv, cwd=tmp_path)
    release.touch()
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err[-3000:]
    assert "another kemp process is writing" in one_line_error(second)
    assert schema.open_graphs(out).table.equals(schema.open_graphs(golden["graphs"]).table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.arrow"]


def test_concurrent_train_into_one_run_folder_fails_clearly(tmp_path: Path, golden) -> None:
    run_dir = tmp_path / "run"
    argv = TRAIN_ARGS(golden["graphs"], run_dir, steps=2)
    release = tmp_path.parent / f"{tmp_path.name}.release"
    hold = f"""
        import pathlib
        import kemp_model.train as m
        _orig = m.Trainer.fit
        def _slow(self):
            print("{MARKER}", flush=True)  # set up: config.json written, checks passed
            deadline = time.time() + 120
            while not pathlib.Path({str(release)!r}).exists() and time.time() < deadline:
                time.sleep(0.05)  # hold the run until the second train has run
            return _orig(self)
        m.Trainer.fit = _slow
    """
    first = start_held("kemp_model", argv, hold, cwd=tmp_path)
    before = tree_bytes(run_dir)
    # --force would replace a finished run; while one is being trained it must be refused
    second = run("kemp_model", [*argv, "--force"], cwd=tmp_path)
    after_second = tree_bytes(run_dir)
    release.touch()
    _, first_err = first.communicate(timeout=180)
    assert first.returncode == 0, first_err[-3000:]
    line = one_line_error(second)
    assert "another kemp process is writing" in line and str(run_dir) in line, line
    assert after_second == before  # the second run touched nothing
    records = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["kind"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)) and ("valid", 2) in keys, keys  # one run's log, not two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the lock file is gone


@pytest.mark.slow
def test_concurrent_build_index_of_one_folder_fails_clearly(tmp_path: Path, golden) -> None:
    index_dir = tmp_path / "index"
    release = tmp_path.parent / f"{tmp_path.name}.release"
    hold = f"""
        import pathlib
        import kemp_kg.index as m
        _orig = m._write_index
        def _slow(*a, **k):
            print("{MARKER}", flush=True)
            deadline = time.time() + 120
            while not pathlib.Path({str(release)!r}).exists() and time.time() < deadline:
                time.sleep(0.05)  # hold the build until the second one has run
            return _orig(*a, **k)
        m._write_index = _slow
    """
    first = start_held("kemp_kg", _build_v2(golden, index_dir), hold, cwd=tmp_path)
    inputs = golden["inputs"]
    second = run(
        "kemp_kg",
        [
            "build-index",
            str(inputs / "knowledge.tsv"),
            "--lexicon",
            str(inputs / "lexicon.tsv"),
            "--index",
            str(index_dir),
        ],
        cwd=tmp_path,
    )
    release.touch()
    first.communicate(timeout=120)
    assert neighbours(index_dir, "kempfault") in (
        [],
        ["sentinel"],
    )  # whichever won, the index is whole
    assert "another kemp process" in one_line_error(second)
