"""Predictions files in the official KEMP format: literal reader, round trip, errors, real file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemp_model.score import (
    PredictionRecord,
    PredictionsError,
    concepts_by_word,
    parse_literal,
    read_predictions,
    score_predictions,
    score_records,
    write_predictions,
)

OFFICIAL_BLOCK = (
    "Emotion:guilty \n"
    "Context:['yeah it was 100 % their fault .', \"he 's fine\", 'ends with a backslash\\\\'] \n"
    "Concept:[defaultdict(<class 'list'>, {'yeah': ['celebration'], 'fault': ['accuse', "
    "'accuse']})] \n"
    "Pred:oh no ! i hope you are okay .  \n"
    "Ref:did you suffer any injuries ? \n"
)


def test_parse_literal_subset() -> None:
    assert parse_literal("['a', \"b 's\", 'c\\\\']") == ["a", "b 's", "c\\"]
    assert parse_literal("[defaultdict(<class 'list'>, {'w': ['x', 'y'],})]") == [{"w": ["x", "y"]}]
    assert parse_literal("{}") == {} and parse_literal("[ ]") == []
    assert parse_literal("'\\x41\\u00e9\\n\\q'") == "A\u00e9\n\\q"


@pytest.mark.parametrize(
    "text", ["__import__('os')", "['a' + 'b']", "['a'", "'open", "[1, 2]", "['a'] trailing"]
)
def test_parse_literal_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_literal(text)


def test_read_official_block(tmp_path: Path) -> None:
    path = tmp_path / "preds.txt"
    path.write_text(OFFICIAL_BLOCK + "\n" + OFFICIAL_BLOCK.replace("\n", "\r\n"))
    records = read_predictions(path)
    assert len(records) == 2 and records[0] == records[1]
    record = records[0]
    assert record.emotion == "guilty"
    assert record.context == (
        "yeah it was 100 % their fault .",
        "he 's fine",
        "ends with a backslash\\",
    )
    assert record.concepts == (("yeah", ("celebration",)), ("fault", ("accuse", "accuse")))
    assert record.pred == "oh no ! i hope you are okay ."
    assert record.ref == "did you suffer any injuries ?"


def test_prefix_is_cut_by_length_not_stripped(tmp_path: Path) -> None:
    # the official scorer's line.strip('Pred:') would turn these into "xactly" / "rankly"
    path = tmp_path / "p.txt"
    path.write_text("Emotion:sad \nContext:['x'] \nPred:exactly \nRef:frankly \n")
    (record,) = read_predictions(path)
    assert (record.pred, record.ref, record.concepts) == ("exactly", "frankly", ())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Context:['x'] \n", "before any Emotion"),
        ("Emotion:sad \nHello there\n", "expected a line starting with"),
        ("Emotion:sad \nContext:['x'] \nPred:a \n", "lacks Ref"),
        ("Emotion:sad \nContext:[x] \nPred:a \nRef:b \n", ":2: Context:"),
        ("Emotion:sad \nContext:['x'] \nPred:a \nPred:b \nRef:b \n", "second Pred"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(body)
    with pytest.raises(PredictionsError, match=message) as info:
        read_predictions(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="no such predictions file"):
        read_predictions(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(PredictionsError, match="holds no"):
        score_predictions(tmp_path / "empty.txt")


line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
).map(str.strip)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.builds(
            PredictionRecord,
            emotion=st.sampled_from(["sad", "joyful"]),
            context=st.lists(any_text, min_size=1, max_size=3).map(tuple),
            concepts=st.dictionaries(
                any_text, st.lists(any_text, min_size=1, max_size=2).map(tuple), max_size=3
            ).map(lambda d: tuple(d.items())),
            pred=line_text,
            ref=line_text,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_write_read_round_trip(tmp_path_factory: pytest.TempPathFactory, records: list) -> None:
    path = tmp_path_factory.mktemp("rt") / "preds.txt"
    write_predictions(path, records)
    assert read_predictions(path) == records


def test_score_records_by_hand() -> None:
    report = score_records(["a b a", "a b", "a b"], ["a b", "x", "a b"])
    assert report.examples == 3 and report.unique_responses == 2
    assert report.top_responses[0] == ("a b", 2) and report.top_share == pytest.approx(2 / 3)
    assert report.distinct_1 == pytest.approx(100 * 2 / 7)
    assert report.distinct_2 == pytest.approx(100 * 2 / 4)
    assert report.mean_length == pytest.approx(7 / 3)
    assert report.as_dict()["bleu_1"] == report.bleu.bleu[1]
    joined = score_records(["a bc", "ab c"], ["a", "b"])
    assert joined.distinct_2 == 100.0 and joined.distinct_2_joined == 50.0
    with pytest.raises(ValueError, match="2 predictions vs 1"):
        score_records(["a", "b"], ["a"])


def test_concepts_by_word_keeps_order() -> None:
    pairs = [("hit", "music"), ("go", "game"), ("hit", "strike")]
    assert concepts_by_word(pairs) == (("hit", ("music", "strike")), ("go", ("game",)))


def test_official_kemp_predictions(shared_data: Path) -> None:
    """The released KEMP outputs: 5,255 examples, > 10% get "i am sure you will do great !"."""
    path = shared_data / "kemp_reference" / "KEMP_test_predictions.txt"
    if not path.exists():
        pytest.fail(f"missing {path}")
    records = read_predictions(path)
    assert len(records) == 5255
    assert all(r.context and r.pred and r.ref for r in records)
    assert sum(1 for r in records if r.concepts) > 5000
    report = score_records([r.pred for r in records], [r.ref for r in records])
    assert report.top_responses[0] == ("i am sure you will do great !", 540)
    assert report.top_share > 0.10
    assert report.distinct_1 == pytest.approx(0.6034, abs=1e-4)
    assert report.distinct_2 == pytest.approx(2.6443, abs=1e-4)
    assert report.bleu.bleu[1] == pytest.approx(17.338, abs=1e-3)
    assert report.bleu.bleu[4] == pytest.approx(2.443, abs=1e-3)
