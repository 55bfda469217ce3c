"""Shared fixtures: the bundled real samples and a tokenizer trained on them by the real pipeline."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"
NL_SAMPLES = ROOT / "samples" / "nl"
NL_FILES = (NL_SAMPLES / "train" / "00.jsonl.zst", NL_SAMPLES / "train" / "01.jsonl.zst",
            NL_SAMPLES / "val.jsonl.zst")


@pytest.fixture(scope="session")
def sample_manifest() -> pathlib.Path:
    return SAMPLE_MANIFEST


@pytest.fixture(scope="session")
def sample_tokenizer(tmp_path_factory) -> pathlib.Path:
    """tokenizer.model trained by ``pipelines.tokenizer`` on the samples (small vocab: fast)."""
    from pipelines import tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.main(["--source", "mono", "--input", str(SAMPLE_MANIFEST), "--output", str(out),
                    "--vocab_size", "4000"])
    return out / "tokenizer.model"


@pytest.fixture(scope="session")
def nl_files() -> tuple:
    """The real NL sample files, in The Pile's release layout."""
    return NL_FILES


@pytest.fixture(scope="session")
def nl_input() -> str:
    """``--input`` for the NL samples: a glob and a path, comma-separated."""
    return f"{NL_SAMPLES / 'train' / '*.jsonl.zst'},{NL_SAMPLES / 'val.jsonl.zst'}"


@pytest.fixture(scope="session")
def nl_tokenizer(tmp_path_factory, nl_input) -> pathlib.Path:
    """tokenizer.model trained by ``pipelines.tokenizer --source nl`` on the NL samples."""
    from pipelines import tokenizer

    out = tmp_path_factory.mktemp("nl_tokenizer")
    tokenizer.main(["--source", "nl", "--input", nl_input, "--output", str(out), "--vocab_size", "2000"])
    return out / "tokenizer.model"


MULTI_SNAPSHOT = ROOT / "samples" / "multi" / "snapshot"


@pytest.fixture(scope="session")
def multi_snapshot() -> pathlib.Path:
    """The github_repos Parquet snapshot of real code (samples/multi/build_snapshot.py)."""
    return MULTI_SNAPSHOT


def snapshot_licenses_and_stars(snapshot, licenses, stars_table="sample_repos") -> tuple[dict, dict]:
    """({repo: its allowed GitHub license, the smallest where it has several}, {repo: stars, the
    largest watch_count of the stars table}), in plain Python from a snapshot's tables: the
    repository rules the Multi query and the manifest builder share, read off the issue."""
    import pyarrow.parquet as pq

    license_of = {}
    for row in pq.read_table(snapshot / "licenses.parquet").to_pylist():
        if row["license"] in licenses:
            license_of[row["repo_name"]] = min(row["license"], license_of.get(row["repo_name"], row["license"]))
    stars = {}
    for row in pq.read_table(snapshot / f"{stars_table}.parquet").to_pylist():
        stars[row["repo_name"]] = max(row["watch_count"], stars.get(row["repo_name"], 0))
    return license_of, stars


def expected_multi_rows(snapshot, extensions: dict, licenses, min_bytes=1, max_bytes=1 << 20,
                        min_stars=0) -> dict:
    """``{content id: row}`` the Multi query must return, computed in plain Python from the tables.

    ``extensions`` maps extension -> language. The rules, read off the issue rather than the SQL:
    allowed license, enough stars (no row: 0), a regular file (no link), a selected extension
    (case-insensitive), not binary, size within bounds, content present; one row per content id,
    the copy with the smallest (repo_name, path).
    """
    import posixpath

    import pyarrow.parquet as pq

    def rows(name):
        return pq.read_table(snapshot / f"{name}.parquet").to_pylist()

    license_of, stars = snapshot_licenses_and_stars(snapshot, licenses)
    contents = {row["id"]: row for row in rows("contents")}
    chosen = {}
    for f in rows("files"):
        repo, ext = f["repo_name"], posixpath.splitext(f["path"])[1][1:].lower()
        content = contents.get(f["id"])
        if (repo not in license_of or stars.get(repo, 0) < min_stars or f["symlink_target"] is not None
                or ext not in extensions or content is None or content["binary"]
                or not min_bytes <= content["size"] <= max_bytes or content["content"] is None):
            continue
        key = (repo, f["path"])
        if f["id"] not in chosen or key < chosen[f["id"]][0]:
            chosen[f["id"]] = (key, {"id": f["id"], "repo_name": repo, "path": f["path"],
                                     "license": license_of[repo], "stars": stars.get(repo, 0),
                                     "language": extensions[ext], "content": content["content"]})
    return {content_id: row for content_id, (_, row) in chosen.items()}


