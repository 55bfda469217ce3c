"""The OS sandbox (bwrap) against the attacks of issue 14, as root and as an unprivileged user: each
has no effect outside, and the scorer finishes with its results file. Without bwrap, scoring refuses
in one line unless given --unsafe_no_sandbox."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from training.eval import sandbox

ROOT = pathlib.Path(__file__).resolve().parents[2]
USER = "sbxtest"  # the unprivileged user the scorer runs as (created when missing and we are root)

# Programs a hostile model could write. TARGETS is a folder outside the sandbox that anyone may write
# to, holding a file "victim"; MARKER is in the argv of every process an attack starts.
BYPASS_HOOK = """import subprocess, sys, types
# subprocess without its audit event: straight to _posixsubprocess.fork_exec
fake = types.ModuleType("sys"); fake.__dict__.update(sys.__dict__); fake.audit = lambda *a: None
subprocess.sys = fake
"""
ATTACKS = {
    "fork_exec": BYPASS_HOOK + """
for argv in (["/bin/sh", "-c", "echo x > TARGETS/fork_exec_sh"],
             [sys.executable, "-c", "open('TARGETS/fork_exec_py', 'w')", "MARKER"]):
    try:
        subprocess.run(argv)
    except OSError as err:
        print(err)
""",
    "setsid_survivor": BYPASS_HOOK + """
import time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30); open('TARGETS/survivor', 'w')", "MARKER"],
                 start_new_session=True)
time.sleep(0.5)
""",
    # Only the parent (the scorer, without bwrap) and PID 1: never every process in /proc, which
    # would reach the machine's other processes if the sandbox ever failed.
    "pidfd_kill": """import os, signal, time
for pid in (os.getppid(), 1):
    try:
        signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)
    except OSError as err:
        print(err)
time.sleep(1)
""",
    "dir_fd_writes": """import os, sqlite3
here = os.open(".", os.O_RDONLY)
for folder in ("TARGETS", ".."):  # without bwrap, ".." is the scorer's TMPDIR
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        print(err)
        continue
    steps = (lambda: os.close(os.open("dirfd_open", os.O_WRONLY | os.O_CREAT, dir_fd=fd)),
             lambda: os.mkdir("dirfd_mkdir", dir_fd=fd),
             lambda: os.unlink("victim", dir_fd=fd),
             lambda: os.rename("program.py", "dirfd_rename", src_dir_fd=here, dst_dir_fd=fd),
             lambda: os.mkfifo("dirfd_fifo", dir_fd=fd))
    for step in steps:
        try:
            step()
        except OSError as err:
            print(err)
for attempt in (lambda: os.mkfifo("TARGETS/fifo"),
                lambda: sqlite3.connect("TARGETS/db.sqlite").execute("create table t (x)"),
                lambda: sqlite3.connect("file:TARGETS/uri.sqlite?mode=rwc", uri=True).execute("create table t (x)")):
    try:
        attempt()
    except Exception as err:
        print(err)
""",
    # Opened for appending and closed unwritten: had it opened, nothing would change, and the test fails.
    "kernel_settings": """opened = []
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches", "/proc/sys/kernel/modprobe",
             "/proc/sysrq-trigger", "/sys/kernel/uevent_helper"):
    try:
        open(path, "a").close()
        opened.append(path)
    except OSError as err:
        print(err)
raise SystemExit(f"OPENED {opened}")
""",
    "read_secrets": """import os
leak = []
paths = ["/etc/shadow", f"/proc/{os.getppid()}/environ", "/proc/1/environ", "/proc/self/environ",
         *(f"/proc/{p}/environ" for p in os.listdir("/proc") if p.isdigit())]
for path in paths:
    try:
        leak.append(path + "=" + open(path, "rb").read().decode("latin-1").replace("\\0", " ").replace("\\n", " "))
    except OSError as err:
        leak.append(f"{path}: {type(err).__name__}")
print(os.environ)
raise SystemExit("LEAK: " + " | ".join(leak) + " " + repr(dict(os.environ)))
""",
}
PROBLEM = {"task_id": "Attack/0", "prompt": "", "test": "def check(f):\n    pass\n", "entry_point": "print"}
SCORER = """import json, sys
from training.eval import humaneval
print(json.dumps(humaneval.score(sys.argv[1], ks=(1,), problem_file=sys.argv[2], timeout_s=5)))
"""

@pytest.fixture(scope="module")
def unprivileged() -> list:
    """The command prefix that runs as an unprivileged user: [] where we are one already; as root,
    runuser to USER (created when missing), skipped only where no such user can be had."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(USER)
    except KeyError:
        if not shutil.which("useradd"):
            pytest.skip(f"no user {USER} and no useradd to create one")
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create user {USER}: {made.stderr.strip()}")
    runner = shutil.which("runuser")
    if not runner:
        pytest.skip("no runuser to run as an unprivileged user")
    return [runner, "-u", USER, "--"]


