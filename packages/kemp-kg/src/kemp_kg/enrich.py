"""Phase (A) of KEMP: dialogues -> emotional context graphs in one Arrow file.

Pipeline (:func:`enrich`), one named step each, timed by :class:`StageClock`:

1. :func:`select_examples`: read the dialogues (:mod:`kemp_kg.dialogues`), keep this shard's
   conversations, expand every listener turn into an example;
2. :func:`pool_texts` + :func:`kemp_kg.text.process_texts`: the text pipeline (:mod:`kemp_kg.text`)
   runs once per *unique* utterance, over all cores;
3. :func:`choose_vocab`: vocabulary from the training split (:mod:`kemp_kg.vocab`), from every
   split as the released code builds it (``--vocab-scope official``), or ``--vocab``;
4. :func:`retrieve_concepts`: retrieval + ranking as ONE DuckDB query (:data:`_RETRIEVAL_SQL`,
   named parameters): the distinct query words (surface form and WordNet lemma as keys) are
   joined against the index's ``neighbours`` view, filtered by relation, confidence, concept
   intensity, stopwords and vocabulary, de-duplicated per (word, concept) (highest weight, then
   relation name) and cut to the top K' per word with ``row_number()`` ordered by intensity desc,
   weight desc, concept asc;
5. :func:`plan_examples` + :func:`assemble` (numpy): each example's CLS + flattened history,
   roles, per-token Eq. 1 intensity (the index's ``lexicon`` table, 0 outside), and its concepts:
   every query-word occurrence contributes its top K'; a concept reachable from several
   occurrences is kept once (the best-ranked one: highest weight, then earliest position); the
   example keeps its N best by (intensity desc, weight desc, concept asc, position asc), in that
   order;
6. :func:`write_examples`: :func:`kemp_kg.schema.write_graphs` (atomic), one record batch per
   :data:`BATCH_EXAMPLES`, with the vocabulary and :func:`enrich_provenance`.

Shards (``shard=(i, n)``): a conversation belongs to shard ``blake2b(conv_id) mod n``. The
vocabulary is still computed from the WHOLE training split (every shard tokenises all training
turns, tagging only its own) unless a vocabulary file is given, so shards always agree on it and
their union equals the unsharded file row for row.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kemp_kg
from kemp_kg import schema
from kemp_kg.dialogues import (
    Conversation,
    Example,
    ReadReport,
    expand_examples,
    limit_turns,
    read_dialogues,
)
from kemp_kg.digest import sha256_file
from kemp_kg.errors import InputError
from kemp_kg.presets import EnrichConfig
from kemp_kg.text import (
    PIPELINE_DESCRIPTION,
    ProcessedTexts,
    base_form,
    lemma,
    process_texts,
    stopwords,
)
from kemp_kg.vocab import VOCAB_SCOPES, load_vocab, vocab_from_counts

#: Examples assembled (and written as one record batch) at a time.
BATCH_EXAMPLES = 16_384
_ROLE_CODE = {"speaker": int(schema.Role.SPEAKER), "listener": int(schema.Role.LISTENER)}
_POS_CODES = {"n": 0, "v": 1, "a": 2, "r": 3}

#: A progress hook: ``hook(stage_name, total)`` returns ``advance(n)``.
ProgressHook = Callable[[str, int], Callable[[int], None]]

_RETRIEVAL_SQL = """
WITH cand AS (
    SELECT q.qid, n.concept, n.relation, n.weight, n.concept_intensity,
           CASE WHEN $weight_x_intensity THEN n.weight * n.concept_intensity
                ELSE n.concept_intensity END AS score
    FROM query_keys AS q
    JOIN neighbours AS n ON n.word = q.key
    JOIN vocab_terms AS v ON v.term = n.concept
    WHERE CASE WHEN $inclusive THEN n.weight >= $min_confidence
               ELSE n.weight > $min_confidence END
      AND (NOT $match_pos OR n.word_pos IS NULL OR n.word_pos = q.pos
           OR (q.pos = 'a' AND n.word_pos = 's'))
      AND n.concept_intensity >= $min_intensity
      AND NOT list_contains($excluded_relations, n.relation)
      AND NOT list_contains($stopwords, n.concept)
      AND n.concept <> q.surface AND n.concept <> q.lemma AND n.concept <> q.key
),
dedup AS (
    SELECT *, row_number() OVER (
        PARTITION BY qid, concept ORDER BY score DESC, weight DESC, relation) AS dup
    FROM cand
),
ranked AS (
    SELECT qid, concept, relation, weight, concept_intensity, score,
           row_number() OVER (
               PARTITION BY qid ORDER BY score DESC, weight DESC, concept) AS rank
    FROM dedup WHERE dup = 1
)
SELECT qid, rank, concept, relation, weight, concept_intensity, score,
       dense_rank() OVER (ORDER BY concept) AS concept_order
