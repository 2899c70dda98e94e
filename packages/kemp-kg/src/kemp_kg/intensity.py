"""Emotion intensity (KEMP Eq. 1) and the NRC-VAD lexicon it is computed from.

Eq. 1 (Li et al., 2022)::

    eta(x) = min-max( || [V(x) - 1/2, A(x)/2] ||_2 )      for x in the lexicon, 0 otherwise

``V`` is valence and ``A`` arousal in [0, 1] (NRC-VAD v1). The raw norm is the distance from the
emotionally neutral point (valence 1/2, arousal 0, arousal counted at half scale); min-max is taken
over the WHOLE lexicon, so eta lies in [0, 1]. Over the full NRC-VAD v1 lexicon (20,007 words) the
raw norm ranges over [0.05571, 0.69049] and eta(nice) = 0.674, eta(happy) = 0.890,
eta(table) = 0.068. (The official KEMP code hard-codes min 0.06467 and range 0.607468 instead,
which lets eta leave [0, 1]; we do not copy that.)

The lexicon file is NRC-VAD's layout: a header line ``Word<TAB>Valence<TAB>Arousal<TAB>Dominance``
then one word per line with three numbers in [0, 1].
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from kemp_kg.errors import InputError

#: The header NRC-VAD v1 ships (compared case-insensitively).
LEXICON_HEADER: tuple[str, ...] = ("word", "valence", "arousal", "dominance")


def emotion_intensity(valence, arousal):
    """Raw Eq. 1 norm ``|| [valence - 1/2, arousal / 2] ||_2`` (before min-max).

    Works element-wise on floats or numpy arrays of the same shape.

    Shapes:
        valence: () or (N,); arousal: same as valence -> same as valence.
    """
    v = np.asarray(valence, dtype=np.float64) - 0.5
    a = np.asarray(arousal, dtype=np.float64) / 2.0
    raw = np.sqrt(v * v + a * a)
    return float(raw) if raw.ndim == 0 else raw


def normalise_intensity(raw, raw_min: float, raw_max: float):
    """Min-max normalise raw Eq. 1 norms to [0, 1] with the lexicon's ``raw_min`` and ``raw_max``.

    Values are clipped to [0, 1] so a word scored with another lexicon's range cannot leave the
    interval. A degenerate range (``raw_max == raw_min``, e.g. a one-word lexicon) maps to 1.0.

    Shapes:
        raw: () or (N,) -> same as raw.
    """
    if not (math.isfinite(raw_min) and math.isfinite(raw_max)) or raw_max < raw_min:
        raise ValueError(
            f"normalise_intensity needs finite raw_min <= raw_max, got "
            f"raw_min={raw_min}, raw_max={raw_max}"
        )
    raw_arr = np.asarray(raw, dtype=np.float64)
    span = raw_max - raw_min
    out = np.ones_like(raw_arr) if span == 0 else np.clip((raw_arr - raw_min) / span, 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Lexicon:
    """An NRC-VAD lexicon with Eq. 1 intensity for every word.

    Attributes:
        path: the file it was read from.
        sha256: hex digest of the file's bytes.
        words: lowercase words (multi-word entries keep their spaces), in file order.
        valence, arousal, dominance: float64 arrays aligned with ``words``.
        raw_min, raw_max: range of the raw Eq. 1 norm over the whole lexicon.
        intensity: eta in [0, 1], aligned with ``words``.
    """

    path: Path
    sha256: str
    words: tuple[str, ...]
    valence: np.ndarray
    arousal: np.ndarray
    dominance: np.ndarray
    raw_min: float
    raw_max: float
    intensity: np.ndarray
    _lookup: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(zip(self.words, self.intensity.tolist())))

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self) -> dict[str, float]:
        """``word -> eta`` as a dict (for per-token lookups in Python code); do not mutate it."""
        return self._lookup

    def intensity_of(self, word: str) -> float:
        """eta of ``word`` (lowercased), 0.0 when it is not in the lexicon."""
        return self.lookup().get(word.lower(), 0.0)

    def to_arrow(self) -> pa.Table:
        """The ``lexicon`` table of the index: word, valence, arousal, dominance, intensity."""
        return pa.table(
            {
                "word": pa.array(self.words, pa.string()),
                "valence": pa.array(self.valence, pa.float64()),
                "arousal": pa.array(self.arousal, pa.float64()),
                "dominance": pa.array(self.dominance, pa.float64()),
                "intensity": pa.array(self.intensity, pa.float64()),
            }
        )


def _bad_line(path: Path, number: int, what: str) -> InputError:
    return InputError(
        f"{path}: line {number}: {what}; expected 'word<TAB>valence<TAB>arousal<TAB>dominance' "
        f"with numbers in [0, 1] (NRC-VAD v1 layout)"
    )


def load_lexicon(path: str | os.PathLike[str]) -> Lexicon:
    """Read an NRC-VAD-layout lexicon and compute Eq. 1 for every word.

    Words are lowercased and stripped. The first line must be the header
    ``Word Valence Arousal Dominance`` (tab-separated). Blank lines are ignored.

    Raises:
        InputError: the file cannot be read, or a line is malformed (one line naming the line
            number: wrong field count, a number that does not parse or lies outside [0, 1], an
            empty or duplicate word), or the file holds no word.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected an NRC-VAD lexicon file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the lexicon ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is not part of the header
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        raise _bad_line(path, number, "not UTF-8 text") from None
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{path}: the lexicon file is empty (expected an NRC-VAD header line)")
    header = tuple(field.strip().lower() for field in lines[0].split("\t"))
    if header != LEXICON_HEADER:
        raise _bad_line(
            path, 1, f"header is {lines[0][:80]!r}, not 'Word Valence Arousal Dominance'"
        )
    words: list[str] = []
    values: list[tuple[float, float, float]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise _bad_line(path, number, f"{len(fields)} tab-separated fields")
        word = fields[0].strip().lower()
        if not word:
            raise _bad_line(path, number, "empty word")
        try:
            triple = tuple(float(field) for field in fields[1:])
        except ValueError:
            raise _bad_line(path, number, f"a value of {fields[1:]!r} is not a number") from None
        if not all(0.0 <= value <= 1.0 for value in triple):  # also rejects nan
            raise _bad_line(path, number, f"value outside [0, 1] in {fields[1:]!r}")
        if word in seen:
            raise _bad_line(path, number, f"duplicate word {word!r} (first on line {seen[word]})")
        seen[word] = number
        words.append(word)
        values.append(triple)  # type: ignore[arg-type]
    if not words:
        raise InputError(f"{path}: the lexicon has a header but no word")
    table = np.asarray(values, dtype=np.float64)
    raw = np.asarray(emotion_intensity(table[:, 0], table[:, 1]), dtype=np.float64).reshape(-1)
    raw_min, raw_max = float(raw.min()), float(raw.max())
    return Lexicon(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        words=tuple(words),
        valence=table[:, 0].copy(),
        arousal=table[:, 1].copy(),
        dominance=table[:, 2].copy(),
        raw_min=raw_min,
        raw_max=raw_max,
        intensity=np.asarray(normalise_intensity(raw, raw_min, raw_max)).reshape(-1),
    )
