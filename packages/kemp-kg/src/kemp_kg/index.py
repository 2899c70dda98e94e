"""The knowledge index: one folder with a DuckDB database, Parquet exports and a manifest.

``build_index(source, lexicon, index_dir)`` turns a knowledge source (an official ConceptNet
assertions dump, ``"wordnet"``, or a triples ``.tsv``/``.parquet`` file) plus an NRC-VAD lexicon
into ``index_dir/``:

* ``index.duckdb`` with tables

  - ``edges(head, head_pos, relation, tail, tail_pos, weight, dataset)``: directed as in the
    source, lowercase terms (phrases keep spaces), POS n/v/a/r/s or NULL, relation without
    ``/r/``, unique on (head, relation, tail) keeping the highest weight, no self-loops;
  - ``lexicon(word PRIMARY KEY, valence, arousal, dominance, intensity)``: Eq. 1 in [0, 1];
  - ``concepts(term PRIMARY KEY, intensity, degree)``: every term of ``edges``, intensity from
    the lexicon (0 when absent), degree = number of edges touching it;
  - view ``neighbours(word, concept, relation, weight, concept_intensity, word_pos)``: the
    neighbourhood of a word, each edge read both ways (ConceptNet, triples, the ``conceptnet``
    WordNet rules) or head -> tail only when the source writes every edge from the word's side
    (the ``sense`` WordNet rules; the manifest's ``directed``). ``word_pos`` is the POS of the
    word's end (NULL when the source has none). ``kemp-kg query`` and ``kemp-kg enrich`` use it.

* ``edges.parquet``, ``lexicon.parquet``, ``concepts.parquet``: exports of the tables;
* ``manifest.json``: format, tool version, build time, source and lexicon checksums, options,
  counts, relation counts and skipped lines by reason.

The folder is built as ``DIR.tmp-XXXX`` beside the final name and renamed into place, so a failed
build leaves no index under the final name. Rebuilding with the same source and lexicon checksums
and the same options is a no-op unless ``force=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kemp_kg import __version__, schema
from kemp_kg.digest import file_digest, new_digest
from kemp_kg.errors import IndexNotFoundError, InputError, KempError
from kemp_kg.intensity import Lexicon, load_lexicon
from kemp_kg.wordnet_source import WordNetRules, sense_rules

#: /2: ``neighbours`` has ``word_pos`` and may be directed (``manifest["directed"]``).
INDEX_FORMAT = "kemp-index/2"
DB_NAME = "index.duckdb"
MANIFEST_NAME = "manifest.json"
EXPORTED_TABLES: tuple[str, ...] = ("edges", "lexicon", "concepts")
WORDNET = "wordnet"

#: Most DuckDB threads a build may ask for: DuckDB starts every one at once (100,000 hung).
MAX_THREADS = 256

#: Source kinds as written in the manifest.
SOURCE_KINDS: tuple[str, ...] = ("conceptnet", "wordnet", "triples")

#: Progress callback: (stage description, completed fraction in [0, 1] or None when unknown).
ProgressFn = Callable[[str, "float | None"], None]

_RAW_EDGES_DDL = (
    "CREATE TEMP TABLE raw_edges (head VARCHAR, head_pos VARCHAR, relation VARCHAR, "
    "tail VARCHAR, tail_pos VARCHAR, weight DOUBLE, dataset VARCHAR)"
)
_EDGES_DDL = (
    "CREATE TABLE edges (head VARCHAR NOT NULL, head_pos VARCHAR, relation VARCHAR NOT NULL, "
    "tail VARCHAR NOT NULL, tail_pos VARCHAR, weight DOUBLE NOT NULL, dataset VARCHAR)"
)


@dataclass(frozen=True)
class BuildOptions:
    """Build settings.

    None of the current ones changes what the index holds, so :meth:`fingerprint` (written to the
    manifest as ``options`` and part of the no-op key) is empty; an option that changes the
    content must be added there.

    Attributes:
        memory_limit: DuckDB memory limit for the build (spills to disk beyond it).
        threads: DuckDB worker threads (None = DuckDB's default, all cores).
        wordnet: the rules that turn WordNet into edges (:mod:`kemp_kg.wordnet_source`).
    """

    memory_limit: str = "3GB"
    threads: int | None = None
    wordnet: WordNetRules = dataclasses.field(default_factory=sense_rules)

    def __post_init__(self) -> None:
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be in 1..{MAX_THREADS}, got {self.threads}")
        con = duckdb.connect(":memory:")
        try:  # DuckDB's own parser decides what a memory limit is (3GB, 500MiB, 80%, ...)
            con.execute("SET memory_limit = ?", [self.memory_limit])
        except duckdb.Error:
            raise ValueError(
                f"memory_limit {self.memory_limit!r} is not a DuckDB size (e.g. 3GB, 500MB, 80%)"
            ) from None
        finally:
            con.close()

    def fingerprint(self, kind: str | None = None) -> dict[str, Any]:
        """The options that change the index's CONTENT for a source ``kind`` (threads and memory
        do not; the WordNet rules do, for ``wordnet``)."""
        return {"wordnet": self.wordnet.to_json()} if kind == WORDNET else {}


@dataclass(frozen=True)
class SourceSpec:
    """A resolved knowledge source: kind, path (for WordNet: its NLTK folder) and size in bytes."""

    kind: str
    path: Path
    bytes: int


def resolve_source(source: str | os.PathLike[str]) -> SourceSpec:
    """Classify ``source``: ``"wordnet"``, a ConceptNet dump (``.csv``/``.csv.gz``) or triples
    (``.tsv``/``.parquet``).

    Raises:
        InputError: the file does not exist, or its name matches none of the kinds.
    """
    from kemp_kg.conceptnet import is_dump_path
    from kemp_kg.triples import is_triples_path

    if str(source).strip().lower() == WORDNET:
        from kemp_kg.wordnet_source import wordnet_files

        files = wordnet_files()
        return SourceSpec("wordnet", files[0].parent, sum(f.stat().st_size for f in files))
    path = Path(source)
    if not path.exists():
        raise InputError(
            f"{path}: no such file; SOURCE is a ConceptNet dump (.csv/.csv.gz), 'wordnet', or a "
            "triples file (.tsv/.parquet)"
        )
    if path.is_dir():
        raise InputError(f"{path}: is a folder; SOURCE must be a file or 'wordnet'")
    if is_triples_path(path):
        kind = "triples"
    elif is_dump_path(path):
        kind = "conceptnet"
    else:
        raise InputError(
            f"{path}: unknown source type (name it .csv/.csv.gz for a ConceptNet dump, "
            ".tsv/.parquet for triples, or pass 'wordnet')"
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return SourceSpec(kind, path, size)


#: The digest that identifies a knowledge source in the manifest (``source.<name>``); fast
#: enough to be read beside DuckDB's scan (:mod:`kemp_kg.digest` says why it is not SHA-256).
SOURCE_DIGEST = schema.SOURCE_DIGEST_KEYS[0]


def source_digest(spec: SourceSpec) -> str:
    """:data:`SOURCE_DIGEST` of the source's bytes (for WordNet: of its database files' digests,
    in name order)."""
    if spec.kind == "wordnet":
        from kemp_kg.wordnet_source import wordnet_files

        digest = new_digest(SOURCE_DIGEST)
        for file in wordnet_files():
            part = file_digest(file, SOURCE_DIGEST)
            digest.update(file.name.encode() + b"\0" + part.encode() + b"\n")
        return digest.hexdigest()
    try:
        return file_digest(spec.path, SOURCE_DIGEST)
    except OSError as exc:
        raise InputError(f"{spec.path}: cannot read ({exc.strerror or exc})") from None


class SourceHasher:
    """The source digest, computed at most once, optionally in a thread beside the build.

    The build reads the source with DuckDB while this thread reads it again for the digest: the
    second read comes from the page cache, and XXH3 costs little more than that copy, so the
    digest adds no second scan's worth of CPU. :meth:`value` waits for the thread and re-raises
    its error in the caller.
    """

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec
        self._value: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            self._value = source_digest(self._spec)
        except BaseException as exc:  # re-raised by value() in the calling thread
            self._error = exc

    def start(self) -> None:
        """Start hashing in a daemon thread (no-op when the digest is known or running)."""
        if self._value is None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kemp-digest", daemon=True)
            self._thread.start()

    def wait(self) -> None:
        """Join the thread if one runs (errors stay stored for :meth:`value`)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def value(self) -> str:
        """The digest (computed here if no thread did)."""
        self.wait()
        if self._error is not None:
            raise self._error
        if self._value is None:
            self._run()
            if self._error is not None:
                raise self._error
        assert self._value is not None
        return self._value


