"""Coverage-guided fuzz target (atheris) for the ConceptNet assertion-line parsers.

Each input is one dump line. The target splits it into the five tab-separated columns the way
the dump reader does and checks:

* :func:`kemp_kg.conceptnet.parse_relation_uri` and :func:`~kemp_kg.conceptnet.parse_concept_uri`
  never raise, and a parsed concept has a term that is more than spaces (the SQL's ``trim``) and
  a known POS or none;
* differential: for English concept URIs the Python parser and the SQL expressions DuckDB runs
  over the real dump (``concept_term_sql``, ``concept_pos_sql``, ``relation_sql``) agree.
  ASCII terms must agree exactly; with ``--strict-unicode`` every term must (Python's
  ``str.lower`` and DuckDB's ``lower`` differ on a few characters, e.g. 'İ' and a final 'Σ').

Run (about a minute; atheris comes with requirements-dev.txt):

    .venv/bin/python tests/fuzz/fuzz_conceptnet_line.py -runs=200000 -max_len=256
    .venv/bin/python tests/fuzz/fuzz_conceptnet_line.py -max_total_time=600   # a longer hunt

Without atheris, ``--random N`` runs N random inputs with the same checks (no coverage guidance).
A failure prints the input and writes it to ``crash-*`` (atheris) so it can be replayed with
``fuzz_conceptnet_line.py crash-<hash>``.
"""

from __future__ import annotations

import json
import random
import sys

import duckdb

try:  # coverage guidance needs the parser instrumented at import
    import atheris

    with atheris.instrument_imports(include=["kemp_kg"]):
        from kemp_kg import conceptnet
except ImportError:  # --random mode works without atheris
    atheris = None
    from kemp_kg import conceptnet

STRICT_UNICODE = "--strict-unicode" in sys.argv
if STRICT_UNICODE:
    sys.argv.remove("--strict-unicode")

_CON = duckdb.connect()
_SQL = (
    f"SELECT {conceptnet.concept_term_sql('u')}, {conceptnet.concept_pos_sql('u')}, "
    f"{conceptnet.relation_sql('u')} FROM (SELECT ?::VARCHAR AS u)"
)


def check_line(data: bytes) -> None:
    """Parse one dump line; raise AssertionError on any violated property."""
    text = data.decode("utf-8", "replace").replace("\x00", "")
    fields = text.split("\t")
    relation_uri = fields[1] if len(fields) > 1 else text
    relation = conceptnet.parse_relation_uri(relation_uri)
    assert isinstance(relation, str)
    for uri in fields[2:4] or [text]:
        parsed = conceptnet.parse_concept_uri(uri)
        if parsed is not None:
            assert parsed.term.strip(" "), (uri, parsed)
            assert parsed.pos is None or parsed.pos in conceptnet.POS_TAGS, (uri, parsed)
        if uri.startswith("/c/en/"):
            sql_term, sql_pos, _ = _CON.execute(_SQL, [uri]).fetchone()
            raw_term = uri.split("/")[3]
            if parsed is not None and (STRICT_UNICODE or raw_term.isascii()):
                assert sql_term == parsed.term, (uri, sql_term, parsed.term)
                assert sql_pos == parsed.pos, (uri, sql_pos, parsed.pos)
    if relation_uri.startswith("/r/"):
        sql_relation = _CON.execute(_SQL, [relation_uri]).fetchone()[2]
        assert sql_relation == relation, (relation_uri, sql_relation, relation)
    if len(fields) >= 5:
        try:
            meta = json.loads(fields[4])
        except ValueError:
            return
        assert meta is not None or fields[4].strip() == "null"


SEEDS = [
    b'/a/[/r/IsA/,/c/en/ice_cream/n/,/c/en/dessert/n/]\t/r/IsA\t/c/en/ice_cream/n\t/c/en/dessert/n\t{"weight": 2.0}',
    b"/a/[/r/dbpedia/genre/,/c/en/x/,/c/en/y/]\t/r/dbpedia/genre\t/c/en/x\t/c/en/y\t{}",
    b"\t/r/\t/c/en/\t/c/en//n\t",
    b"/c/en/_/v\t/r/RelatedTo\t/c/fr/chat\t/c/en/cat/n/wn/animal\t[1]",
]


def _random_line(rng: random.Random) -> bytes:
    base = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(3)
        pos = rng.randrange(len(base) + 1)
        if op == 0 and base:
            del base[min(pos, len(base) - 1)]
        elif op == 1:
            base[pos:pos] = bytes([rng.randrange(256)])
        else:
            base[pos:pos] = rng.choice([b"/", b"_", b"\t", b"/c/en/", b"/r/", "İΣ".encode()])
    return bytes(base)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--random":
        rng = random.Random(0)
        for data in SEEDS:
            check_line(data)
        for _ in range(int(sys.argv[2])):
            data = _random_line(rng)
            try:
                check_line(data)
            except AssertionError:
                print(f"failing input: {data!r}", file=sys.stderr)
                raise
        print(f"ok: {len(SEEDS) + int(sys.argv[2])} inputs")
        return
    if atheris is None:
        sys.exit(
            "atheris is not installed (pip install -r requirements-dev.txt), or use --random N"
        )
    atheris.Setup(sys.argv, check_line)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
