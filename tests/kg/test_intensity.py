"""Eq. 1 (kemp_kg.intensity): reference values over the real NRC-VAD v1, properties, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemp_kg.errors import InputError
from kemp_kg.intensity import emotion_intensity, load_lexicon, normalise_intensity

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_reference_values_over_full_nrc_vad(nrc_vad: Path) -> None:
    lexicon = load_lexicon(nrc_vad)
    assert len(lexicon) == 20007
    assert lexicon.raw_min == pytest.approx(0.05571, abs=5e-6)
    assert lexicon.raw_max == pytest.approx(0.69049, abs=5e-6)
    eta = lexicon.lookup()
    assert round(eta["nice"], 3) == 0.674
    assert round(eta["happy"], 3) == 0.890
    assert round(eta["table"], 3) == 0.068
    assert lexicon.intensity_of("Happy") == eta["happy"]
    assert lexicon.intensity_of("not-a-word-xyz") == 0.0
    assert lexicon.intensity.min() == 0.0 and lexicon.intensity.max() == 1.0


def test_raw_norm_by_hand() -> None:
    # nice: V 0.930, A 0.442 -> sqrt(0.43^2 + 0.221^2)
    assert emotion_intensity(0.930, 0.442) == pytest.approx((0.43**2 + 0.221**2) ** 0.5)
    assert emotion_intensity(0.5, 0.0) == 0.0
    out = emotion_intensity(np.array([0.5, 1.0]), np.array([0.0, 1.0]))
    assert out.shape == (2,) and out[1] == pytest.approx((0.25 + 0.25) ** 0.5)


@given(v=unit, a=unit, lo=st.floats(0.0, 0.4), span=st.floats(0.01, 0.6))
def test_normalised_intensity_always_in_unit_interval(
    v: float, a: float, lo: float, span: float
) -> None:
    eta = normalise_intensity(emotion_intensity(v, a), lo, lo + span)
    assert 0.0 <= eta <= 1.0


@given(v1=unit, a1=unit, v2=unit, a2=unit)
def test_monotone_in_distance_from_neutral(v1: float, a1: float, v2: float, a2: float) -> None:
    d1 = np.hypot(v1 - 0.5, a1 / 2)
    d2 = np.hypot(v2 - 0.5, a2 / 2)
    eta1 = normalise_intensity(emotion_intensity(v1, a1), 0.05, 0.7)
    eta2 = normalise_intensity(emotion_intensity(v2, a2), 0.05, 0.7)
    if d1 <= d2:
        assert eta1 <= eta2 + 1e-12
    else:
        assert eta2 <= eta1 + 1e-12


@given(st.lists(st.tuples(unit, unit), min_size=2, max_size=30))
def test_lexicon_minmax_spans_exactly_zero_to_one(tmp_path_factory, pairs) -> None:
    path = tmp_path_factory.mktemp("lex") / "lex.tsv"
    rows = "".join(f"w{i}\t{v!r}\t{a!r}\t0.5\n" for i, (v, a) in enumerate(pairs))
    path.write_text("Word\tValence\tArousal\tDominance\n" + rows)
    lexicon = load_lexicon(path)
    assert np.all((lexicon.intensity >= 0) & (lexicon.intensity <= 1))
    raws = [emotion_intensity(v, a) for v, a in pairs]
    if max(raws) > min(raws):
        assert lexicon.intensity.min() == 0.0 and lexicon.intensity.max() == 1.0


def test_normalise_rejects_bad_range() -> None:
    with pytest.raises(ValueError, match="raw_min"):
        normalise_intensity(0.3, 0.5, 0.1)


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("good\t0.5\t0.5\t0.5\nbad\t0.5\t0.5\n", 3, "3 tab-separated fields"),
        ("good\t0.5\t0.5\t0.5\nbad\t0.5\tx\t0.5\n", 3, "not a number"),
        ("bad\t1.5\t0.5\t0.5\n", 2, "outside [0, 1]"),
        ("bad\tnan\t0.5\t0.5\n", 2, "outside [0, 1]"),
        ("a\t0.5\t0.5\t0.5\na\t0.1\t0.5\t0.5\n", 3, "duplicate word"),
        ("\t0.5\t0.5\t0.5\n", 2, "empty word"),
    ],
)
def test_bad_lexicon_line_is_named_by_number(
    tmp_path: Path, body: str, line: int, what: str
) -> None:
    path = tmp_path / "lex.txt"
    path.write_text("Word\tValence\tArousal\tDominance\n" + body)
    with pytest.raises(InputError) as info:
        load_lexicon(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path}: line {line}:" in message and what in message


def test_bad_lexicon_header_non_utf8_missing_and_empty(tmp_path: Path) -> None:
    cases = {
        "header.txt": b"word,valence\n",
        "bytes.txt": b"Word\tValence\tArousal\tDominance\nok\t0.5\t0.5\t0.5\n"
        b"\xff\xfe\t0.1\t0.2\t0.3\n",
        "empty.txt": b"",
        "onlyheader.txt": b"Word\tValence\tArousal\tDominance\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(InputError, match=r"line 1: header"):
        load_lexicon(tmp_path / "header.txt")
    with pytest.raises(InputError, match=r"line 3: not UTF-8"):
        load_lexicon(tmp_path / "bytes.txt")
    with pytest.raises(InputError, match="empty"):
        load_lexicon(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="no word"):
        load_lexicon(tmp_path / "onlyheader.txt")
    with pytest.raises(InputError, match="cannot read"):
        load_lexicon(tmp_path / "missing.txt")


def test_sample_lexicon_is_valid_and_not_nrc(sample_lexicon: Path, nrc_vad: Path) -> None:
    sample = load_lexicon(sample_lexicon)
    assert 300 <= len(sample) <= 600
    eta = sample.lookup()
    assert eta["happy"] > 0.8 and eta["table"] < 0.2
    full = load_lexicon(nrc_vad)
    nrc = dict(zip(full.words, zip(full.valence, full.arousal, full.dominance)))
    same = sum(
        1
        for i, w in enumerate(sample.words)
        if nrc.get(w) == (sample.valence[i], sample.arousal[i], sample.dominance[i])
    )
    assert same == 0  # written for kemp, not copied from NRC-VAD
