"""`kemp_kg.download`: resumable, verified downloads and safe extraction.

Every network test talks to an `http.server` bound to 127.0.0.1 inside the test process (a
bounded daemon thread, shut down after the test); nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kemp_kg import download as dl
from kemp_kg.download import (
    ArchiveError,
    DownloadConfig,
    DownloadError,
    Resource,
    extract_archive,
    fetch_verified,
    load_manifest,
    safe_member_path,
)

PAYLOAD = bytes(range(256)) * 200  # 51,200 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# ------------------------------------------------------------------------------------------------
# A local HTTP server with range support and scripted faults


@dataclass
class Script:
    """What the server does; mutated by tests, read by the handler thread."""

    files: dict[str, bytes] = field(default_factory=dict)
    etag: str = '"v1"'
    drop_first: dict[str, int] = field(default_factory=dict)  # path -> cut body after N bytes once
    corrupt_first: set[str] = field(default_factory=set)  # path -> serve flipped bytes once
    corrupt_always: set[str] = field(default_factory=set)
    ranges: bool = True
    log: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    served_bytes: int = 0


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.lstrip("/")
            rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
            script.log.append((path, rng, if_range))
            if path not in script.files:
                self.send_error(404)
                return
            body = script.files[path]
            if path in script.corrupt_always or path in script.corrupt_first:
                script.corrupt_first.discard(path)
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            start = 0
            use_range = bool(rng and script.ranges and (if_range in (None, script.etag)))
            if use_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("ETag", script.etag)
            self.end_headers()
            chunk = body[start:]
            cut = script.drop_first.pop(path, None)
            if cut is not None:
                self.wfile.write(chunk[:cut])
                self.wfile.flush()
                script.served_bytes += cut
                self.close_connection = True
                self.connection.shutdown(2)  # drop the connection mid-body
                return
            self.wfile.write(chunk)
            script.served_bytes += len(chunk)

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    assert httpd.server_address[0] == "127.0.0.1"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def resource(
    name: str = "thing", filename: str = "thing.bin", urls: tuple[str, ...] = (), **kw
) -> Resource:
    base = dict(
        name=name,
        filename=filename,
        urls=urls,
        sha256=PAYLOAD_SHA,
        bytes=len(PAYLOAD),
        extract=None,
        extract_to=None,
        strip_components=0,
        max_extract_bytes=None,
        expect_members=(),
    )
    base.update(kw)
    return Resource(**base)


def config(to: Path, **kw) -> DownloadConfig:
    base = dict(
        names=("thing",),
        to=to,
        retries=3,
        timeout_s=5.0,
        backoff_s=0.0,
        chunk_bytes=4096,
        show_progress=False,
    )
    base.update(kw)
    return DownloadConfig(**base)


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.endswith((".part", ".part.json")) or ".tmp-" in p.name
    )


# ------------------------------------------------------------------------------------------------
# The manifest


def test_manifest_lists_the_four_official_sources_and_invents_no_checksum() -> None:
    manifest = load_manifest()
    assert tuple(manifest) == dl.NAMES
    for res in manifest.values():
        assert res.urls and all(u.startswith("https://") for u in res.urls), res.name
        if res.sha256 is not None:  # every pinned value says where it comes from
            assert res.sha256_source and "ParlAI" in res.sha256_source
    assert manifest["empathetic-dialogues"].sha256 == (
        "240c492cb6199a315722f716bfcc14f13ea6605f1cec67349153b606be92f6f2"
    )
    assert manifest["conceptnet"].urls[0].endswith("conceptnet-assertions-5.7.0.csv.gz")
    assert manifest["conceptnet"].sha256 is None  # no published checksum: null, not a guess
    assert manifest["nrc-vad"].expect_members == ("NRC-VAD-Lexicon.txt",)


def test_manifest_rejects_bad_fields(tmp_path: Path) -> None:
    good = json.loads(dl.MANIFEST_FILE.read_text())
    for key, bad in [("sha256", "abc"), ("filename", "../x"), ("extract", "rar"), ("urls", "x")]:
        data = json.loads(json.dumps(good))
        data["resources"]["glove"][key] = bad
        path = tmp_path / "m.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=key):
            load_manifest(path)


def test_config_checks_arguments() -> None:
    with pytest.raises(ValueError, match="64 hex"):
        DownloadConfig(names=("glove",), sha256="nothex")
    with pytest.raises(ValueError, match="one file"):
        DownloadConfig(names=("glove", "nrc-vad"), sha256="a" * 64)
    with pytest.raises(ValueError, match="retries"):
        DownloadConfig(names=("glove",), retries=-1)


# ------------------------------------------------------------------------------------------------
# Transfers


def test_download_verifies_and_renames_only_when_complete(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    result = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert result.verified and result.fetched and result.sha256 == PAYLOAD_SHA
    assert (tmp_path / "thing.bin").read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == []
    # A second run reuses the verified file without touching the network.
    before = len(script.log)
    again = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert not again.fetched and again.verified and len(script.log) == before


def test_dropped_connection_resumes_with_a_range_request(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.drop_first["thing.bin"] = 20_000
    result = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert result.verified and (tmp_path / "thing.bin").read_bytes() == PAYLOAD
    assert script.log[0][1] is None
    resumed_at = int(script.log[1][1].split("=")[1].rstrip("-"))
    assert 0 < resumed_at <= 20_000 and script.log[1][2] == '"v1"'  # Range + If-Range(ETag)
    assert script.served_bytes == len(PAYLOAD) + (20_000 - resumed_at)  # nothing fetched twice
    assert any("resuming at byte" in note for note in result.notes)


def test_interrupted_run_leaves_a_part_file_that_the_next_run_resumes(
    tmp_path: Path, server
) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.drop_first["thing.bin"] = 30_000
    res = resource(urls=(f"{base}/thing.bin",))
    with pytest.raises(DownloadError, match="gave up after 1 attempts"):
        fetch_verified(res, config(tmp_path, retries=0))
    assert not (tmp_path / "thing.bin").exists()  # nothing under the final name
    part = tmp_path / "thing.bin.part"
    assert 0 < part.stat().st_size <= 30_000
    have = part.stat().st_size
    result = fetch_verified(res, config(tmp_path, retries=0))
    assert result.verified and script.log[-1][1] == f"bytes={have}-"
    assert leftovers(tmp_path) == []


def test_changed_upstream_file_restarts_instead_of_splicing(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.drop_first["thing.bin"] = 10_000
    res = resource(urls=(f"{base}/thing.bin",))
    with pytest.raises(DownloadError):
        fetch_verified(res, config(tmp_path, retries=0))
    script.etag = '"v2"'  # upstream replaced the file: If-Range no longer matches -> 200, full body
    result = fetch_verified(res, config(tmp_path, retries=0))
    assert result.verified and script.log[-1][1] is not None and script.log[-1][2] == '"v1"'
    assert (tmp_path / "thing.bin").read_bytes() == PAYLOAD


def test_server_without_ranges_still_completes(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.ranges = False
    script.drop_first["thing.bin"] = 5_000
    result = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert result.verified and (tmp_path / "thing.bin").read_bytes() == PAYLOAD


def test_corrupted_download_is_rejected_and_fetched_again(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.corrupt_first.add("thing.bin")
    result = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert result.verified and (tmp_path / "thing.bin").read_bytes() == PAYLOAD
    assert [entry[1] for entry in script.log] == [None, None]  # the refetch starts from scratch
    assert any("!= expected" in note for note in result.notes)


def test_corrupted_existing_file_is_replaced(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    (tmp_path / "thing.bin").write_bytes(PAYLOAD[:-1] + b"x")
    result = fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert result.fetched and (tmp_path / "thing.bin").read_bytes() == PAYLOAD
    assert any("corrupt" in note for note in result.notes)


def test_persistently_corrupt_source_fails_and_leaves_nothing(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    script.corrupt_always.add("thing.bin")
    with pytest.raises(DownloadError, match="sha256 mismatch x2"):
        fetch_verified(resource(urls=(f"{base}/thing.bin",)), config(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no part file, no lock file


def test_second_url_is_tried_when_the_first_is_gone(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    res = resource(urls=(f"{base}/missing.bin", f"{base}/thing.bin"))
    result = fetch_verified(res, config(tmp_path))
    assert result.verified and result.source == f"{base}/thing.bin"


def test_unpinned_checksum_is_computed_and_reported_unverified(tmp_path: Path, server) -> None:
    base, script = server
    script.files["thing.bin"] = PAYLOAD
    res = resource(urls=(f"{base}/thing.bin",), sha256=None)
    result = fetch_verified(res, config(tmp_path))
    assert not result.verified and result.sha256 == PAYLOAD_SHA
    pinned = fetch_verified(res, config(tmp_path, sha256=PAYLOAD_SHA))
    assert pinned.verified and not pinned.fetched
    with pytest.raises(DownloadError):  # a wrong pin rejects the file (and every refetch)
        fetch_verified(res, config(tmp_path, sha256="0" * 64, retries=0))
    assert not (tmp_path / "thing.bin").exists()


def test_mirror_folder_and_mirror_url(tmp_path: Path, server) -> None:
    base, script = server
    script.files["sub/thing.bin"] = PAYLOAD
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "thing.bin").write_bytes(PAYLOAD)
    res = resource(urls=("https://example.invalid/never",))
    from_dir = fetch_verified(res, config(tmp_path / "a", mirror=str(mirror)))
    assert from_dir.verified and from_dir.source == str(mirror / "thing.bin")
    from_url = fetch_verified(res, config(tmp_path / "b", mirror=f"{base}/sub/"))
    assert from_url.verified and from_url.source == f"{base}/sub/thing.bin"
    with pytest.raises(DownloadError, match="not in the mirror"):
        fetch_verified(resource(filename="other.bin"), config(tmp_path / "c", mirror=str(mirror)))
    with pytest.raises(DownloadError, match="unsupported scheme"):
        fetch_verified(res, config(tmp_path / "d", mirror="ftp://host/x"))


def test_a_second_concurrent_download_of_the_same_file_fails_clearly(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom kemp_kg import schema\nwith schema.output_lock(sys.argv[1]):\n"
            "    print('locked', flush=True); sys.stdin.readline()",
            str(tmp_path / "thing.bin"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OSError, match="another kemp process is writing"):
            fetch_verified(resource(urls=("http://127.0.0.1:9/x",)), config(tmp_path))
    finally:
        holder.communicate("\n", timeout=30)
    assert not (tmp_path / "thing.bin.part").exists()


# ------------------------------------------------------------------------------------------------
# Archives


def make_tar(path: Path, members: list[tuple[str, bytes | None, bytes]]) -> Path:
    """members: (name, data or None for special, type) with type in tarfile type constants."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE or kind == tarfile.LNKTYPE:
                info.linkname = data.decode() if data else "/etc/passwd"
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
            else:
                tar.addfile(info)
    return path


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def test_tar_extracts_with_strip_components_and_marker(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ed.tar.gz",
        [
            ("empatheticdialogues/", None, tarfile.DIRTYPE),
            ("empatheticdialogues/train.csv", b"conv_id,utterance_idx\n", tarfile.REGTYPE),
            ("./empatheticdialogues/sub/valid.csv", b"x\n", tarfile.REGTYPE),
        ],
    )
    out = extract_archive(
        archive,
        tmp_path / "ed",
        kind="tar",
        strip_components=1,
        expect_members=("train.csv", "sub/valid.csv"),
        archive_sha256="s",
    )
    assert (out / "train.csv").read_bytes() == b"conv_id,utterance_idx\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's private 0700
    assert json.loads((out / dl.EXTRACT_MARKER).read_text())["sha256"] == "s"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


