"""SQL is parameterised, and the tools write nothing outside the output folders the user named.

* Terms with quotes, semicolons and SQL comments go through `kemp-kg query` and
  `KnowledgeIndex.neighbours` as data: a term that really holds a quote is found, an injection
  attempt finds nothing and changes nothing.
* An `--index` folder whose NAME holds a quote and a semicolon builds (paths are user data too).
* build-index, enrich and train run with the working folder, TMPDIR and HOME pointed at watched
  folders: afterwards the only new entries anywhere under the watched root are the outputs named
  on the command lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kemp_kg.index import build_index, open_index

BIN = Path(sys.executable).parent
QUOTED = "rock 'n' roll"
INJECTIONS = [
    "x'; DROP TABLE edges; --",
    'x"; DELETE FROM edges; --',
    "' OR '1'='1",
    "happy' UNION SELECT head, relation, tail, weight, 1.0 FROM edges --",
    "%'; COPY edges TO '/tmp/kemp-pwned.csv'; --",
]


def run(
    command: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("knowledge")
    triples = folder / "knowledge.tsv"
    triples.write_text(
        "head\trelation\ttail\tweight\n"
        f"{QUOTED}\tRelatedTo\tmusic\t2.0\n"
        "happy\tRelatedTo\tjoy\t2.0\n"
        "semi;colon\tRelatedTo\tpunctuation\t1.0\n"
        "happy\tRelatedTo\tsmile\t1.0\n"
    )
    lexicon = folder / "lexicon.tsv"
    lexicon.write_text(
        "Word\tValence\tArousal\tDominance\nhappy\t1.0\t0.735\t0.772\nmusic\t0.9\t0.6\t0.5\n"
    )
    return triples, lexicon


def edge_count(index_dir: Path) -> int:
    con = open_index(index_dir).connect()
    try:
        return con.execute("SELECT count(*) FROM edges").fetchone()[0]
    finally:
        con.close()


def test_index_folder_named_with_quotes_and_semicolons_builds(tmp_path: Path, knowledge) -> None:
    triples, lexicon = knowledge
    weird = tmp_path / "it's; DROP TABLE edges; --"
    result = run(
        "kemp-kg",
        "build-index",
        str(triples),
        "--lexicon",
        str(lexicon),
        "--index",
        str(weird),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert edge_count(weird) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [weird.name]


def test_terms_with_quotes_and_semicolons_are_data_not_sql(tmp_path: Path, knowledge) -> None:
    triples, lexicon = knowledge
    index_dir = tmp_path / "idx"
    build_index(triples, lexicon, index_dir)
    index = open_index(index_dir)
    assert [n.concept for n in index.neighbours(QUOTED)] == ["music"]
    assert [n.concept for n in index.neighbours("semi;colon")] == ["punctuation"]
    for attack in INJECTIONS:
        assert index.neighbours(attack) == [], attack
    assert edge_count(index_dir) == 4
    found = run("kemp-kg", "query", QUOTED, "--index", str(index_dir), cwd=tmp_path)
    assert found.returncode == 0 and "music" in found.stdout, found.stderr
    for attack in INJECTIONS[:2]:
        result = run("kemp-kg", "query", attack, "--index", str(index_dir), cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "joy" not in result.stdout and "music" not in result.stdout
    assert edge_count(index_dir) == 4
    assert not Path("/tmp/kemp-pwned.csv").exists()


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_tools_write_only_inside_the_named_outputs(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    work, home, tmpdir, inputs = (root / n for n in ("work", "home", "tmp", "inputs"))
    for folder in (work, home, tmpdir, inputs):
        folder.mkdir(parents=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "MPLCONFIGDIR": str(home / "mpl"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    sample = run("kemp-kg", "sample", "--to", str(inputs), cwd=work, env=env)
    assert sample.returncode == 0, sample.stderr
    before = snapshot(root)
    out = work / "out"
    steps = [
        (
            "kemp-kg",
            "build-index",
            str(inputs / "knowledge.tsv"),
            "--lexicon",
            str(inputs / "lexicon.tsv"),
            "--index",
            str(out / "index"),
        ),
        (
            "kemp-kg",
            "enrich",
            str(inputs / "dialogues.jsonl"),
            "--index",
            str(out / "index"),
            "--out",
            str(out / "graphs.arrow"),
        ),
        (
            "kemp-model",
            "train",
            "--graphs",
            str(out / "graphs.arrow"),
            "--preset",
            "tiny",
            "--max-steps",
            "2",
            "--eval-every",
            "2",
            "--eval-examples",
            "4",
            "--batch-size",
            "4",
            "--no-progress",
            "--out",
            str(out / "run"),
        ),
    ]
    for command, *args in steps:
        result = run(command, *args, cwd=work, env=env)
        assert result.returncode == 0, f"{command} {args[0]}: {result.stderr[-3000:]}"
    after = snapshot(root)
    named = ("work/out/index", "work/out/graphs.arrow", "work/out/run")
    new = sorted(p for p in after - before if not p.startswith(named) and p != "work/out")
    # Library caches, not tool outputs: matplotlib's font cache under HOME, and the (empty) cache
    # folder torch creates in TMPDIR on first use of its compiler stack.
    allowed_caches = ("home/mpl", "home/.cache/matplotlib", "tmp/torchinductor_")
    stray = [p for p in new if not p.startswith(allowed_caches)]
    assert stray == [], f"files written outside the named outputs: {stray}"
    assert sorted(p.name for p in out.iterdir()) == ["graphs.arrow", "index", "run"]
    leftovers = [
        p
        for p in tmpdir.rglob("*")
        if not p.relative_to(tmpdir).as_posix().startswith("torchinductor_")
    ]
    assert leftovers == []  # temp files cleaned up
    assert not any(p.is_file() for p in tmpdir.rglob("*"))
