"""Download the real data sets (ConceptNet 5.7, EmpatheticDialogues, NRC-VAD v1, GloVe 6B) safely.

What a download guarantees:

* **Official sources, pinned where possible.** ``download_manifest.json`` (package data) lists the
  URLs, sizes and SHA-256 checksums. Where no published checksum could be checked, the manifest
  holds ``null``: the file is still fetched, its SHA-256 is computed and printed, and the result is
  reported as *unverified* (pin a checksum with ``--sha256``). Nothing is invented.
* **Resumable.** Bytes go to ``FILE.part``; an interrupted transfer resumes with an HTTP range
  request (``Range: bytes=N-`` plus ``If-Range`` on the ETag, so a changed upstream file restarts
  from zero instead of being spliced). Dropped connections are retried with backoff.
* **Verified before use.** The final name appears only after the checksum matched (atomic rename
  after fsync). A corrupt file (already present or freshly fetched) is deleted and fetched again
  from scratch; a second mismatch is an error naming both checksums.
* **Safe extraction.** Tar and zip archives are extracted member by member into a temporary
  folder next to the destination, which is renamed into place only when everything succeeded.
  Absolute paths, ``..`` components, backslashes, symlinks, hardlinks and device files are
  refused, and the total extracted size and member count are capped (zip bombs). An earlier extraction is swapped out in one atomic
  step (:func:`kemp_kg.schema.replace_folder`).
* **Mirrors.** ``--mirror DIR`` copies ``DIR/<filename>`` (offline machines); ``--mirror URL``
  fetches ``URL/<filename>`` (internal HTTP mirrors). The same verification applies.
* **One writer.** :func:`kemp_kg.schema.output_lock` on each file and extracted folder makes a
  second concurrent download of the same file fail at once with a clear message instead of
  interleaving bytes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from kemp_kg.digest import sha256_file
from kemp_kg.errors import KempError
from kemp_kg.schema import output_lock, replace_folder

#: The manifest shipped with the package.
MANIFEST_FILE = Path(__file__).with_name("download_manifest.json")
MANIFEST_FORMAT = "kemp-downloads/1"
#: Resource names, in the order ``all`` fetches them.
NAMES: tuple[str, ...] = ("conceptnet", "empathetic-dialogues", "nrc-vad", "glove")
#: Marker written into an extracted folder: which archive (by SHA-256) it came from.
EXTRACT_MARKER = ".kemp-download.json"
#: Refuse archives with more members than this (a guard against pathological archives).
MAX_ARCHIVE_MEMBERS = 100_000

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_USER_AGENT = "kemp-kg-download/1 (+https://github.com/; research data fetcher)"


class DownloadError(KempError):
    """A download that could not be completed or verified (network, checksum, mirror)."""

    exit_code = 4


class ArchiveError(DownloadError):
    """An archive that is corrupt or unsafe to extract; nothing was written under the final name."""


class _TransientError(Exception):
    """A network failure worth retrying (dropped connection, timeout, 5xx, short body)."""


@dataclass(frozen=True)
class Resource:
    """One downloadable data set, as described by the manifest.

    Attributes:
        name: the CLI name (``conceptnet``, ``empathetic-dialogues``, ``nrc-vad``, ``glove``).
        filename: the archive's file name under the download folder (and under a mirror).
        urls: official URLs, tried in order.
        sha256: the published SHA-256 of the file, or ``None`` when none could be checked.
        bytes: the published size, or ``None``.
        extract: ``"tar"``, ``"zip"`` or ``None`` (kept as downloaded, e.g. a ``.csv.gz`` dump).
        extract_to: folder name (under the download folder) that receives the archive's members.
        strip_components: leading path components dropped from member names (like tar's option).
        max_extract_bytes: cap on the total extracted size.
        expect_members: files (after stripping) that must exist after extraction.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    bytes: int | None
    extract: str | None
    extract_to: str | None
    strip_components: int
    max_extract_bytes: int | None
    expect_members: tuple[str, ...]
    description: str = ""
    licence: str = ""
    sha256_source: str | None = None
    use: str = ""

    @classmethod
    def from_json(cls, name: str, spec: Mapping[str, object]) -> Resource:
        """Build a resource from its manifest entry, checking every field's type."""

        def need(key: str, kind: type | tuple[type, ...]) -> object:
            value = spec.get(key)
            if not isinstance(value, kind):
                raise ValueError(f"download manifest: {name}.{key} must be {kind}, got {value!r}")
            return value

        filename = str(need("filename", str))
        if "/" in filename or "\\" in filename or filename in {"", ".", ".."}:
            raise ValueError(f"download manifest: {name}.filename {filename!r} is not a plain name")
        urls = tuple(str(u) for u in need("urls", list))  # type: ignore[union-attr]
        sha = need("sha256", (str, type(None)))
        if sha is not None and not _SHA256_RE.match(str(sha)):
            raise ValueError(f"download manifest: {name}.sha256 {sha!r} is not 64 hex digits")
        extract = need("extract", (str, type(None)))
        if extract not in (None, "tar", "zip"):
            raise ValueError(f"download manifest: {name}.extract {extract!r} not tar/zip/null")
        extract_to = need("extract_to", (str, type(None)))
        if extract and (not extract_to or "/" in str(extract_to) or extract_to in {".", ".."}):
            raise ValueError(f"download manifest: {name}.extract_to {extract_to!r} is not a name")
        size = need("bytes", (int, type(None)))
        limit = need("max_extract_bytes", (int, type(None)))
        return cls(
            name=name,
            filename=filename,
            urls=urls,
            sha256=str(sha) if sha else None,
            bytes=int(size) if size is not None else None,  # type: ignore[arg-type]
            extract=str(extract) if extract else None,
            extract_to=str(extract_to) if extract_to else None,
            strip_components=int(spec.get("strip_components", 0)),  # type: ignore[arg-type]
            max_extract_bytes=int(limit) if limit is not None else None,  # type: ignore[arg-type]
            expect_members=tuple(str(m) for m in spec.get("expect_members", [])),  # type: ignore[union-attr]
            description=str(spec.get("description", "")),
            licence=str(spec.get("licence", "")),
            sha256_source=str(spec["sha256_source"]) if spec.get("sha256_source") else None,
            use=str(spec.get("use", "")),
        )


def load_manifest(path: str | os.PathLike[str] = MANIFEST_FILE) -> dict[str, Resource]:
    """Read a download manifest (default: the one shipped with kemp-kg), name -> resource."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"{path}: manifest format {data.get('format')!r}, expected {MANIFEST_FORMAT}"
        )
    return {name: Resource.from_json(name, spec) for name, spec in data["resources"].items()}


@dataclass(frozen=True)
class DownloadConfig:
    """What to download, where to, and from which source.

    Attributes:
        names: resource names (see :data:`NAMES`); ``("all",)`` is expanded by the CLI.
        to: the download folder; archives land in it and extracted folders beside them.
        mirror: ``None`` (official URLs), a local folder holding the files by name, or an
            ``http(s)://`` / ``file://`` base URL under which ``<filename>`` is fetched.
        sha256: a checksum to verify against instead of the manifest's (one resource only).
        extract: extract tar/zip archives after verification.
        retries: attempts per URL after the first for transient network errors.
        timeout_s: socket timeout of one HTTP request.
        backoff_s: first retry delay; doubles on each retry (capped at 30 s).
        chunk_bytes: read size while streaming.
        show_progress: draw rich progress bars.
        manifest: the manifest file to read.
    """

    names: tuple[str, ...]
    to: Path = Path("data")
    mirror: str | None = None
    sha256: str | None = None
    extract: bool = True
    retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    chunk_bytes: int = 1 << 20
    show_progress: bool = True
    manifest: Path = MANIFEST_FILE

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("names must name at least one resource")
        if self.sha256 is not None:
            if not _SHA256_RE.match(self.sha256.lower()):
                raise ValueError(f"sha256={self.sha256!r} is not 64 hex digits")
            if len(self.names) != 1:
                raise ValueError(f"sha256 pins one file; got names={self.names}")
            object.__setattr__(self, "sha256", self.sha256.lower())
        if self.retries < 0 or self.timeout_s <= 0 or self.backoff_s < 0 or self.chunk_bytes < 1:
            raise ValueError(
                f"retries={self.retries}, timeout_s={self.timeout_s}, backoff_s={self.backoff_s}, "
                f"chunk_bytes={self.chunk_bytes}: need retries >= 0, timeout_s > 0, backoff_s >= 0, "
                "chunk_bytes >= 1"
            )
        object.__setattr__(self, "to", Path(self.to))


@dataclass(frozen=True)
class DownloadResult:
    """What happened to one resource.

    Attributes:
        name: the resource name.
        path: the downloaded file (final name, verified when :attr:`verified`).
        sha256: its SHA-256 as computed here.
        bytes: its size.
        verified: the checksum matched a pinned value (manifest or ``--sha256``).
        fetched: bytes were transferred in this run (``False``: an intact file was reused).
        source: the URL or mirror path the bytes came from (``None`` when reused).
        extracted_to: the extracted folder, or ``None``.
        notes: human-readable events (resumed, corrupt file re-fetched, ...).
    """

    name: str
    path: Path
    sha256: str
    bytes: int
    verified: bool
    fetched: bool
    source: str | None
    extracted_to: Path | None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# Progress (rich when asked, a no-op otherwise)


class _Progress:
    """A thin wrapper so the transfer code does not care whether bars are drawn."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def task(self, description: str, total: int | None) -> int:
        return self._bar.add_task(description, total=total) if self._bar is not None else 0

    def update(self, task: int, *, completed: int | None = None, total: int | None = None) -> None:
        if self._bar is not None:
            self._bar.update(task, completed=completed, total=total)

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, highlight=False)


