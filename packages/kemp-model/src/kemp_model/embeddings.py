"""Pre-trained word vectors (GloVe) for the embedding table: a ``.txt`` file or ``.npy`` + vocab.

Formats:
  * ``glove.6B.300d.txt``: one word per line followed by its floats, space-separated.
  * ``glove.6B.50d.npy`` + ``glove.6B.50d.vocab.txt``: a float array ``[n, d]`` (memory-mapped)
    and its words, one per line in row order. The vocab file defaults to the ``.npy`` path with
    ``.npy`` replaced by ``.vocab.txt``.

Only the rows of the model's vocabulary are read; tokens are looked up as-is, then lowercased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kemp_model.errors import KempModelError


@dataclass(frozen=True)
class Vectors:
    """Rows for a vocabulary. ``table`` ``[V, d]`` float32; ``present`` ``[V]`` bool."""

    table: torch.Tensor
    present: torch.Tensor
    path: str

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    @property
    def coverage(self) -> float:
        """Share of the vocabulary found in the vectors."""
        return float(self.present.float().mean())

    def placed(self, dim: int, placement: str = "orthonormal", seed: int = 0) -> Vectors:
        """The vectors in a ``dim``-wide table (``dim`` >= their width ``d``).

        ``placement``:

        * ``"orthonormal"``: through a fixed map with orthonormal rows (``[d, dim]``, seeded):
          dot products, norms and neighbours are kept exactly, spread over all ``dim`` columns.
        * ``"prefix"``: in the first ``d`` columns, zeros in the others.

        Either way the table, being ``dim`` wide, can grow past rank ``d`` as it trains. Used to
        give 50d GloVe the 300-wide table of the ``kemp`` preset.
        """
        if dim < self.dim:
            raise ValueError(
                f"cannot place {self.dim}-d vectors in {dim} columns: choose a width >= {self.dim}"
            )
        if placement == "prefix":
            table = torch.zeros(self.table.shape[0], dim, dtype=self.table.dtype)
            table[:, : self.dim] = self.table
            return Vectors(table=table, present=self.present, path=self.path)
        if placement != "orthonormal":
            raise ValueError(f"placement must be 'orthonormal' or 'prefix', got {placement!r}")
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(
            torch.randn(dim, self.dim, generator=generator)
        )  # [dim, d], orthonormal columns
        return Vectors(table=self.table @ q.T, present=self.present, path=self.path)


def _lookup(vocab: Sequence[str], index: dict[str, int]) -> np.ndarray:
    rows = np.full(len(vocab), -1, dtype=np.int64)
    for i, token in enumerate(vocab):
        row = index.get(token)
        if row is None:
            row = index.get(token.lower())
        if row is not None:
            rows[i] = row
    return rows


def load_vectors(
    path: str | Path, vocab: Sequence[str], vocab_file: str | Path | None = None
) -> Vectors:
    """Read the vectors of ``vocab`` from ``path`` (see the module docstring for formats).

    Raises:
        KempModelError: a missing or malformed file (one line naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise KempModelError(f"{path}: no such embeddings file; pass a GloVe .txt or .npy file")
    if path.suffix == ".npy":
        words_path = (
            Path(vocab_file) if vocab_file else path.with_name(path.name[:-4] + ".vocab.txt")
        )
        if not words_path.is_file():
            raise KempModelError(
                f"{words_path}: vocabulary for {path.name} not found; pass --embeddings-vocab FILE"
            )
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise KempModelError(f"{path}: not a plain .npy array ({exc})") from None
        words = words_path.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise KempModelError(
                f"{path}: shape {matrix.shape} does not match {len(words)} words in {words_path.name}"
            )
        index = {}
        for i, word in enumerate(words):
            index.setdefault(word, i)
        rows = _lookup(vocab, index)
        table = np.zeros((len(vocab), matrix.shape[1]), dtype=np.float32)
        found = rows >= 0
        table[found] = np.asarray(matrix[rows[found]], dtype=np.float32)
    else:
        wanted: dict[str, list[int]] = {}
        for i, token in enumerate(vocab):
            wanted.setdefault(token, []).append(i)
            if token.lower() != token:
                wanted.setdefault(token.lower(), []).append(i)
        table_rows: dict[int, np.ndarray] = {}
        dim = None
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line_number, line in enumerate(handle, 1):
                word, _, rest = line.rstrip("\n").partition(" ")
                if word not in wanted:
                    continue
                try:
                    values = np.array(rest.split(" "), dtype=np.float32)
                except ValueError:
                    raise KempModelError(f"{path}:{line_number}: not 'word v1 v2 ...'") from None
                if dim is None:
                    dim = len(values)
                elif len(values) != dim:
                    raise KempModelError(
                        f"{path}:{line_number}: {len(values)} values, expected {dim}"
                    )
                for i in wanted[word]:
                    if i not in table_rows or vocab[i] == word:
                        table_rows[i] = values
        if dim is None:
            raise KempModelError(f"{path}: no word of the vocabulary found; is this a GloVe file?")
        table = np.zeros((len(vocab), dim), dtype=np.float32)
        found = np.zeros(len(vocab), dtype=bool)
        for i, values in table_rows.items():
            table[i] = values
            found[i] = True
    return Vectors(torch.from_numpy(table), torch.from_numpy(found), str(path))