def python_for(prefix: list, code: pathlib.Path) -> str:
    """An interpreter the user of ``prefix`` can run the scorer with (root's may live in /root)."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable),
                  os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    for python in candidates:
        ok = subprocess.run(prefix + ["env", f"PYTHONPATH={code}", python, "-c", "import training.eval.humaneval"],
                            capture_output=True, cwd="/")
        if ok.returncode == 0:
            return python
    pytest.skip(f"no Python that {prefix or 'we'} can run the scorer with")


def processes_with(marker: str) -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> pathlib.Path:
    """What the scorer imports (the packages and numpy), where any user can read it: the checkout
    and the virtual environment may not be (e.g. under /root). Hard links where possible."""
    import numpy

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    base = pathlib.Path(tempfile.mkdtemp(prefix="sluice-sandbox-code-"))
    base.chmod(0o755)
    folders = [ROOT / "training", ROOT / "schemas", pathlib.Path(numpy.__file__).parent]
    folders += [f for f in [folders[-1].with_name("numpy.libs")] if f.is_dir()]
    for folder in folders:
        shutil.copytree(folder, base / folder.name, ignore=shutil.ignore_patterns("__pycache__"), copy_function=link)
    for path in [base, *base.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def arena():
    """A folder under /tmp that a hostile program could write to if it escaped, and the scorer's:
    targets/ (anyone may write there; holds "victim"), work/ and tmp/ (the scorer's)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sluice-attack-"))
    base.chmod(0o755)
    for name in ("targets", "work", "tmp"):
        (base / name).mkdir()
        (base / name).chmod(0o777)
    (base / "targets" / "victim").write_text("keep me")
    (base / "targets" / "victim").chmod(0o666)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("who", ["scorer's user", "unprivileged"])
def test_attacks_have_no_effect_outside_and_the_scorer_finishes(who, arena, code, unprivileged):
    if who == "unprivileged" and not unprivileged and os.geteuid() != 0:
        pytest.skip("the first case already runs as this unprivileged user")
    prefix = unprivileged if who == "unprivileged" else []
    python = python_for(prefix, code) if prefix else sys.executable
    marker, secret = f"sluice-marker-{uuid.uuid4().hex}", f"sluice-secret-{uuid.uuid4().hex}"
    targets = arena / "targets"
    samples = arena / "work" / "samples.jsonl"
    rows = [{"task_id": "Attack/0", "attack": name,
             "completion": code.replace("TARGETS", str(targets)).replace("MARKER", marker)}
            for name, code in ATTACKS.items()]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = arena / "work" / "problems.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n")
    for path in (samples, problems):
        path.chmod(0o666)
    env = ["env", "-i", f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}", f"PYTHONPATH={code}",
           f"TMPDIR={arena / 'tmp'}", f"SLUICE_TEST_SECRET={secret}", "LANG=C.UTF-8"]
    proc = subprocess.run(prefix + env + [python, "-c", SCORER, str(samples), str(problems)],
                          capture_output=True, text=True, timeout=120, cwd=arena / "work")

    # the scorer finished, with a results file holding every attack
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout.strip().splitlines()[-1])) == {"pass@1"}
    results = [json.loads(line) for line in open(str(samples) + "_results.jsonl")]
    assert [r["attack"] for r in results] == list(ATTACKS)
    verdicts = {r["attack"]: r["result"] for r in results}
    # nothing appeared, changed or went away outside
    assert sorted(os.listdir(targets)) == ["victim"] and (targets / "victim").read_text() == "keep me"
    assert os.listdir(arena / "tmp") == []  # no temporary folder left behind
    # every process the attacks started is gone, though one put itself in a session of its own
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []
    # the secrets did not reach the results: the program ran, and read nothing of the scorer's
    assert verdicts["read_secrets"].startswith("failed: LEAK: /etc/shadow: FileNotFoundError")
    output = (pathlib.Path(str(samples) + "_results.jsonl").read_text() + proc.stdout + proc.stderr)
    assert secret not in output and "SLUICE_TEST_SECRET" not in output
    if os.access("/etc/shadow", os.R_OK):
        shadow = [line for line in pathlib.Path("/etc/shadow").read_text().splitlines() if line.strip()]
        assert not any(line in output for line in shadow)
    # no kernel setting (they are not namespaced) could be opened for writing
    assert verdicts["kernel_settings"] == "failed: OPENED []"


def test_mtpb_programs_see_numpy_but_not_the_project():
    program = ("import os, numpy\nprint([int(numpy.arange(4).sum()), os.getuid(), os.listdir('/etc'),"
               f" [os.path.exists(p) for p in ({str(ROOT)!r}, {sys.prefix!r}, '/home', '/tmp', '/var')]])")
    r = sandbox.run_python(program, preload=("numpy",), timeout_s=10)
    assert r.passed, r.stderr
    total, uid, etc, seen = json.loads(r.stdout.replace("'", '"').replace("False", "false").replace("True", "true"))
    assert total == 6 and uid == sandbox.SANDBOX_ID and etc in ([], ["ld.so.cache"]) and not any(seen)


