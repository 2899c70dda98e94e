"""kemp_kg.digest: the one file-hashing helper (SHA-256: downloads, inputs; XXH3: sources)."""

from __future__ import annotations

import hashlib

import pytest
import xxhash

from kemp_kg.digest import file_digest, sha256_file
from kemp_kg.errors import InputError
from kemp_kg.index import SOURCE_DIGEST, SourceHasher, resolve_source, source_digest


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blob.tsv"
    data = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes: several chunks below
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("chunk", [1, 4096, 1 << 22])
def test_digests_equal_one_shot_hashes_whatever_the_chunk(blob, chunk):
    path, data = blob
    assert file_digest(path, "sha256", chunk_bytes=chunk) == hashlib.sha256(data).hexdigest()
    assert file_digest(path, "xxh3_128", chunk_bytes=chunk) == xxhash.xxh3_128(data).hexdigest()
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_unknown_algorithm_is_a_value_error(blob):
    with pytest.raises(ValueError, match="unknown digest 'md5'"):
        file_digest(blob[0], "md5")


def test_source_hasher_thread_gives_the_source_digest_and_reraises_errors(blob):
    path, data = blob
    spec = resolve_source(path)
    hasher = SourceHasher(spec)
    hasher.start()
    assert hasher.value() == source_digest(spec) == xxhash.xxh3_128(data).hexdigest()
    assert SOURCE_DIGEST == "xxh3_128"
    path.unlink()  # the next hasher's thread fails; value() raises it here, as one InputError
    failing = SourceHasher(spec)
    failing.start()
    with pytest.raises(InputError, match="cannot read"):
        failing.value()


def test_index_checksum_reads_the_xxh3_digest_and_still_the_legacy_sha256():
    from kemp_kg import schema

    new = {"format": "kemp-index/1", "source": {"xxh3_128": "ab" * 16}, "lexicon": {"sha256": "c"}}
    old = {"format": "kemp-index/1", "source": {"sha256": "ab" * 32}, "lexicon": {"sha256": "c"}}
    assert schema.index_checksum(new) is not None and schema.index_checksum(old) is not None
    assert schema.index_checksum(new) != schema.index_checksum(old)
    changed = {**new, "source": {"xxh3_128": "cd" * 16}}
    assert schema.index_checksum(changed) != schema.index_checksum(new)
