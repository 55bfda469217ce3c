"""A run's claim on its staging folder: renewed while the run lives, silent once released, and
judged alive or gone by process (same host) or lease (another host)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time

from pipelines import claims


def test_a_claim_is_renewed_until_released(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "RENEW_S", 0.1)
    staging = str(tmp_path / "staging")
    claim = claims.Claim.take(staging)
    try:
        deadline = time.monotonic() + 10
        while claims.read(staging)["renewed"] == claim.record["started"] and time.monotonic() < deadline:
            time.sleep(0.1)  # renewals carry whole seconds: wait for the next second
        assert claims.read(staging)["renewed"] > claim.record["started"]
        assert claim.still_ours()
    finally:
        claim.release()
    (tmp_path / "staging" / claims.CLAIM_PATH).unlink()
    time.sleep(0.4)
    assert claims.read(staging) is None  # no renewal after release


def test_a_renewer_stops_once_its_claim_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "RENEW_S", 0.05)
    staging = str(tmp_path / "staging")
    claim = claims.Claim.take(staging)
    other = {**claim.record, "run_id": "another-run"}
    (tmp_path / "staging" / claims.CLAIM_PATH).write_text(json.dumps(other))
    time.sleep(0.3)
    assert claims.read(staging) == other and not claim.still_ours()
    claim.release()


def test_owner_alive_by_process_on_this_host_and_by_lease_elsewhere():
    me = claims.this_process()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = {**me, "pid": proc.pid, "start_tick": claims._start_tick(proc.pid), "renewed": "2000-01-01T00:00:00+00:00"}
        assert "still running" in claims.owner_alive(running)  # an old lease does not matter on this host
        assert claims.owner_alive({**running, "start_tick": running["start_tick"] + 1}) is None  # pid reused
    finally:
        proc.kill()
        proc.wait()
    assert claims.owner_alive(running) is None  # the process is gone
    now = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)
    elsewhere = {"host": "builder-7", "boot_id": "x", "pid": 1, "renewed": "2026-11-26T11:55:00+00:00"}
    assert "renewed its claim 300 s ago" in claims.owner_alive(elsewhere, now)
    assert claims.owner_alive({**elsewhere, "renewed": "2026-11-26T11:49:59+00:00"}, now) is None
    assert claims.owner_alive({**elsewhere, "renewed": "not a time"}, now) is None


def test_a_rerun_in_the_same_process_takes_over_from_its_failed_run(tmp_path):
    """A driver (a notebook, a test) whose run failed before publishing reruns the version: its own
    earlier claim is stale, not another live run."""
    import pytest

    from pipelines.run import Run

    output = str(tmp_path / "ds" / "v1")
    with pytest.raises(RuntimeError, match="the job failed"):
        with Run(output) as failed:
            first = claims.read(failed.staging)
            (tmp_path / "ds" / "_staging" / "v1" / "train-00000-of-00001.arrow").write_bytes(b"half a shard")
            raise RuntimeError("the job failed")
    assert claims.read(failed.staging)["run_id"] == first["run_id"]  # the failed run's folder stays
    with Run(output) as rerun:
        assert rerun.staging == failed.staging
        assert not (tmp_path / "ds" / "_staging" / "v1" / "train-00000-of-00001.arrow").exists()
        assert claims.read(rerun.staging)["run_id"] != first["run_id"]


def test_a_renewal_replaces_the_claim_without_a_moment_without_one(tmp_path):
    """A reader (another run deciding whether the staging folder is taken, or the renewer itself)
    never finds the claim missing while it is rewritten: a missing claim reads as a dead run."""
    import threading

    staging = str(tmp_path / "staging")
    claim = claims.Claim.take(staging)
    claim.release()
    missing, done = [], threading.Event()

    def reader():
        while not done.is_set():
            if claims.read(staging) is None:
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            claims._write(staging, {**claim.record, "renewed": str(i)})
    finally:
        done.set()
        thread.join()
    assert not missing and claims.read(staging)["renewed"] == "299"