@pytest.mark.parametrize("as_root", [True, False])
def test_bwrap_command_line(as_root, monkeypatch):
    monkeypatch.setattr(sandbox, "_as_root", lambda: as_root)
    argv = sandbox.bwrap_argv("/usr/bin/bwrap", 9)
    for flag in ("--die-with-parent", "--new-session", "--clearenv", "--hostname"):
        assert flag in argv
    if as_root:  # no user namespace (uid 65534 in it would be root outside): the guard drops to the real 65534
        assert "--unshare-user" not in argv and "--unshare-all" not in argv
        assert {"--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"} <= set(argv)
        assert " ".join(argv).count("--cap-add") == 2 and "--cap-drop ALL" in " ".join(argv)
    else:
        assert {"--unshare-all", "--unshare-user", "--disable-userns"} <= set(argv)
        assert argv[argv.index("--uid") + 1] == argv[argv.index("--gid") + 1] == "65534"
    assert argv[argv.index("--proc") + 1] == "/proc" and argv[argv.index("--dev") + 1] == "/dev"
    assert argv[argv.index("--tmpfs") + 1] == argv[argv.index("--chdir") + 1] == sandbox.WORKDIR
    mounted = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert "--bind" not in argv and not [m for m in mounted if m.startswith(("/etc/shadow", "/home", str(ROOT)))]
    assert not [m for m in mounted if m in ("/", "/root", "/etc", "/tmp", "/usr")]


def test_the_program_runs_as_an_unprivileged_uid_outside():
    r = sandbox.run_python("import json, os\nprint(json.dumps([os.getuid(), open('/proc/self/uid_map').read().split(), "
                           "[line.split()[1] for line in open('/proc/self/status') if line.startswith('CapEff')]]))")
    uid, uid_map, caps = json.loads(r.stdout)
    assert uid == sandbox.SANDBOX_ID and caps == ["0000000000000000"]
    if os.geteuid() == 0:  # no user namespace: the uid is the kernel's, nobody's (not root mapped to 65534)
        assert uid_map == ["0", "0", "4294967295"]
    # else a user namespace maps 65534 to the (unprivileged) scorer's own uid, the only one it may map


def test_a_timeout_leaves_no_process_behind():
    marker = f"sluice-marker-{uuid.uuid4().hex}"
    program = (BYPASS_HOOK + f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}],"
               " start_new_session=True)\nwhile True:\n    pass\n")
    r = sandbox.run_python(program, timeout_s=2)
    assert r.status == "timeout"
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


def test_the_working_folder_is_bounded():
    r = sandbox.run_python("for i in range(100):\n    open(f'f{i}', 'wb').write(bytes(1 << 20))", timeout_s=10)
    assert not r.passed and "No space left on device" in r.stderr


# Without bwrap --------------------------------------------------------------------------------------

def run_cli(module: str, args: list, path: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": path, "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", module, "score", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def samples(tmp_path) -> dict:
    he, mt = tmp_path / "he.jsonl", tmp_path / "mt.jsonl"
    he.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}) + "\n")
    mt.write_text(json.dumps({"id": "1", "case": 0, "turns": ["x = 1"] * 4 + ["x"]}) + "\n")
    return {"training.eval.humaneval": he, "training.eval.mtpb": mt}


@pytest.mark.parametrize("module", ["training.eval.humaneval", "training.eval.mtpb"])
def test_scoring_refuses_without_bwrap_unless_unsafe(module, samples, tmp_path):
    path = samples[module]
    proc = run_cli(module, [str(path)], str(tmp_path / "no-such-bin"), tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "bwrap is not on PATH" in proc.stderr and "apt-get install bubblewrap" in proc.stderr
    assert "--unsafe_no_sandbox" in proc.stderr and not os.path.exists(str(path) + "_results.jsonl")

    proc = run_cli(module, [str(path), "--unsafe_no_sandbox"], str(tmp_path / "no-such-bin"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "without the OS sandbox" in proc.stderr
    json.loads(proc.stdout.strip().splitlines()[-1])
    assert os.path.exists(str(path) + "_results.jsonl")


def test_scoring_refuses_where_bwrap_cannot_start(samples, tmp_path):
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    path = samples["training.eval.humaneval"]
    proc = run_cli("training.eval.humaneval", [str(path)], f"{fake.parent}:/usr/bin:/bin", tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot start one here (bwrap: No permissions to create new namespace)" in proc.stderr
    assert "user namespaces" in proc.stderr


def test_run_python_without_bwrap_raises(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(sandbox.Unavailable, match="bwrap is not on PATH"):
        sandbox.run_python("print(1)")
    assert sandbox.run_python("print(1)", unsafe_no_sandbox=True).stdout == "1\n"
