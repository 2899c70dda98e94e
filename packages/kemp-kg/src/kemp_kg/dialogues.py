"""Dialogue readers and the MoEL/KEMP example expansion.

Two input layouts are read into one in-memory form (:class:`Conversation`):

1. **kemp dialogues** (``.jsonl`` or ``.json``), format ``kemp-dialogues/1``. One JSON object per
   conversation::

       {"format": "kemp-dialogues/1"}
       {"id": "d1", "split": "train", "emotion": "joyful", "situation": "I got the job.",
        "turns": [{"role": "speaker", "text": "I got the job!"},
                  {"role": "listener", "text": "Congratulations, you earned it."}]}

   ``id`` (string, unique) and ``turns`` (a list of ``{"role": "speaker"|"listener", "text": str}``)
   are required; ``split`` (``train``/``valid``/``test``; ``dev`` is read as ``valid``), ``emotion``
   (one of :data:`kemp_kg.schema.EMOTIONS`, or null when unknown) and ``situation`` are optional.
   In a ``.jsonl`` file the optional first line ``{"format": "kemp-dialogues/1"}`` is a header; in
   a ``.json`` file the whole document is ``{"format": "kemp-dialogues/1", "dialogues": [...]}``
   or a bare list of records; a document without ``format`` is read as ``kemp-dialogues/1``
   too. A header naming another format is refused. The shared
   ``ed_conversations.jsonl`` layout (``conv_id, split, emotion, situation, utterances[],
   roles[]``) is accepted too, per record.

2. **official EmpatheticDialogues CSVs** (``train.csv``, ``valid.csv``, ``test.csv`` or a folder
   holding them). They are *not* quoted CSV (text holds bare double quotes), so every line is
   split on ``,`` as the official loaders do and ``_comma_`` is restored to ``,``. Rows are grouped
   by ``conv_id``; roles alternate speaker, listener, ... by ``utterance_idx`` (the
   ``speaker_idx`` column is empty in the rebuilt files). The split is the file's name
   (``dev.csv`` -> ``valid``) unless ``split=`` is given.

Examples (:func:`expand_examples`) are built as MoEL/KEMP build them: every listener turn is one
example whose history is every turn before it and whose target is that turn.

Bad input is reported with its file and line/record id. By default the offending conversation is
skipped and counted by reason in :class:`ReadReport`; with ``strict=True`` the first one raises
:class:`kemp_kg.errors.InputError` (one line). Reasons:

* ``unknown_emotion``: an emotion label outside the 32 (the conversation is skipped);
* ``empty_turn``: a turn whose text is empty or blank (skipped);
* ``bad_role``: a role other than speaker/listener (skipped);
* ``no_listener_turn``: no listener turn after a speaker turn, so no example (skipped);
* ``non_utf8``: a line that is not UTF-8 (its conversation is skipped);
* ``malformed_record``: a JSON record that does not parse or lacks ``id``/``turns``, or a CSV line
  with fewer than 8 fields or a non-integer ``utterance_idx`` (skipped);
* ``duplicate_id``: a conversation id seen before in the same input (the later one is skipped);
* ``unknown_split``: no split in the record, in ``split=``, or in the file name (skipped).

A conversation that *ends with the speaker* is counted under the notice
``trailing_speaker_turn``: its last turn can be no example's target and no later history, so it
is dropped and the conversation's listener turns are kept. It is a notice, not an error, and
``strict`` does not stop on it: EmpatheticDialogues itself has 4,715 such conversations (of
24,847) and MoEL/KEMP keep their examples.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kemp_kg.errors import InputError
from kemp_kg.schema import EMOTION_INDEX, EMOTIONS, SPLITS

#: The format tag of the kemp dialogues schema (header line / document key).
DIALOGUES_FORMAT = "kemp-dialogues/1"
ROLES: tuple[str, ...] = ("speaker", "listener")
#: Errors: the conversation is skipped (or ``strict`` stops).
ERROR_REASONS: tuple[str, ...] = (
    "unknown_emotion",
    "empty_turn",
    "bad_role",
    "no_listener_turn",
    "non_utf8",
    "malformed_record",
    "duplicate_id",
    "unknown_split",
)
#: Notices: counted and reported, the conversation is kept.
NOTICE_REASONS: tuple[str, ...] = ("trailing_speaker_turn", "history_cut", "turn_cut")
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "dev": "valid", "test": "test"}
_ED_FILES = ("train.csv", "valid.csv", "dev.csv", "test.csv")
_MAX_MESSAGES = 20
#: What an error says the valid values are.
_VALID_SPLITS = "train, valid or test (dev = valid)"
_VALID_EMOTIONS = "one of the 32 ED labels: " + ", ".join(EMOTIONS) + ", or absent"


@dataclass(frozen=True)
class Turn:
    """One utterance: ``role`` is ``"speaker"`` or ``"listener"``."""

    role: str
    text: str


@dataclass(frozen=True)
class Conversation:
    """One dialogue as read, before example expansion.

    ``emotion`` is a label of :data:`kemp_kg.schema.EMOTIONS` or ``None`` when unknown; ``where`` is
    ``file:line`` (or ``file:record N``) of its first line, for messages.
    """

    conv_id: str
    split: str
    emotion: str | None
    situation: str | None
    turns: tuple[Turn, ...]
    where: str = ""


@dataclass(frozen=True)
class Example:
    """One training example: the turns before a listener turn (history) and that turn (target).

    ``history`` indexes ``conversation.turns[:target_index]``.
    """

    example_id: str
    conversation: Conversation
    target_index: int
    first_index: int = 0

    @property
    def history(self) -> tuple[Turn, ...]:
        """``conversation.turns[first_index:target_index]`` (the newest turns when limited)."""
        return self.conversation.turns[self.first_index : self.target_index]

    @property
    def target(self) -> Turn:
        return self.conversation.turns[self.target_index]


@dataclass
class ReadReport:
    """What a read skipped (errors) or noticed, by reason, with the first messages verbatim."""

    conversations: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    notices: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def note(self, reason: str, message: str, *, strict: bool) -> None:
        """Count ``reason``; raise :class:`InputError` instead if ``strict`` and it is an error."""
        is_error = reason in ERROR_REASONS
        if is_error and strict:
            raise InputError(f"{message} [{reason}]; fix the record or run without --strict")
        (self.skipped if is_error else self.notices)[reason] += 1
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(f"{message} [{reason}]")

    def merge(self, other: ReadReport) -> None:
        self.conversations += other.conversations
        self.skipped.update(other.skipped)
        self.notices.update(other.notices)
        self.messages.extend(other.messages[: max(0, _MAX_MESSAGES - len(self.messages))])


def _normalise_split(value: object) -> str | None:
    if value is None:
        return None
    return _SPLIT_ALIASES.get(str(value).strip().lower())


def _validate(conv: Conversation, report: ReadReport, *, strict: bool) -> Conversation | None:
    """Apply the bad-input rules to one conversation; return it (maybe trimmed) or ``None``."""
    where = f"{conv.where} (conversation {conv.conv_id!r})"
    if conv.split not in SPLITS:
        report.note(
            "unknown_split",
            f'{where}: no split; add "split" ({_VALID_SPLITS}) or give --split',
            strict=strict,
        )
        return None
    if conv.emotion is not None and conv.emotion not in EMOTION_INDEX:
        report.note(
            "unknown_emotion",
            f"{where}: emotion {conv.emotion!r} is not {_VALID_EMOTIONS}",
            strict=strict,
        )
        return None
    for i, turn in enumerate(conv.turns):
        if turn.role not in ROLES:
            report.note(
                "bad_role",
                f"{where}: turn {i} role {turn.role!r} is not speaker/listener",
                strict=strict,
            )
            return None
        if not turn.text.strip():
            report.note("empty_turn", f"{where}: turn {i} is empty", strict=strict)
            return None
    turns = conv.turns
    if not any(t.role == "listener" for t in turns[1:]):
        report.note("no_listener_turn", f"{where}: no listener turn to answer", strict=strict)
        return None
    if turns[-1].role == "speaker":
        while turns[-1].role == "speaker":
            turns = turns[:-1]
        report.note(
            "trailing_speaker_turn",
            f"{where}: ends with the speaker; last turn dropped",
            strict=strict,
        )
    if turns is not conv.turns:
        conv = Conversation(
            conv.conv_id, conv.split, conv.emotion, conv.situation, turns, conv.where
        )
    return conv


def _lines(path: Path) -> Iterator[tuple[int, str | None, bytes]]:
    """(1-based line number, decoded text or None when not UTF-8, raw bytes) per line.

    A UTF-8 byte-order mark opening the file (Windows editors write one) is not part of line 1.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), raw
            except UnicodeDecodeError:
                yield number, None, raw