def _read_manifest(index_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((index_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _same_input(
    index_dir: Path,
    manifest: dict[str, Any] | None,
    spec: SourceSpec,
    source_hash: Callable[[], str],
    lexicon: Lexicon | None,
    options: BuildOptions,
) -> bool:
    if not manifest or manifest.get("format") != INDEX_FORMAT:
        return False
    src = manifest.get("source", {})
    lex = manifest.get("lexicon", {})
    if src.get("kind") != spec.kind or src.get("bytes") != spec.bytes:
        return False
    if lex.get("sha256") != (lexicon.sha256 if lexicon else None):
        return False
    if manifest.get("options") != options.fingerprint(spec.kind):
        return False
    files = (DB_NAME, *(table + ".parquet" for table in EXPORTED_TABLES))
    if not all((index_dir / name).is_file() for name in files):
        return False
    return src.get(SOURCE_DIGEST) == source_hash()


def _other_source(manifest: dict[str, Any], spec: SourceSpec) -> str:
    """``"KIND PATH"`` of the folder's index when it was built from another source than
    ``spec``; "" for the same source (whose content or lexicon may have changed: an ordinary
    rebuild)."""
    src = manifest.get("source") or {}
    path = str(spec.path if spec.kind == WORDNET else spec.path.resolve())
    if (src.get("kind"), src.get("path")) != (spec.kind, path):
        return f"{src.get('kind')} {src.get('path')}"
    return ""


@contextlib.contextmanager
def _building(final: Path) -> Iterator[Path]:
    """Hold the output lock on ``final``, yield a fresh ``FINAL.tmp-XXXX`` folder, and on success
    put it in place with :func:`schema.replace_folder`.

    The lock makes a second concurrent build of the same folder fail at once (one line) instead
    of racing; the replacement is an atomic exchange of the two folders where the kernel allows
    it, so at every instant ``final`` holds either the old or the new complete index, even if the
    process is killed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with schema.output_lock(final):
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=final.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        umask = os.umask(0o022)  # mkdtemp made the folder 0700; give it the user's usual mode
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        schema.replace_folder(tmp, final)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_source(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    scratch: Path,
    progress: ProgressFn | None,
    wordnet: WordNetRules,
) -> tuple[dict[str, int | None], dict[str, int], list[str], bool, bool]:
    """Fill the edges from the source; return (counts, skipped, notes on how it was read,
    whether the rows are already deduplicated without self-loops, whether they are directed).

    A ConceptNet dump is deduplicated while it is scanned, so its rows go straight into the final
    ``edges`` table (one write); the other sources fill the temporary ``raw_edges`` table, which
    :func:`_write_index` deduplicates into ``edges``.
    """
    if spec.kind == "conceptnet":
        from kemp_kg.conceptnet import load_dump

        on_progress = None if progress is None else (lambda f: progress("reading dump", f))
        con.execute(_EDGES_DDL)
        loaded = load_dump(con, spec.path, "edges", scratch=scratch, on_progress=on_progress)
        return loaded.counts, loaded.skipped, list(loaded.notes), True, False
    con.execute(_RAW_EDGES_DDL)
    if spec.kind == "triples":
        from kemp_kg.triples import load_triples

        if progress:
            progress("reading triples", None)
        loaded_t = load_triples(con, spec.path, "raw_edges")
        return loaded_t.counts, loaded_t.skipped, [], False, False
    from kemp_kg.wordnet_source import load_wordnet

    if progress:
        progress("reading WordNet", None)
    loaded_w = load_wordnet(con, "raw_edges", wordnet)
    return loaded_w.counts, loaded_w.skipped, [], False, loaded_w.directed


def _write_index(
    con: duckdb.DuckDBPyConnection,
    lexicon: Lexicon | None,
    progress: ProgressFn | None,
    deduplicated: bool,
    directed: bool = False,
) -> dict[str, int]:
    """Create lexicon, concepts and the view (and edges from ``raw_edges`` unless the source
    filled ``edges`` itself).

    ``deduplicated``: ``edges`` already holds the source's rows, unique on (head, relation, tail)
    without self-loops (the ConceptNet reader deduplicates while it scans); otherwise ``raw_edges``
    is deduplicated into ``edges`` here. ``directed``: ``neighbours`` reads head -> tail only.

    ``edges`` is not sorted: every reader (``neighbours``, enrich's hash join, ``query``) selects
    or joins by value and orders its own results, and sorting 530k edges cost 0.25 CPU-s of a
    5.9M-row build (the price: a ``neighbours`` lookup scans every row group, about 40 instead of
    20 ms). Its row order, in the table and in ``edges.parquet``, is therefore not fixed; its
    content is. ``lexicon`` and ``concepts`` are sorted by word / term (nearly free at their size,
    and it lets a lookup's join skip row groups of ``concepts``).
    """
    counts: dict[str, int] = {}
    if not deduplicated:
        if progress:
            progress("deduplicating edges", None)
        con.execute(_EDGES_DDL)
        raw_rows, self_loops = con.execute(
            "SELECT count(*), count(*) FILTER (head = tail) FROM raw_edges"
        ).fetchone()
        # max() over a struct compares field by field: the highest weight wins, ties are broken
        # by POS and dataset so that the same input always gives the same rows.
        con.execute(
            "INSERT INTO edges SELECT head, nullif(best.hp, ''), relation, tail, "
            "nullif(best.tp, ''), best.w, nullif(best.ds, '') FROM ("
            "  SELECT head, relation, tail, max({'w': weight, 'hp': coalesce(head_pos, ''), "
            "  'tp': coalesce(tail_pos, ''), 'ds': coalesce(dataset, '')}) AS best "
            "  FROM raw_edges WHERE head <> tail GROUP BY head, relation, tail"
            ")"
        )
        counts["source_rows"] = int(raw_rows)
        counts["self_loops_dropped"] = int(self_loops)
        con.execute("DROP TABLE raw_edges")
    con.execute(
        "CREATE TABLE lexicon (word VARCHAR PRIMARY KEY, valence DOUBLE NOT NULL, "
        "arousal DOUBLE NOT NULL, dominance DOUBLE NOT NULL, intensity DOUBLE NOT NULL)"
    )
    if lexicon is not None:
        con.register("kemp_lexicon_arrow", lexicon.to_arrow())
        con.execute("INSERT INTO lexicon SELECT * FROM kemp_lexicon_arrow ORDER BY word")
        con.unregister("kemp_lexicon_arrow")
    if progress:
        progress("concepts", None)
    # The primary key is added after the bulk insert: building the index once over the finished
    # column costs a third of maintaining it row by row during the insert (0.28 vs 0.44 CPU-s on
    # 276k concepts); the terms are unique by construction (GROUP BY term), the key checks it.
    con.execute(
        "CREATE TABLE concepts (term VARCHAR NOT NULL, intensity DOUBLE NOT NULL, "
        "degree INTEGER NOT NULL)"
    )
    con.execute(
        "INSERT INTO concepts SELECT t.term, coalesce(l.intensity, 0.0), t.degree FROM ("
        "  SELECT term, CAST(count(*) AS INTEGER) AS degree FROM ("
        "    SELECT head AS term FROM edges UNION ALL SELECT tail FROM edges"
        "  ) GROUP BY term"
        ") t LEFT JOIN lexicon l ON l.word = t.term ORDER BY t.term"
    )
    con.execute("ALTER TABLE concepts ADD PRIMARY KEY (term)")
    forward = (
        "SELECT e.head AS word, e.tail AS concept, e.relation, e.weight, "
        "c.intensity AS concept_intensity, e.head_pos AS word_pos "
        "FROM edges e JOIN concepts c ON c.term = e.tail"
    )
    backward = (
        "SELECT e.tail AS word, e.head AS concept, e.relation, e.weight, "
        "c.intensity AS concept_intensity, e.tail_pos AS word_pos "
        "FROM edges e JOIN concepts c ON c.term = e.head"
    )
    con.execute(
        "CREATE VIEW neighbours AS " + (forward if directed else f"{forward} UNION ALL {backward}")
    )
    edges, concepts, in_lexicon = con.execute(
        "SELECT (SELECT count(*) FROM edges), (SELECT count(*) FROM concepts), "
        "(SELECT count(*) FROM concepts WHERE intensity > 0 OR term IN (SELECT word FROM lexicon))"
    ).fetchone()
    if not deduplicated:
        counts["duplicates_merged"] = (
            counts["source_rows"] - counts["self_loops_dropped"] - int(edges)
        )
    return {
        **counts,
        "edges": int(edges),
        "concepts": int(concepts),
        "concepts_in_lexicon": int(in_lexicon),
        "lexicon_words": 0 if lexicon is None else len(lexicon),
    }


def build_index(
    source: str | os.PathLike[str],
    lexicon: str | os.PathLike[str] | None,
    index_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    options: BuildOptions | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Build the knowledge index folder ``index_dir`` and return its manifest.

    Args:
        source: ConceptNet dump path (``.csv``/``.csv.gz``), ``"wordnet"``, or a triples file
            (``.tsv``/``.parquet``).
        lexicon: NRC-VAD-layout lexicon; None builds an index whose intensities are all 0 (the
            manifest's ``lexicon`` then has ``path`` null and ``words`` 0).
        index_dir: the folder to create, or rebuild when it holds an index of the same source
            and lexicon files (a symlink: the folder it names is rebuilt).
        force: rebuild even when the folder holds an index of the same input and options, or
            replace an index of another source (refused without it).
        options: :class:`BuildOptions` (DuckDB memory and threads).
        progress: optional callback ``(stage, fraction or None)`` for long builds.

    Returns:
        The manifest dict (also written to ``index_dir/manifest.json``). When the build was a
        no-op, the existing manifest with ``"rebuilt": False`` added (not written).

    Raises:
        InputError: unreadable source or lexicon, ``index_dir`` is a non-empty folder that is
            not a kemp index (it is never deleted), or an index of other input without ``force``.
    """
    options = options or BuildOptions()
    final = Path(index_dir)
    spec = resolve_source(source)
    lex = load_lexicon(lexicon) if lexicon is not None else None

    return _build_resolved(final, spec, lex, force=force, options=options, progress=progress)


def _existing_manifest(final: Path) -> dict[str, Any] | None:
    """The manifest of the index already at ``final`` (None when there is none yet).

    Raises:
        InputError: ``final`` is a file, or a non-empty folder that is not a kemp index (it is
            never deleted).
    """
    if final.exists() and not final.is_dir():
        raise InputError(f"{final}: exists and is not a folder; choose another --index")
    existing = _read_manifest(final) if final.is_dir() else None
    if final.is_dir() and existing is None and any(final.iterdir()):
        raise InputError(
            f"{final}: is a non-empty folder without a kemp index manifest; choose another "
            "--index or remove it yourself"
        )
    return existing


def _connect_for_build(folder: Path, options: BuildOptions) -> duckdb.DuckDBPyConnection:
    """A new ``index.duckdb`` in ``folder`` with the build's settings (memory, spill folder,
    threads, unordered inserts, progress tracked for our bar but not printed by DuckDB)."""
    con = duckdb.connect(str(folder / DB_NAME))
    con.execute("SET memory_limit = $limit", {"limit": options.memory_limit})
    con.execute("SET temp_directory = $spill", {"spill": str(folder / ".spill")})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    con.execute("SET progress_bar_time = 100")
    if options.threads:
        con.execute("SET threads = $threads", {"threads": int(options.threads)})
    return con


def _relation_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Edges per relation, most frequent first."""
    return dict(
        con.execute(
            "SELECT relation, count(*) FROM edges GROUP BY relation "
            "ORDER BY count(*) DESC, relation"
        ).fetchall()
    )


def _export_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """``<table>.parquet`` in ``folder`` for every table of :data:`EXPORTED_TABLES`."""
    for name in EXPORTED_TABLES:
        # COPY takes no parameter for its target: quote the path as an SQL string literal
        # (the --index folder is user data and may hold quotes or semicolons).
        target = (folder / (name + ".parquet")).as_posix().replace("'", "''")
        # zstd level 1: 0.07 CPU-s less than the default level 3 on the 5.9M dump's
        # edges for 7 instead of 6 MiB
        con.execute(
            f"COPY {name} TO '{target}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        )


def _manifest(
    *,
    started: dt.datetime,
    spec: SourceSpec,
    digest: str,
    lex: Lexicon | None,
    options: BuildOptions,
    directed: bool,
    counts: dict[str, Any],
    relations: dict[str, int],
    skipped: dict[str, int],
    notes: list[str],
) -> dict[str, Any]:
    """The ``manifest.json`` of a finished build."""
    return {
        "format": INDEX_FORMAT,
        "tool_version": __version__,
        "built_at": started.isoformat(timespec="seconds"),
        "source": {
            "kind": spec.kind,
            "path": str(spec.path if spec.kind == "wordnet" else spec.path.resolve()),
            SOURCE_DIGEST: digest,
            "bytes": spec.bytes,
        },
        "lexicon": {
            "path": None if lex is None else str(lex.path.resolve()),
            "sha256": None if lex is None else lex.sha256,
            "words": 0 if lex is None else len(lex),
            "raw_min": None if lex is None else lex.raw_min,
            "raw_max": None if lex is None else lex.raw_max,
        },
        "options": options.fingerprint(spec.kind),
        "directed": directed,
        "counts": counts,
        "relations": relations,
        "skipped": skipped,
        "notes": notes,
    }


def _build_resolved(
    final: Path,
    spec: SourceSpec,
    lex: Lexicon | None,
    *,
    force: bool,
    options: BuildOptions,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    """:func:`build_index` once the source and lexicon are resolved: no-op check, then load,
    derive, export and describe the index in a temporary folder that replaces ``final``."""
    if final.is_symlink():  # rebuild the folder the link names; the link keeps pointing at it
        final = Path(os.path.realpath(final))
    existing = _existing_manifest(final)
    hasher = SourceHasher(spec)
    if existing is not None and not force:
        if _same_input(final, existing, spec, hasher.value, lex, options):
            return {**existing, "rebuilt": False}
        other = _other_source(existing, spec)
        if other:
            raise InputError(
                f"{final}: holds the index of another source ({other}); pass --force to "
                "replace it or choose another --index"
            )
    hasher.start()  # read beside DuckDB's scan (no-op when the check above computed it)
    started = dt.datetime.now(dt.timezone.utc)
    try:
        with _building(final) as tmp:
            con = _connect_for_build(tmp, options)
            try:
                counts, skipped, notes, deduplicated, directed = _load_source(
                    con, spec, tmp / ".scratch", progress, options.wordnet
                )
                counts.update(_write_index(con, lex, progress, deduplicated, directed))
                relations = _relation_counts(con)
                if progress:
                    progress("writing Parquet", None)
                _export_parquet(con, tmp)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            shutil.rmtree(tmp / ".spill", ignore_errors=True)
            shutil.rmtree(tmp / ".scratch", ignore_errors=True)
            manifest = _manifest(
                started=started,
                spec=spec,
                digest=hasher.value(),
                lex=lex,
                options=options,
                directed=directed,
                counts=counts,
                relations=relations,
                skipped=skipped,
                notes=notes,
            )
            (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
            _fsync_tree(tmp)
    except duckdb.OutOfMemoryException as exc:
        raise KempError(
            f"{final}: DuckDB ran out of memory under memory_limit={options.memory_limit} "
            f"({str(exc).splitlines()[0]}); raise --memory-limit or free memory"
        ) from None
    except (duckdb.IOException, duckdb.FatalException) as exc:
        # source read errors are InputErrors already: this is writing (a full disk makes DuckDB
        # invalidate the database with a FatalException)
        raise KempError(
            f"{final}: cannot write the index ({str(exc).splitlines()[0]}); the previous index "
            "is kept; free space and rerun"
        ) from None
    finally:
        hasher.wait()
    return {**manifest, "rebuilt": True}


@dataclass(frozen=True)
class Neighbour:
    """One row of the ``neighbours`` view for a word."""

    concept: str
    relation: str
    weight: float
    concept_intensity: float


class KnowledgeIndex:
    """An opened index folder (see :func:`open_index`).

    Attributes:
        path: the folder.
        manifest: its manifest.json.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def database(self) -> Path:
        """``index.duckdb`` inside the folder."""
        return self.path / DB_NAME

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB connection to ``index.duckdb`` (close it when done)."""
        rebuild = "rebuild with `kemp-kg build-index SOURCE --index DIR --force`"
        try:
            con = duckdb.connect(str(self.database), read_only=True)
        except duckdb.Error as exc:
            raise IndexNotFoundError(
                f"{self.path}: cannot open {DB_NAME} ({str(exc).splitlines()[0]}); {rebuild}"
            ) from None
        names = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        missing = [n for n in (*EXPORTED_TABLES, "neighbours") if n not in names]
        if missing:
            con.close()
            raise IndexNotFoundError(
                f"{self.database}: lacks the table(s) {', '.join(missing)}; {rebuild}"
            )
        return con

    def neighbours(self, word: str, top: int = 10) -> list[Neighbour]:
        """The ``top`` neighbours of ``word`` (either edge direction), most intense first.

        Ordered by concept intensity, then weight (both descending), then concept and relation.
        ``word`` is lowercased, stripped, and underscores become spaces.
        """
        if top < 1:
            raise ValueError(f"top must be >= 1, got top={top}")
        term = word.strip().lower().replace("_", " ")
        con = self.connect()
        try:
            rows = con.execute(
                "SELECT concept, relation, weight, concept_intensity FROM neighbours "
                "WHERE word = $word "
                "ORDER BY concept_intensity DESC, weight DESC, concept, relation LIMIT $top",
                {"word": term, "top": int(top)},
            ).fetchall()
        finally:
            con.close()
        return [Neighbour(c, r, float(w), float(i)) for c, r, w, i in rows]

    def intensity(self, word: str) -> float:
        """Eq. 1 intensity of ``word`` from the lexicon table (0.0 outside it)."""
        con = self.connect()
        try:
            row = con.execute(
                "SELECT intensity FROM lexicon WHERE word = $word", {"word": word.strip().lower()}
            ).fetchone()
        finally:
            con.close()
        return 0.0 if row is None else float(row[0])

    def __repr__(self) -> str:
        counts = self.manifest.get("counts", {})
        return f"KnowledgeIndex({str(self.path)!r}, edges={counts.get('edges')})"


def is_index_folder(path: Path) -> bool:
    """True when ``path`` holds a kemp index manifest (a folder build-index may rebuild)."""
    manifest = _read_manifest(path)
    return manifest is not None and manifest.get("format") == INDEX_FORMAT


def open_index(index_dir: str | os.PathLike[str]) -> KnowledgeIndex:
    """Open an index folder built by :func:`build_index`.

    Raises:
        IndexNotFoundError: no folder, no manifest/database, or a manifest of another format.
    """
    path = Path(index_dir)
    hint = f"run `kemp-kg build-index SOURCE --index {path}`"
    if not path.is_dir():
        raise IndexNotFoundError(f"{path}: no knowledge index here; {hint}")
    manifest = _read_manifest(path)
    if manifest is None or not (path / DB_NAME).is_file():
        raise IndexNotFoundError(
            f"{path}: not a complete knowledge index (no {MANIFEST_NAME} or {DB_NAME}); {hint}"
        )
    if manifest.get("format") != INDEX_FORMAT:
        raise IndexNotFoundError(
            f"{path}: index format {manifest.get('format')!r}, this kemp-kg reads "
            f"{INDEX_FORMAT!r}; {hint} --force"
        )
    return KnowledgeIndex(path, manifest)


__all__ = [
    "BuildOptions",
    "INDEX_FORMAT",
    "KnowledgeIndex",
    "Neighbour",
    "SourceSpec",
    "build_index",
    "SOURCE_DIGEST",
    "SourceHasher",
    "open_index",
    "resolve_source",
    "source_digest",
]