MALICIOUS_TARS = {
    "dotdot": [("../evil.txt", b"pwned", tarfile.REGTYPE)],
    "nested-dotdot": [("a/b/../../../evil.txt", b"pwned", tarfile.REGTYPE)],
    "absolute": [("/tmp/kemp-evil.txt", b"pwned", tarfile.REGTYPE)],
    "symlink-out": [
        ("link", b"/etc", tarfile.SYMTYPE),
        ("link/evil.txt", b"pwned", tarfile.REGTYPE),
    ],
    "symlink-relative": [("link", b"../../..", tarfile.SYMTYPE)],
    "hardlink-out": [("hard", b"/etc/passwd", tarfile.LNKTYPE)],
    "device": [("dev", None, tarfile.CHRTYPE)],
    "fifo": [("pipe", None, tarfile.FIFOTYPE)],
    "backslash": [("..\\evil.txt", b"pwned", tarfile.REGTYPE)],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_TARS))
def test_malicious_tar_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    members = [("ok.txt", b"fine", tarfile.REGTYPE), *MALICIOUS_TARS[case]]
    archive = make_tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(ArchiveError, match="refus"):
        extract_archive(archive, work / "out", kind="tar")
    assert list(work.iterdir()) == []  # no final folder, no temp folder
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/kemp-evil.txt").exists()


