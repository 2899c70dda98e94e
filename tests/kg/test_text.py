"""The text pipeline: contractions, tokens, query words, lemmas, and the parallel run."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemp_kg import text


@pytest.fixture(autouse=True)
def _nltk(nltk_data: Path) -> None:
    """Every test here needs ../shared/nltk_data (conftest sets NLTK_DATA)."""


def test_normalise_lowercases_and_expands_contractions_on_word_boundaries() -> None:
    assert text.normalise("I'm sure it's FINE, don't worry") == "i am sure it is fine, do not worry"
    assert text.normalise("It\u2019s ok") == "it is ok"
    assert text.normalise("the bit's edge") == "the bit's edge"  # not "bit is"


def test_tokenize_splits_sentences_before_the_treebank_tokenizer() -> None:
    assert text.tokenize("I don't know. It's fine, isn't it?") == [
        "i",
        "do",
        "not",
        "know",
        ".",
        "it",
        "is",
        "fine",
        ",",
        "is",
        "not",
        "it",
        "?",
    ]
    assert text.tokenize('He said "wow"') == ["he", "said", "``", "wow", "''"]


def test_query_words_are_content_words_that_are_not_stopwords() -> None:
    tokens = text.tokenize("I got a puppy as a gift, so happy!")
    assert tokens == ["i", "got", "a", "puppy", "as", "a", "gift", ",", "so", "happy", "!"]
    pos = text.query_pos_string(tokens)
    assert len(pos) == len(tokens)
    assert {tokens[i] for i, p in enumerate(pos) if p != "."} == {"got", "puppy", "gift", "happy"}
    assert pos[1] == "v" and pos[6] == "n"


def test_lemma_uses_the_wordnet_pos() -> None:
    assert text.lemma("got", "v") == "get"
    assert text.lemma("puppies", "n") == "puppy"
    assert text.lemma("happier", "a") == "happy"


def test_parallel_run_equals_serial_and_keeps_order() -> None:
    texts = [f"Sentence number {i}: I feel {'happy' if i % 2 else 'sad'} today." for i in range(60)]
    tag = [i % 3 != 0 for i in range(60)]
    serial = text.process_texts(texts, tag=tag, workers=1, chunk_size=7)
    parallel = text.process_texts(texts, tag=tag, workers=2, chunk_size=7)
    assert serial.values.equals(parallel.values) and serial.query_pos == parallel.query_pos
    assert serial.offsets.tolist() == parallel.offsets.tolist()
    assert len(serial) == 60 and serial.tokens(5)[:3] == ["sentence", "number", "5"]
    assert [serial.tokens(i) for i in range(60)] == [text.tokenize(t) for t in texts]
    assert set(serial.query_pos[0]) == {"."}  # untagged: no query words
    assert "a" in serial.query_pos[1] or "n" in serial.query_pos[1]


def test_missing_nltk_data_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    with pytest.raises(text.KempError) as info:
        text.ensure_nltk_data(download=False)
    assert "stopwords" in str(info.value) and "\n" not in str(info.value)


def test_morphy_equals_nltk_wordnet_lemmatizer(nrc_vad: Path) -> None:
    from nltk.stem import WordNetLemmatizer

    reference = WordNetLemmatizer()
    words = [line.split("\t", 1)[0] for line in nrc_vad.read_text().splitlines()[1::17]]
    words = [w for w in words if w.isalpha()]
    assert len(words) > 1000
    forms = [w + suffix for w in words for suffix in ("", "s", "es", "ed", "ing", "er", "est")]
    forms += ["geese", "mice", "went", "better", "worst", "children", "were"]
    mismatches = [
        (f, p) for f in forms for p in "nvar" if text.lemma(f, p) != reference.lemmatize(f, p)
    ]
    assert mismatches == []


def test_lean_tagger_gives_nltk_tags_on_real_utterances(shared_data: Path) -> None:
    from nltk.tag.perceptron import PerceptronTagger

    from kemp_kg.dialogues import read_dialogues

    conversations, _ = read_dialogues(shared_data / "ed" / "test.csv")
    texts = sorted({t.text for c in conversations for t in c.turns})[::5]
    reference = PerceptronTagger()
    fast = text.PerceptronTags()
    tokens = [text.tokenize(t) for t in texts]
    assert sum(map(len, tokens)) > 30_000
    assert [fast.tags(t) for t in tokens] == [[tag for _, tag in reference.tag(t)] for t in tokens]
    assert fast.tags([]) == [] and fast.tags(["2019", "well-known", "7up"]) == [
        tag for _, tag in reference.tag(["2019", "well-known", "7up"])
    ]


def test_stdlib_treebank_tokenizer_gives_nltk_tokens_on_real_sentences(shared_data: Path) -> None:
    from nltk.tokenize import NLTKWordTokenizer

    from kemp_kg.dialogues import read_dialogues

    conversations, _ = read_dialogues(shared_data / "ed" / "valid.csv")
    sentences = [
        s
        for c in conversations[::3]
        for t in c.turns
        for s in text._SENTENCE_RE.split(text.normalise(t.text).strip())
        if s
    ]
    sentences += [
        'he said "hi" -- then (left) [ok] {x} <y> ... #1 $2 &c @d',
        "``quoted'' can't won't they'll 'tis “fancy” «guillemets» x" * 3,
    ]
    fast = text.TreebankWords()
    assert fast.fast and len(sentences) > 5_000
    reference = NLTKWordTokenizer()
    assert [fast.tokenize(s) for s in sentences] == [reference.tokenize(s) for s in sentences]
    long = "word. " * 2000
    assert fast.tokenize(long) == reference.tokenize(long)  # the long-input path