# ------------------------------------------------------------------------- EmpatheticDialogues CSV


def _split_from_name(path: Path) -> str | None:
    return _normalise_split(path.stem)


def read_ed_csv(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    strict: bool = False,
    report: ReadReport | None = None,
) -> list[Conversation]:
    """Read one official EmpatheticDialogues CSV: by line, ``split(',')``, ``_comma_`` -> ``,``.

    Args:
        path: ``train.csv`` / ``valid.csv`` / ``test.csv`` (or any name with ``split=``).
        split: override the split inferred from the file name.
        strict: stop at the first bad line/conversation with :class:`InputError`.
        report: counts are added here (a new one is made when ``None``).
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    file_split = _normalise_split(split) if split else _split_from_name(path)
    groups: dict[str, dict] = {}
    bad: set[str] = set()
    for number, text, raw in _lines(path):
        if number == 1:
            header = (text or "").split(",")
            if header[:2] == ["conv_id", "utterance_idx"]:
                continue
        conv_guess = raw.split(b",", 1)[0].decode("utf-8", "replace")
        if text is None:
            report.note("non_utf8", f"{path}:{number}: line is not UTF-8", strict=strict)
            bad.add(conv_guess)
            continue
        if not text.strip():
            continue
        parts = text.split(",")
        if len(parts) < 8:
            report.note(
                "malformed_record",
                f"{path}:{number}: {len(parts)} fields, expected 8",
                strict=strict,
            )
            bad.add(conv_guess)
            continue
        conv_id, idx_text, context, prompt = parts[0], parts[1], parts[2], parts[3]
        utterance = parts[5]
        try:
            utterance_idx = int(idx_text)
        except ValueError:
            report.note(
                "malformed_record",
                f"{path}:{number}: utterance_idx {idx_text!r} is not a number",
                strict=strict,
            )
            bad.add(conv_id)
            continue
        group = groups.get(conv_id)
        if group is None:
            group = groups[conv_id] = {
                "line": number,
                "emotion": context.strip(),
                "situation": prompt.replace("_comma_", ","),
                "rows": [],
            }
        group["rows"].append((utterance_idx, utterance.replace("_comma_", ",")))
    conversations: list[Conversation] = []
    for conv_id, group in groups.items():
        if conv_id in bad:
            continue
        rows = sorted(group["rows"])
        turns = tuple(
            Turn("speaker" if (idx - 1) % 2 == 0 else "listener", text) for idx, text in rows
        )
        conv = Conversation(
            conv_id=conv_id,
            split=file_split or "",
            emotion=group["emotion"] or None,
            situation=group["situation"] or None,
            turns=turns,
            where=f"{path}:{group['line']}",
        )
        report.conversations += 1
        checked = _validate(conv, report, strict=strict)
        if checked is not None:
            conversations.append(checked)
    return conversations


# --------------------------------------------------------------------------- kemp dialogues JSON(L)


def _record_to_conversation(
    record: object, where: str, split: str | None, report: ReadReport, *, strict: bool
) -> Conversation | None:
    if not isinstance(record, dict):
        report.note("malformed_record", f"{where}: not a JSON object", strict=strict)
        return None
    if "utterances" in record and "roles" in record:  # the shared ed_conversations.jsonl layout
        conv_id, utterances, roles = record.get("conv_id"), record["utterances"], record["roles"]
        if (
            not isinstance(conv_id, str)
            or not isinstance(utterances, list)
            or not isinstance(roles, list)
            or len(utterances) != len(roles)
        ):
            report.note(
                "malformed_record",
                f"{where}: conv_id/utterances/roles missing or unequal",
                strict=strict,
            )
            return None
        raw_turns = [{"role": r, "text": u} for r, u in zip(roles, utterances)]
    else:
        conv_id, raw_turns = record.get("id"), record.get("turns")
        if not isinstance(conv_id, (str, int)) or not isinstance(raw_turns, list):
            report.note(
                "malformed_record", f'{where}: needs "id" and a "turns" list', strict=strict
            )
            return None
        conv_id = str(conv_id)
    turns = []
    for i, turn in enumerate(raw_turns):
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("text"), str)
            or not isinstance(turn.get("role"), str)
        ):
            report.note(
                "malformed_record",
                f'{where}: turn {i} needs string "role" and "text"',
                strict=strict,
            )
            return None
        turns.append(Turn(turn["role"].strip().lower(), turn["text"]))
    emotion = record.get("emotion")
    if emotion is not None and not isinstance(emotion, str):
        emotion = str(emotion)
    situation = record.get("situation")
    raw_split = record.get("split")
    record_split = _normalise_split(raw_split) if raw_split is not None else None
    if record.get("split") is not None and record_split is None:
        report.note(
            "unknown_split",
            f"{where}: split {record.get('split')!r} is not {_VALID_SPLITS}",
            strict=strict,
        )
        return None
    return Conversation(
        conv_id=conv_id,
        split=(_normalise_split(split) if split else record_split) or "",
        emotion=emotion.strip().lower() if isinstance(emotion, str) and emotion.strip() else None,
        situation=situation if isinstance(situation, str) else None,
        turns=tuple(turns),
        where=where,
    )


def _check_header(obj: dict, where: str) -> None:
    """A ``format`` value other than :data:`DIALOGUES_FORMAT` is refused; none at all is read as
    it (as a bare list of records is)."""
    fmt = obj.get("format", DIALOGUES_FORMAT)
    if fmt != DIALOGUES_FORMAT:
        raise InputError(
            f'{where}: "format" is {fmt!r}; this kemp reads {DIALOGUES_FORMAT!r} (write '
            f'"format": "{DIALOGUES_FORMAT}" or leave it out; README "Dialogue formats")'
        )


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    strict: bool = False,
    report: ReadReport | None = None,
) -> list[Conversation]:
    """Read a kemp dialogues ``.jsonl`` (or the shared ``ed_conversations.jsonl``) by record."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    out: list[Conversation] = []
    for number, text, _raw in _lines(path):
        where = f"{path}:{number}"
        if text is None:
            report.note("non_utf8", f"{where}: line is not UTF-8", strict=strict)
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            report.note("malformed_record", f"{where}: invalid JSON ({exc.msg})", strict=strict)
            continue
        if isinstance(record, dict) and "format" in record and "turns" not in record:
            _check_header(record, where)
            continue
        conv = _record_to_conversation(record, where, split, report, strict=strict)
        if conv is None:
            continue
        report.conversations += 1
        checked = _validate(conv, report, strict=strict)
        if checked is not None:
            out.append(checked)
    return out