MALICIOUS_ZIPS = {
    "dotdot": [("../evil.txt", b"pwned", stat.S_IFREG | 0o644)],
    "absolute": [("/tmp/kemp-evil.txt", b"pwned", stat.S_IFREG | 0o644)],
    "drive": [("C:/evil.txt", b"pwned", stat.S_IFREG | 0o644)],
    "symlink": [("link", b"/etc/passwd", stat.S_IFLNK | 0o777)],
    "bomb": [("big.txt", b"\0" * 300_000, stat.S_IFREG | 0o644)],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_ZIPS))
def test_malicious_zip_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(
        tmp_path / "bad.zip", [("ok.txt", b"fine", stat.S_IFREG | 0o644), *MALICIOUS_ZIPS[case]]
    )
    with pytest.raises(ArchiveError, match="refus"):
        extract_archive(archive, work / "out", kind="zip", max_bytes=100_000)
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/kemp-evil.txt").exists()


def test_zip_members_with_permission_bits_only_are_files(tmp_path: Path) -> None:
    """Zip tools that store 0o600 without the file-type bits (issue 12): a file, not a device."""
    archive = make_zip(tmp_path / "plain.zip", [("a.txt", b"alpha", 0o600), ("b.txt", b"beta", 0)])
    out = extract_archive(archive, tmp_path / "out", kind="zip", max_bytes=100_000)
    assert (out / "a.txt").read_bytes() == b"alpha" and (out / "b.txt").read_bytes() == b"beta"


