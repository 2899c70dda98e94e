"""Dialogue readers: the kemp schema, the ED CSV layout, bad input, and the real ED counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kemp_kg.dialogues import (
    DIALOGUES_FORMAT,
    expand_examples,
    read_dialogues,
)
from kemp_kg.errors import InputError


def turns(*texts: str) -> list[dict[str, str]]:
    roles = ["speaker", "listener"]
    return [{"role": roles[i % 2], "text": t} for i, t in enumerate(texts)]


def write_jsonl(path: Path, records: list[object], header: bool = True) -> Path:
    lines = [json.dumps({"format": DIALOGUES_FORMAT})] if header else []
    lines += [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_reads_records_and_expands_listener_turns(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": "a",
                "split": "train",
                "emotion": "joyful",
                "situation": "job",
                "turns": turns(
                    "I got the job!", "Congratulations!", "Thanks.", "When do you start?"
                ),
            },
            {"id": "b", "split": "dev", "turns": turns("My cat is ill.", "Oh no.")},
        ],
    )
    conversations, report = read_dialogues(path)
    assert [c.conv_id for c in conversations] == ["a", "b"]
    assert conversations[1].split == "valid" and conversations[1].emotion is None
    assert conversations[0].situation == "job"
    examples = expand_examples(conversations)
    assert [e.example_id for e in examples] == ["a:1", "a:3", "b:1"]
    assert [t.text for t in examples[1].history] == [
        "I got the job!",
        "Congratulations!",
        "Thanks.",
    ]
    assert examples[1].target.text == "When do you start?"
    assert report.conversations == 2 and not report.skipped


def test_json_document_and_split_override(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        json.dumps(
            {
                "format": DIALOGUES_FORMAT,
                "dialogues": [{"id": 7, "turns": turns("Hello there.", "Hi!")}],
            }
        ),
        encoding="utf-8",
    )
    conversations, _ = read_dialogues(path, split="test")
    assert conversations[0].conv_id == "7" and conversations[0].split == "test"


def test_shared_ed_conversations_layout_is_accepted(tmp_path: Path) -> None:
    record = {
        "conv_id": "hit:1_conv:2",
        "split": "train",
        "emotion": "afraid",
        "situation": "s",
        "utterances": ["It is dark.", "Are you scared?"],
        "roles": ["speaker", "listener"],
    }
    conversations, _ = read_dialogues(write_jsonl(tmp_path / "e.jsonl", [record], header=False))
    assert conversations[0].turns[1].text == "Are you scared?"


def test_other_format_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"format": "kemp-dialogues/9"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="kemp-dialogues/9"):
        read_dialogues(path)


def bad_file(tmp_path: Path) -> Path:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "split": "train", "turns": turns("Fine day.", "Yes it is.")},
            {"id": "emo", "split": "train", "emotion": "hangry", "turns": turns("a", "b")},
            {"id": "empty", "split": "train", "turns": turns("a", "   ")},
            "{not json",
            {"id": "trail", "split": "train", "turns": turns("a", "b", "c")},
            {"id": "alone", "split": "train", "turns": turns("only the speaker")},
            {"id": "role", "split": "train", "turns": [{"role": "narrator", "text": "x"}]},
            {"turns": []},
        ],
    )
    with open(path, "ab") as handle:
        handle.write(
            b'{"id": "latin", "split": "train", '
            b'"turns": [{"role": "speaker", "text": "caf\xe9"}]}\n'
        )
    return path


def test_bad_input_is_skipped_counted_and_located(tmp_path: Path) -> None:
    conversations, report = read_dialogues(bad_file(tmp_path))
    assert [c.conv_id for c in conversations] == ["ok", "trail"]
    assert len(conversations[1].turns) == 2  # the trailing speaker turn is dropped
    assert report.skipped == Counter(
        {
            "unknown_emotion": 1,
            "empty_turn": 1,
            "malformed_record": 2,
            "no_listener_turn": 1,
            "bad_role": 1,
            "non_utf8": 1,
        }
    )
    assert report.notices == Counter({"trailing_speaker_turn": 1})
    joined = "\n".join(report.messages)
    assert "bad.jsonl:3" in joined and "hangry" in joined  # line 1 is the header
    assert "bad.jsonl:5: invalid JSON" in joined
    assert "bad.jsonl:10: line is not UTF-8" in joined


def test_strict_stops_at_the_first_bad_record_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_dialogues(bad_file(tmp_path), strict=True)
    message = str(info.value)
    assert "\n" not in message and "bad.jsonl:3" in message and "unknown_emotion" in message


def test_duplicate_ids_and_missing_split(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "split": "train", "turns": turns("x", "y")},
            {"id": "a", "split": "train", "turns": turns("x", "y")},
            {"id": "b", "turns": turns("x", "y")},
        ],
    )
    conversations, report = read_dialogues(path)
    assert [c.conv_id for c in conversations] == ["a"]
    assert report.skipped == Counter({"duplicate_id": 1, "unknown_split": 1})


ED_HEADER = "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\n"


def test_ed_csv_line_by_line_with_comma_and_bare_quotes(tmp_path: Path) -> None:
    (tmp_path / "ed").mkdir()
    (tmp_path / "ed" / "valid.csv").write_text(
        ED_HEADER
        + 'hit:1_conv:2,1,proud,My son won_comma_ "again",,He won the "big" race_comma_ again!,,\n'
        + 'hit:1_conv:2,2,proud,My son won_comma_ "again",,That is great!,,\n'
        + 'hit:1_conv:2,3,proud,My son won_comma_ "again",,I know.,,\n'
        + "hit:3_conv:6,1,sad,x,,I lost my keys.,,\n"
        + "hit:3_conv:6,2,sad,x,,Oh no_comma_ where?,,\n",
        encoding="utf-8",
    )
    conversations, report = read_dialogues(tmp_path / "ed")
    first = conversations[0]
    assert first.split == "valid" and first.emotion == "proud"
    assert first.situation == 'My son won, "again"'
    assert [(t.role, t.text) for t in first.turns] == [
        ("speaker", 'He won the "big" race, again!'),
        ("listener", "That is great!"),
    ]
    assert conversations[1].turns[1].text == "Oh no, where?"
    assert report.notices["trailing_speaker_turn"] == 1


def test_ed_csv_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(
        ED_HEADER.encode()
        + b"c1,1,grumpy,x,,hello,,\n"
        + b"c1,2,grumpy,x,,hi,,\n"
        + b"c2,1,sad,x,,caf\xe9,,\n"
        + b"c2,2,sad,x,,ok,,\n"
        + b"c3,one,sad,x,,a,,\n"
        + b"c4,1,sad,x\n"
        + b"c5,1,sad,x,,fine,,\n"
        + b"c5,2,sad,x,,good,,\n"
    )
    conversations, report = read_dialogues(path)
    assert [c.conv_id for c in conversations] == ["c5"]
    assert report.skipped == Counter({"unknown_emotion": 1, "non_utf8": 1, "malformed_record": 2})
    # line problems are met while scanning, before per-conversation checks
    with pytest.raises(InputError, match=r"train\.csv:4: line is not UTF-8"):
        read_dialogues(path, strict=True)


def test_unknown_layout_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(InputError, match="unknown dialogues layout"):
        read_dialogues(tmp_path / "d.txt")
    with pytest.raises(InputError, match="no such dialogues file"):
        read_dialogues(tmp_path / "nope.jsonl")


def test_real_ed_counts_per_split(shared_data: Path) -> None:
    """MoEL/KEMP: 40,250 / 5,734 / 5,255. We get 2 more per split because MoEL drops the last
    conversation of each split (hit:12424_conv:24848, hit:12361_conv:24722,
    hit:12416_conv:24832; 2 listener turns each, SOURCES.md "Known differences")."""
    conversations, report = read_dialogues(shared_data / "ed")
    counts = Counter(e.conversation.split for e in expand_examples(conversations))
    assert counts == {"train": 40_252, "valid": 5_736, "test": 5_257}
    assert report.conversations == 24_847
    # three one-utterance conversations (no listener turn); 4,715 more end with the speaker
    assert report.skipped == Counter({"no_listener_turn": 3})
    assert report.notices == Counter({"trailing_speaker_turn": 4_715})
    jsonl, _ = read_dialogues(shared_data / "ed" / "ed_conversations.jsonl")
    assert [(c.conv_id, c.split, c.emotion, c.turns) for c in jsonl] == [
        (c.conv_id, c.split, c.emotion, c.turns) for c in conversations
    ]