def read_json(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    strict: bool = False,
    report: ReadReport | None = None,
) -> list[Conversation]:
    """Read a kemp dialogues ``.json`` document (``{"format", "dialogues": [...]}`` or a list)."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))  # a leading BOM is no text
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 at byte {exc.start}; save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); a .jsonl file skips bad records"
        ) from None
    if isinstance(document, dict):
        _check_header(document, str(path))
        records = document.get("dialogues")
        if not isinstance(records, list):
            raise InputError(
                f'{path}: expected {{"format": "{DIALOGUES_FORMAT}", "dialogues": [...]}}'
                ' with "dialogues" a list of records (or a bare list of records)'
            )
    elif isinstance(document, list):
        records = document
    else:
        raise InputError(f"{path}: expected a JSON object or list of dialogue records")
    out: list[Conversation] = []
    for i, record in enumerate(records):
        conv = _record_to_conversation(record, f"{path}:record {i}", split, report, strict=strict)
        if conv is None:
            continue
        report.conversations += 1
        checked = _validate(conv, report, strict=strict)
        if checked is not None:
            out.append(checked)
    return out


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a DIALOGUES argument stands for: itself, or a folder's ED CSVs in split order."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in _ED_FILES if (path / name).is_file()]
        if not found:
            raise InputError(
                f"{path}: folder holds none of {', '.join(_ED_FILES)}; pass a dialogues file"
            )
        return found
    if not path.is_file():
        raise InputError(f"{path}: no such dialogues file or folder")
    return [path]


def read_dialogues(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    split: str | None = None,
    strict: bool = False,
) -> tuple[list[Conversation], ReadReport]:
    """Read dialogues from files/folders of any supported layout (chosen by suffix).

    Args:
        paths: a ``.jsonl``/``.json`` kemp dialogues file, an ED ``.csv``, a folder of ED CSVs, or a
            list of these.
        split: force every conversation into this split (``train``/``valid``/``test``).
        strict: stop at the first bad record with :class:`InputError` instead of skipping it.

    Returns:
        the valid conversations in input order and the report of what was skipped.
    """
    if split is not None and _normalise_split(split) is None:
        raise ValueError(f"split must be one of {SPLITS} (or dev), got {split!r}")
    items: Iterable = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    report = ReadReport()
    conversations: list[Conversation] = []
    for item in items:
        for file in input_files(item):
            suffix = file.suffix.lower()
            if suffix == ".csv":
                got = read_ed_csv(file, split=split, strict=strict, report=report)
            elif suffix == ".jsonl":
                got = read_jsonl(file, split=split, strict=strict, report=report)
            elif suffix == ".json":
                got = read_json(file, split=split, strict=strict, report=report)
            else:
                raise InputError(
                    f"{file}: unknown dialogues layout {suffix!r}; use .jsonl, .json or ED .csv"
                )
            conversations.extend(got)
    seen: set[str] = set()
    unique: list[Conversation] = []
    for conv in conversations:
        if conv.conv_id in seen:
            report.note(
                "duplicate_id",
                f"{conv.where}: conversation id {conv.conv_id!r} seen before",
                strict=strict,
            )
            continue
        seen.add(conv.conv_id)
        unique.append(conv)
    return unique, report


def expand_examples(
    conversations: Iterable[Conversation],
    max_history_turns: int | None = None,
    report: ReadReport | None = None,
) -> list[Example]:
    """Every listener turn with at least one turn before it becomes one example (MoEL/KEMP).

    ``example_id`` is ``"{conv_id}:{target_index}"`` (0-based turn index of the target). With
    ``max_history_turns``, a longer history keeps its newest turns (``Example.first_index``); each
    such example is counted in ``report`` as ``history_cut``.
    """
    out: list[Example] = []
    for conv in conversations:
        for index, turn in enumerate(conv.turns):
            if index > 0 and turn.role == "listener":
                first = 0
                if max_history_turns is not None and index > max_history_turns:
                    first = index - max_history_turns
                    if report is not None:
                        report.note(
                            "history_cut",
                            f"{conv.where}: example {conv.conv_id}:{index} kept the last "
                            f"{max_history_turns} of {index} turns (--max-history-turns)",
                            strict=False,
                        )
                out.append(Example(f"{conv.conv_id}:{index}", conv, index, first))
    return out


def cut_text(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at the last space when there is one."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    space = head.rfind(" ")
    return head[:space] if space > 0 else head


def limit_turns(
    conversations: list[Conversation], max_chars: int, report: ReadReport
) -> list[Conversation]:
    """Cut every turn longer than ``max_chars`` (see :func:`cut_text`), counting each in
    ``report`` as ``turn_cut``; conversations without long turns are kept as is."""
    out = []
    for conv in conversations:
        if all(len(t.text) <= max_chars for t in conv.turns):
            out.append(conv)
            continue
        turns = []
        for i, t in enumerate(conv.turns):
            if len(t.text) > max_chars:
                report.note(
                    "turn_cut",
                    f"{conv.where}: conversation {conv.conv_id!r} turn {i} "
                    f"cut from {len(t.text):,} to {max_chars:,} characters "
                    "(--max-turn-chars)",
                    strict=False,
                )
                t = Turn(t.role, cut_text(t.text, max_chars))
            turns.append(t)
        out.append(dataclasses.replace(conv, turns=tuple(turns)))
    return out
