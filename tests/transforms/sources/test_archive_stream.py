"""Streaming archives safely: hostile members, corrupt and truncated archives, bombs, limits,
the archive fingerprint and license-file discovery, on crafted and real sample archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import (
    ArchiveError,
    ArchiveLimits,
    ArchiveReport,
    Member,
    is_license_file,
    iter_license_files,
    iter_members,
)

ROOT = Path(__file__).resolve().parents[3]
ARCHIVES = ROOT / "samples" / "mono" / "archives"
SAMPLE_ARCHIVES = sorted(ARCHIVES.glob("*.tar.gz"))
LIMITS = ArchiveLimits()


def _tar_entries(path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getmembers()


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_sample_archives_present():
    assert len(SAMPLE_ARCHIVES) == 14


def test_hostile_archive_members_are_classified_and_nothing_touches_disk(tmp_path, make_tar,
                                                                         monkeypatch):
    archive = make_tar("hostile.tar.gz", [
        ("pkg", b"", tarfile.DIRTYPE),
        ("pkg/ok.py", b"x = 1\n"),
        ("../evil.py", b"import os\n"),
        ("pkg/../../escape.py", b"import os\n"),
        ("/etc/passwd", b"root:x:0:0\n"),
        ("pkg/link", b"", tarfile.SYMTYPE, "/etc/passwd"),
        ("pkg/hard", b"", tarfile.LNKTYPE, "pkg/ok.py"),
        ("pkg/dev", b"", tarfile.CHRTYPE),
        ("pkg/fifo", b"", tarfile.FIFOTYPE),
        ("pkg/huge.py", b"#" * 5000),
        ("pkg/exact.py", b"#" * 4096),
        ("pkg/latin1.py", "s = 'café'\n".encode("latin-1")),
        ("pkg/blob.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("other/x.py", b"y = 2\n"),
        ("toplevel.py", b"z = 3\n"),
    ])
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # "../evil.py" written relative to the cwd would land in tmp_path
    before_tmp, before_cwd = _listing(tmp_path), os.listdir(ROOT)

    members = list(iter_members(str(archive), ArchiveLimits(max_file_bytes=4096)))

    assert _listing(tmp_path) == before_tmp
    assert os.listdir(ROOT) == before_cwd
    got = [(m.path, m.reason) for m in members]
    assert got == [
        ("ok.py", None),
        ("../evil.py", "path_traversal"),
        ("pkg/../../escape.py", "path_traversal"),
        ("/etc/passwd", "absolute_path"),
        ("pkg/link", "link"),
        ("pkg/hard", "link"),
        ("pkg/dev", "device"),
        ("pkg/fifo", "device"),
        ("huge.py", "too_large"),
        ("exact.py", None),
        ("latin1.py", None),
        ("blob.bin", None),
        (got[12][0], "outside_top_level"),
        ("toplevel.py", "outside_top_level"),
    ]
    by_path = {m.path: m for m in members}
    for skipped in members:
        if skipped.reason is not None:
            assert skipped.data is None
    assert by_path["pkg/link"].detail == "pkg/link -> /etc/passwd"
    assert by_path["pkg/hard"].detail == "pkg/hard -> pkg/ok.py"
    assert by_path["huge.py"].detail == "5000 bytes"
    assert members[12].detail == "other/x.py"
    assert by_path["ok.py"].data == b"x = 1\n"
    assert by_path["exact.py"].data == b"#" * 4096
    # Text decoding is the reader's job: the bytes come through intact and are classified there.
    assert decode_source(by_path["latin1.py"].data) == (None, "invalid_utf8")
    assert decode_source(by_path["blob.bin"].data) == (None, "binary")
    assert decode_source(by_path["ok.py"].data) == ("x = 1\n", None)


def test_member_outside_top_level_keeps_its_full_name(make_tar):
    # Its id must not collide with the kept file "pkg/ok.py" (both would be "<repo>:ok.py").
    archive = make_tar("two_tops.tar.gz", [("pkg/ok.py", b"a\n"), ("other/ok.py", b"b\n")])
    members = list(iter_members(str(archive), LIMITS))
    assert [(m.path, m.reason) for m in members] == [
        ("ok.py", None), ("other/ok.py", "outside_top_level")]


def test_want_skips_reading_unwanted_files_but_still_reports_skips(make_tar):
    archive = make_tar("want.tar.gz", [
        ("pkg/a.py", b"a\n"), ("pkg/README.md", b"# r\n"), ("pkg/l", b"", tarfile.SYMTYPE, "a.py"),
        ("pkg/sub/b.py", b"b\n"),
    ])
    members = list(iter_members(str(archive), LIMITS, want=lambda path: path.endswith(".py")))
    assert [(m.path, m.reason, m.data) for m in members] == [
        ("a.py", None, b"a\n"), ("pkg/l", "link", None), ("sub/b.py", None, b"b\n")]


def test_truncated_real_archive_raises_after_yielding_intact_members(tmp_path):
    source = ARCHIVES / "click-8.1.7.tar.gz"
    data = source.read_bytes()
    cut = tmp_path / "click-cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    full = list(iter_members(str(source), LIMITS))

    got = []
    with pytest.raises(ArchiveError) as err:
        for member in iter_members(str(cut), LIMITS):
            got.append(member)
    assert err.value.reason in ("archive_corrupt", "archive_truncated")
    assert 0 < len(got) < len(full)
    assert got == full[: len(got)]  # what was yielded is intact, byte for byte


def test_truncated_inside_a_member_is_an_error_not_a_short_file(tmp_path):
    blob = os.urandom(300_000)  # incompressible: the cut falls inside this member's data
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/a.py")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"a = 1\n"))
        info = tarfile.TarInfo("pkg/big.dat")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(raw.getvalue()[:150_000])
    got = []
    with pytest.raises(ArchiveError) as err:
        for member in iter_members(str(path), LIMITS):
            got.append(member)
    assert err.value.reason in ("archive_corrupt", "archive_truncated")
    assert got == [Member(path="a.py", data=b"a = 1\n")]


def test_not_an_archive_and_missing_file(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a gzip file at all" * 100)
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(junk), LIMITS))
    assert err.value.reason == "archive_corrupt"
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(tmp_path / "missing.tar.gz"), LIMITS))
    assert err.value.reason == "archive_not_found"


def test_declared_size_bomb_is_stopped_before_reading(tmp_path):
    ok = tarfile.TarInfo("pkg/a.py")
    ok.size = 3
    bomb = tarfile.TarInfo("pkg/bomb.py")
    bomb.size = 10 ** 12  # a terabyte declared; the archive holds none of it
    raw = ok.tobuf(format=tarfile.PAX_FORMAT) + b"ab\n".ljust(512, b"\0") + bomb.tobuf(
        format=tarfile.PAX_FORMAT) + b"x" * 100
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(raw))
    got = []
    with pytest.raises(ArchiveError) as err:
        for member in iter_members(str(path), LIMITS):
            got.append(member)
    # Reading the member would have hit the end of the data (archive_corrupt/truncated) instead.
    assert err.value.reason == "archive_too_large"
    assert got == [Member(path="a.py", data=b"ab\n")]


def test_archive_over_max_archive_bytes_is_not_decompressed(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/zeros.py")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    path = tmp_path / "zeros.tar.gz"
    path.write_bytes(raw.getvalue())
    report = ArchiveReport()
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), ArchiveLimits(max_archive_bytes=1 << 20), report))
    assert err.value.reason == "archive_too_large"
    assert report.compressed_bytes < path.stat().st_size / 2
    # The same archive within the limit reads fine, the file skipped as too large but the sum fine.
    members = list(iter_members(str(path), ArchiveLimits(max_archive_bytes=8 << 20)))
    assert [(m.path, m.reason) for m in members] == [("zeros.py", "too_large")]


def test_max_members(make_tar):
    archive = make_tar("many.tar.gz", [(f"pkg/f{i}.py", b"x\n") for i in range(5)])
    assert len(list(iter_members(str(archive), ArchiveLimits(max_members=5)))) == 5
    got = []
    with pytest.raises(ArchiveError) as err:
        for member in iter_members(str(archive), ArchiveLimits(max_members=3)):
            got.append(member)
    assert err.value.reason == "archive_too_many_members"
    assert [m.path for m in got] == ["f0.py", "f1.py", "f2.py"]


@pytest.mark.parametrize("archive", SAMPLE_ARCHIVES, ids=lambda p: p.name)
def test_report_fingerprints_real_archives(archive):
    report = ArchiveReport()
    members = list(iter_members(str(archive), LIMITS, report))
    data = archive.read_bytes()
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert report.compressed_bytes == len(data)
    entries = _tar_entries(archive)
    assert report.members == len(entries)
    regular = [e for e in entries if e.isreg()]
    assert len(members) == len(regular)
    assert all(m.reason is None for m in members)  # sdists are clean
    first = regular[0]
    assert members[0].path == first.name.split("/", 1)[1]


def _tar_then_gzip(extra: bytes) -> tuple[bytes, list[Member]]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("pkg/a.py")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"a = 1\n"))
    return gzip.compress(raw.getvalue() + extra, mtime=0), [Member(path="a.py", data=b"a = 1\n")]


def _ordinary_tar_gz(size: int) -> tuple[bytes, list[Member]]:
    # Written by tarfile itself, nothing after the end-of-archive blocks but tar's own record
    # padding and the gzip trailer; incompressible content makes the compressed length stable.
    content = random.Random(size).randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/a.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(content))
    return raw.getvalue(), [Member(path="a.bin", data=content)]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: _ordinary_tar_gz(10603), id="ordinary_tarfile_archive_10603"),
        pytest.param(lambda: _ordinary_tar_gz(20788), id="ordinary_tarfile_archive_20788"),
        pytest.param(lambda: _tar_then_gzip(bytes(1 << 20)), id="zero_padding"),
        pytest.param(lambda: _tar_then_gzip(random.Random(0).randbytes(100_000)), id="appended_bytes"),
    ],
)
def test_report_sha256_is_the_whole_file(tmp_path, build):
    # The fingerprint is the archive file's sha256 (the manifest records it); the tar reader stops
    # at the end-of-archive blocks, but the bytes after them (tar record padding, the gzip trailer,
    # anything appended) are part of the file all the same.
    data, expected_members = build()
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(data)
    report = ArchiveReport()
    assert list(iter_members(str(path), LIMITS, report)) == expected_members
    assert report.compressed_bytes == len(data)
    assert report.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "path, expected",
    [("LICENSE", True), ("LICENSE.txt", True), ("license.md", True), ("LICENCE", True),
     ("COPYING", True), ("COPYING.LESSER", True), ("LICENSE-MIT", True),
     ("docs/LICENSE", False), ("MYLICENSE", False), ("README.md", False), ("", False)],
)
def test_is_license_file(path, expected):
    assert is_license_file(path) is expected


@pytest.mark.parametrize("archive", SAMPLE_ARCHIVES, ids=lambda p: p.name)
def test_iter_license_files_on_real_archives(archive, sample_repos, sources):
    repo = next(r for r in sample_repos if os.path.samefile(r.archive, archive))
    expected_name = sources[repo.repo_name]["license file"]
    files = iter_license_files(str(archive), 256 * 1024)
    assert [name for name, _ in files] == [expected_name]
    with tarfile.open(archive, "r:gz") as tar:
        top = tar.getmembers()[0].name.split("/", 1)[0]
        expected_text = tar.extractfile(f"{top}/{expected_name}").read().decode("utf-8")
    assert files[0][1] == expected_text
    # Over the size limit a license file is skipped, not truncated.
    assert iter_license_files(str(archive), len(expected_text.encode()) - 1) == []


def test_iter_license_files_sorted_and_top_level_only(make_tar):
    archive = make_tar("lic.tar.gz", [
        ("pkg/LICENSE-MIT", b"mit\n"), ("pkg/COPYING", b"gpl\n"), ("pkg/LICENSE-APACHE", b"apache\n"),
        ("pkg/vendor/LICENSE", b"nested\n"), ("pkg/setup.py", b"x\n"),
    ])
    assert iter_license_files(str(archive), 1024) == [
        ("COPYING", "gpl\n"), ("LICENSE-APACHE", "apache\n"), ("LICENSE-MIT", "mit\n")]