FROM ranked WHERE rank <= $top_k
ORDER BY qid, rank
"""


def _arrow(con: Any, sql: str, params: dict[str, object] | None = None) -> pa.Table:
    """The whole result of a DuckDB query with named ``$parameters`` as a pyarrow Table."""
    relation = con.sql(sql, params=params)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # duckdb < 1.4: .arrow()
    return fetch()


def shard_of(conv_id: str, num_shards: int) -> int:
    """The shard (0-based) of a conversation: a stable hash of its id, not Python's ``hash``."""
    digest = hashlib.blake2b(conv_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``ValueError`` naming the value otherwise."""
    try:
        left, right = text.split("/")
        index, count = int(left), int(right)
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return index, count


@dataclass(frozen=True)
class HistoryPlan:
    """What the assembly needs per example, as indices into a list of unique texts.

    ``history[e]`` is ``[(role, text_index), ...]``; ``target[e]`` is a text index or -1.
    """

    example_ids: list[str]
    conv_ids: list[str]
    splits: list[str]
    emotions: list[int]
    history: list[list[tuple[str, int]]]
    target: list[int]

    def slice(self, start: int, stop: int) -> HistoryPlan:
        """Examples ``start:stop``."""
        return HistoryPlan(
            self.example_ids[start:stop],
            self.conv_ids[start:stop],
            self.splits[start:stop],
            self.emotions[start:stop],
            self.history[start:stop],
            self.target[start:stop],
        )


@dataclass
class EnrichResult:
    """What :func:`enrich` did: the file, counts, skipped input, timings."""

    path: Path | None
    examples: Counter[str] = field(default_factory=Counter)
    report: ReadReport = field(default_factory=ReadReport)
    vocab_size: int = 0
    unique_utterances: int = 0
    tokens: int = 0
    query_words: int = 0
    concepts_per_example: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    shard: tuple[int, int] | None = None


class TokenTables:
    """Tokens of unique texts as flat numpy arrays (vocab ids, intensity, query ids)."""

    def __init__(
        self,
        processed: ProcessedTexts,
        vocab_index: dict[str, int],
        con: Any,
        config: EnrichConfig,
    ) -> None:
        self.offset = processed.offsets
        self.length = np.diff(processed.offsets)
        encoded = processed.values.dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        words = encoded.dictionary.to_pylist()
        self.codes = codes
        self.words = words
        unk = schema.UNK_ID
        word_ids = np.fromiter(
            (vocab_index.get(w, unk) for w in words), dtype=np.int32, count=len(words)
        )
        self.ids = word_ids[codes] if len(codes) else np.zeros(0, dtype=np.int32)
        # Eq. 1 per distinct token from the index's lexicon table (0 outside it).
        word_table = pa.table(
            {
                "word": pa.array(words, type=pa.string()),
                "code": pa.array(np.arange(len(words), dtype=np.int64)),
            }
        )
        con.register("token_words", word_table)
        try:
            hits = _arrow(
                con,
                "SELECT t.code, l.intensity FROM token_words t JOIN lexicon l ON l.word = t.word",
            )
        finally:
            con.unregister("token_words")
        word_intensity = np.zeros(len(words), dtype=np.float32)
        if hits.num_rows:
            values = hits["intensity"].to_numpy().astype(np.float32)
            word_intensity[hits["code"].to_numpy()] = values
        #: distinct words whose intensity came from their base form (``intensity_lemma_fallback``)
        self.lemma_intensity_words = 0
        if config.intensity_lemma_fallback:
            self.lemma_intensity_words = _lemma_intensity(con, words, word_intensity, hits)
        self.intensity = word_intensity[codes] if len(codes) else np.zeros(0, dtype=np.float32)
        # Query words: distinct (token, POS) pairs -> qid; keys are the surface form and the lemma.
        pos_bytes = "".join(processed.query_pos).encode("ascii")
        pos_char = np.frombuffer(pos_bytes, dtype=np.uint8) if pos_bytes else np.zeros(0, np.uint8)
        pos_num = np.full(len(pos_char), -1, dtype=np.int64)
        for letter in config.query_pos:
            pos_num[pos_char == ord(letter)] = _POS_CODES[letter]
        is_query = pos_num >= 0
        self.qid = np.full(len(codes), -1, dtype=np.int64)
        self.query_surface: list[str] = []
        self.query_lemma: list[str] = []
        self.query_pos: list[str] = []  # n/v/a/r per qid
        self.query_base: list[str] = []  # base form per qid (match_pos lookups)
        if is_query.any():
            pair = codes[is_query] * 4 + pos_num[is_query]
            unique_pairs, inverse = np.unique(pair, return_inverse=True)
            self.qid[is_query] = inverse
            letters = "nvar"
            for value in unique_pairs.tolist():
                surface = words[value // 4]
                letter = letters[value % 4]
                self.query_surface.append(surface)
                self.query_lemma.append(lemma(surface, letter))
                self.query_pos.append(letter)
                self.query_base.append(base_form(surface, letter))


@dataclass
class Candidates:
    """The top-K' concepts of every query word, flat and grouped by qid (from one SQL query)."""

    offset: np.ndarray  # (num_qids + 1,) int64
    concept_id: np.ndarray  # int32 vocab ids
    relation: np.ndarray  # int8 RELATIONS index
    weight: np.ndarray  # float64 (ranked in double precision, written as float32)
    intensity: np.ndarray  # float64
    score: np.ndarray  # float64 ranking score (intensity, or weight x intensity)
    order: np.ndarray  # int64 rank of the concept string (for ties)
    concept: list[str]


def retrieve(
    con: Any,
    tables: TokenTables,
    vocab_index: dict[str, int],
    config: EnrichConfig,
) -> Candidates:
    """Run the one retrieval + ranking query for all distinct query words.

    Keys: the surface form and the lemma (any POS), or with ``config.match_pos`` the base form
    in the word's own POS only; words whose base form is in ``config.skip_words`` get none.
    """
    num_q = len(tables.query_surface)
    surfaces, lemmas, bases = tables.query_surface, tables.query_lemma, tables.query_base
    skip = frozenset(config.skip_words)
    live = [q for q in range(num_q) if bases[q] not in skip and lemmas[q] not in skip]
    if config.match_pos:
        keys_qid = live
        keys = [bases[q] for q in live]
    else:
        keys_qid = live + [q for q in live if lemmas[q] != surfaces[q]]
        keys = [surfaces[q] for q in live] + [lemmas[q] for q in live if lemmas[q] != surfaces[q]]
    query_keys = pa.table(
        {
            "qid": pa.array(keys_qid, type=pa.int64()),
            "key": pa.array(keys, type=pa.string()),
            "pos": pa.array([tables.query_pos[q] for q in keys_qid], type=pa.string()),
            "surface": pa.array([surfaces[q] for q in keys_qid], type=pa.string()),
            "lemma": pa.array([lemmas[q] for q in keys_qid], type=pa.string()),
        }
    )
    vocab_terms = pa.table({"term": pa.array(list(vocab_index), type=pa.string())})
    con.register("query_keys", query_keys)
    con.register("vocab_terms", vocab_terms)
    try:
        result = _arrow(
            con,
            _RETRIEVAL_SQL,
            {
                "weight_x_intensity": config.rank_by == "weight_x_intensity",
                "inclusive": config.confidence_inclusive,
                "min_confidence": config.min_confidence,
                "match_pos": config.match_pos,
                "min_intensity": config.min_concept_intensity,
                "excluded_relations": list(config.excluded_relations),
                "stopwords": sorted(stopwords()),
                "top_k": config.top_k_per_token,
            },
        )
    finally:
        con.unregister("query_keys")
        con.unregister("vocab_terms")
    qid = result["qid"].to_numpy().astype(np.int64)
    counts = np.bincount(qid, minlength=num_q) if len(qid) else np.zeros(num_q, dtype=np.int64)
    offset = np.zeros(num_q + 1, dtype=np.int64)
    np.cumsum(counts, out=offset[1:])
    concepts = result["concept"].to_pylist()
    other = schema.RELATION_INDEX["Other"]
    return Candidates(
        offset=offset,
        concept_id=np.fromiter(
            (vocab_index[c] for c in concepts), dtype=np.int32, count=len(concepts)
        ),
        relation=np.fromiter(
            (schema.RELATION_INDEX.get(r, other) for r in result["relation"].to_pylist()),
            dtype=np.int8,
            count=result.num_rows,
        ),
        weight=result["weight"].to_numpy().astype(np.float64),
        intensity=result["concept_intensity"].to_numpy().astype(np.float64),
        score=result["score"].to_numpy().astype(np.float64),
        order=result["concept_order"].to_numpy().astype(np.int64),
        concept=concepts,
    )


def _lemma_intensity(con: Any, words: list[str], intensity: np.ndarray, hits: pa.Table) -> int:
    """Give each word outside the lexicon its WordNet base form's intensity (the first of its
    noun, verb, adjective, adverb base forms that the lexicon holds), in place; returns how many
    distinct words got one."""
    found = np.zeros(len(words), dtype=bool)
    if hits.num_rows:
        found[hits["code"].to_numpy()] = True
    codes: list[int] = []
    forms: list[str] = []
    for code in np.flatnonzero(~found).tolist():
        word = words[code]
        if not word.isalpha():
            continue
        for pos in "nvar":
            form = base_form(word, pos)
            if form != word:
                codes.append(code)
                forms.append(form)
    if not codes:
        return 0
    table = pa.table(
        {
            "code": pa.array(codes, type=pa.int64()),
            "form": pa.array(forms, type=pa.string()),
            "pref": pa.array(np.arange(len(codes), dtype=np.int64)),
        }
    )
    con.register("token_forms", table)
    try:
        rows = _arrow(
            con,
            "SELECT code, arg_min(l.intensity, pref) AS intensity FROM token_forms t "
            "JOIN lexicon l ON l.word = t.form GROUP BY code",
        )
    finally:
        con.unregister("token_forms")
    if rows.num_rows:
        intensity[rows["code"].to_numpy()] = rows["intensity"].to_numpy().astype(np.float32)
    return rows.num_rows


def _gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + within


def _list_array(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32), type=pa.int32()), pa.array(values, type=value_type)
    )


