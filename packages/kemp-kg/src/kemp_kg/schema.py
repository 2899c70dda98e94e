"""The data contract between kemp-kg and kemp-model: one Arrow IPC file of emotional context graphs.

This module is the only part of kemp-kg that kemp-model may import. It depends on pyarrow and the
standard library only, and it owns:

* the column names and types of a graph file (:data:`GRAPH_SCHEMA`),
* the schema version and the rule for opening files of another version,
* the label sets that both sides must agree on (:data:`EMOTIONS`, :data:`RELATIONS`,
  :data:`SPECIAL_TOKENS`, :class:`Role`),
* writing a file atomically (:func:`write_graphs`) and opening one or many shards zero-copy
  (:func:`open_graphs`).

One row is one training example: a dialogue history (all turns before a listener turn) and that
listener turn as the target. The row holds everything that defines the example's emotional
context graph (KEMP, Li et al. 2022, section 3.1):

* word vertices: ``context_ids[0]`` is always the CLS token; positions ``1..n`` are the tokens of
  the history flattened turn by turn. ``context_roles`` says whether each position is CLS, a
  speaker token or a listener token; ``context_intensity`` holds Eq. 1 for each token.
* concept vertices: ``concept_ids[j]`` hangs off word position ``concept_anchor[j]`` (>= 1)
  through ``RELATIONS[concept_relation[j]]`` with confidence ``concept_weight[j]`` and intensity
  ``concept_intensity[j]``. Their role is :attr:`Role.KNOWLEDGE`.

The three edge types of the paper are derivable from a row alone (:func:`edge_lists`):

* temporary edges: between word positions ``i`` and ``i + 1`` for ``1 <= i < n`` (successive
  words of the flattened history, across turn boundaries, as in the official code);
* emotion edges: between ``concept_anchor[j]`` and concept vertex ``j``;
* globality edges: between CLS (position 0) and every other vertex, words and concepts.

Vertex numbering used by :func:`edge_lists` and by the model: word vertices first
(``0..len(context_ids)-1``), then concept vertices (``len(context_ids) + j``).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

#: Major.minor. A reader refuses a file whose major differs; minors only add optional metadata.
SCHEMA_VERSION = "1.0"

#: Suffix of graph files; a folder passed to :func:`open_graphs` is read as all such files in it.
GRAPH_SUFFIX = ".arrow"

#: The 32 EmpatheticDialogues emotion labels, in the order of MoEL/KEMP's ``emo_map``.
EMOTIONS: tuple[str, ...] = (
    "surprised",
    "excited",
    "annoyed",
    "proud",
    "angry",
    "sad",
    "grateful",
    "lonely",
    "impressed",
    "afraid",
    "disgusted",
    "confident",
    "terrified",
    "hopeful",
    "anxious",
    "disappointed",
    "joyful",
    "prepared",
    "guilty",
    "furious",
    "nostalgic",
    "jealous",
    "anticipating",
    "embarrassed",
    "content",
    "devastated",
    "sentimental",
    "caring",
    "trusting",
    "ashamed",
    "apprehensive",
    "faithful",
)
EMOTION_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
#: Value of the ``emotion`` column when the label is unknown (inference-only data).
UNKNOWN_EMOTION = -1

#: ConceptNet 5.7 relation names (without ``/r/``); ``concept_relation`` indexes this tuple.
#: ``dbpedia`` stands for every ``/r/dbpedia/...`` relation; ``Other`` for anything unlisted.
RELATIONS: tuple[str, ...] = (
    "RelatedTo",
    "FormOf",
    "IsA",
    "PartOf",
    "HasA",
    "UsedFor",
    "CapableOf",
    "AtLocation",
    "Causes",
    "HasSubevent",
    "HasFirstSubevent",
    "HasLastSubevent",
    "HasPrerequisite",
    "HasProperty",
    "MotivatedByGoal",
    "ObstructedBy",
    "Desires",
    "CreatedBy",
    "Synonym",
    "Antonym",
    "DistinctFrom",
    "DerivedFrom",
    "SymbolOf",
    "DefinedAs",
    "MannerOf",
    "LocatedNear",
    "HasContext",
    "SimilarTo",
    "EtymologicallyRelatedTo",
    "EtymologicallyDerivedFrom",
    "CausesDesire",
    "MadeOf",
    "ReceivesAction",
    "ExternalURL",
    "NotDesires",
    "NotUsedFor",
    "NotCapableOf",
    "NotHasProperty",
    "InstanceOf",
    "Entails",
    "dbpedia",
    "Other",
)
RELATION_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(RELATIONS)}

#: Special tokens, always the first ids of every vocabulary, in this order.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<unk>",
    "<sos>",
    "<eos>",
    "<cls>",
    "<speaker>",
    "<listener>",
    "<knowledge>",
)
PAD_ID, UNK_ID, SOS_ID, EOS_ID, CLS_ID, SPEAKER_ID, LISTENER_ID, KNOWLEDGE_ID = range(8)


class Role(enum.IntEnum):
    """Vertex role (the paper's vertex state, Eq. 2)."""

    CLS = 0
    SPEAKER = 1
    LISTENER = 2
    KNOWLEDGE = 3


#: Column name -> Arrow type. Token ids are int32 so the values buffer wraps as a tensor as-is.
GRAPH_SCHEMA = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("conv_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("emotion", pa.int8(), nullable=False),
        pa.field("history", pa.list_(pa.string()), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("context_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("context_roles", pa.list_(pa.int8()), nullable=False),
        pa.field("context_intensity", pa.list_(pa.float32()), nullable=False),
        pa.field("concept_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("concept_anchor", pa.list_(pa.int32()), nullable=False),
        pa.field("concept_relation", pa.list_(pa.int8()), nullable=False),
        pa.field("concept_weight", pa.list_(pa.float32()), nullable=False),
        pa.field("concept_intensity", pa.list_(pa.float32()), nullable=False),
        pa.field("target_ids", pa.list_(pa.int32()), nullable=False),
    ]
)
COLUMNS: tuple[str, ...] = tuple(GRAPH_SCHEMA.names)

#: Schema-metadata keys (all values are UTF-8 JSON, except the version which is a plain string).
META_VERSION = b"kemp.schema_version"
META_PROVENANCE = b"kemp.provenance"
META_VOCAB = b"kemp.vocab"
META_EMOTIONS = b"kemp.emotions"
META_RELATIONS = b"kemp.relations"

SPLITS: tuple[str, ...] = ("train", "valid", "test")


class GraphFileError(ValueError):
    """A graph file that cannot be used; the message is one line naming the file and the fix."""


@dataclass(frozen=True)
class GraphFile:
    """An opened graph file (or several shards of one corpus) with its metadata.

    Attributes:
        table: the rows, memory-mapped (columns are zero-copy views of the file's pages).
        vocab: token strings; ``vocab[i]`` is the token of id ``i``.
        provenance: the JSON object written by the producer (source, lexicon, preset, thresholds,
            tool version, ...).
        paths: the files the rows came from, in order.
    """

    table: pa.Table
    vocab: tuple[str, ...]
    provenance: Mapping[str, object]
    paths: tuple[Path, ...]

    def split(self, name: str) -> pa.Table:
        """The rows of one split, as a new in-memory table.

        Arrow's filter copies every column, the ``list<...>`` columns included (their values are
        gathered into fresh buffers), so the result is no longer a view of the mapped file and
        costs memory in proportion to the split. For zero-copy access to one split, keep
        :attr:`table` and select row numbers instead (as ``kemp_model.data.GraphDataset`` does).
        """
        import pyarrow.compute as pc

        return self.table.filter(pc.equal(self.table["split"], name))

    def __len__(self) -> int:
        return self.table.num_rows

    def verify(self) -> None:
        """Check every offset and value of the mapped file (O(file size), touches every page):
        Arrow's own full validation, then the graph contract (:func:`content_problem`).

        Opening trusts the file's buffers so that it stays O(footer); a file whose bytes were
        damaged *inside* its record batches (footer intact) would then fault in native code when
        read. Long jobs (training, evaluation) call this once before the first batch.

        Raises:
            GraphFileError: naming the file(s) and saying what to rerun.
        """
        names = ", ".join(str(p) for p in self.paths)
        try:
            self.table.validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise GraphFileError(
                f"{names}: damaged record batch ({str(exc).splitlines()[0]}); rerun `kemp-kg enrich`"
            ) from None
        problem = content_problem(self.table, len(self.vocab))
        if problem:
            raise GraphFileError(f"{names}: {problem}; rerun `kemp-kg enrich`")


def content_problem(table: pa.Table, vocab_size: int) -> str | None:
    """The first way ``table``'s values break the graph contract, as "row R (EXAMPLE_ID): ...";
    None when every row is usable. Vectorised over whole columns (O(values), one pass each).

    Checked: token ids in ``[0, vocab_size)``; ``emotion`` in ``[-1, len(EMOTIONS))``; roles in
    :class:`Role`; relations in :data:`RELATIONS`; the three context lists and the five concept
    lists of a row of equal length, at least the CLS position; every ``concept_anchor`` a word
    position ``1..len(context_ids)-1``; finite intensities and weights; unique ``example_id``
    (the same shard given twice would double the rows).
    """
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return None

    def where(row: int, text: str) -> str:
        return f"row {row} ({table['example_id'][row].as_py()}): {text}"

    def first(mask: pa.ChunkedArray | pa.Array) -> int:  # index of the first True, -1 if none
        return pc.index(mask, True).as_py()

    def outside(array, low: int, high: int):  # noqa: ANN001,ANN202 - values not in [low, high)
        return pc.or_(pc.less(array, low), pc.greater_equal(array, high))

    def flat(name: str) -> pa.Array:
        return pc.list_flatten(table[name])

    def owner(name: str, i: int) -> int:
        return pc.list_parent_indices(table[name])[i].as_py()

    emotion = table["emotion"]
    i = first(outside(emotion, UNKNOWN_EMOTION, len(EMOTIONS)))
    if i >= 0:
        return where(i, f"emotion {emotion[i].as_py()} outside -1..{len(EMOTIONS) - 1}")
    n_words = pc.list_value_length(table["context_ids"])
    i = first(pc.less(n_words, 1))
    if i >= 0:
        return where(i, "context_ids is empty (no CLS position)")
    for base, others in (
        ("context_ids", ("context_roles", "context_intensity")),
        (
            "concept_ids",
            ("concept_anchor", "concept_relation", "concept_weight", "concept_intensity"),
        ),
    ):
        base_len = pc.list_value_length(table[base])
        for name in others:
            name_len = pc.list_value_length(table[name])
            i = first(pc.not_equal(name_len, base_len))
            if i >= 0:
                return where(
                    i, f"{name} has {name_len[i].as_py()} values, {base} {base_len[i].as_py()}"
                )
    for name, high in (
        ("context_ids", vocab_size),
        ("concept_ids", vocab_size),
        ("target_ids", vocab_size),
        ("context_roles", len(Role)),
        ("concept_relation", len(RELATIONS)),
    ):
        codes = flat(name)
        i = first(outside(codes, 0, high))
        if i >= 0:
            what = "the vocabulary " if high == vocab_size and name.endswith("_ids") else ""
            return where(
                owner(name, i), f"{name} holds {codes[i].as_py()}, outside {what}0..{high - 1}"
            )
    anchors = flat("concept_anchor")
    if len(anchors):
        limit = pc.take(n_words, pc.list_parent_indices(table["concept_anchor"]))
        i = first(pc.or_(pc.less(anchors, 1), pc.greater_equal(anchors, limit)))
        if i >= 0:
            return where(
                owner("concept_anchor", i),
                f"concept_anchor {anchors[i].as_py()} is not "
                f"a word position 1..{limit[i].as_py() - 1}",
            )
    for name in ("context_intensity", "concept_weight", "concept_intensity"):
        floats = flat(name)
        if len(floats):
            i = first(pc.invert(pc.is_finite(floats)))
            if i >= 0:
                return where(owner(name, i), f"{name} holds {floats[i].as_py()}")
    if pc.count_distinct(table["example_id"]).as_py() != table.num_rows:
        counts = pc.value_counts(table["example_id"])
        twice = pc.filter(counts, pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        return f"example_id {twice!r} appears more than once (a shard given twice?)"
    return None


def _metadata(vocab: Sequence[str], provenance: Mapping[str, object]) -> dict[bytes, bytes]:
    if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(f"vocab must start with the special tokens {SPECIAL_TOKENS}")
    return {
        META_VERSION: SCHEMA_VERSION.encode(),
        META_PROVENANCE: json.dumps(dict(provenance), sort_keys=True).encode(),
        META_VOCAB: json.dumps(list(vocab), ensure_ascii=False).encode(),
        META_EMOTIONS: json.dumps(list(EMOTIONS)).encode(),
        META_RELATIONS: json.dumps(list(RELATIONS)).encode(),
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``final``'s folder; on success fsync it and rename it to ``final``.

    On any exception the temporary file is removed and ``final`` is left as it was, so a crash
    never leaves a half-written file under the final name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the user's usual mode
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        with contextlib.suppress(OSError):  # fsync the folder so the rename itself is durable
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, ImportError):  # not glibc/Linux
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # kernel or filesystem lacks it
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(new: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Put the finished folder ``new`` in place of ``final`` (which may not exist yet).

    The folder analogue of :func:`atomic_path`: build an output folder as ``FINAL.tmp-XXXX``
    beside ``final``, then call this. Where the kernel can (Linux ``renameat2``), the two
    folders are exchanged in ONE atomic step, so ``final`` names a complete folder at every
    instant, even if the process is killed right then; elsewhere it falls back to two renames
    (``final`` -> ``FINAL.old-XXXX``, ``new`` -> ``final``) with a short window in between. The
    previous folder is deleted afterwards.
    """
    new, final = Path(new), Path(final)
    if final.exists():
        if _rename_exchange(new, final):
            shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the previous folder
            return
        old = Path(tempfile.mkdtemp(prefix=f"{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)
    with contextlib.suppress(OSError):  # make the rename durable
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class OutputBusyError(OSError):
    """Another process is writing the same output right now (see :func:`output_lock`)."""


_HELD_LOCKS: set[str] = set()
_HELD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def output_lock(final: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on writing ``final`` (a file or a folder) for the ``with`` block.

    A second process asking for the same output while it is held fails at once with
    :class:`OutputBusyError` (an ``OSError`` naming ``final``, so both CLIs print it as one line)
    instead of racing to rename its own result over the first one. Take it at the START of a
    long job (enrich, build-index, train) so the loser fails before doing the work; nested calls
    for the same path in one process are no-ops (:func:`write_graphs` takes it too).

    The lock is an advisory ``flock`` on ``.NAME.lock`` beside ``final``, removed on release (the
    inode is re-checked after locking, so removal cannot let two holders in). Where ``fcntl`` is
    missing (Windows) it is a no-op.
    """
    final = Path(final)
    key = str(final.resolve())
    with _HELD_LOCKS_GUARD:
        nested = key in _HELD_LOCKS
        _HELD_LOCKS.add(key)
    if nested:
        yield
        return
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        lock_path = final.parent / f".{final.name}.lock"
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise OutputBusyError(
                        errno.EBUSY,
                        "another kemp process is writing this output right now; wait for it to "
                        "finish or choose another output path",
                        str(final),
                    ) from None
                raise
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed it between our open and flock: retry
        try:
            remove_leftovers(final)
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
            os.close(fd)
    finally:
        with _HELD_LOCKS_GUARD:
            _HELD_LOCKS.discard(key)


def remove_leftovers(final: str | os.PathLike[str]) -> list[Path]:
    """Delete what killed writers of ``final`` left behind; return the paths removed.

    Called by :func:`output_lock` once the lock is held, so no live writer of ``final`` can own
    them: hidden ``.NAME.XXXX.tmp`` files of :func:`atomic_path`, ``NAME.tmp-XXXX`` and
    ``NAME.old-XXXX`` folders (or links) of :func:`replace_folder` builds beside ``final``, and,
    when ``final`` is a folder (a run folder), the hidden ``.*.tmp`` files directly inside it.
    """
    final = Path(final)
    name = final.name
    removed: list[Path] = []

    def stale(path: Path, inside: bool) -> bool:
        n = path.name
        if inside:
            return n.startswith(".") and n.endswith(".tmp") and path.is_file()
        if n.startswith(f".{name}.") and n.endswith(".tmp"):
            return path.is_file() or path.is_symlink()
        return n.startswith((f"{name}.tmp-", f"{name}.old-"))

    places = [(final.parent, False)]
    if final.is_dir() and not final.is_symlink():
        places.append((final, True))
    for folder, inside in places:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for path in entries:
            if not stale(path, inside):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------------
# One rule for every command that writes (both CLIs)


class OutputPathError(ValueError):
    """An output path that would overwrite an input of the same command, lie inside an input
    folder (an index, a run), or replace a folder that kemp did not make. One line, exit 2."""


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _holds_only_our_traces(folder: Path) -> bool:
    """True for an empty folder, or one that holds only lock files and temporaries of ours."""
    return all(
        p.name.startswith(".") and (p.name.endswith((".lock", ".tmp"))) for p in folder.iterdir()
    )


def check_output(
    final: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    input_folders: Sequence[str | os.PathLike[str]] = (),
    folder: bool = False,
    replaces_folder: bool = False,
    ours: Callable[[Path], bool] | None = None,
    what: str = "output",
    force: bool = False,
    flag: str = "--out",
) -> Path:
    """Refuse an output path that would destroy something the user still needs.

    The rule every writing command of both CLIs applies before doing any work:

    * ``final`` may not be one of ``inputs`` (files or folders the command reads), nor any
      input folder itself;
    * ``final`` may not lie inside one of ``input_folders`` (an index folder, the files of a run);
    * a folder output (``folder=True``) that already exists, is not empty and is not recognised
      by ``ours`` is refused unless ``force``; one that is replaced as a whole
      (``replaces_folder=True``, e.g. an index) may not contain an input;
    * a file output may not name an existing folder.

    Returns:
        ``final`` as a :class:`Path`.

    Raises:
        OutputPathError: one line naming ``final``, the conflict and the fix.
    """
    final = Path(final)
    for item in (*inputs, *input_folders):
        item = Path(item)
        if _same_path(final, item):
            raise OutputPathError(
                f"{final}: is also an input of this command ({item}); choose another {flag}"
            )
    for item in input_folders:
        if Path(item).is_dir() and _inside(final, Path(item)):
            raise OutputPathError(
                f"{final}: lies inside the input folder {item}; choose another {flag}"
            )
    if folder and replaces_folder:
        for item in inputs:
            if _inside(Path(item), final):
                raise OutputPathError(
                    f"{final}: holds the input {item}, and this output folder is (re)written; "
                    f"choose another {flag}"
                )
    if folder:
        if final.exists() and not final.is_dir():
            raise OutputPathError(f"{final}: exists and is not a folder; choose another {flag}")
        if final.is_dir() and not force and not _holds_only_our_traces(final):
            if ours is None or not ours(final):
                raise OutputPathError(
                    f"{final}: is a non-empty folder that is not a kemp {what}; choose another "
                    f"{flag} or pass --force to replace its kemp files"
                )
    if not folder and final.is_dir():
        raise OutputPathError(f"{final}: is a folder; {flag} takes a file name")
    return final


@dataclass
class _Claim:
    path: Path
    kept: str | Callable[[], str] | None
    rerun: str | None


_CLAIMS: list[_Claim] = []


@contextlib.contextmanager
def claim_output(
    final: str | os.PathLike[str],
    *,
    kept: str | Callable[[], str] | None = None,
    rerun: str | None = None,
    **rule: object,
) -> Iterator[Path]:
    """:func:`check_output`, then hold :func:`output_lock` on ``final`` for the whole job.

    Every writing command of both CLIs wraps its work in this, so a conflicting path is refused
    and a concurrent writer of the same output fails BEFORE any work. If the job is interrupted
    (Ctrl-C), :func:`interrupt_note` reports ``kept`` (what is on disk now; a callable is asked
    then) and ``rerun`` (the command that finishes the job; default: the same command line).
    """
    path = check_output(final, **rule)  # type: ignore[arg-type]
    claim = _Claim(path, kept, rerun)
    _CLAIMS.append(claim)
    with output_lock(path):
        yield path
    _CLAIMS.remove(claim)  # reached only on success: an interrupted claim stays for the note


def interrupt_note(argv: Sequence[str]) -> str:
    """The one line both CLIs print when a command is interrupted (exit status 130).

    Says what the interrupted outputs hold now and the exact command that finishes the job.
    Temporary files were removed on the way out (:func:`atomic_path`, :func:`output_lock`).
    """
    import shlex

    if not _CLAIMS:
        return "interrupted; nothing was written"
    parts = []
    for claim in _CLAIMS:
        kept = claim.kept() if callable(claim.kept) else claim.kept
        parts.append(kept or f"{claim.path} is as it was before (no partial output)")
    rerun = _CLAIMS[-1].rerun or shlex.join([Path(argv[0]).name, *argv[1:]])
    return f"interrupted; {'; '.join(parts)}; to finish: {rerun}"


def write_graphs(
    path: str | os.PathLike[str],
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    vocab: Sequence[str],
    provenance: Mapping[str, object],
) -> Path:
    """Write record batches of :data:`GRAPH_SCHEMA` to ``path`` atomically (IPC file, uncompressed).

    Args:
        path: the final file name (conventionally ending in ``.arrow``).
        batches: record batches or tables whose columns match :data:`GRAPH_SCHEMA` by name; they
            are cast to the exact schema (a mismatch raises ``ValueError`` naming the column).
        vocab: the vocabulary, starting with :data:`SPECIAL_TOKENS`.
        provenance: JSON-serialisable description of how the file was made.

    Returns:
        the final path.

    Raises:
        OutputBusyError: another process is writing ``path`` (see :func:`output_lock`).
    """
    schema = GRAPH_SCHEMA.with_metadata(_metadata(vocab, provenance))
    final = Path(path)
    with output_lock(final), atomic_path(final) as tmp:
        try:
            with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as writer:
                for batch in batches:
                    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                    missing = [name for name in COLUMNS if name not in table.column_names]
                    if missing:
                        raise ValueError(f"graph batch lacks column(s) {missing}")
                    table = table.select(list(COLUMNS)).cast(GRAPH_SCHEMA)
                    for record_batch in table.to_batches():
                        writer.write_batch(record_batch)
        except OSError as exc:  # disk full, quota, I/O error: name the file the user asked for
            reason = exc.strerror or str(exc).replace("\n", " ")
            raise OSError(
                exc.errno or errno.EIO, f"cannot write the graph file ({reason})", str(final)
            ) from None
    return final


def _shard_paths(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix == GRAPH_SUFFIX)
            if not found:
                raise GraphFileError(f"{item}: folder holds no {GRAPH_SUFFIX} graph files")
            out.extend(found)
        elif item.is_file():
            out.append(item)
        else:
            raise GraphFileError(f"{item}: no such graph file; run `kemp-kg enrich` to create it")
    if not out:
        raise GraphFileError("no graph files given")
    seen: dict[tuple[int, int], Path] = {}
    for path in out:
        st = path.stat()
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first is not path:
            raise GraphFileError(
                f"{path}: given twice (also as {first}); each shard once, or its rows would count "
                "twice"
            )
    return out


def _looks_like_text(path: Path) -> bool:
    """Whether ``path`` starts like JSON, JSON lines or CSV text (what a graph file is mistaken
    for), judged by its first bytes: printable UTF-8 opening with ``{``, ``[`` or a letter."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text or text.startswith(b"ARROW1") or b"\0" in text:
        return False
    decoded = text.decode("utf-8", "ignore")
    return bool(decoded) and (decoded[0] in "{[" or decoded[0].isalpha())


def _open_one(path: Path) -> tuple[pa.Table, dict[bytes, bytes]]:
    try:
        source = pa.memory_map(str(path), "r")
        reader = ipc.open_file(source)
    except (pa.ArrowInvalid, OSError) as exc:
        if _looks_like_text(path):
            raise GraphFileError(
                f"{path}: a text file (dialogues or CSV?), not a graph file; make one with "
                f"`kemp-kg enrich {path.name} --index INDEX --out graphs.arrow` and pass that"
            ) from None
        raise GraphFileError(
            f"{path}: not a readable Arrow graph file ({str(exc).splitlines()[0]}); "
            "it may be truncated, rerun `kemp-kg enrich`"
        ) from None
    meta = dict(reader.schema.metadata or {})
    version = meta.get(META_VERSION, b"").decode("utf-8", "replace") or "none"
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise GraphFileError(
            f"{path}: graph schema version {version}, this kemp reads {SCHEMA_VERSION}; "
            "rerun `kemp-kg enrich` with this version to rebuild it"
        )
    missing = [name for name in COLUMNS if name not in reader.schema.names]
    if missing:
        raise GraphFileError(f"{path}: missing column(s) {missing}; rerun `kemp-kg enrich`")
    wrong = [
        f"{field.name}: {reader.schema.field(field.name).type} (expected {field.type})"
        for field in GRAPH_SCHEMA
        if reader.schema.field(field.name).type != field.type
    ]
    if wrong:
        raise GraphFileError(f"{path}: wrong column type(s) {wrong}; rerun `kemp-kg enrich`")
    if META_VOCAB not in meta:
        raise GraphFileError(f"{path}: no vocabulary in metadata; rerun `kemp-kg enrich`")
    try:
        table = reader.read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise GraphFileError(
            f"{path}: corrupt record batch ({str(exc).splitlines()[0]}); rerun `kemp-kg enrich`"
        ) from None
    return table, meta


def _json_metadata(path: Path, meta: Mapping[bytes, bytes], key: bytes, kind: type) -> object:
    """Decode one JSON metadata value of ``kind``; corrupt bytes are a one-line GraphFileError."""
    try:
        value = json.loads(meta.get(key, b"{}" if kind is dict else b"[]"))
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
        raise GraphFileError(
            f"{path}: corrupt {key.decode()} metadata (not a JSON {kind.__name__}); "
            "rerun `kemp-kg enrich`"
        )
    return value


def open_graphs(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> GraphFile:
    """Open one graph file, a list of shard files, or a folder of shards, memory-mapped.

    Opening reads only the footer and metadata: the columns are views of the mapped pages, so a
    file of any size opens in milliseconds with near-zero resident memory.

    Raises:
        GraphFileError: a missing, truncated or foreign file, another major schema version, or
            shards whose vocabularies differ. The message is one line saying what to rerun.
    """
    files = _shard_paths(paths)
    tables: list[pa.Table] = []
    vocab_blob: bytes | None = None
    provenance: dict[str, object] = {}
    for path in files:
        table, meta = _open_one(path)
        if vocab_blob is None:
            vocab_blob = meta[META_VOCAB]
            provenance = _json_metadata(path, meta, META_PROVENANCE, dict)  # type: ignore[assignment]
            vocab = tuple(_json_metadata(path, meta, META_VOCAB, list))  # type: ignore[arg-type]
        elif meta[META_VOCAB] != vocab_blob:
            raise GraphFileError(
                f"{path}: vocabulary differs from {files[0]}; enrich all shards with one --vocab"
            )
        tables.append(table.select(list(COLUMNS)))
    assert vocab_blob is not None
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    return GraphFile(table=table, vocab=vocab, provenance=provenance, paths=tuple(files))


def edge_lists(num_words: int, concept_anchor: Sequence[int]) -> dict[str, list[tuple[int, int]]]:
    """The three undirected edge types of one example's graph, as (u, v) vertex pairs with u < v.

    Args:
        num_words: ``len(context_ids)`` (CLS included).
        concept_anchor: the row's ``concept_anchor`` list.

    Returns:
        ``{"temporary": [...], "emotion": [...], "globality": [...]}``; concept vertex ``j`` is
        numbered ``num_words + j``.
    """
    num_concepts = len(concept_anchor)
    temporary = [(i, i + 1) for i in range(1, num_words - 1)]
    emotion = [(int(anchor), num_words + j) for j, anchor in enumerate(concept_anchor)]
    globality = [(0, v) for v in range(1, num_words + num_concepts)]
    return {"temporary": temporary, "emotion": emotion, "globality": globality}


#: Keys under which an index manifest's ``source`` holds its digest: ``xxh3_128`` (written by
#: build-index, see kemp_kg.digest) or ``sha256`` (indexes built before it).
SOURCE_DIGEST_KEYS: tuple[str, ...] = ("xxh3_128", "sha256")


def index_checksum(info: Mapping[str, object] | None) -> str | None:
    """The identity of a knowledge index: SHA-256 over its format, its source's digest and its
    lexicon's SHA-256 (what decides its content; ``build-index`` rebuilds exactly when they
    change).

    ``info`` is an index's ``manifest.json`` or a graph file's ``provenance["index"]`` (both hold
    ``format``, the source digest under a key of :data:`SOURCE_DIGEST_KEYS` and
    ``lexicon.sha256``); ``None`` when it names no source digest. Two indexes with equal checksums
    give the same concepts.
    """
    if not isinstance(info, Mapping):
        return None
    source = info.get("source")
    lexicon = info.get("lexicon")
    source_sha = None
    if isinstance(source, Mapping):
        source_sha = next((source[k] for k in SOURCE_DIGEST_KEYS if source.get(k)), None)
    if not isinstance(source_sha, str) or not source_sha:
        return None
    lexicon_sha = lexicon.get("sha256") if isinstance(lexicon, Mapping) else None
    identity = {"format": info.get("format"), "source": source_sha, "lexicon": lexicon_sha}
    encoded = json.dumps(identity, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()
