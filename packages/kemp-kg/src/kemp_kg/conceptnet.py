"""ConceptNet: URIs (Python and SQL), and reading an official assertions dump with DuckDB.

The official dump (``conceptnet-assertions-5.7.0.csv.gz``) is tab-separated, one assertion per
line, no header, no quoting::

    /a/[/r/IsA/,/c/en/ice_cream/n/,/c/en/dessert/n/]  /r/IsA  /c/en/ice_cream/n
        /c/en/dessert/n  {"dataset": ..., "weight": 2.0, ...}     (one line, 5 tab-separated fields)

:func:`load_dump` scans it with DuckDB's parallel CSV reader (no Python loop over rows), keeps the
English-English assertions (BOTH ends must start with ``/c/en/``; the official KEMP code tests the
head twice), parses the concept URIs into a term and a part of speech, the relation, and the
``weight`` and ``dataset`` of the JSON metadata (parsed for the English-English rows only: bad JSON
elsewhere does not matter). Malformed lines are skipped and counted by reason;
a file that cannot be read at all is a one-line :class:`~kemp_kg.errors.InputError`.

:func:`parse_concept_uri` and :func:`parse_relation_uri` are the same rules in plain Python (for
tests, property tests and the plain-Python benchmark baseline); a property test checks that the SQL
expressions agree with them.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from kemp_kg.errors import InputError

#: Parts of speech ConceptNet uses in concept URIs (``s`` = adjective satellite).
POS_TAGS: frozenset[str] = frozenset({"n", "v", "a", "r", "s"})

#: Suffixes recognised as an assertions dump.
DUMP_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".tsv.gz", ".gz")

#: Skip reasons reported in the manifest (``skipped``), in display order.
SKIP_REASONS: tuple[str, ...] = (
    "wrong column count",
    "non-UTF-8",
    "bad JSON",
    "missing weight",
    "bad concept URI",
    "bad relation URI",
    "truncated gzip",
    "other CSV error",
)


@dataclass(frozen=True)
class ConceptURI:
    """A parsed concept URI ``/c/<lang>/<term>[/<pos>[/...]]``.

    Attributes:
        language: the language code (``en``).
        term: lowercase text, underscores turned into spaces (``ice cream``).
        pos: ``n``/``v``/``a``/``r``/``s`` or None when absent or not a POS tag.
    """

    language: str
    term: str
    pos: str | None


def parse_concept_uri(uri: str) -> ConceptURI | None:
    """Parse ``/c/en/ice_cream/n/wn/food`` into ``ConceptURI('en', 'ice cream', 'n')``.

    Returns None for anything that is not a concept URI with a term that is more than spaces.
    Same rules as the SQL in :func:`concept_term_sql` / :func:`concept_pos_sql`, with one caveat:
    Python's ``str.lower`` uses Unicode's full, context-sensitive case mapping (``İ`` -> ``i̇``,
    final sigma) where DuckDB applies the simple one. ConceptNet URIs are already lowercase, so the
    two never differ on a real dump.
    """
    parts = uri.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "c" or not parts[2]:
        return None
    term = parts[3].replace("_", " ").lower()
    if not term.strip(" "):
        return None
    pos = parts[4] if len(parts) > 4 and parts[4] in POS_TAGS else None
    return ConceptURI(parts[2], term, pos)


def parse_relation_uri(uri: str) -> str:
    """``/r/IsA`` -> ``IsA``; every ``/r/dbpedia/...`` -> ``dbpedia``; a bare name is kept."""
    if uri.startswith("/r/dbpedia/") or uri == "/r/dbpedia":
        return "dbpedia"
    if uri.startswith("/r/"):
        return uri.split("/")[2]
    return uri


def concept_term_sql(column: str) -> str:
    """SQL for the term of a concept-URI column (same rule as :func:`parse_concept_uri`).

    ``regexp_extract`` rather than ``split_part``: DuckDB expands ``split_part`` into a list per
    row, several times slower on the dump's half-million English rows."""
    return f"lower(replace(regexp_extract({column}, '^/c/[^/]+/([^/]*)', 1), '_', ' '))"


def concept_pos_sql(column: str) -> str:
    """SQL for the POS of a concept-URI column: the 5th path part if it is a POS tag, else NULL."""
    tags = "".join(sorted(POS_TAGS))
    return f"nullif(regexp_extract({column}, '^/c/[^/]+/[^/]*/([{tags}])(?:/|$)', 1), '')"


def relation_sql(column: str) -> str:
    """SQL for the relation name of a relation-URI column (rule of :func:`parse_relation_uri`)."""
    return (
        f"CASE WHEN prefix({column}, '/r/dbpedia/') OR {column} = '/r/dbpedia' THEN 'dbpedia' "
        f"WHEN prefix({column}, '/r/') THEN regexp_extract({column}, '^/r/([^/]*)', 1) "
        f"ELSE {column} END"
    )


