"""A knowledge source as plain triples: ``.tsv`` or ``.parquet`` of head, relation, tail, weight.

TSV layout (tab-separated, no quoting, UTF-8)::

    head	relation	tail	weight
    happy	RelatedTo	smile	2.0
    ice cream	IsA	dessert	1.0

Terms are lowercased and stripped; underscores become spaces; a term written as a ConceptNet URI
(``/c/en/ice_cream/n``) is parsed like one (term and POS). A relation may be written with or
without ``/r/``; ``/r/dbpedia/...`` becomes ``dbpedia``. A Parquet file needs columns ``head``,
``relation``, ``tail`` (strings) and ``weight`` (number); optional ``head_pos``, ``tail_pos``,
``dataset`` are kept. Malformed TSV lines are skipped and counted by reason, like a dump.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kemp_kg.conceptnet import POS_TAGS, concept_pos_sql, concept_term_sql, relation_sql
from kemp_kg.errors import InputError

#: The TSV header (compared case-insensitively).
TRIPLES_HEADER: tuple[str, ...] = ("head", "relation", "tail", "weight")
TRIPLES_SUFFIXES: tuple[str, ...] = (".tsv", ".parquet")


@dataclass(frozen=True)
class TriplesLoad:
    """Counts (``lines_read``, ``rows_kept``) and skipped lines by reason."""

    counts: dict[str, int | None]
    skipped: dict[str, int]


def is_triples_path(path: Path) -> bool:
    """True when ``path`` is named like a triples file (``.tsv`` or ``.parquet``)."""
    return path.name.lower().endswith(TRIPLES_SUFFIXES)


def _term_sql(column: str) -> str:
    uri_term = concept_term_sql(column)
    return (
        f"CASE WHEN prefix({column}, '/c/') THEN {uri_term} "
        f"ELSE lower(trim(replace({column}, '_', ' '))) END"
    )


def _pos_sql(column: str, given: str | None) -> str:
    tags = ", ".join(f"'{tag}'" for tag in sorted(POS_TAGS))
    fallback = f"CASE WHEN {given} IN ({tags}) THEN {given} END" if given else "NULL"
    return f"CASE WHEN prefix({column}, '/c/') THEN {concept_pos_sql(column)} ELSE {fallback} END"


def _check_tsv_header(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096)
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a triples .tsv file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = tuple(f.strip().lower() for f in first.decode("utf-8").rstrip("\r\n").split("\t"))
    except UnicodeDecodeError:
        header = ()
    if header != TRIPLES_HEADER:
        raise InputError(
            f"{path}: line 1: header is {first[:80]!r}; expected 'head<TAB>relation<TAB>tail<TAB>"
            "weight'"
        )


def load_triples(
    con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str], table: str
) -> TriplesLoad:
    """Append the triples of ``path`` (``.tsv`` or ``.parquet``) to ``table``.

    ``table`` has columns (head, head_pos, relation, tail, tail_pos, weight, dataset); rows are
    not deduplicated here. ``dataset`` is the file name unless a Parquet ``dataset`` column gives
    one.

    Raises:
        InputError: missing/unreadable file, wrong TSV header, Parquet without the needed columns.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file (expected a triples .tsv or .parquet file)")
    dataset = path.name
    skipped: dict[str, int] = {}
    if path.name.lower().endswith(".parquet"):
        try:
            columns = {
                row[0]: row[1]
                for row in con.execute(
                    "SELECT column_name, column_type "
                    "FROM (DESCRIBE SELECT * FROM read_parquet($path))",
                    {"path": str(path)},
                ).fetchall()
            }
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise InputError(f"{path}: cannot read as Parquet ({message})") from None
        missing = [c for c in TRIPLES_HEADER if c not in columns]
        if missing:
            raise InputError(
                f"{path}: Parquet file lacks column(s) {missing}; needs {list(TRIPLES_HEADER)}"
            )
        head_pos = "head_pos" if "head_pos" in columns else None
        tail_pos = "tail_pos" if "tail_pos" in columns else None
        dataset_sql = (
            "coalesce(CAST(dataset AS VARCHAR), $dataset)" if "dataset" in columns else "$dataset"
        )
        source = (
            "(SELECT CAST(head AS VARCHAR) AS head, CAST(relation AS VARCHAR) AS relation, "
            "CAST(tail AS VARCHAR) AS tail, CAST(weight AS VARCHAR) AS weight"
            + (", CAST(head_pos AS VARCHAR) AS head_pos" if head_pos else "")
            + (", CAST(tail_pos AS VARCHAR) AS tail_pos" if tail_pos else "")
            + (", dataset" if "dataset" in columns else "")
            + " FROM read_parquet($path))"
        )
    else:
        _check_tsv_header(path)
        head_pos = tail_pos = None
        dataset_sql = "$dataset"
        source = (
            "read_csv($path, delim='\t', quote='', escape='', header=false, skip=1, "
            "auto_detect=false, columns={'head': 'VARCHAR', 'relation': 'VARCHAR', 'tail': 'VARCHAR', "
            "'weight': 'VARCHAR'}, store_rejects=true, rejects_table='kemp_triple_rejects', "
            "rejects_scan='kemp_triple_reject_scans')"
        )
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE kemp_triples AS SELECT "
            f"{_term_sql('head')} AS head, {_pos_sql('head', head_pos)} AS head_pos, "
            f"{relation_sql('trim(relation)')} AS relation, "
            f"{_term_sql('tail')} AS tail, {_pos_sql('tail', tail_pos)} AS tail_pos, "
            f"TRY_CAST(trim(weight) AS DOUBLE) AS weight, {dataset_sql} AS dataset "
            f"FROM {source}",
            {"dataset": dataset, "path": str(path)},
        )
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read the triples ({str(exc).splitlines()[0]})") from None
    if not path.name.lower().endswith(".parquet"):
        for error_type, lines in con.execute(
            "SELECT error_type, count(DISTINCT (file_id, line)) FROM kemp_triple_rejects "
            "GROUP BY ALL"
        ).fetchall():
            kind = str(error_type).upper()
            if "COLUMNS" in kind:
                reason = "wrong column count"
            elif "ENCODING" in kind or "UNICODE" in kind:
                reason = "non-UTF-8"
            else:
                reason = "other CSV error"
            skipped[reason] = skipped.get(reason, 0) + int(lines)
    total, bad_weight, bad_term = con.execute(
        "SELECT count(*), count(*) FILTER (weight IS NULL OR NOT isfinite(weight)), "
        "count(*) FILTER (weight IS NOT NULL AND isfinite(weight) AND "
        "(coalesce(head, '') = '' OR coalesce(tail, '') = '' OR coalesce(relation, '') = '')) "
        "FROM kemp_triples"
    ).fetchone()
    if bad_weight:
        skipped["bad weight"] = int(bad_weight)
    if bad_term:
        skipped["empty field"] = int(bad_term)
    con.execute(
        f"INSERT INTO {table} SELECT head, head_pos, relation, tail, tail_pos, weight, dataset "
        "FROM kemp_triples WHERE weight IS NOT NULL AND isfinite(weight) AND "
        "coalesce(head, '') <> '' AND coalesce(tail, '') <> '' AND coalesce(relation, '') <> ''"
    )
    con.execute("DROP TABLE kemp_triples")
    rejected = sum(v for k, v in skipped.items() if k not in ("bad weight", "empty field"))
    if total == 0 and rejected > 0:
        raise InputError(f"{path}: no readable triple line ({rejected} lines rejected)")
    counts: dict[str, int | None] = {
        "lines_read": int(total) + rejected,
        "rows_kept": int(total) - int(bad_weight) - int(bad_term),
    }
    return TriplesLoad(counts=counts, skipped=dict(sorted(skipped.items())))
