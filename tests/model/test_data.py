"""Zero-copy columns, padded batches, and the length-bucketed, sharded sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kemp_kg import schema
from kemp_model.data import BatchSampler, GraphDataset, load_split


def test_token_buffers_are_views_of_the_mapped_file(graph_file) -> None:
    dataset, vocab, provenance = load_split(graph_file, "train")
    column = dataset.graphs.table.column("context_ids")
    assert column.num_chunks > 1  # several record batches of one file: one view over all of them
    flat = dataset.columns["context_ids"]
    addresses = [c.values.buffers()[1].address + 4 * c.values.offset for c in column.chunks]
    assert not flat.copied and flat.values.data_ptr() == min(addresses)
    assert flat.values.data_ptr() + flat.values.nbytes >= max(addresses)
    assert (
        provenance == {"test": True}
        and vocab[: len(schema.SPECIAL_TOKENS)] == schema.SPECIAL_TOKENS
    )


def test_collate_pads_rows_exactly(graph_file) -> None:
    dataset, _, _ = load_split(graph_file, "train")
    rows = [0, 39, 40, 95]  # crosses record-batch boundaries (chunks of 40)
    batch = dataset.collate(rows)
    table = dataset.graphs.table
    for i, row in enumerate(rows):
        table_row = int(dataset.table_rows[row])
        ids = table.column("context_ids")[table_row].as_py()
        assert batch.context_ids[i, : len(ids)].tolist() == ids
        assert (
            not batch.context_mask[i, len(ids) :].any() and batch.context_mask[i, : len(ids)].all()
        )
        anchors = table.column("concept_anchor")[table_row].as_py()
        assert batch.concept_anchor[i, : len(anchors)].tolist() == anchors
        target = table.column("target_ids")[table_row].as_py()
        assert batch.target[i, : len(target) + 1].tolist() == target + [schema.EOS_ID]
        assert (batch.target[i, len(target) + 1 :] == schema.PAD_ID).all()
        assert batch.emotion[i].item() == table.column("emotion")[table_row].as_py()
    assert batch.context_ids.shape[1] == int(dataset.num_words[rows].max())


def test_target_that_already_ends_in_eos_gets_no_second_one(
    tmp_path, rows_factory, rows_writer
) -> None:
    rows = rows_factory(2)
    rows[0]["target_ids"] = rows[0]["target_ids"] + [schema.EOS_ID]
    dataset, _, _ = load_split(rows_writer(tmp_path / "g.arrow", rows), None)
    batch = dataset.collate([0])
    assert (batch.target[0] == schema.EOS_ID).sum().item() == 1


def test_rows_without_a_target_get_an_eos_only_target(tmp_path, rows_factory, rows_writer) -> None:
    # a chat row has target_ids == []: a batch of only such rows must still collate
    rows = rows_factory(4)
    for row in rows[1:]:
        row["target_ids"] = []
    dataset, _, _ = load_split(rows_writer(tmp_path / "mixed.arrow", rows), None)
    for batch in (dataset.collate([1, 2, 3]), dataset.collate([3])):  # every target empty
        assert batch.target.tolist() == [[schema.EOS_ID]] * len(batch)
        assert batch.token_count == len(batch)
    batch = dataset.collate([0, 2])  # empty next to a real target
    assert batch.target[1].tolist() == [schema.EOS_ID] + [schema.PAD_ID] * (
        batch.target.shape[1] - 1
    )
    only_empty, _, _ = load_split(rows_writer(tmp_path / "empty.arrow", rows[1:]), None)
    assert (
        only_empty.collate([0, 1]).target.tolist() == [[schema.EOS_ID]] * 2
    )  # no target values at all


def test_split_selection(graph_file) -> None:
    sizes = {split: len(load_split(graph_file, split)[0]) for split in ("train", "valid", "test")}
    assert sizes == {"train": 96, "valid": 24, "test": 16}
    assert len(load_split(graph_file, None)[0]) == 136


def test_sampler_is_deterministic_and_reshuffles_per_epoch(graph_file) -> None:
    dataset, _, _ = load_split(graph_file, "train")
    a = [b.tolist() for b in BatchSampler(dataset.sizes(), batch_size=8, seed=3, epoch=0)]
    b = [b.tolist() for b in BatchSampler(dataset.sizes(), batch_size=8, seed=3, epoch=0)]
    c = [b.tolist() for b in BatchSampler(dataset.sizes(), batch_size=8, seed=3, epoch=1)]
    assert a == b and a != c
    assert sorted(sum(a, [])) == list(range(96))


def test_bucketing_reduces_padding(graph_file) -> None:
    dataset, _, _ = load_split(graph_file, "train")
    sizes = dataset.sizes().numpy()

    def padding(sampler):
        return sum(int(sizes[b].max()) * len(b) - int(sizes[b].sum()) for b in sampler)

    bucketed = BatchSampler(dataset.sizes(), batch_size=8, bucket_batches=12)
    plain = BatchSampler(dataset.sizes(), batch_size=8, bucket_batches=1)
    assert padding(bucketed) < padding(plain)


def test_ranks_get_disjoint_slices_of_each_global_batch(graph_file) -> None:
    dataset, _, _ = load_split(graph_file, "train")
    whole = list(BatchSampler(dataset.sizes(), batch_size=8, seed=1))
    ranks = [
        list(BatchSampler(dataset.sizes(), batch_size=8, seed=1, rank=r, world_size=2))
        for r in (0, 1)
    ]
    for g, r0, r1 in zip(whole, *ranks):
        assert len(r0) == len(r1) == 4
        assert np.concatenate([r0, r1]).tolist() == g.tolist()
    with pytest.raises(ValueError, match="not divisible"):
        BatchSampler(dataset.sizes(), batch_size=7, world_size=2)


def test_batch_to_device_keeps_values(graph_file) -> None:
    dataset, _, _ = load_split(graph_file, "valid")
    batch = dataset.collate(torch.arange(4))
    moved = batch.to("cpu")
    assert torch.equal(moved.context_ids, batch.context_ids) and len(moved) == 4


def test_shards_of_several_files(graph_file, tmp_path, rows_factory, rows_writer) -> None:
    first = rows_writer(tmp_path / "a.arrow", rows_factory(10, seed=5))
    second = rows_writer(tmp_path / "b.arrow", rows_factory(10, seed=6))
    both, _, _ = load_split([first, second], "train")
    one, _, _ = load_split(second, "train")
    assert len(both) == 20
    assert torch.equal(both.collate([12, 15]).context_ids, one.collate([2, 5]).context_ids)
    assert torch.equal(both.collate([12, 15]).target, one.collate([2, 5]).target)


def test_whole_file_dataset(graph_file) -> None:
    dataset = GraphDataset(schema.open_graphs(graph_file))
    assert dataset.text(0)["split"] == "train"