def is_dump_path(path: Path) -> bool:
    """True when ``path``'s name looks like an assertions dump (``.csv``, ``.csv.gz``, ...)."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in DUMP_SUFFIXES)


def _read_csv_sql(compressed: bool, strict: bool = True) -> str:
    """The one place that spells the dump's format for DuckDB (``$path`` = the file path)."""
    compression = "gzip" if compressed else "none"
    lenient = "" if strict else "strict_mode=false, "
    return (
        "read_csv($path, delim='\t', quote='', escape='', header=false, auto_detect=false, "
        "columns={'uri': 'VARCHAR', 'relation': 'VARCHAR', 'start': 'VARCHAR', "
        "'end': 'VARCHAR', 'meta': 'VARCHAR'}, "
        f"compression='{compression}', {lenient}store_rejects=true, "
        "rejects_table='kemp_rejects', rejects_scan='kemp_reject_scans')"
    )


def bare_scan_sql(compressed: bool) -> str:
    """``SELECT count(*)`` over the dump with the same reader options (the benchmark's floor)."""
    return f"SELECT count(*) FROM {_read_csv_sql(compressed)}"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


@dataclass(frozen=True)
class DumpLoad:
    """What :func:`load_dump` read: ``counts`` (lines read, English-English rows, rows kept,
    self-loops dropped, duplicates merged),
    ``skipped`` (reason -> lines) and ``notes`` (how the file was read when it needed a fallback),
    as they go into the manifest."""

    counts: dict[str, int | None]
    skipped: dict[str, int]
    notes: tuple[str, ...] = ()


def _recover_gzip_prefix(path: Path, out: Path) -> tuple[int, bool]:
    """Decompress the readable prefix of a truncated/corrupt gzip file into ``out``, cut after the
    last complete line. Returns (bytes recovered, whether a partial last line was dropped)."""
    decomp = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    written = 0
    tail = b""
    with open(path, "rb") as src, open(out, "wb") as dst:
        while True:
            chunk = src.read(1 << 22)
            if not chunk:
                break
            try:
                data = decomp.decompress(chunk)
            except zlib.error:
                break
            data = tail + data
            cut = data.rfind(b"\n") + 1
            dst.write(data[:cut])
            written += cut
            tail = data[cut:]
            if decomp.eof:  # a multi-member file: continue with the next member
                rest = decomp.unused_data
                decomp = zlib.decompressobj(wbits=47)
                if rest:
                    try:
                        more = decomp.decompress(rest)
                    except zlib.error:
                        break
                    data = tail + more
                    cut = data.rfind(b"\n") + 1
                    dst.write(data[:cut])
                    written += cut
                    tail = data[cut:]
    return written, bool(tail)


def _map_error_type(error_type: str) -> str:
    kind = error_type.upper()
    if "COLUMNS" in kind:
        return "wrong column count"
    if "ENCODING" in kind or "UNICODE" in kind:
        return "non-UTF-8"
    return "other CSV error"


def _rows_scanned(con: duckdb.DuckDBPyConnection) -> int | None:
    """Rows the last query's CSV scan produced (from DuckDB's profiler), or None if unavailable."""
    try:
        info = json.loads(con.get_profiling_information(format="json"))
    except Exception:  # profiling output is best-effort metadata, never worth failing a build
        return None
    stack = list(info.get("children", [])) + list(info.get("operator", []))
    total = None
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", []))
        if node.get("extra_info", {}).get("Function") == "READ_CSV" and "rows_scanned" in node:
            total = (total or 0) + int(node["rows_scanned"])
    return total


def _run_with_progress(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, object],
    on_progress: Callable[[float], None] | None,
) -> None:
    """Execute ``sql``, reporting DuckDB's query progress (0..1) from a polling thread."""
    if on_progress is None:
        con.execute(sql, params)
        return
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            try:
                value = con.query_progress()
            except Exception:  # the query may finish between the check and the call
                return
            if value is not None and value >= 0:
                on_progress(min(value / 100.0, 1.0))

    thread = threading.Thread(target=poll, name="kemp-progress", daemon=True)
    thread.start()
    try:
        con.execute(sql, params)
    finally:
        done.set()
        thread.join()
    on_progress(1.0)