# --------------------------------------------------------------------------------------------
# Small file helpers (checksums: kemp_kg.digest)


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    with contextlib.suppress(OSError):
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --------------------------------------------------------------------------------------------
# Transfers


def _part_paths(dest: Path) -> tuple[Path, Path]:
    part = dest.with_name(dest.name + ".part")
    return part, dest.with_name(dest.name + ".part.json")


def _read_part_meta(meta_path: Path) -> dict[str, str]:
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` -> (START, TOTAL); ``None`` where absent or malformed."""
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _fetch_http_once(
    url: str,
    part: Path,
    meta_path: Path,
    *,
    timeout_s: float,
    chunk_bytes: int,
    progress: _Progress,
    task: int,
) -> None:
    """One HTTP attempt: resume ``part`` if it has bytes, stream to the end of the file.

    Raises:
        _TransientError: the attempt should be retried (the bytes written so far are kept).
        DownloadError: a permanent failure (404, 403, unsupported scheme, ...).
    """
    meta = _read_part_meta(meta_path)
    have = part.stat().st_size if part.exists() else 0
    if have and meta.get("url") != url:
        have = 0  # bytes from another source: never splice them
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - scheme checked
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Nothing beyond what we have: complete if the server's size is ours, else restart.
            _, total = _content_range_start(
                (exc.headers.get("Content-Range") or "").replace("*", "0-0", 1)
            )
            if total == have:
                return
            _remove(part, meta_path)
            raise _TransientError(f"server has {total} bytes, the partial file {have}") from None
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _TransientError(f"{type(exc).__name__}: {reason}") from None
    with response:
        status = getattr(response, "status", 200)
        total: int | None
        if status == 206:
            start, total = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                _remove(part)  # the server answered another range than asked: start over
                raise _TransientError(f"server resumed at byte {start}, asked for {have}")
            mode = "ab"
        else:  # 200: the whole file (a server without ranges, or If-Range saw a changed file)
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        meta_path.write_text(
            json.dumps(
                {
                    "url": url,
                    "etag": response.headers.get("ETag") or "",
                    "last_modified": response.headers.get("Last-Modified") or "",
                }
            ),
            encoding="utf-8",
        )
        progress.update(task, completed=have, total=total)
        written = have
        with open(part, mode) as sink:
            while True:
                try:
                    block = response.read(chunk_bytes)
                except (OSError, http.client.HTTPException) as exc:  # dropped mid-body
                    sink.flush()
                    raise _TransientError(f"connection lost after {written} bytes: {exc}") from None
                if not block:
                    break
                sink.write(block)  # a local OSError here (ENOSPC) is NOT retried
                written += len(block)
                progress.update(task, completed=written)
        if total is not None and written != total:
            raise _TransientError(f"connection closed at byte {written} of {total}")


def _fetch_local(
    source: Path, part: Path, *, chunk_bytes: int, progress: _Progress, task: int
) -> None:
    if not source.is_file():
        raise DownloadError(
            f"{source}: not in the mirror folder; copy the file there or drop --mirror"
        )
    total = source.stat().st_size
    progress.update(task, completed=0, total=total)
    copied = 0
    with open(source, "rb") as src, open(part, "wb") as sink:
        while block := src.read(chunk_bytes):
            sink.write(block)
            copied += len(block)
            progress.update(task, completed=copied)


def _sources(resource: Resource, mirror: str | None) -> list[str]:
    """The places to fetch ``resource`` from, in order (URLs or local file paths)."""
    if mirror is None:
        return list(resource.urls)
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return [mirror.rstrip("/") + "/" + urllib.parse.quote(resource.filename)]
    if parsed.scheme == "file":
        return [str(Path(urllib.request.url2pathname(parsed.path)) / resource.filename)]
    if parsed.scheme and len(parsed.scheme) > 1:
        raise DownloadError(
            f"--mirror {mirror}: unsupported scheme {parsed.scheme!r}; use a folder or http(s)://"
        )
    folder = Path(mirror)
    if not folder.is_dir():
        raise DownloadError(f"--mirror {mirror}: no such folder")
    return [str(folder / resource.filename)]


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _transfer(
    source: str,
    part: Path,
    meta_path: Path,
    config: DownloadConfig,
    progress: _Progress,
    task: int,
    notes: list[str],
    sleep: Callable[[float], None],
) -> None:
    """Fetch ``source`` into ``part``, retrying transient failures with backoff and resuming."""
    if not _is_url(source):
        _fetch_local(
            Path(source), part, chunk_bytes=config.chunk_bytes, progress=progress, task=task
        )
        return
    last: str = ""
    for attempt in range(config.retries + 1):
        if attempt:
            have = part.stat().st_size if part.exists() else 0
            notes.append(f"retry {attempt} after: {last} (resuming at byte {have})")
            progress.log(f"[yellow]{part.name}[/]: {last}; retry {attempt}/{config.retries}")
            sleep(min(config.backoff_s * 2 ** (attempt - 1), 30.0))
        try:
            _fetch_http_once(
                source,
                part,
                meta_path,
                timeout_s=config.timeout_s,
                chunk_bytes=config.chunk_bytes,
                progress=progress,
                task=task,
            )
            return
        except _TransientError as exc:
            last = str(exc)
    raise DownloadError(
        f"{source}: gave up after {config.retries + 1} attempts ({last}); rerun to resume"
    )


def fetch_verified(
    resource: Resource,
    config: DownloadConfig,
    *,
    progress: _Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Make ``config.to / resource.filename`` exist with the expected checksum.

    An intact existing file is reused; a corrupt one is deleted and fetched again. Transfers go to
    ``FILE.part`` (resumed across runs) and are renamed to ``FILE`` only after verification.
    Without a pinned checksum the file is fetched and its SHA-256 reported, unverified.

    Raises:
        DownloadError: every source failed, or the checksum never matched.
    """
    progress = progress or _Progress(False)
    folder = config.to
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / resource.filename
    part, meta_path = _part_paths(dest)
    expected = config.sha256 or resource.sha256
    notes: list[str] = []
    with output_lock(dest):  # a second download of this file fails at once (OutputBusyError)
        if dest.is_file():
            actual = sha256_file(dest)
            if expected is None or actual == expected:
                return DownloadResult(
                    resource.name,
                    dest,
                    actual,
                    dest.stat().st_size,
                    expected is not None,
                    fetched=False,
                    source=None,
                    extracted_to=None,
                    notes=("reused existing file",),
                )
            notes.append(f"existing {dest.name} is corrupt (sha256 {actual}); deleted, re-fetching")
            progress.log(f"[yellow]{dest}[/]: checksum mismatch, deleting and fetching again")
            _remove(dest)
        errors: list[str] = []
        for source in _sources(resource, config.mirror):
            task = progress.task(resource.filename, resource.bytes)
            rounds = (1, 2) if _is_url(source) else (1,)  # 2 = from scratch after a mismatch
            for round_ in rounds:
                try:
                    _transfer(source, part, meta_path, config, progress, task, notes, sleep)
                except DownloadError as exc:
                    errors.append(str(exc))
                    if expected is None:
                        _remove(part, meta_path)  # unverifiable bytes must not meet another source
                    break
                actual = sha256_file(part)
                if expected is None or actual == expected:
                    size = part.stat().st_size
                    _fsync_replace(part, dest)
                    _remove(meta_path)
                    return DownloadResult(
                        resource.name,
                        dest,
                        actual,
                        size,
                        expected is not None,
                        fetched=True,
                        source=source,
                        extracted_to=None,
                        notes=tuple(notes),
                    )
                notes.append(f"round {round_}: sha256 {actual} != expected {expected}; deleted")
                progress.log(f"[yellow]{resource.filename}[/]: checksum mismatch, fetching again")
                _remove(part, meta_path)
            else:
                errors.append(
                    f"{source}: sha256 mismatch x{len(rounds)} (got {actual}, expected {expected})"
                )
        raise DownloadError(
            f"{resource.filename}: no source gave a good copy ({'; '.join(errors)}); "
            "check --mirror, or pass --sha256 if upstream published a new file"
        )


# --------------------------------------------------------------------------------------------
# Safe extraction


def safe_member_path(name: str, strip_components: int = 0) -> PurePosixPath | None:
    """The relative path a member may be written to, or ``None`` when stripping removes it.

    Raises:
        ArchiveError: an absolute path, a drive letter, a backslash, a NUL, or a ``..`` component.
    """
    if "\x00" in name:
        raise ArchiveError(f"member {name!r} has a NUL byte in its name")
    if "\\" in name:
        raise ArchiveError(f"member {name!r} has a backslash in its name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {name!r} climbs out with '..'")
    parts = parts[strip_components:]
    if not parts:
        return None
    return PurePosixPath(*parts)


@dataclass
class _Member:
    name: str
    kind: str  # "file", "dir", "link", "special"
    size: int
    open: Callable[[], BinaryIO] | None


def _tar_members(archive: tarfile.TarFile) -> Iterator[_Member]:
    for info in archive:
        if info.isdir():
            yield _Member(info.name, "dir", 0, None)
        elif info.issym() or info.islnk():
            yield _Member(info.name, "link", 0, None)
        elif info.isreg():
            yield _Member(info.name, "file", info.size, lambda info=info: archive.extractfile(info))  # type: ignore[misc]
        else:
            yield _Member(info.name, "special", 0, None)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[_Member]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield _Member(info.filename, "link", 0, None)
        elif info.is_dir():
            yield _Member(info.filename, "dir", 0, None)
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # permission bits only (0o600): a file
            yield _Member(info.filename, "special", 0, None)
        else:
            yield _Member(
                info.filename, "file", info.file_size, lambda info=info: archive.open(info)
            )  # type: ignore[misc]


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def extract_archive(
    archive: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    *,
    kind: str,
    strip_components: int = 0,
    max_bytes: int | None = None,
    max_members: int = MAX_ARCHIVE_MEMBERS,
    expect_members: Sequence[str] = (),
    archive_sha256: str | None = None,
    progress: _Progress | None = None,
) -> Path:
    """Extract a tar or zip archive into ``dest_dir`` safely and atomically.

    Members are written one by one into ``DEST.tmp-XXXX`` beside ``dest_dir``; only regular files
    and folders are allowed (links and devices are refused), names must stay inside the folder,
    and the total size and member count are capped. On success the temporary folder replaces
    ``dest_dir``; on any failure it is removed and ``dest_dir`` is left as it was.

    Args:
        archive: the ``.tar(.gz|.bz2|.xz)`` or ``.zip`` file.
        dest_dir: the folder to create (or replace).
        kind: ``"tar"`` or ``"zip"``.
        strip_components: leading path components to drop from member names.
        max_bytes: cap on the sum of extracted file sizes (``None``: no cap).
        max_members: cap on the number of members.
        expect_members: relative paths that must exist afterwards.
        archive_sha256: recorded in the marker file; an existing ``dest_dir`` whose marker holds
            the same checksum is kept as is.

    Raises:
        ArchiveError: a corrupt or unsafe archive, or a missing expected member.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    progress = progress or _Progress(False)
    if kind not in ("tar", "zip"):
        raise ValueError(f"kind={kind!r}; expected 'tar' or 'zip'")
    marker = dest_dir / EXTRACT_MARKER
    if archive_sha256 and marker.is_file():
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text(encoding="utf-8")).get("sha256") == archive_sha256:
                if all((dest_dir / m).is_file() for m in expect_members):
                    return dest_dir
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.tmp-", dir=dest_dir.parent))
    try:
        _extract_into(archive, tmp, kind, strip_components, max_bytes, max_members, progress)
        missing = [m for m in expect_members if not (tmp / m).is_file()]
        if missing:
            raise ArchiveError(f"{archive}: archive lacks {missing}; is it the right file?")
        (tmp / EXTRACT_MARKER).write_text(
            json.dumps({"archive": archive.name, "sha256": archive_sha256}), encoding="utf-8"
        )
        umask = os.umask(0o022)  # mkdtemp made the folder 0700; give it the user's usual mode
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        replace_folder(tmp, dest_dir)  # one atomic exchange where the kernel supports it
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest_dir


def _extract_into(
    archive: Path,
    root: Path,
    kind: str,
    strip_components: int,
    max_bytes: int | None,
    max_members: int,
    progress: _Progress,
) -> None:
    task = progress.task(f"extract {archive.name}", max_bytes)
    total = 0
    count = 0
    try:
        with contextlib.ExitStack() as stack:
            if kind == "tar":
                tar = stack.enter_context(tarfile.open(archive, "r:*"))
                members: Iterator[_Member] = _tar_members(tar)
            else:
                members = _zip_members(stack.enter_context(zipfile.ZipFile(archive)))
            for member in members:
                count += 1
                if count > max_members:
                    raise ArchiveError(f"{archive}: more than {max_members} members; refusing")
                if member.name.startswith("__MACOSX/"):
                    continue  # macOS resource forks: never data
                try:
                    rel = safe_member_path(member.name, strip_components)
                except ArchiveError as exc:
                    raise ArchiveError(f"{archive}: {exc}; refusing to extract") from None
                if member.kind == "link":
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} is a link; refusing to extract"
                    )
                if member.kind == "special":
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} is a device/fifo; refusing"
                    )
                if rel is None:
                    continue
                target = root.joinpath(*rel.parts)
                if not _is_inside(target.parent if member.kind == "file" else target, root):
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} escapes the folder; refusing"
                    )
                if member.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if not _is_inside(target.parent, root) or target.is_symlink():
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} escapes the folder; refusing"
                    )
                assert member.open is not None
                with member.open() as src, open(target, "wb") as sink:
                    while block := src.read(1 << 20):
                        total += len(block)
                        if max_bytes is not None and total > max_bytes:
                            raise ArchiveError(
                                f"{archive}: expands beyond {max_bytes} bytes; refusing (zip bomb?)"
                            )
                        sink.write(block)
                        progress.update(task, completed=total)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(
            f"{archive}: corrupt archive ({exc}); delete it and rerun the download"
        ) from None


# --------------------------------------------------------------------------------------------
# The command's one library function


def download(config: DownloadConfig) -> list[DownloadResult]:
    """Fetch, verify and (for archives) extract every resource in ``config.names``.

    Returns:
        one :class:`DownloadResult` per resource, in order.

    Raises:
        DownloadError: a resource could not be fetched, verified or safely extracted; resources
            before it are complete, the failing one left nothing under a final name (rerunning
            resumes from its ``.part`` file).
    """
    manifest = load_manifest(config.manifest)
    unknown = [n for n in config.names if n not in manifest]
    if unknown:
        raise DownloadError(f"unknown resource(s) {unknown}; choose from {sorted(manifest)} or all")
    results: list[DownloadResult] = []
    with _Progress(config.show_progress) as progress:
        for name in config.names:
            resource = manifest[name]
            result = fetch_verified(resource, config, progress=progress)
            if not result.verified:
                progress.log(
                    f"[yellow]{result.path.name}[/]: sha256 {result.sha256} (NOT verified: no "
                    f"published checksum; pin it with --sha256 {result.sha256})"
                )
            if config.extract and resource.extract:
                assert resource.extract_to is not None
                with output_lock(config.to / resource.extract_to):
                    folder = extract_archive(
                        result.path,
                        config.to / resource.extract_to,
                        kind=resource.extract,
                        strip_components=resource.strip_components,
                        max_bytes=resource.max_extract_bytes,
                        expect_members=resource.expect_members,
                        archive_sha256=result.sha256,
                        progress=progress,
                    )
                result = DownloadResult(
                    result.name,
                    result.path,
                    result.sha256,
                    result.bytes,
                    result.verified,
                    result.fetched,
                    result.source,
                    folder,
                    result.notes,
                )
            results.append(result)
    return results


__all__ = [
    "ArchiveError",
    "DownloadConfig",
    "DownloadError",
    "DownloadResult",
    "MANIFEST_FILE",
    "NAMES",
    "Resource",
    "download",
    "extract_archive",
    "fetch_verified",
    "load_manifest",
    "safe_member_path",
    "sha256_file",
]
