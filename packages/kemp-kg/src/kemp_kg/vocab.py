"""The vocabulary of a graph file: training tokens only, most frequent first.

Layout: :data:`kemp_kg.schema.SPECIAL_TOKENS` (ids 0..7), then every token of the *training*
split's turns seen at least ``min_count`` times, by count descending, ties by the token string
(so the order is reproducible). Valid/test tokens never enter it (they map to ``<unk>``).

Concept terms: a concept is kept only when it is a vocabulary token (the official KEMP code keeps
a concept only if ``c in word2index`` too). Nothing is appended after the training tokens. Why:

* the vocabulary must be known *before* retrieval so that ``--shard i/n`` runs agree on it
  without seeing each other's concepts (appending "selected" concepts would need every shard's
  selection first);
* a concept id outside the training tokens would be an embedding the decoder never sees as a
  target and the copy mechanism could emit as an unseen word;
* multi-word concepts ("ice cream") can never be one vocabulary token, so they are out anyway.

The vocabulary is stored in the graph file's metadata by :func:`kemp_kg.schema.write_graphs`; a
vocabulary file for ``--vocab`` is a JSON list of tokens (or an existing graph file, whose
vocabulary is reused).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from kemp_kg.errors import InputError
from kemp_kg.schema import SPECIAL_TOKENS, GraphFileError, open_graphs

#: What a vocabulary built by ``kemp-kg enrich`` counts (``--vocab-scope``): ``train`` (the
#: default) the training split's turns; ``official`` every turn of every split plus each
#: conversation's situation, as the released KEMP code builds it (contexts, targets and
#: situations of train, valid and test; it therefore knows validation- and test-only words).
VOCAB_SCOPES: tuple[str, ...] = ("train", "official")


def build_vocab(token_lists: Iterable[Sequence[str]], *, min_count: int = 1) -> list[str]:
    """Special tokens, then tokens with count >= ``min_count`` by (count desc, token asc).

    Args:
        token_lists: the tokens of every training turn (one list per turn occurrence).
        min_count: rarer tokens are left out (they become ``<unk>``).
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    return vocab_from_counts(counts, min_count=min_count)


def vocab_from_counts(counts: Counter[str] | dict[str, int], *, min_count: int = 1) -> list[str]:
    """:func:`build_vocab` from ready counts."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    special = set(SPECIAL_TOKENS)
    ranked = sorted(
        (tok for tok, n in counts.items() if n >= min_count and tok not in special),
        key=lambda tok: (-counts[tok], tok),
    )
    return list(SPECIAL_TOKENS) + ranked


def load_vocab(path: str | os.PathLike[str]) -> list[str]:
    """Read a vocabulary: a JSON list of tokens, or the vocabulary of a ``.arrow`` graph file."""
    path = Path(path)
    if path.suffix == ".arrow" or path.is_dir():
        try:
            return list(open_graphs(path).vocab)
        except GraphFileError as exc:
            raise InputError(str(exc)) from None
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such vocabulary file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON list of tokens ({exc})") from None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise InputError(f"{path}: a vocabulary file is a JSON list of strings")
    if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise InputError(f"{path}: vocabulary must start with {list(SPECIAL_TOKENS)}")
    if len(set(tokens)) != len(tokens):
        raise InputError(f"{path}: vocabulary holds duplicate tokens")
    return tokens


def save_vocab(vocab: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Write ``vocab`` as a JSON list (atomically)."""
    from kemp_kg.schema import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(list(vocab), ensure_ascii=False), encoding="utf-8")
    return Path(path)