def test_member_count_is_capped(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "many.zip", [(f"f{i}", b"", stat.S_IFREG | 0o644) for i in range(20)]
    )
    with pytest.raises(ArchiveError, match="more than 10 members"):
        extract_archive(archive, tmp_path / "out", kind="zip", max_members=10)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_truncated_archive_is_an_archive_error_and_keeps_the_old_folder(
    tmp_path: Path, kind: str
) -> None:
    data = os.urandom(200_000)
    if kind == "tar":
        archive = make_tar(tmp_path / "a.tar.gz", [("d/big.bin", data, tarfile.REGTYPE)])
    else:
        archive = make_zip(tmp_path / "a.zip", [("d/big.bin", data, stat.S_IFREG | 0o644)])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    old = tmp_path / "out"
    old.mkdir()
    (old / "keep.txt").write_text("previous extraction")
    with pytest.raises(ArchiveError, match="corrupt archive"):
        extract_archive(archive, old, kind=kind)
    assert (old / "keep.txt").read_text() == "previous extraction"
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name, "out"]


def test_missing_expected_member_is_an_error(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", [("top/other.txt", b"x", stat.S_IFREG | 0o644)])
    with pytest.raises(ArchiveError, match="lacks"):
        extract_archive(
            archive,
            tmp_path / "out",
            kind="zip",
            strip_components=1,
            expect_members=("NRC-VAD-Lexicon.txt",),
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "strip", "expected"),
    [
        ("a/b.txt", 0, "a/b.txt"),
        ("a/b.txt", 1, "b.txt"),
        ("./a//b.txt", 1, "b.txt"),
        ("a/", 1, None),
    ],
)
def test_safe_member_path_accepts_plain_relative_names(
    name: str, strip: int, expected: str | None
) -> None:
    result = safe_member_path(name, strip)
    assert (str(result) if result else None) == expected


# ------------------------------------------------------------------------------------------------
# End to end through the command line (one line, exit code, no traceback)


def kemp_kg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("kemp-kg")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_downloads_from_a_mirror_folder_and_reports_unverified(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    lexicon = b"Word\tValence\tArousal\tDominance\nhappy\t1.0\t0.735\t0.772\n"
    make_zip(
        mirror / "NRC-VAD-Lexicon-Aug2018Release.zip",
        [("NRC-VAD-Lexicon-Aug2018Release/NRC-VAD-Lexicon.txt", lexicon, stat.S_IFREG | 0o644)],
    )
    run = kemp_kg("download", "nrc-vad", "--to", "data", "--mirror", str(mirror), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "data" / "nrc_vad" / "NRC-VAD-Lexicon.txt").read_bytes() == lexicon
    digest = hashlib.sha256(
        (mirror / "NRC-VAD-Lexicon-Aug2018Release.zip").read_bytes()
    ).hexdigest()
    assert "UNVERIFIED" in run.stdout and f"--sha256 {digest}" in run.stdout.replace("\n", "")


def test_cli_checksum_mismatch_is_one_line_and_nonzero(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "empatheticdialogues.tar.gz").write_bytes(b"not the real archive")
    run = kemp_kg(
        "download", "empathetic-dialogues", "--to", "data", "--mirror", str(mirror), cwd=tmp_path
    )
    assert run.returncode == DownloadError.exit_code
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sha256 mismatch" in errors[0], run.stderr
    assert not (tmp_path / "data" / "empatheticdialogues.tar.gz").exists()


def test_cli_rejects_a_malformed_sha256_without_traceback(tmp_path: Path) -> None:
    run = kemp_kg("download", "glove", "--sha256", "xyz", "--to", "data", cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr and "64 hex" in run.stderr


@pytest.mark.parametrize(
    "name", ["../x", "a/../../x", "a/..", "/etc/passwd", "C:/x", "c:x", "..\\x", "a\x00b"]
)
def test_safe_member_path_refuses_escaping_names(name: str) -> None:
    with pytest.raises(ArchiveError):
        safe_member_path(name)
