"""The built-in sample shipped as package data (``kemp_kg/samples/``), written for this project.

* ``knowledge.tsv``: a few hundred everyday emotional triples (head, relation, tail, weight);
* ``lexicon.tsv``: NRC-VAD layout, a few hundred words with plausible values;
* ``dialogues.jsonl``: 60 short dialogues in the kemp dialogues schema (``kemp-dialogues/1``),
  40 train / 10 valid / 10 test, every one of the 32 emotions in train.

Nothing here comes from the real datasets; it exists so that ``just demo`` runs anywhere.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from kemp_kg.errors import KempError
from kemp_kg.schema import atomic_path

SAMPLE_FILES: tuple[str, ...] = ("knowledge.tsv", "lexicon.tsv", "dialogues.jsonl")


def sample_bytes(name: str) -> bytes:
    """The bytes of one shipped sample file."""
    if name not in SAMPLE_FILES:
        raise ValueError(f"unknown sample file {name!r}; choose one of {SAMPLE_FILES}")
    return resources.files("kemp_kg").joinpath("samples", name).read_bytes()


def write_samples(folder: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Copy the sample files into ``folder`` (created if needed), each written atomically.

    Raises:
        KempError: a file exists there already and ``force`` is False.
    """
    folder = Path(folder)
    targets = [folder / name for name in SAMPLE_FILES]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise KempError(f"{existing[0]}: already exists; pass --force to overwrite")
    for name, target in zip(SAMPLE_FILES, targets):
        with atomic_path(target) as tmp:
            tmp.write_bytes(sample_bytes(name))
    return targets
