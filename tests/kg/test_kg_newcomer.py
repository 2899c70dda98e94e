"""A newcomer's first hour on the kemp-kg side: NLTK data, dialogue formats, errors that list the
valid values, a dialogues file passed where a graph file belongs, help texts and --version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kemp_kg.cli  # noqa: F401  (registers the commands)
from kemp_kg import schema
from kemp_kg.cli.app import app
from kemp_kg.dialogues import DIALOGUES_FORMAT, read_dialogues
from kemp_kg.errors import InputError

REPO = Path(__file__).resolve().parents[2]
RECORD = {
    "id": "d1",
    "split": "train",
    "emotion": "joyful",
    "turns": [
        {"role": "speaker", "text": "I got the job!"},
        {"role": "listener", "text": "Congratulations!"},
    ],
}


def kemp_kg(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kemp-kg")
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **env},
    )


# ------------------------------------------------------------------------------------ NLTK data


def test_missing_nltk_data_offline_is_one_line_naming_nltk_data(
    tmp_path: Path, sample_index: Path
) -> None:
    """No NLTK data and no network: one line saying what to set, no downloader URL spam."""
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    empty = tmp_path / "nltk_empty"
    empty.mkdir()
    dead_proxy = "http://127.0.0.1:9"  # nothing listens: every download fails at once
    env = {
        "NLTK_DATA": str(empty),
        "HOME": str(tmp_path),
        "http_proxy": dead_proxy,
        "https_proxy": dead_proxy,
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
    }
    run = kemp_kg(
        "enrich", str(path), "--index", str(sample_index), "--out", "g.arrow", cwd=tmp_path, env=env
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "[nltk_data]" not in run.stderr + run.stdout
    assert "Warning" not in run.stderr and "http" not in run.stderr.lower()
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "NLTK_DATA" in errors[0] and str(empty) in errors[0]
    assert "corpora/stopwords" in errors[0] and "nltk.downloader" in errors[0]
    # at most the one "fetching ..." line besides the error
    assert len([line for line in run.stderr.splitlines() if line.strip()]) <= 2, run.stderr
    assert not (tmp_path / "g.arrow").exists()


@pytest.mark.parametrize("command", [["enrich"], ["build-index"]], ids=["enrich", "build-index"])
def test_help_of_commands_needing_nltk_mentions_nltk_data(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert "NLTK_DATA" in result.output


# ------------------------------------------------------------------------------ dialogue formats


def test_json_without_format_is_read_as_kemp_dialogues(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"dialogues": [RECORD]}), encoding="utf-8")
    conversations, _ = read_dialogues(path)
    assert [c.conv_id for c in conversations] == ["d1"]


def test_json_with_another_format_names_the_one_to_write(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"format": "dialogues", "dialogues": [RECORD]}), encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_dialogues(path)
    assert f'"format": "{DIALOGUES_FORMAT}"' in str(info.value)
    assert "None" not in str(info.value)


def test_json_object_without_dialogues_shows_the_envelope(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"format": DIALOGUES_FORMAT, "conversations": []}), "utf-8")
    with pytest.raises(InputError, match=re.escape('"dialogues": [...]')):
        read_dialogues(path)


def test_unknown_emotion_lists_the_32_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({**RECORD, "emotion": "happy"}) + "\n", encoding="utf-8")
    _, report = read_dialogues(path)
    assert report.skipped["unknown_emotion"] == 1
    message = report.messages[0]
    assert all(label in message for label in schema.EMOTIONS), message
    with pytest.raises(InputError, match="'happy' is not one of the 32"):
        read_dialogues(path, strict=True)


def test_unknown_split_lists_the_splits(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({**RECORD, "split": "training"})
        + "\n"
        + json.dumps({**RECORD, "id": "d2", "split": None})
        + "\n",
        "utf-8",
    )
    _, report = read_dialogues(path)
    assert report.skipped["unknown_split"] == 2
    for message in report.messages:
        assert "train, valid or test" in message, message


def test_readme_specifies_both_formats_and_the_labels() -> None:
    """README: the .json envelope with its format value, .jsonl, and all 32 labels; the .json
    example in it is read as written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Dialogue formats") :]
    section = section[: section.index("\n## ")]
    assert ".jsonl" in section and ".json" in section
    for label in schema.EMOTIONS:
        assert f"`{label}`" in section, label
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    documents = [b for b in blocks if b.lstrip().startswith("{\n") or '"dialogues"' in b]
    assert documents, "no .json example"
    document = json.loads(documents[0])
    assert document["format"] == DIALOGUES_FORMAT


def test_readme_json_example_is_read(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Dialogue formats") :]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    document = next(b for b in blocks if '"dialogues"' in b)
    path = tmp_path / "dialogues.json"
    path.write_text(document, encoding="utf-8")
    conversations, report = read_dialogues(path)
    assert conversations and not report.skipped


# ------------------------------------------------------------- a dialogues file as a graph file


@pytest.mark.parametrize(
    "content",
    [
        '{"format": "kemp-dialogues/1", "dialogues": []}',
        '{"id": "a", "turns": []}\n',
        "conv_id,utterance_idx\n",
    ],
)
def test_text_file_as_graph_file_says_to_enrich_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "dialogues.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(schema.GraphFileError) as info:
        schema.open_graphs(path)
    message = str(info.value)
    assert "kemp-kg enrich" in message and "truncated" not in message


def test_damaged_arrow_file_still_says_truncated(tmp_path: Path) -> None:
    path = tmp_path / "g.arrow"
    path.write_bytes(b"ARROW1\x00\x00" + bytes(range(40)))
    with pytest.raises(schema.GraphFileError, match="truncated"):
        schema.open_graphs(path)


# ------------------------------------------------------------------------------ help and version


def test_version() -> None:
    from kemp_kg import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"kemp-kg {__version__}"


@pytest.mark.parametrize(
    "command", ["download", "build-index", "query", "enrich", "inspect", "sample"]
)
def test_help_has_no_bool_markers(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert "<bool>" not in result.output


def test_enrich_help_shows_choices() -> None:
    output = CliRunner().invoke(app, ["enrich", "--help"], terminal_width=100).output
    assert "[sense|paper|official]" in output and "[train|valid|test]" in output


# ------------------------------------------------------------------ the index a graph file names


def test_enrich_records_the_absolute_index_path_and_checksum(
    tmp_path: Path, sample_index: Path, nltk_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kemp_kg.enrich import enrich
    from kemp_kg.index import open_index
    from kemp_kg.presets import paper

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    monkeypatch.chdir(sample_index.parent)
    enrich([path], Path(sample_index.name), tmp_path / "g.arrow", config=paper(), workers=1)
    recorded = schema.open_graphs(tmp_path / "g.arrow").provenance["index"]
    assert recorded["path"] == str(sample_index.resolve())
    manifest = open_index(sample_index).manifest
    assert recorded["checksum"] == schema.index_checksum(manifest) is not None
    assert schema.index_checksum(recorded) == recorded["checksum"]


def test_index_checksum_follows_source_and_lexicon() -> None:
    base = {"format": "kemp-index/1", "source": {"sha256": "a"}, "lexicon": {"sha256": "l"}}
    same = {**base, "built_at": "later", "path": "/elsewhere"}
    assert schema.index_checksum(base) == schema.index_checksum(same)
    assert schema.index_checksum(base) != schema.index_checksum({**base, "source": {"sha256": "b"}})
    assert schema.index_checksum(base) != schema.index_checksum({**base, "lexicon": None})
    assert schema.index_checksum({"format": "kemp-index/1"}) is None
    assert schema.index_checksum(None) is None
