"""`kemp-kg build-index` and `kemp-kg query` end to end: exit codes, one-line errors, output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def kemp_kg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kemp-kg")
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_build_then_query(tmp_path: Path, sample_knowledge: Path, sample_lexicon: Path) -> None:
    run = kemp_kg(
        "build-index",
        str(sample_knowledge),
        "--lexicon",
        str(sample_lexicon),
        "--index",
        "idx",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "edges" in run.stdout and "374" in run.stdout
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["counts"]["edges"] == 374

    again = kemp_kg(
        "build-index",
        str(sample_knowledge),
        "--lexicon",
        str(sample_lexicon),
        "--index",
        "idx",
        cwd=tmp_path,
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout

    query = kemp_kg("query", "happy", "--index", "idx", "--top", "4", cwd=tmp_path)
    assert query.returncode == 0, query.stderr
    assert "neighbours of 'happy'" in query.stdout
    body = [line for line in query.stdout.splitlines() if "│" in line and "concept" not in line]
    assert len(body) == 4
    assert any("Synonym" in line or "RelatedTo" in line for line in body)


def test_one_line_errors_and_exit_codes(tmp_path: Path, sample_knowledge: Path) -> None:
    missing = kemp_kg("query", "happy", "--index", "nowhere", cwd=tmp_path)
    assert missing.returncode == 3
    assert missing.stderr.strip().count("\n") == 0 and "kemp-kg build-index" in missing.stderr

    bad_lexicon = tmp_path / "lex.txt"
    bad_lexicon.write_text("Word\tValence\tArousal\tDominance\nhappy\t0.9\n")
    run = kemp_kg(
        "build-index",
        str(sample_knowledge),
        "--lexicon",
        str(bad_lexicon),
        "--index",
        "idx",
        cwd=tmp_path,
    )
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "lex.txt: line 2:" in lines[0]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "idx").exists()


def test_real_conceptnet_fixture_through_the_cli(
    tmp_path: Path, shared_data: Path, nrc_vad: Path
) -> None:
    dump = shared_data / "conceptnet" / "conceptnet5_testdata_assertions.csv"
    run = kemp_kg(
        "build-index", str(dump), "--lexicon", str(nrc_vad), "--index", "idx", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["counts"]["english_rows"] == 96
    query = kemp_kg("query", "test", "--index", "idx", cwd=tmp_path)
    assert query.returncode == 0, query.stderr
    assert "challenge" in query.stdout and "Synonym" in query.stdout


def test_wordnet_without_nltk_data_is_a_one_line_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("kemp-kg")
    run = subprocess.run(
        [str(exe), "build-index", "wordnet", "--index", "idx"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "300"},
    )
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "NLTK_DATA" in errors[0] and "WordNet 3.0 not found" in errors[0]
    assert not (tmp_path / "idx").exists()