def assemble(
    plan: HistoryPlan,
    texts: Sequence[str],
    tables: TokenTables,
    candidates: Candidates,
    config: EnrichConfig,
) -> pa.Table:
    """Build the rows of :data:`schema.GRAPH_SCHEMA` for every example of ``plan`` (numpy only).

    Shapes: E examples, T history turns in all, W history tokens in all, C candidate concepts.
    """
    num_ex = len(plan.example_ids)
    turns_per_ex = np.fromiter((len(h) for h in plan.history), dtype=np.int64, count=num_ex)
    turn_text = np.fromiter(
        (i for h in plan.history for _, i in h), dtype=np.int64, count=int(turns_per_ex.sum())
    )  # (T,)
    turn_role = np.fromiter(
        (_ROLE_CODE[r] for h in plan.history for r, _ in h), dtype=np.int8, count=len(turn_text)
    )  # (T,)
    turn_ex = np.repeat(np.arange(num_ex, dtype=np.int64), turns_per_ex)  # (T,)
    turn_len = tables.length[turn_text]  # (T,)
    src = _gather_ranges(tables.offset[turn_text], turn_len)  # (W,) index into token tables
    tok_ex = np.repeat(turn_ex, turn_len)  # (W,)
    words_per_ex = np.bincount(tok_ex, minlength=num_ex)  # (E,)
    ctx_len = words_per_ex + 1  # CLS first
    ctx_off = np.zeros(num_ex + 1, dtype=np.int64)
    np.cumsum(ctx_len, out=ctx_off[1:])
    out_idx = np.arange(len(src), dtype=np.int64) + tok_ex + 1  # skip one CLS per example so far
    ctx_ids = np.full(int(ctx_off[-1]), schema.CLS_ID, dtype=np.int32)
    ctx_roles = np.full(len(ctx_ids), int(schema.Role.CLS), dtype=np.int8)
    ctx_int = np.zeros(len(ctx_ids), dtype=np.float32)
    ctx_ids[out_idx] = tables.ids[src]
    ctx_roles[out_idx] = np.repeat(turn_role, turn_len)
    ctx_int[out_idx] = tables.intensity[src]
    position = out_idx - ctx_off[tok_ex]  # (W,) position inside the example (>= 1)

    # Concepts: every query-word occurrence contributes its top-K' candidates.
    q = tables.qid[src]
    is_q = q >= 0
    q_ex, q_pos, q_id = tok_ex[is_q], position[is_q], q[is_q]
    n_cand = candidates.offset[q_id + 1] - candidates.offset[q_id]
    rows = _gather_ranges(candidates.offset[q_id], n_cand)  # (C,) index into candidates
    c_ex = np.repeat(q_ex, n_cand)
    c_pos = np.repeat(q_pos, n_cand)
    if len(rows):
        order = np.lexsort(
            (
                c_pos,
                candidates.order[rows],
                -candidates.weight[rows],
                -candidates.score[rows],
                c_ex,
            )
        )
        rows, c_ex, c_pos = rows[order], c_ex[order], c_pos[order]
        key = c_ex * (int(candidates.order.max()) + 1) + candidates.order[rows]
        _, first = np.unique(key, return_index=True)
        first.sort()
        rows, c_ex, c_pos = rows[first], c_ex[first], c_pos[first]
        starts = np.searchsorted(c_ex, c_ex, side="left")
        keep = (np.arange(len(rows)) - starts) < config.max_concepts_per_dialogue
        rows, c_ex, c_pos = rows[keep], c_ex[keep], c_pos[keep]
    per_ex = np.bincount(c_ex, minlength=num_ex) if len(c_ex) else np.zeros(num_ex, np.int64)
    con_off = np.zeros(num_ex + 1, dtype=np.int64)
    np.cumsum(per_ex, out=con_off[1:])

    # Targets.
    target = np.asarray(plan.target, dtype=np.int64)
    has_t = target >= 0
    t_len = np.where(has_t, tables.length[np.where(has_t, target, 0)], 0)
    t_src = _gather_ranges(tables.offset[np.where(has_t, target, 0)], t_len)
    t_off = np.zeros(num_ex + 1, dtype=np.int64)
    np.cumsum(t_len, out=t_off[1:])

    hist_off = np.zeros(num_ex + 1, dtype=np.int64)
    np.cumsum(turns_per_ex, out=hist_off[1:])
    return pa.table(
        {
            "example_id": pa.array(plan.example_ids, type=pa.string()),
            "conv_id": pa.array(plan.conv_ids, type=pa.string()),
            "split": pa.array(plan.splits, type=pa.string()),
            "emotion": pa.array(np.asarray(plan.emotions, dtype=np.int8), type=pa.int8()),
            "history": pa.ListArray.from_arrays(
                pa.array(hist_off.astype(np.int32)),
                pa.array([texts[i] for i in turn_text.tolist()], type=pa.string()),
            ),
            "target": pa.array([texts[i] if i >= 0 else "" for i in plan.target], type=pa.string()),
            "context_ids": _list_array(ctx_off, ctx_ids, pa.int32()),
            "context_roles": _list_array(ctx_off, ctx_roles, pa.int8()),
            "context_intensity": _list_array(ctx_off, ctx_int, pa.float32()),
            "concept_ids": _list_array(con_off, candidates.concept_id[rows], pa.int32()),
            "concept_anchor": _list_array(con_off, c_pos.astype(np.int32), pa.int32()),
            "concept_relation": _list_array(con_off, candidates.relation[rows], pa.int8()),
            "concept_weight": _list_array(
                con_off, candidates.weight[rows].astype(np.float32), pa.float32()
            ),
            "concept_intensity": _list_array(
                con_off, candidates.intensity[rows].astype(np.float32), pa.float32()
            ),
            "target_ids": _list_array(t_off, tables.ids[t_src], pa.int32()),
        }
    )