def _check_dump_file(path: Path) -> bool:
    """Whether the dump at ``path`` is gzip-compressed, after checking that it can be read.

    Raises:
        InputError: missing, a folder, unreadable, or named ``.gz`` without being gzip.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file (expected a ConceptNet assertions dump)")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a ConceptNet assertions dump file")
    try:
        compressed = _is_gzip(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the dump ({exc.strerror or exc})") from None
    if path.name.lower().endswith(".gz") and not compressed:
        raise InputError(f"{path}: named .gz but not gzip-compressed; rename it or recompress it")
    return compressed


def _scan_sql(compressed: bool, strict: bool) -> str:
    """The one streaming query that fills ``kemp_cn_groups`` (parameter ``$path``).

    It scans, keeps English-English rows, parses them, classifies problems, and deduplicates
    with a hash aggregate that runs while the file is read. Problem rows (bad JSON, missing
    weight, bad URI, self-loop) collapse into one group per reason.
    """
    start, end = '"start"', '"end"'
    return (
        "CREATE OR REPLACE TEMP TABLE kemp_cn_groups AS "
        "WITH parsed AS (SELECT "
        f"{concept_term_sql(start)} AS head, {concept_pos_sql(start)} AS head_pos, "
        f"{relation_sql('relation')} AS relation, "
        f"{concept_term_sql(end)} AS tail, {concept_pos_sql(end)} AS tail_pos, "
        "try(json_extract_string(meta, ['$.weight', '$.dataset'])) AS fields "
        f"FROM {_read_csv_sql(compressed, strict)} "
        f"WHERE prefix({start}, '/c/en/') AND prefix({end}, '/c/en/')), "
        "classified AS (SELECT *, TRY_CAST(fields[1] AS DOUBLE) AS weight, "
        "CASE WHEN fields IS NULL THEN 'bad JSON' "
        "WHEN TRY_CAST(fields[1] AS DOUBLE) IS NULL "
        "  OR NOT isfinite(TRY_CAST(fields[1] AS DOUBLE)) THEN 'missing weight' "
        "WHEN trim(head) = '' OR trim(tail) = '' THEN 'bad concept URI' "
        "WHEN relation IS NULL OR relation = '' THEN 'bad relation URI' "
        "WHEN head = tail THEN 'self-loop' END AS problem FROM parsed) "
        "SELECT problem, "
        "CASE WHEN problem IS NULL THEN head END AS head, "
        "CASE WHEN problem IS NULL THEN relation END AS relation, "
        "CASE WHEN problem IS NULL THEN tail END AS tail, count(*) AS rows, "
        "max({'w': weight, 'hp': coalesce(head_pos, ''), 'tp': coalesce(tail_pos, ''), "
        "'ds': coalesce(fields[2], '')}) AS best "
        "FROM classified GROUP BY ALL"
    )


@dataclass
class _Scan:
    """How the scan went: CSV rows DuckDB produced (None if unknown), whether a truncated gzip
    stream was cut (and a partial last line dropped), and notes on fallbacks used."""

    rows_scanned: int | None = None
    truncated_gzip: int = 0
    partial_line: bool = False
    notes: list[str] = field(default_factory=list)


def _scan_dump(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    compressed: bool,
    *,
    scratch: Path,
    on_progress: Callable[[float], None] | None,
) -> _Scan:
    """Run :func:`_scan_sql` into ``kemp_cn_groups``, falling back where a real dump needs it.

    A truncated or corrupt gzip stream is rebuilt from its readable prefix (in ``scratch``);
    DuckDB's strict CSV mode stopping at a stray carriage return is retried leniently. Anything
    else is a one-line :class:`InputError`.
    """
    scan = _Scan()
    read_path, compressed_now, strict = path, compressed, True
    con.execute("PRAGMA enable_profiling='no_output'")
    try:
        while True:
            con.execute("DROP TABLE IF EXISTS kemp_rejects")
            con.execute("DROP TABLE IF EXISTS kemp_reject_scans")
            try:
                _run_with_progress(
                    con, _scan_sql(compressed_now, strict), {"path": str(read_path)}, on_progress
                )
                break
            except duckdb.IOException as exc:
                message = str(exc).splitlines()[0]
                if not (compressed_now and "gzip" in message.lower()):
                    raise InputError(f"{path}: cannot read the dump ({message})") from None
                # Truncated or corrupt gzip: build from the readable prefix, report the loss.
                scratch.mkdir(parents=True, exist_ok=True)
                read_path = scratch / "recovered-prefix.csv"
                recovered, scan.partial_line = _recover_gzip_prefix(path, read_path)
                if recovered == 0:
                    raise InputError(
                        f"{path}: gzip stream is corrupt before its first complete line ({message})"
                    ) from None
                compressed_now = False
                scan.truncated_gzip = 1  # reported even when the cut fell on a line boundary
                scan.notes.append(
                    f"gzip stream ends early ({message}); built from the first "
                    f"{recovered:,} decompressed bytes"
                )
            except duckdb.InvalidInputException as exc:
                message = str(exc).splitlines()[0]
                if strict and "invalid state" in message:
                    # DuckDB's strict CSV mode stops at a stray carriage return; re-read leniently.
                    strict = False
                    scan.notes.append(
                        "strict CSV parsing stopped (a stray carriage return?); re-read with "
                        "strict_mode=false: lines with too many columns were cut to 5 fields "
                        "instead of skipped"
                    )
                    continue
                raise InputError(
                    f"{path}: cannot read the dump ({message}); is this a ConceptNet "
                    "assertions dump?"
                ) from None
        scan.rows_scanned = _rows_scanned(con)
    finally:
        con.execute("PRAGMA disable_profiling")
        if read_path != path:
            read_path.unlink(missing_ok=True)
    return scan


def _rejected_lines(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Lines DuckDB's CSV reader rejected, by our skip reason."""
    skipped: dict[str, int] = {}
    try:
        rejects = con.execute(
            "SELECT error_type, count(DISTINCT (file_id, line)) FROM kemp_rejects GROUP BY ALL"
        ).fetchall()
    except duckdb.CatalogException:  # DuckDB creates the table only when it has rows
        rejects = []
    for error_type, lines in rejects:
        reason = _map_error_type(str(error_type))
        skipped[reason] = skipped.get(reason, 0) + int(lines)
    return skipped


