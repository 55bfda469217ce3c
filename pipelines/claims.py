"""Who owns a version's staging folder while a run writes it, so two runs of one version never mix.

A run writes ``STAGING/_run/claim.json`` before anything else: a random run id, the host, the
process id and the process's start (boot id and start tick, so a reused pid is not mistaken for
the owner), and when the claim was last renewed. A daemon thread renews it every ``RENEW_S``
seconds while the run's driver lives. Another run of the same version takes the folder over only
from an owner that is gone:

- on the same host: the owner's process no longer exists (exact, at once);
- from another host: its claim was not renewed for ``LEASE_S`` seconds.

A Flex Template launcher exits once its job is submitted, so a submitted job's claim lapses
after ``LEASE_S``; after that the scheduler's one run at a time and the finalize step's job id
check guard it. Publishing first checks that the claim is still this run's, so a run that lost
its folder to another never publishes.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import threading
import uuid
from typing import Optional

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

CLAIM_PATH = "_run/claim.json"
RENEW_S = 60.0
LEASE_S = 600.0



def _path(staging: str) -> str:
    return f"{staging.rstrip('/')}/{CLAIM_PATH}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _boot_id() -> Optional[str]:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _start_tick(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_process() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": pid, "start_tick": _start_tick(pid)}


def is_this_process(claim: dict) -> bool:
    me = this_process()
    return all(claim.get(key) == me[key] for key in ("host", "boot_id", "pid", "start_tick"))


def read(staging: str) -> Optional[dict]:
    path = _path(staging)
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None  # a torn or foreign file is no claim


def _write(staging: str, claim: dict) -> None:
    path = _path(staging)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    with FileSystems.create(temporary) as handle:
        handle.write(json.dumps(claim, sort_keys=True).encode("utf-8"))
    try:  # replaces the claim in one step (os.rename locally, copy-over on GCS): never a moment without one
        FileSystems.rename([temporary], [path])
    except BeamIOError:  # a filesystem whose rename will not replace: delete, then rename
        if not FileSystems.exists(path):
            raise
        FileSystems.delete([path])
        FileSystems.rename([temporary], [path])


def owner_alive(claim: dict, now: Optional[datetime.datetime] = None) -> Optional[str]:
    """Why ``claim``'s run must be taken for alive (a sentence for the error), or None if it is gone."""
    me = this_process()
    if claim.get("host") == me["host"] and claim.get("boot_id") == me["boot_id"]:
        pid = claim.get("pid")
        if not isinstance(pid, int) or not _process_exists(pid):
            return None
        if claim.get("start_tick") is not None and _start_tick(pid) != claim["start_tick"]:
            return None  # the pid was reused by another process
        return f"its process {pid} on this host is still running"
    try:
        renewed = datetime.datetime.fromisoformat(claim["renewed"])
    except (KeyError, TypeError, ValueError):
        return None
    age = ((now or _now()) - renewed).total_seconds()
    if age < LEASE_S:
        return (f"it runs on host {claim.get('host')} (pid {claim.get('pid')}) and renewed its claim"
                f" {int(age)} s ago; a claim lapses {int(LEASE_S)} s after its last renewal")
    return None


class Claim:
    """This run's claim on a staging folder, renewed by a daemon thread until ``release``."""

    def __init__(self, staging: str, record: dict):
        self.staging = staging.rstrip("/")
        self.record = record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="sluice-claim", daemon=True)

    @classmethod
    def take(cls, staging: str) -> "Claim":
        """Write this run's claim into the (empty) staging folder and keep renewing it."""
        record = {**this_process(), "run_id": uuid.uuid4().hex, "started": _now().isoformat(timespec="seconds")}
        record["renewed"] = record["started"]
        _write(staging, record)
        claim = cls(staging, record)
        claim._thread.start()
        return claim

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                current = read(self.staging)
                if not current or current.get("run_id") != self.run_id:
                    return  # taken over: publish will refuse
                _write(self.staging, {**self.record, "renewed": _now().isoformat(timespec="seconds")})
            except Exception as err:  # noqa: BLE001 - a failed renewal (a storage hiccup) is retried next time
                logging.warning("could not renew the claim on %s (retrying in %.0f s): %s",
                                self.staging, RENEW_S, err)

    def still_ours(self) -> bool:
        current = read(self.staging)
        return bool(current) and current.get("run_id") == self.run_id

    def release(self) -> None:
        """Stop renewing, and wait until no renewal is under way (the claim file then goes with the
        staging folder's ``_run/`` at publish, and no late renewal can write it back)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)


def staging_status(fs, folder: str) -> str:
    """A staging folder's run as ``sluice datasets list`` and ``gc`` show it: still running (its
    claim's owner lives) or not. ``fs`` is the fsspec filesystem of ``folder``."""
    try:
        with fs.open(f"{folder}/{CLAIM_PATH}", "rb") as handle:
            claim = json.loads(handle.read())
    except (OSError, ValueError):
        claim = None
    if isinstance(claim, dict) and owner_alive(claim):
        return f"running (pid {claim.get('pid')} on {claim.get('host')})"
    return "staging (unfinished run)"