def index_provenance(index: Any) -> dict[str, object]:
    """The parts of an index manifest a graph file records: its absolute path, source and
    lexicon checksums, :func:`kemp_kg.schema.index_checksum` of them (``checksum``), and the
    build options that change its content (``options``: the WordNet rules), so that runs on
    graphs from differently built indexes can be told apart."""
    manifest = dict(index.manifest)
    return {
        "path": os.path.abspath(index.path),
        "checksum": schema.index_checksum(manifest),
        "format": manifest.get("format"),
        "tool_version": manifest.get("tool_version"),
        "source": manifest.get("source"),
        "lexicon": manifest.get("lexicon"),
        "options": manifest.get("options"),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _noop(_stage: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


class StageClock:
    """Wall seconds and peak RSS (MiB) per named pipeline stage, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` body as stage ``name`` (recorded only when it completes)."""
        clock = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - clock
        self.peak_rss_mb[name] = _peak_rss_mb()


@dataclass(frozen=True)
class Selection:
    """The dialogues as read: all conversations, this shard's, and its examples."""

    conversations: list[Conversation]
    mine: list[Conversation]
    examples: list[Example]
    report: ReadReport


def select_examples(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    split: str | None,
    strict: bool,
    shard: tuple[int, int] | None,
    max_turn_chars: int | None = None,
    max_history_turns: int | None = None,
) -> Selection:
    """Step 1: read the dialogues, cut turns longer than ``max_turn_chars``, keep this shard's
    conversations, expand listener turns (histories of at most ``max_history_turns`` turns)."""
    conversations, report = read_dialogues(inputs, split=split, strict=strict)
    if max_turn_chars is not None:
        conversations = limit_turns(conversations, max_turn_chars, report)
    if shard is not None:
        mine = [c for c in conversations if shard_of(c.conv_id, shard[1]) == shard[0]]
    else:
        mine = conversations
    return Selection(conversations, mine, expand_examples(mine, max_history_turns, report), report)


@dataclass
class TextPool:
    """Unique utterance texts, with what each is needed for.

    ``texts[i]`` is one distinct text; ``needs_tag[i]`` says it appears in some history (so it is
    POS-tagged for query words); ``conv_text_ids[conv_id]`` maps a conversation's turns to text
    indices; ``vocab_occurrences`` lists one text index per turn that counts for the vocabulary.
    """

    texts: list[str] = field(default_factory=list)
    needs_tag: list[bool] = field(default_factory=list)
    conv_text_ids: dict[str, list[int]] = field(default_factory=dict)
    vocab_occurrences: list[int] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def intern(self, text: str, tag: bool) -> int:
        """The index of ``text`` (added when new); ``tag`` marks it for POS tagging."""
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.texts)
            self.texts.append(text)
            self.needs_tag.append(tag)
        elif tag:
            self.needs_tag[i] = True
        return i


def pool_texts(selection: Selection, *, vocab_scope: str | None) -> TextPool:
    """Step 2a: this shard's turns (tagged if ever in a history), plus the vocabulary's texts
    (tokens only) from ALL conversations, so every shard counts the same ones:

    * ``vocab_scope="train"``: every turn of the training conversations;
    * ``vocab_scope="official"``: every turn of every split and each conversation's situation;
    * ``None``: none (the vocabulary comes from a file).
    """
    pool = TextPool()
    for conv in selection.mine:
        last_target = max(i for i, t in enumerate(conv.turns) if t.role == "listener")
        pool.conv_text_ids[conv.conv_id] = [
            pool.intern(t.text, i < last_target) for i, t in enumerate(conv.turns)
        ]
    if vocab_scope == "train":
        for conv in selection.conversations:
            if conv.split == "train":
                pool.vocab_occurrences.extend(pool.intern(t.text, False) for t in conv.turns)
        if not pool.vocab_occurrences:
            raise InputError(
                "no training conversations to build the vocabulary from; pass --vocab FILE "
                "(a JSON token list or an earlier graph file) or include the train split"
            )
    elif vocab_scope == "official":
        for conv in selection.conversations:
            pool.vocab_occurrences.extend(pool.intern(t.text, False) for t in conv.turns)
            if conv.situation:
                pool.vocab_occurrences.append(pool.intern(conv.situation, False))
    return pool


def count_tokens(pool: TextPool, processed: ProcessedTexts) -> dict[str, int]:
    """Token counts over every vocabulary turn occurrence (a text counted once per turn)."""
    # weight each text's tokens by how many counted turns carry that text, then count per token
    occurrences = np.bincount(
        np.asarray(pool.vocab_occurrences, dtype=np.int64), minlength=len(pool.texts)
    )
    encoded = processed.values.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    weights = np.repeat(occurrences, np.diff(processed.offsets)).astype(np.float64)
    totals = np.bincount(codes, weights=weights, minlength=len(encoded.dictionary))
    words = encoded.dictionary.to_pylist()
    return {word: int(n) for word, n in zip(words, totals.tolist(), strict=True) if n}


def choose_vocab(
    pool: TextPool,
    processed: ProcessedTexts,
    config: EnrichConfig,
    vocab_file: str | os.PathLike[str] | None,
    vocab_scope: str = "train",
    splits: Sequence[str] = ("train",),
) -> tuple[list[str], dict[str, object]]:
    """Step 3: the vocabulary (from ``vocab_file`` or counted here over the texts
    :func:`pool_texts` gathered for ``vocab_scope``) and its provenance entry; ``splits`` are
    the splits an ``official`` vocabulary was counted over."""
    if vocab_file is not None:
        return load_vocab(vocab_file), {"file": str(vocab_file)}
    vocab = vocab_from_counts(count_tokens(pool, processed), min_count=config.min_count)
    if vocab_scope == "official":
        return vocab, {
            "scope": "official",
            "splits": sorted(splits),
            "texts": "turns and situations",
            "min_count": config.min_count,
        }
    return vocab, {"split": "train", "min_count": config.min_count}


def retrieve_concepts(
    index: Any, processed: ProcessedTexts, vocab_index: dict[str, int], config: EnrichConfig
) -> tuple[TokenTables, Candidates]:
    """Step 4: token tables (ids, Eq. 1 intensity, query words) and every query word's top K'."""
    con = index.connect()
    try:
        tables = TokenTables(processed, vocab_index, con, config)
        return tables, retrieve(con, tables, vocab_index, config)
    finally:
        con.close()


def plan_examples(examples: Sequence[Example], pool: TextPool) -> HistoryPlan:
    """Step 5a: every example as text indices (history turns with roles, target)."""
    plan = HistoryPlan([], [], [], [], [], [])
    for ex in examples:
        conv = ex.conversation
        ids = pool.conv_text_ids[conv.conv_id]
        plan.example_ids.append(ex.example_id)
        plan.conv_ids.append(conv.conv_id)
        plan.splits.append(conv.split)
        plan.emotions.append(
            schema.EMOTION_INDEX[conv.emotion] if conv.emotion else schema.UNKNOWN_EMOTION
        )
        plan.history.append([(t.role, ids[ex.first_index + i]) for i, t in enumerate(ex.history)])
        plan.target.append(ids[ex.target_index])
    return plan


def enrich_provenance(
    *,
    config: EnrichConfig,
    index: Any,
    inputs: Sequence[str | os.PathLike[str]],
    split: str | None,
    shard: tuple[int, int] | None,
    vocab: Sequence[str],
    vocab_source: dict[str, object],
    split_counts: Counter[str],
    report: ReadReport,
    lemma_intensity_words: int = 0,
) -> dict[str, object]:
    """What the graph file records about how it was made (thresholds, inputs, vocabulary).

    ``lemma_intensity_words``: distinct tokens whose intensity came from their base form."""
    return {
        "tool": "kemp-kg enrich",
        "tool_version": kemp_kg.__version__,
        "schema_version": schema.SCHEMA_VERSION,
        "preset": config.preset,
        "thresholds": config.to_json(),
        "index": index_provenance(index),
        "inputs": [
            {"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in _input_files(inputs)
        ],
        "split_override": split,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "shard_hash": "blake2b-64(conv_id) mod n",
        "vocab": {**vocab_source, "size": len(vocab), "concept_terms": "vocabulary tokens only"},
        "text_pipeline": PIPELINE_DESCRIPTION,
        "context_intensity": {
            "lookup": "surface form, else its WordNet base form (n, v, a, r)"
            if config.intensity_lemma_fallback
            else "surface form",
            "words_by_base_form": lemma_intensity_words,
        },
        "examples": dict(sorted(split_counts.items())),
        "skipped": dict(sorted(report.skipped.items())),
    }


def write_examples(
    out: str | os.PathLike[str],
    plan: HistoryPlan,
    texts: Sequence[str],
    tables: TokenTables,
    candidates: Candidates,
    config: EnrichConfig,
    *,
    vocab: Sequence[str],
    provenance: dict[str, object],
    advance: Callable[[int], None],
) -> tuple[Path, np.ndarray]:
    """Step 5b+6: assemble and write :data:`BATCH_EXAMPLES` at a time (memory bounded by one
    batch); returns the file and the number of concepts of every example (E,)."""
    concept_counts: list[np.ndarray] = []

    def batches() -> Iterator[pa.Table]:
        for start in range(0, len(plan.example_ids), BATCH_EXAMPLES):
            table = assemble(
                plan.slice(start, start + BATCH_EXAMPLES), texts, tables, candidates, config
            )
            concept_counts.append(
                pc.list_value_length(table["concept_ids"]).to_numpy(zero_copy_only=False)
            )
            advance(table.num_rows)
            yield table

    path = schema.write_graphs(out, batches(), vocab=vocab, provenance=provenance)
    per_ex = np.concatenate(concept_counts) if concept_counts else np.zeros(0)
    return path, per_ex


def enrich(
    dialogues: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    config: EnrichConfig,
    split: str | None = None,
    shard: tuple[int, int] | None = None,
    strict: bool = False,
    vocab_file: str | os.PathLike[str] | None = None,
    vocab_scope: str = "train",
    workers: int | None = None,
    progress: ProgressHook | None = None,
) -> EnrichResult:
    """Enrich dialogues into emotional context graphs and write them to ``out`` atomically.

    Args:
        dialogues: a kemp dialogues ``.jsonl``/``.json``, ED CSV(s) or their folder, or a list.
        index_dir: the folder written by ``kemp-kg build-index``.
        out: the ``.arrow`` file to write (one file, all splits, ``split`` column).
        config: thresholds (:mod:`kemp_kg.presets`).
        split: force every conversation into this split.
        shard: ``(i, n)``: write only conversations of shard i of n.
        strict: stop at the first bad record instead of skipping it.
        vocab_file: reuse this vocabulary (JSON list or a graph file) instead of building one.
        vocab_scope: what a vocabulary built here counts (:data:`kemp_kg.vocab.VOCAB_SCOPES`):
            ``train`` (default) the training turns; ``official`` every split's turns and
            situations, as the released KEMP code does (use with ``min_count`` 1 to match it).
        workers: text-pipeline processes (default: all usable CPUs).
        progress: optional progress hook.

    Returns:
        an :class:`EnrichResult` (counts, skipped input by reason, timings).
    """
    from kemp_kg.index import open_index

    if vocab_scope not in VOCAB_SCOPES:
        raise ValueError(f"vocab_scope must be one of {VOCAB_SCOPES}, got {vocab_scope!r}")
    if vocab_file is not None and vocab_scope != "train":
        raise ValueError("a vocabulary file and vocab_scope='official' exclude each other")
    hook = progress or _noop
    clock = StageClock()
    inputs = [dialogues] if isinstance(dialogues, (str, os.PathLike)) else list(dialogues)
    with clock.stage("read"):
        index = open_index(index_dir)  # fail early on a missing index, before the slow part
        selection = select_examples(
            inputs,
            split=split,
            strict=strict,
            shard=shard,
            max_turn_chars=config.max_turn_chars,
            max_history_turns=config.max_history_turns,
        )
    with clock.stage("text"):
        pool = pool_texts(selection, vocab_scope=None if vocab_file else vocab_scope)
        processed = process_texts(
            pool.texts, tag=pool.needs_tag, workers=workers, progress=hook("text", len(pool.texts))
        )
    with clock.stage("vocab"):
        splits = {c.split for c in selection.conversations}
        vocab, vocab_source = choose_vocab(
            pool, processed, config, vocab_file, vocab_scope=vocab_scope, splits=sorted(splits)
        )
        vocab_index = {tok: i for i, tok in enumerate(vocab)}
    with clock.stage("retrieve"):
        tables, candidates = retrieve_concepts(index, processed, vocab_index, config)
    with clock.stage("assemble+write"):
        plan = plan_examples(selection.examples, pool)
        split_counts = Counter(plan.splits)
        provenance = enrich_provenance(
            config=config,
            index=index,
            inputs=inputs,
            split=split,
            shard=shard,
            vocab=vocab,
            vocab_source=vocab_source,
            split_counts=split_counts,
            report=selection.report,
            lemma_intensity_words=tables.lemma_intensity_words,
        )
        path, per_ex = write_examples(
            out,
            plan,
            pool.texts,
            tables,
            candidates,
            config,
            vocab=vocab,
            provenance=provenance,
            advance=hook("graphs", len(selection.examples)),
        )
    return EnrichResult(
        path=path,
        examples=split_counts,
        report=selection.report,
        vocab_size=len(vocab),
        unique_utterances=len(pool.texts),
        tokens=int(tables.length.sum()),
        query_words=len(tables.query_surface),
        concepts_per_example=_stats(per_ex),
        seconds=clock.seconds,
        peak_rss_mb=clock.peak_rss_mb,
        shard=shard,
    )


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": 0.0, "max": 0.0, "zero": 0.0}
    return {
        "mean": float(values.mean()),
        "max": float(values.max()),
        "zero": float((values == 0).sum()),
    }


def _input_files(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    from kemp_kg.dialogues import input_files

    return [p for item in inputs for p in input_files(item)]


__all__ = [
    "Conversation",
    "EnrichResult",
    "HistoryPlan",
    "assemble",
    "enrich",
    "parse_shard",
    "retrieve",
    "shard_of",
]
