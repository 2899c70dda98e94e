"""Committed records of finished reproduction runs (docs/results/runs/NAME).

A published preset trains for ~1.5 h on a quiet CPU core and is evaluated for another half
hour, and every process ends with the session: four presets do not fit in one session, and
``work/`` (weights, training state) does not outlive it. A *record* keeps what docs/RESULTS.md
needs of a finished run, without its weights, in the repository:

    NAME/config.json                       the run's config.json (paths relative to the repo)
    NAME/metrics.jsonl.gz                  its training and validation log
    NAME/eval/test-D.metrics.json          each evaluation's metrics (D = decoding)
    NAME/eval/test-D.predictions.txt.gz    each evaluation's responses
    NAME/logs/*.log                        the training and evaluation logs (their output)
    NAME/record.json                       format, training counters (steps, best step, early
                                           stop, the trainer's clock), the commands that trained
                                           and evaluated it, the machine, the evaluated weights'
                                           SHA-256

``scripts/reproduce.py`` writes a record when a run is finished (its schedule reached or
stopped early) and evaluated with every decoding asked for, rewrites it when the live run
changes, and in a later session lets a record stand in for a run that is not in WORK when the
record matches what would be trained now: the preset as the code defines it, the same knowledge
(provenance), the same schedule and every decoding asked for. ``scripts/results_table.py``
reads a run from WORK/runs/NAME when it is there, else from its record.

The gzip files are written with a zero timestamp, so an unchanged run rewrites byte-identical
files and git sees no change.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

from repo_paths import REPO, repo_relative

from kemp_kg.digest import file_digest

#: Where records live unless ``--records`` says otherwise (tracked in git).
DEFAULT_RECORDS = REPO / "docs" / "results" / "runs"
#: Record folders of runs on other knowledge, each shown beside DEFAULT_RECORDS' in RESULTS'
#: knowledge ablation (``reproduce.py --compare``'s default).
DEFAULT_COMPARE = REPO / "docs" / "results" / "compare"
RECORD_FILE = "record.json"
FORMAT = "kemp-run-record/1"


def _gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (no file name, zero timestamp)."""
    return gzip.compress(data, mtime=0)


def record_files(
    run: Path, decodes: list[str], info: dict[str, Any], counters: dict[str, Any]
) -> dict[str, bytes]:
    """The files of RUN's record (relative name -> content), built in memory.

    Args:
        run: the live run folder (config.json, metrics.jsonl, eval/).
        decodes: the decodings whose test evaluation the record keeps (each must exist).
        info: what else record.json keeps (``train`` and ``evaluations`` stage entries of
            WORK/state.json, ``weights`` file name).
        counters: the run's training counters (:func:`kemp_model.checkpoint.read_training_counters`).
    """
    files: dict[str, bytes] = {
        "config.json": repo_relative((run / "config.json").read_text()).encode(),
        "metrics.jsonl.gz": _gzip_bytes((run / "metrics.jsonl").read_bytes()),
    }
    for decode in decodes:
        stem = run / "eval" / f"test-{decode}"
        files[f"eval/test-{decode}.metrics.json"] = repo_relative(
            Path(f"{stem}.metrics.json").read_text()
        ).encode()
        files[f"eval/test-{decode}.predictions.txt.gz"] = _gzip_bytes(
            Path(f"{stem}.predictions.txt").read_bytes()
        )
    stages = [info.get("train") or {}, *(info.get("evaluations") or {}).values()]
    for stage in stages:  # the stage logs (the trainer's summary table, evaluate's figures)
        log = Path(str(stage.get("log", "")))
        if stage.get("log") and log.is_file():
            files[f"logs/{log.name}"] = repo_relative(log.read_text(errors="replace")).encode()
    record = {"format": FORMAT, "name": run.name, "counters": counters, **info}
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    files[RECORD_FILE] = repo_relative(text).encode()
    return files


def write_record(
    run: Path,
    dest: Path,
    decodes: list[str],
    info: dict[str, Any],
    counters: dict[str, Any],
) -> bool:
    """Write RUN's record into DEST atomically (a sibling temporary folder swapped in).

    Returns:
        False when DEST already holds exactly these files (nothing written), else True.
    """
    weights = info.get("weights")
    if isinstance(weights, str) and (run / weights).is_file():
        info = {
            **info,
            "weights": {"file": weights, "sha256": file_digest(run / weights, "sha256")},
        }
    files = record_files(run, decodes, info, counters)
    if dest.is_dir() and _same_files(dest, files):
        return False
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return True


def _same_files(folder: Path, files: dict[str, bytes]) -> bool:
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    if present != set(files):
        return False
    return all((folder / name).read_bytes() == content for name, content in files.items())


def read_record(folder: Path) -> dict[str, Any] | None:
    """FOLDER's record.json (None when absent, unreadable or of another format)."""
    try:
        record = json.loads((folder / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def has_evaluation(folder: Path, decode: str) -> bool:
    """Whether FOLDER (a run or a record) holds the test evaluation of DECODE."""
    return (folder / "eval" / f"test-{decode}.metrics.json").is_file()


def predictions_file(folder: Path, decode: str) -> Path:
    """The predictions of DECODE in FOLDER: a run's plain file, or a record's gzip."""
    plain = folder / "eval" / f"test-{decode}.predictions.txt"
    packed = plain.with_name(plain.name + ".gz")
    return packed if not plain.exists() and packed.exists() else plain


def run_folder(work: Path, records: Path | None, name: str) -> Path:
    """Where run NAME is read from: WORK/runs/NAME when it holds a run, else its record when
    there is one, else WORK/runs/NAME (which then holds nothing)."""
    live = work / "runs" / name
    if (live / "config.json").is_file() or records is None:
        return live
    recorded = records / name
    return recorded if read_record(recorded) is not None else live


def holds_records(folder: Path) -> bool:
    """Whether ``folder`` is a folder of run records (at least one NAME/record.json)."""
    return folder.is_dir() and any(read_record(f) is not None for f in folder.iterdir())


def compare_records(folder: Path) -> Path | None:
    """The records a ``--compare`` FOLDER stands for: none for a reproduce --work folder (its
    runs/ are read), the folder itself for a folder of run records."""
    return None if (folder / "runs").is_dir() else folder


def run_folders(work: Path, records: Path | None) -> dict[str, Path]:
    """Every run by name: WORK/runs/* first, then records of runs WORK does not hold."""
    found = {
        folder.name: folder
        for folder in sorted((work / "runs").glob("*"))
        if (folder / "config.json").is_file()
    }
    if records is not None and records.is_dir():
        for folder in sorted(records.iterdir()):
            if folder.name not in found and read_record(folder) is not None:
                found[folder.name] = folder
    return dict(sorted(found.items()))