@pytest.fixture(scope="session")
def multi_expected():
    return expected_multi_rows


def check_published(out: pathlib.Path, manifest: dict, num_shards: int) -> dict:
    """A published output: manifest.json equals the returned manifest and validates, shard files are
    exactly train-i-of-N.{arrow,tfrecord}, and the version verifies (each file's size, sha256 and
    record count match the manifest)."""
    from schemas import dataset_version

    on_disk = dataset_version.read_manifest(str(out))
    assert on_disk == manifest
    names = sorted(p.name for p in out.glob("train-*"))
    assert names == [f"train-{i:05d}-of-{num_shards:05d}.{ext}"
                     for i in range(num_shards) for ext in ("arrow", "tfrecord")]
    assert dataset_version.verify_version(str(out), on_disk) == []
    return on_disk


@pytest.fixture(scope="session")
def published_output_check():
    """``check_published`` as a fixture, so every pipeline's tests check outputs one way."""
    return check_published


INSTRUCT_REGISTRY = ROOT / "samples" / "instruct" / "tasks.yaml"


@pytest.fixture(scope="session")
def instruct_registry():
    """The bundled instruct task registry, parsed (its sources are read by task_sources' tests)."""
    from schemas.instruct_parse import load_registry

    return load_registry(str(INSTRUCT_REGISTRY))


@pytest.fixture
def tiny_registry(tmp_path) -> dict:
    """A one-task instruct registry (as data) over a one-line JSONL file in ``tmp_path``, with two
    more files of that name (``a/``, ``b/``) for the unique-name check."""
    import json

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"q": "what is up?", "a": "the sky", "label": 1}) + "\n")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "data.jsonl").write_text(data.read_text())
    templates = [{"input": f"Q{i}: {{question}}", "target": "{answer}"} for i in range(10)]
    return {"tasks": [{"name": "qa", "cluster": "closed_book_qa",
                       "source": {"format": "jsonl", "splits": {"train": str(data)}},
                       "fields": {"question": "q", "answer": "a"}, "templates": templates}]}


@pytest.fixture
def write_registry(tmp_path):
    """write_registry(data) -> the path of ``tasks.yaml`` in ``tmp_path`` holding it."""
    import yaml

    def write(data) -> str:
        path = tmp_path / "tasks.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    return write


class ArchiveServer:
    """A real HTTP server on 127.0.0.1 serving ``samples/mono/archives``, scripted per path.

    ``script(path, *steps)``: the requests for ``path`` get the steps in turn, the last one for
    every request after. A step is ``"ok"`` (the file), ``("status", code, headers)``, ``("cut",)``
    (the full Content-Length, half the body, then the connection closes), ``("stall",)`` (headers
    and a few bytes, then silence until the test ends) or ``("redirect", url)``. An unscripted path
    is served as ``"ok"`` (404 when no such file). ``requests`` records (path, Host, Authorization).
    """

    def __init__(self, folder):
        import http.server
        import threading

        self.folder = folder
        self.steps: dict = {}
        self.requests: list = []
        self.released = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                server.requests.append((path, self.headers.get("Host"), self.headers.get("Authorization")))
                queue = server.steps.get(path, ["ok"])
                step = queue.pop(0) if len(queue) > 1 else queue[0]
                server.respond(self, path, step)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, path: str, *steps) -> None:
        self.steps[path] = list(steps)

    def respond(self, handler, path: str, step) -> None:
        kind = step if isinstance(step, str) else step[0]
        if kind == "status":
            _, code, headers = step
            handler.send_response(code)
            for name, value in {"Content-Length": "0", **headers}.items():
                handler.send_header(name, value)
            handler.end_headers()
            return
        if kind == "redirect":
            handler.send_response(302)
            handler.send_header("Location", step[1])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        file = self.folder / path.rsplit("/", 1)[-1]
        if not file.is_file():
            return self.respond(handler, path, ("status", 404, {}))
        data = file.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-gzip")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if kind == "ok":
            handler.wfile.write(data)
        elif kind == "cut":
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
        elif kind == "stall":
            handler.wfile.write(data[:1000])
            handler.wfile.flush()
            self.released.wait(30)
            handler.close_connection = True

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server():
    """An ArchiveServer on loopback for one test (see the class)."""
    server = ArchiveServer(ROOT / "samples" / "mono" / "archives")
    yield server
    server.close()


@pytest.fixture
def serve_folder():
    """serve_folder(folder) -> an ArchiveServer of that folder's files, closed after the test."""
    servers = []

    def serve(folder):
        servers.append(ArchiveServer(pathlib.Path(folder)))
        return servers[-1]

    yield serve
    for server in servers:
        server.close()