def _insert_groups(con: duckdb.DuckDBPyConnection, table: str) -> tuple[dict[str, int], int]:
    """Append the good groups of ``kemp_cn_groups`` to ``table`` and drop it; return the English
    rows per outcome (``ok`` or a problem, self-loop included) and the number of edges written."""
    problems = {
        str(name): int(rows)
        for name, rows in con.execute(
            "SELECT coalesce(problem, 'ok'), sum(rows) FROM kemp_cn_groups GROUP BY ALL"
        ).fetchall()
    }
    con.execute(
        f"INSERT INTO {table} SELECT head, nullif(best.hp, ''), relation, tail, "
        "nullif(best.tp, ''), best.w, nullif(best.ds, '') FROM kemp_cn_groups "
        "WHERE problem IS NULL"
    )
    (edges,) = con.execute("SELECT count(*) FROM kemp_cn_groups WHERE problem IS NULL").fetchone()
    con.execute("DROP TABLE kemp_cn_groups")
    return problems, int(edges)


def load_dump(
    con: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    table: str,
    *,
    scratch: Path,
    on_progress: Callable[[float], None] | None = None,
) -> DumpLoad:
    """Append the English-English edges of a ConceptNet dump to ``table``, deduplicated.

    ``table`` must have columns (head, head_pos, relation, tail, tail_pos, weight, dataset).
    The rows written are already unique on (head, relation, tail) with the highest weight (ties
    broken by POS and dataset, so the result is deterministic) and hold no self-loop: the hash
    aggregate runs while DuckDB reads the file, so the English rows are never materialised.
    ``counts`` says how many self-loops and duplicates were removed. ``scratch`` is a folder
    for the recovered prefix of a truncated gzip file.

    Steps: :func:`_check_dump_file`, :func:`_scan_dump` (one query, with its fallbacks),
    :func:`_rejected_lines`, :func:`_insert_groups`, then the counts.

    Raises:
        InputError: the file does not exist, is not readable, is not gzip although named so, or
            holds no readable line at all.
    """
    path = Path(path)
    compressed = _check_dump_file(path)
    scan = _scan_dump(con, path, compressed, scratch=scratch, on_progress=on_progress)
    skipped = _rejected_lines(con)
    problems, edges = _insert_groups(con, table)
    english = sum(problems.values())
    self_loops = problems.pop("self-loop", 0)
    kept_rows = problems.pop("ok", 0)
    for reason, value in (*problems.items(), ("truncated gzip", scan.truncated_gzip)):
        if value:
            skipped[reason] = skipped.get(reason, 0) + int(value)
    csv_reasons = ("wrong column count", "non-UTF-8", "other CSV error")
    rejected = sum(skipped.get(r, 0) for r in csv_reasons)
    if scan.rows_scanned == 0 and rejected > 0:
        raise InputError(
            f"{path}: no readable assertion line ({rejected} lines rejected: "
            + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
            + "); is this a ConceptNet assertions dump?"
        )
    scanned = scan.rows_scanned
    counts: dict[str, int | None] = {
        "lines_read": None if scanned is None else scanned + rejected + int(scan.partial_line),
        "english_rows": english,
        "rows_kept": kept_rows + self_loops,
        "source_rows": kept_rows + self_loops,
        "self_loops_dropped": self_loops,
        "duplicates_merged": kept_rows - edges,
    }
    return DumpLoad(counts=counts, skipped=dict(sorted(skipped.items())), notes=tuple(scan.notes))


__all__ = [
    "ConceptURI",
    "DumpLoad",
    "POS_TAGS",
    "SKIP_REASONS",
    "bare_scan_sql",
    "concept_pos_sql",
    "concept_term_sql",
    "is_dump_path",
    "load_dump",
    "parse_concept_uri",
    "parse_relation_uri",
    "relation_sql",
]
