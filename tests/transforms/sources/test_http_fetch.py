"""Archive downloads against a real HTTP server on loopback (tests/conftest.py's ArchiveServer):
transient failures are retried from the start of the archive, permanent ones are their own rejects,
and the token goes to the token hosts only."""

from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import RepoSpec
from transforms.sources.archive_reader import ReadRepoArchives, decode_source
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, iter_members
from transforms.sources.http_fetch import Fetcher, FetchError, FetchPolicy

SIX = "six-1.16.0.tar.gz"
LIMITS = ArchiveLimits()
FAST = FetchPolicy(retries=2, backoff_s=0.01, backoff_max_s=0.05, connect_timeout_s=2.0, read_timeout_s=0.3)
TOKEN = "ghp_test-token-value-0123456789"


def local_read(archive_server, name: str, repo_name: str):
    """(document ids, member rejects) of a sample archive read from disk: what one whole read gives."""
    docs, rejects = [], []
    for member in iter_members(str(archive_server.folder / name), LIMITS):
        reason = member.reason or decode_source(member.data)[1]
        if reason is None:
            docs.append(f"{repo_name}:{member.path}")
        else:
            rejects.append((f"{repo_name}:{member.path}", "read", reason))
    return docs, rejects


def repo(name: str, url: str) -> RepoSpec:
    return RepoSpec(repo_name=name, stars=10, license="mit", archive=url, ref="v1", source="m.jsonl:1")


def read_archives(beam_helpers, repos, policy=FAST):
    """A real pipeline reading ``repos``: (pipeline, docs, rejects, archives)."""
    new_pipeline, _, _ = beam_helpers
    p = new_pipeline()
    docs, rejects, archives = p | beam.Create(repos) | ReadRepoArchives(LIMITS, policy)
    return p, docs, rejects, archives


def test_503_twice_then_the_archive_is_read_once(archive_server, beam_helpers):
    _, run, counters = beam_helpers
    archive_server.script(f"/a/{SIX}", ("status", 503, {}), ("status", 503, {"Retry-After": "0"}), "ok")
    ids, member_rejects = local_read(archive_server, SIX, "benjaminp/six")
    p, docs, rejects, archives = read_archives(beam_helpers, [repo("benjaminp/six", archive_server.url(f"/a/{SIX}"))])
    assert_that(docs | beam.Map(lambda d: d.id), equal_to(ids), label="docs")  # each exactly once
    assert_that(rejects | beam.Map(lambda r: (r.id, r.stage, r.reason)), equal_to(member_rejects), label="rejects")
    assert_that(archives | beam.Map(lambda a: a[3]), equal_to(["complete"]), label="status")
    result = run(p)
    assert counters(result, "read") == {"archive_retries": 2, "archives_complete": 1, "kept": len(ids),
                                        **_reason_counts(member_rejects)}
    assert len(archive_server.requests) == 3


def _reason_counts(rejects) -> dict:
    counts = {}
    for _, _, reason in rejects:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def test_a_body_cut_short_is_read_again_and_one_always_cut_is_unreadable(archive_server, beam_helpers):
    _, run, counters = beam_helpers
    archive_server.script(f"/once/{SIX}", ("cut",), "ok")
    archive_server.script(f"/always/{SIX}", ("cut",))
    ids, member_rejects = local_read(archive_server, SIX, "once/six")
    p, docs, rejects, archives = read_archives(beam_helpers, [
        repo("once/six", archive_server.url(f"/once/{SIX}")), repo("always/six", archive_server.url(f"/always/{SIX}"))])
    assert_that(docs | beam.Map(lambda d: d.id), equal_to(ids), label="docs")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.stage, r.reason)),
                equal_to(member_rejects + [("always/six", "read", "archive_unreadable")]), label="rejects")
    assert_that(rejects | beam.Filter(lambda r: r.id == "always/six")
                | beam.Map(lambda r: r.detail.startswith("3 attempts, last: ") and "cut short" in r.detail
                           or "IncompleteRead" in r.detail or "ProtocolError" in r.detail),
                equal_to([True]), label="detail")
    assert_that(archives | beam.Map(lambda a: (a[0], a[3])),
                equal_to([("once/six", "complete"), ("always/six", "archive_unreadable")]), label="status")
    result = run(p)
    read = counters(result, "read")
    assert read["archive_retries"] == 1 + 2 and read["archive_unreadable"] == 1 and read["kept"] == len(ids)
    assert "withdrawn" not in read  # nothing of a failed attempt is counted, nor emitted


def test_a_stalled_connection_ends_unreadable_after_the_retries(archive_server, beam_helpers):
    _, run, counters = beam_helpers
    archive_server.script(f"/stall/{SIX}", ("stall",))
    start = time.monotonic()
    p, docs, rejects, _ = read_archives(beam_helpers, [repo("stall/six", archive_server.url(f"/stall/{SIX}"))])
    assert_that(docs, equal_to([]), label="docs")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.reason, r.detail.split(",")[0])),
                equal_to([("stall/six", "archive_unreadable", "3 attempts")]), label="rejects")
    result = run(p)
    assert counters(result, "read") == {"archive_retries": 2, "archive_unreadable": 1}
    assert len(archive_server.requests) == 3
    assert time.monotonic() - start < 15  # three 0.3 s read timeouts, not the server's 30 s stall


