"""Batches straight from the memory-mapped graph file.

The Arrow file is opened with :func:`kemp_kg.schema.open_graphs` (memory-mapped, zero-copy). Each
``list<...>`` column is kept as its flat values buffer plus its offsets, wrapped as tensors that
share the file's pages (no copy, no per-row Python objects). A batch is built by one vectorised
gather per column into a tensor padded to the longest row of that batch; that gather is the only
copy. :class:`BatchSampler` groups rows of similar size (length bucketing inside a shuffled
window, like fairseq/torchtext), is deterministic given ``(seed, epoch)``, and shards each global
batch across DDP ranks the way ``DistributedSampler`` does.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from kemp_kg import schema

#: list<...> columns gathered into padded tensors, with their padding value.
LIST_COLUMNS: dict[str, float] = {
    "context_ids": schema.PAD_ID,
    "context_roles": int(schema.Role.KNOWLEDGE),
    "context_intensity": 0.0,
    "concept_ids": schema.PAD_ID,
    "concept_anchor": 0,
    "concept_relation": 0,
    "concept_weight": 0.0,
    "concept_intensity": 0.0,
    "target_ids": schema.PAD_ID,
}


@dataclass
class Batch:
    """One padded batch. ``B`` rows, ``W`` words (CLS included), ``C`` concepts, ``T`` targets.

    Shapes:
        context_ids, context_roles: ``[B, W]`` long; context_intensity: ``[B, W]`` float.
        context_mask: ``[B, W]`` bool, True on real positions.
        concept_ids, concept_anchor, concept_relation: ``[B, C]`` long.
        concept_weight, concept_intensity: ``[B, C]`` float; concept_mask: ``[B, C]`` bool.
        target: ``[B, T]`` long: the response ids followed by EOS, PAD after.
        emotion: ``[B]`` long (``-1`` when unknown).
        rows: ``[B]`` long, row numbers in the dataset (for looking up text).
    """

    context_ids: torch.Tensor
    context_roles: torch.Tensor
    context_intensity: torch.Tensor
    context_mask: torch.Tensor
    concept_ids: torch.Tensor
    concept_anchor: torch.Tensor
    concept_relation: torch.Tensor
    concept_weight: torch.Tensor
    concept_intensity: torch.Tensor
    concept_mask: torch.Tensor
    target: torch.Tensor
    emotion: torch.Tensor
    rows: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy on ``device`` (pass ``non_blocking=True`` with pinned batches on CUDA)."""
        return Batch(
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in dataclasses.fields(self)
            }
        )

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory so host-to-GPU copies can be asynchronous."""
        return Batch(
            **{f.name: getattr(self, f.name).pin_memory() for f in dataclasses.fields(self)}
        )

    def __len__(self) -> int:
        return int(self.context_ids.shape[0])

    @property
    def token_count(self) -> int:
        """Target tokens (EOS included) in the batch."""
        return int((self.target != schema.PAD_ID).sum())


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Wrap a (read-only, memory-mapped) numpy view as a tensor without copying."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable": we never write to it
        return torch.from_numpy(array)


@dataclass(frozen=True)
class ListColumn:
    """A ``list<...>`` column as one flat tensor plus per-row starts and lengths.

    ``values`` is a view of the memory-mapped file. When the column has several chunks (record
    batches) of one file, their value buffers lie in one mapped region, so ``values`` is a view
    of that whole region and ``starts`` point into it: one vectorised gather serves any batch.
    The region is no larger than the files, and only real rows' positions are ever read. Only
    when chunks lie farther apart than the files' total size (shards mapped far apart) are
    their values concatenated once (a copy).

    Shapes: values ``[total]``; starts, lengths ``[table_rows]`` int64.
    """

    values: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    copied: bool


def _list_column(column: pa.ChunkedArray, span_limit: int) -> ListColumn:
    pieces = []  # (address, element count, offsets) per chunk
    dtype = None
    for chunk in column.chunks:
        values = chunk.values
        if values.null_count:
            raise schema.GraphFileError("graph file has null list values; rerun `kemp-kg enrich`")
        array = values.to_numpy(zero_copy_only=True)  # a view
        dtype = array.dtype
        offsets = chunk.offsets.to_numpy(zero_copy_only=True).astype(np.int64)
        address = array.__array_interface__["data"][0] if len(array) else None
        pieces.append((address, array, offsets))
    if dtype is None:  # no chunks at all
        empty = torch.zeros(0, dtype=torch.int64)
        return ListColumn(torch.zeros(0), empty, empty, False)
    lengths = np.concatenate([np.diff(o) for _, _, o in pieces])
    real = [(a, arr, o) for a, arr, o in pieces if a is not None]
    itemsize = dtype.itemsize
    if len(real) <= 1:
        base_array = real[0][1] if real else np.zeros(0, dtype=dtype)
        starts = np.concatenate([o[:-1] for _, _, o in pieces])
        return ListColumn(
            _as_tensor(base_array), torch.from_numpy(starts), torch.from_numpy(lengths), False
        )
    base = min(a for a, _, _ in real)
    end = max(a + arr.nbytes for a, arr, _ in real)
    total = sum(arr.nbytes for _, arr, _ in real)
    aligned = all((a - base) % itemsize == 0 for a, _, _ in real)
    if aligned and end - base <= max(span_limit, 2 * total):  # one mapped file (or adjacent maps)
        region = pa.foreign_buffer(base, end - base, base=column)  # keeps the mapping alive
        flat = np.frombuffer(region, dtype=dtype, count=(end - base) // itemsize)
        starts = np.concatenate(
            [o[:-1] + ((a - base) // itemsize if a is not None else 0) for a, _, o in pieces]
        )
        return ListColumn(
            _as_tensor(flat), torch.from_numpy(starts), torch.from_numpy(lengths), False
        )
    flat = np.concatenate([arr for _, arr, _ in pieces])  # shards far apart: one copy
    shift = np.cumsum([0] + [len(arr) for _, arr, _ in pieces[:-1]])
    starts = np.concatenate([o[:-1] + s for (_, _, o), s in zip(pieces, shift)])
    return ListColumn(
        torch.from_numpy(flat), torch.from_numpy(starts), torch.from_numpy(lengths), True
    )


class GraphDataset:
    """The rows of one split of a graph file, as zero-copy tensor views.

    Args:
        graphs: an opened :class:`kemp_kg.schema.GraphFile`.
        split: split name to keep, or ``None`` for every row.

    Use :meth:`collate` to build a :class:`Batch` from dataset row numbers.
    """

    def __init__(self, graphs: schema.GraphFile, split: str | None = None) -> None:
        table = graphs.table
        self.graphs = graphs
        self.split = split
        if split is None:
            selected = np.arange(table.num_rows, dtype=np.int64)
        else:
            is_split = (
                np.concatenate(
                    [
                        (c.to_numpy(zero_copy_only=False) == split)
                        for c in table.column("split").chunks
                    ]
                )
                if table.num_rows
                else np.zeros(0, dtype=bool)
            )
            selected = np.flatnonzero(is_split)
        #: dataset row -> table row
        self.table_rows = selected
        span_limit = sum(os.path.getsize(p) for p in graphs.paths if os.path.isfile(p))
        self.columns = {name: _list_column(table.column(name), span_limit) for name in LIST_COLUMNS}
        rows = torch.from_numpy(selected)
        self._starts = {name: col.starts[rows] for name, col in self.columns.items()}
        self._lengths_of = {name: col.lengths[rows] for name, col in self.columns.items()}
        emotion = (
            np.concatenate(
                [c.to_numpy(zero_copy_only=False) for c in table.column("emotion").chunks]
            )
            if table.num_rows
            else np.zeros(0, dtype=np.int8)
        )
        self.emotion = torch.from_numpy(emotion[selected].astype(np.int64))
        self.num_words = self._lengths("context_ids")
        self.num_concepts = self._lengths("concept_ids")
        self.num_targets = self._lengths("target_ids")

    def __len__(self) -> int:
        return len(self.table_rows)

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.graphs.vocab

    def _lengths(self, name: str) -> torch.Tensor:
        return self._lengths_of[name]

    def sizes(self) -> torch.Tensor:
        """Per-row cost used for length bucketing: vertices + target tokens. ``[N]`` long."""
        return self.num_words + self.num_concepts + self.num_targets

    def _gather(self, name: str, rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pad ``name`` for dataset ``rows`` into ``[B, max(lengths)]`` (one gather: the copy)."""
        column = self.columns[name]
        width = int(lengths.max()) if len(rows) else 0
        pad = LIST_COLUMNS[name]
        if width == 0 or len(column.values) == 0:
            return torch.full((len(rows), width), pad, dtype=column.values.dtype)
        steps = torch.arange(width)
        valid = steps[None, :] < lengths[:, None]  # [B, width]
        index = torch.where(valid, self._starts[name][rows][:, None] + steps[None, :], 0)
        gathered = column.values[index]  # [B, width]
        return gathered.masked_fill_(~valid, pad)

    def collate(self, rows: Sequence[int] | torch.Tensor) -> Batch:
        """Build the padded :class:`Batch` of dataset rows ``rows`` (vectorised per column)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        words = self.num_words[rows]
        concepts = self.num_concepts[rows]
        targets = self.num_targets[rows]
        context_ids = self._gather("context_ids", rows, words).long()
        concept_ids = self._gather("concept_ids", rows, concepts).long()
        raw_target = self._gather("target_ids", rows, targets).long()
        # Targets are the response ids followed by exactly one EOS (one already there is kept).
        # A row without a target (a chat row: target_ids == []) gets an EOS-only target, also
        # when every row of the batch has none (raw_target is then [B, 0]).
        if raw_target.shape[1]:
            last = raw_target.gather(1, (targets - 1).clamp(min=0)[:, None]).squeeze(1)
            body = targets - ((last == schema.EOS_ID) & (targets > 0)).long()
        else:
            body = targets
        width = int(body.max()) + 1 if len(rows) else 1
        target = torch.full((len(rows), width), schema.PAD_ID, dtype=torch.long)
        copy = min(width, raw_target.shape[1])
        target[:, :copy] = raw_target[:, :copy]
        steps = torch.arange(width)
        target = torch.where(steps[None, :] < body[:, None], target, schema.PAD_ID)
        target[torch.arange(len(rows)), body] = schema.EOS_ID
        return Batch(
            context_ids=context_ids,
            context_roles=self._gather("context_roles", rows, words).long(),
            context_intensity=self._gather("context_intensity", rows, words).float(),
            context_mask=torch.arange(context_ids.shape[1])[None, :] < words[:, None],
            concept_ids=concept_ids,
            concept_anchor=self._gather("concept_anchor", rows, concepts).long(),
            concept_relation=self._gather("concept_relation", rows, concepts).long(),
            concept_weight=self._gather("concept_weight", rows, concepts).float(),
            concept_intensity=self._gather("concept_intensity", rows, concepts).float(),
            concept_mask=torch.arange(concept_ids.shape[1])[None, :] < concepts[:, None],
            target=target,
            emotion=self.emotion[rows],
            rows=rows,
        )

    def text(self, row: int) -> dict[str, Any]:
        """The string columns of dataset row ``row`` (history turns, target, ids)."""
        table_row = int(self.table_rows[row])
        names = ("example_id", "conv_id", "split", "history", "target")
        return {name: self.graphs.table.column(name)[table_row].as_py() for name in names}


class BatchSampler:
    """Length-bucketed, seeded batches of dataset rows, sharded across ranks.

    Each epoch: a permutation from ``(seed, epoch)``; windows of ``bucket_batches`` global
    batches are sorted by row size and cut into batches; the batch order is shuffled again. So
    padding stays small while every epoch sees a different, reproducible order. Global batch
    ``i`` is split into ``world_size`` contiguous slices; rank ``r`` yields slice ``r`` (the last
    partial batch is dropped when ``drop_last``, which training uses so every rank steps together).

    Args:
        sizes: ``[N]`` per-row cost (:meth:`GraphDataset.sizes`).
        batch_size: GLOBAL batch size; must be divisible by ``world_size``.
        seed, epoch: determine the order.
        bucket_batches: batches per sorting window (1 = no bucketing).
        shuffle: False gives the dataset order in size-sorted windows (for evaluation: pass
            ``bucket_batches`` large to sort everything).
        rank, world_size: the DDP shard.
        drop_last: drop the final incomplete global batch.
    """

    def __init__(
        self,
        sizes: torch.Tensor,
        *,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        bucket_batches: int = 50,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if batch_size <= 0 or world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"bad batch_size={batch_size}, rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not divisible by world_size={world_size}")
        self.sizes = sizes.numpy() if isinstance(sizes, torch.Tensor) else np.asarray(sizes)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.bucket_batches = bucket_batches
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        """Every global batch of this epoch, in order (each an array of dataset rows)."""
        count = len(self.sizes)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        window = self.batch_size * self.bucket_batches
        batches: list[np.ndarray] = []
        for start in range(0, count, window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(self.sizes[chunk], kind="stable")]
            batches.extend(
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            )
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[np.ndarray]:
        share = self.batch_size // self.world_size
        for batch in self.global_batches():
            if len(batch) == self.batch_size:
                yield batch[self.rank * share : (self.rank + 1) * share]
            else:  # final partial batch (evaluation): split as evenly as possible
                yield np.array_split(batch, self.world_size)[self.rank]

    def __len__(self) -> int:
        return len(self.global_batches())


def load_split(
    paths: str | Path | Sequence[str | Path], split: str | None, *, verify: bool = False
) -> tuple[GraphDataset, tuple[str, ...], dict[str, object]]:
    """Open graph file(s) memory-mapped and select one split.

    Args:
        paths: graph file(s) or a folder (see :func:`kemp_kg.schema.open_graphs`).
        split: split name, or ``None`` for every row.
        verify: check every offset of the file first (:meth:`kemp_kg.schema.GraphFile.verify`,
            O(file size)). Opening alone reads only the footer, so bytes damaged inside a record
            batch would otherwise fault in native code at the first batch; long jobs (train,
            evaluate, generate) pass True.

    Returns:
        ``(dataset, vocab, provenance)``.

    Raises:
        kemp_kg.schema.GraphFileError: missing, truncated or foreign file, wrong schema version,
            or (``verify``) a damaged record batch.
    """
    graphs = schema.open_graphs(paths)
    if verify:  # before GraphDataset reads the split/emotion columns and the list offsets
        graphs.verify()
    if len(graphs.vocab) <= len(schema.SPECIAL_TOKENS):
        raise schema.GraphFileError(
            f"{graphs.paths[0]}: vocabulary holds only special tokens; rerun `kemp-kg enrich`"
        )
    return GraphDataset(graphs, split), graphs.vocab, dict(graphs.provenance)


def batches(
    dataset: GraphDataset,
    sampler: BatchSampler | Sequence[np.ndarray],
    *,
    device: torch.device | str = "cpu",
    start: int = 0,
) -> Iterator[Batch]:
    """Collate the sampler's batches from position ``start`` and move them to ``device``.

    On CUDA the batch is pinned and copied with ``non_blocking=True``.
    """
    device = torch.device(device)
    plan = list(sampler)
    for rows in plan[start:]:
        batch = dataset.collate(torch.from_numpy(np.asarray(rows, dtype=np.int64)))
        if device.type == "cuda":
            yield batch.pin_memory().to(device, non_blocking=True)
        else:
            yield batch