def test_404_is_not_found_at_once(archive_server, beam_helpers):
    _, run, counters = beam_helpers
    p, docs, rejects, archives = read_archives(beam_helpers, [repo("gone/repo", archive_server.url("/x/nope.tar.gz"))])
    assert_that(rejects | beam.Map(lambda r: (r.id, r.reason)), equal_to([("gone/repo", "archive_not_found")]))
    assert_that(archives | beam.Map(lambda a: a[3]), equal_to(["archive_not_found"]), label="status")
    result = run(p)
    assert counters(result, "read") == {"archive_not_found": 1}
    assert len(archive_server.requests) == 1  # permanent: no retry


@pytest.mark.parametrize("status, headers, reason, transient", [
    (410, {}, "archive_not_found", False),
    (401, {}, "archive_forbidden", False),
    (403, {}, "archive_forbidden", False),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}, "archive_unreadable", True),
    (418, {}, "archive_http_418", False),
    (429, {"Retry-After": "0"}, "archive_unreadable", True),
    (500, {}, "archive_unreadable", True),
])
def test_statuses_are_classified(archive_server, status, headers, reason, transient):
    archive_server.script(f"/s/{SIX}", ("status", status, headers))
    with pytest.raises(FetchError) as err:
        Fetcher(FAST).open(archive_server.url(f"/s/{SIX}"))
    assert (err.value.reason, err.value.transient) == (reason, transient)


def test_retry_after_is_honoured_within_the_bound():
    policy = FetchPolicy(backoff_s=0.01, backoff_max_s=2.0)
    assert all(0 <= policy.delay(3) <= 0.08 for _ in range(50))  # full jitter under base * 2**retry
    assert all(1.5 <= policy.delay(0, retry_after=1.5) <= 2.0 for _ in range(50))
    assert policy.delay(0, retry_after=3600) == 2.0


def test_the_token_goes_to_token_hosts_and_never_across_a_redirect(archive_server, monkeypatch):
    monkeypatch.setenv("SLUICE_TEST_TOKEN", TOKEN)
    # Served at localhost, redirected to 127.0.0.1: another host, which gets no token even when listed.
    for hosts in (("localhost",), ("localhost", "127.0.0.1")):
        archive_server.requests.clear()
        archive_server.script(f"/r/{SIX}", ("redirect", archive_server.url(f"/a/{SIX}")))
        policy = FetchPolicy(token_env="SLUICE_TEST_TOKEN", token_hosts=hosts, read_timeout_s=5)
        fetcher = Fetcher.start(policy)
        members = list(iter_members(archive_server.url(f"/r/{SIX}", host="localhost"), LIMITS, fetcher=fetcher))
        assert members
        port = archive_server.port
        assert archive_server.requests == [(f"/r/{SIX}", f"localhost:{port}", f"Bearer {TOKEN}"),
                                           (f"/a/{SIX}", f"127.0.0.1:{port}", None)]
    # A host not listed never gets it; a redirect within the first host keeps it.
    archive_server.requests.clear()
    archive_server.script(f"/same/{SIX}", ("redirect", f"/a/{SIX}"))
    fetcher = Fetcher.start(FetchPolicy(token_env="SLUICE_TEST_TOKEN", token_hosts=("localhost",)))
    fetcher.open(archive_server.url(f"/same/{SIX}", host="localhost")).close()
    fetcher.open(archive_server.url(f"/a/{SIX}")).close()
    assert [auth for _, _, auth in archive_server.requests] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}", None]


def test_too_many_redirects_is_permanent(archive_server):
    archive_server.script("/loop", ("redirect", "/loop"))
    with pytest.raises(FetchError) as err:
        Fetcher(FetchPolicy(max_redirects=3)).open(archive_server.url("/loop"))
    assert err.value.reason == "archive_too_many_redirects" and len(archive_server.requests) == 4


def test_a_missing_token_source_names_it_not_a_value(tmp_path, monkeypatch):
    monkeypatch.delenv("SLUICE_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ValueError, match="SLUICE_NO_SUCH_TOKEN is not set"):
        Fetcher.start(FetchPolicy(token_env="SLUICE_NO_SUCH_TOKEN"))
    with pytest.raises(ValueError, match="cannot read"):
        Fetcher.start(FetchPolicy(token_file=str(tmp_path / "missing")))
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    assert Fetcher.start(FetchPolicy(token_file=str(secret)))._token == TOKEN


def test_license_detection_retries_from_the_start(archive_server):
    from transforms.sources.archive_stream import iter_license_files

    archive_server.script(f"/l/{SIX}", ("cut",), ("status", 502, {}), "ok")
    retries = []
    files = iter_license_files(archive_server.url(f"/l/{SIX}"), 256 * 1024, Fetcher(FAST), retries.append)
    assert [name for name, _ in files] == ["LICENSE"] and len(retries) == 2
    archive_server.script(f"/l/{SIX}", ("status", 503, {}))
    with pytest.raises(ArchiveError) as err:
        iter_license_files(archive_server.url(f"/l/{SIX}"), 256 * 1024, Fetcher(FAST))
    assert err.value.reason == "archive_unreadable" and err.value.detail.startswith("3 attempts")
