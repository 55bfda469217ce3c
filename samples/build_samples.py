#!/usr/bin/env python3
"""Build the real sample corpus for the Mono pipeline.

For each pinned project below this script fetches its published source
distribution (sdist) from the Python package index, checks it, copies it to
``samples/mono/archives/`` and writes ``samples/mono/manifest.jsonl`` and
``samples/SOURCES.md``.

An sdist is a ``.tar.gz`` with exactly one top-level folder
(``NAME-VERSION/``), the same shape as a GitHub codeload tarball, so it is a
stand-in for a repository snapshot.

How the sdist is fetched
------------------------
``pip download --no-binary :all: --no-deps [--no-build-isolation]`` is *not*
used: for an sdist pip always prepares metadata, i.e. it runs the project's
build backend (``setup.py egg_info``, flit_core, hatchling, ...), which fails
without those backends and would run third-party code. Instead the script
asks pip only for the index it is configured with (``pip config`` /
``PIP_INDEX_URL``, else pip's default index) and reads that index's Simple
API (PEP 691 JSON, or PEP 503 HTML as a fallback) to find the sdist's URL and
hash, then downloads the file with urllib. Nothing is built or imported.

Re-running is idempotent: an archive already present whose sha256 matches the
pin is kept as it is (no network is used then), and the manifest and
SOURCES.md are only rewritten when their content changes.

Usage:
    python3 samples/build_samples.py          # build / refresh
    python3 samples/build_samples.py --check  # verify only, offline; exit 1 on problems

Stdlib only (plus ``python -m pip config`` to learn the index URL).
"""

from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
MONO = HERE / "mono"
ARCHIVES = MONO / "archives"
MANIFEST = MONO / "manifest.jsonl"
SOURCES = HERE / "SOURCES.md"

MAX_TOTAL_BYTES = 5 * 1024 * 1024  # hard ceiling for the committed archives

LICENSE_FILE_PREFIXES = ("LICENSE", "LICENCE", "COPYING")


@dataclass(frozen=True)
class Project:
    name: str  # PyPI name
    version: str
    filename: str  # sdist file name on the index
    sha256: Optional[str]  # pinned after the first build; None = not yet known
    repo: str  # GitHub owner/name
    stars: int  # approximate, recorded by hand
    manifest_license: Optional[str]  # what goes in the manifest (None -> detect)
    spdx: str  # the real license, SPDX id (for SOURCES.md)
    # Path of the file under the PyPI file host, as the index reported it.
    pypi_path: str


# Licenses in the manifest deliberately mix spellings ("mit"/"MIT",
# "bsd-3-clause"/"BSD-3-Clause") to exercise normalisation; tomli, idna and
# toolz have None so the pipeline must detect the license from the archive;
# certifi (MPL-2.0, given) and html2text (GPL-3.0, None -> detected) are the
# non-permissive projects that the demo should reject.
PROJECTS: list[Project] = [
    Project("six", "1.16.0", "six-1.16.0.tar.gz",
            "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926",
            "benjaminp/six", 1000, "mit", "MIT",
            "/packages/71/39/171f1c67cd00715f190ba0b100d606d440a28c93c7714febeca8b79af85e/six-1.16.0.tar.gz"),
    Project("idna", "3.7", "idna-3.7.tar.gz",
            "028ff3aadf0609c1fd278d8ea3089299412a7a8b9bd005dd08b9f8285bcb5cfc",
            "kjd/idna", 250, None, "BSD-3-Clause",
            "/packages/21/ed/f86a79a07470cb07819390452f178b3bef1d375f2ec021ecfc709fc7cf07/idna-3.7.tar.gz"),
    Project("itsdangerous", "2.2.0", "itsdangerous-2.2.0.tar.gz",
            "e0050c0b7da1eea53ffaf149c0cfbb5c6e2e2b69c4bef22c81fa6eb73e5f6173",
            "pallets/itsdangerous", 2900, "bsd-3-clause", "BSD-3-Clause",
            "/packages/9c/cb/8ac0172223afbccb63986cc25049b154ecfb5e85932587206f42317be31d/itsdangerous-2.2.0.tar.gz"),
    Project("markupsafe", "2.1.5", "MarkupSafe-2.1.5.tar.gz",
            "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
            "pallets/markupsafe", 600, "BSD-3-Clause", "BSD-3-Clause",
            "/packages/87/5b/aae44c6655f3801e81aa3eef09dbbf012431987ba564d7231722f68df02d/MarkupSafe-2.1.5.tar.gz"),
    Project("toolz", "0.12.1", "toolz-0.12.1.tar.gz",
            "ecca342664893f177a13dac0e6b41cbd8ac25a358e5f215316d43e2100224f4d",
            "pytoolz/toolz", 4700, None, "BSD-3-Clause",
            "/packages/3e/bf/5e12db234df984f6df3c7f12f1428aa680ba4e101f63f4b8b3f9e8d2e617/toolz-0.12.1.tar.gz"),
    Project("tomli", "2.0.1", "tomli-2.0.1.tar.gz",
            "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f",
            "hukkin/tomli", 400, None, "MIT",
            "/packages/c0/3f/d7af728f075fb08564c5949a9c95e44352e23dee646869fa104a3b2060a3/tomli-2.0.1.tar.gz"),
    Project("click", "8.1.7", "click-8.1.7.tar.gz",
            "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de",
            "pallets/click", 15500, "bsd-3-clause", "BSD-3-Clause",
            "/packages/96/d3/f04c7bfcf5c1862a2a5b845c6b2b360488cf47af55dfa79c98f6a6bf98b5/click-8.1.7.tar.gz"),
    Project("requests", "2.32.3", "requests-2.32.3.tar.gz",
            "55365417734eb18255590a9ff9eb97e9e1da868d4ccd6402399eaf68af20a760",
            "psf/requests", 52000, "Apache-2.0", "Apache-2.0",
            "/packages/63/70/2bf7780ad2d390a8d301ad0b550f1581eadbd9a20f896afe06353c2a2913/requests-2.32.3.tar.gz"),
    Project("more-itertools", "10.3.0", "more-itertools-10.3.0.tar.gz",
            "e5d93ef411224fbcef366a6e8ddc4c5781bc6359d43412a65dd5964e46111463",
            "more-itertools/more-itertools", 3600, "MIT", "MIT",
            "/packages/01/33/77f586de725fc990d12dda3d4efca4a41635be0f99a987b9cc3a78364c13/more-itertools-10.3.0.tar.gz"),
    Project("pyparsing", "3.1.2", "pyparsing-3.1.2.tar.gz",
            "a1bac0ce561155ecc3ed78ca94d3c9378656ad4c94c1270de543f621420f94ad",
            "pyparsing/pyparsing", 2200, "mit", "MIT",
            "/packages/46/3a/31fd28064d016a2182584d579e033ec95b809d8e220e74c4af6f0f2e8842/pyparsing-3.1.2.tar.gz"),
    Project("attrs", "23.2.0", "attrs-23.2.0.tar.gz",
            "935dc3b529c262f6cf76e50877d35a4bd3c1de194fd41f47a2b7ae8f19971f30",
            "python-attrs/attrs", 5200, "MIT", "MIT",
            "/packages/e3/fc/f800d51204003fa8ae392c4e8278f256206e7a919b708eef054f5f4b650d/attrs-23.2.0.tar.gz"),
    Project("jinja2", "3.1.4", "jinja2-3.1.4.tar.gz",
            "4a3aee7acbbe7303aede8e9648d13b8bf88a429282aa6122a993f0ac800cb369",
            "pallets/jinja", 10000, "BSD-3-Clause", "BSD-3-Clause",
            "/packages/ed/55/39036716d19cab0747a5020fc7e907f362fbf48c984b14e62127f7e68e5d/jinja2-3.1.4.tar.gz"),
    Project("certifi", "2024.7.4", "certifi-2024.7.4.tar.gz",
            "5a1e7645bc0ec61a09e26c36f6106dd4cf40c6db3a1fb6352b0244e7fb057c7b",
            "certifi/python-certifi", 800, "mpl-2.0", "MPL-2.0",
            "/packages/c2/02/a95f2b11e207f68bc64d7aae9666fed2e2b3f307748d5123dffb72a1bbea/certifi-2024.7.4.tar.gz"),
    Project("html2text", "2024.2.26", "html2text-2024.2.26.tar.gz",
            "05f8e367d15aaabc96415376776cdd11afd5127a77fce6e36afc60c563ca2c32",
            "Alir3z4/html2text", 1800, None, "GPL-3.0-only",
            "/packages/1a/43/e1d53588561e533212117750ee79ad0ba02a41f52a08c1df3396bd466c05/html2text-2024.2.26.tar.gz"),
]


# --------------------------------------------------------------------------
# helpers


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def sync_file(path: Path, text: str, *, check: bool, problems: list, label: str) -> bool:
    """Write ``text`` to ``path`` if it differs; with ``check``, only record a problem instead.

    Every sample builder ends this way (manifests, SOURCES.md sections). Returns whether it wrote.
    """
    if check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            problems.append(f"{label} is out of date")
        return False
    return write_if_changed(path, text)


def inspect_archive(path: Path) -> tuple[str, list[str]]:
    """Check the sdist's shape; return (top-level folder, license files).

    Raises ValueError if it is not a gzip tarball with exactly one top-level
    folder holding every member, or if a member is unsafe.
    """
    with path.open("rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise ValueError("not gzip-compressed")
    tops: set[str] = set()
    licenses: list[str] = []
    with tarfile.open(path, "r:gz") as tar:
        for m in tar.getmembers():
            name = m.name
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts or not parts:
                raise ValueError(f"unsafe member path: {name!r}")
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"member is not a plain file or folder: {name!r}")
            tops.add(parts[0])
            if len(parts) == 1 and not m.isdir():
                raise ValueError(f"file at the top level: {name!r}")
            if len(parts) == 2 and m.isfile() and parts[1].upper().startswith(LICENSE_FILE_PREFIXES):
                licenses.append(parts[1])
    if len(tops) != 1:
        raise ValueError(f"expected one top-level folder, found {sorted(tops)}")
    return tops.pop(), sorted(licenses)


# --------------------------------------------------------------------------
# index access (PEP 691 JSON / PEP 503 HTML)


def index_url() -> str:
    """The index pip is configured with; never a hard-coded host."""
    for var in ("SLUICE_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var].rstrip("/")
    for key in ("global.index-url", "download.index-url", "install.index-url"):
        r = subprocess.run([sys.executable, "-m", "pip", "config", "get", key],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip().rstrip("/")
    r = subprocess.run(
        [sys.executable, "-c",
         "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"],
        capture_output=True, text=True, check=True)
    return r.stdout.strip().rstrip("/")


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._href: Optional[str] = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((self._href, data.strip()))
            self._href = None


def find_sdist(index: str, p: Project) -> tuple[str, Optional[str]]:
    """Return (download URL, sha256 the index reports) for p.filename."""
    page = f"{index}/{p.name.lower()}/"
    req = urllib.request.Request(page, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    with urllib.request.urlopen(req, timeout=60) as r:
        ctype = r.headers.get("content-type", "")
        body = r.read()
    if "json" in ctype:
        for f in json.loads(body)["files"]:
            if f["filename"] == p.filename:
                return urllib.parse.urljoin(page, f["url"]), f.get("hashes", {}).get("sha256")
    else:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", "replace"))
        for href, text in parser.links:
            url, _, frag = href.partition("#")
            if text == p.filename or url.rsplit("/", 1)[-1] == p.filename:
                digest = frag[len("sha256="):] if frag.startswith("sha256=") else None
                return urllib.parse.urljoin(page, url), digest
    raise LookupError(f"{p.filename} not listed at {page}")


def download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as r, dest.open("wb") as f:
        shutil.copyfileobj(r, f)


# --------------------------------------------------------------------------
# outputs


def manifest_text() -> str:
    lines = []
    for p in PROJECTS:
        rec = {
            "repo_name": p.repo,
            "stars": p.stars,
            "license": p.manifest_license,
            "archive": f"archives/{p.filename}",
            "ref": f"v{p.version}",
        }
        lines.append(json.dumps(rec, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def sources_text(info: dict[str, tuple[int, list[str]]]) -> str:
    out = [
        "# Sample corpus sources",
        "",
        "Generated by `samples/build_samples.py`; edit the table in that script, not this file.",
        "",
        "The Mono sample corpus under `samples/mono/` is made of real, unmodified source",
        "distributions (sdists) published on PyPI. Each archive is byte-for-byte the file",
        "on the index; its sha256 is pinned in the script and checked on every run.",
        "",
        "| project | version | GitHub repo | license (SPDX) | manifest `license` | license file | size (bytes) | approx. stars | sha256 | PyPI sdist (path on the PyPI file host) |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for p in PROJECTS:
        size, lic = info.get(p.filename, (0, []))
        ml = f"`{p.manifest_license}`" if p.manifest_license else "null (detect)"
        out.append(
            f"| {p.name} | {p.version} | [{p.repo}](https://github.com/{p.repo}) | {p.spdx} | {ml} "
            f"| {', '.join(lic) or 'MISSING'} | {size} | ~{p.stars:,} | `{p.sha256}` | `{p.pypi_path}` |")
    total = sum(s for s, _ in info.values())
    out += [
        "",
        f"Total size of the archives: {total} bytes ({total / 1024 / 1024:.2f} MiB).",
        "",
        "## Notes",
        "",
        "- **Why sdists.** An sdist is a `.tar.gz` with exactly one top-level folder",
        "  (`NAME-VERSION/`), the same shape as a GitHub codeload tarball of a tag, so it",
        "  stands in for a repository snapshot. It is not identical to the repository:",
        "  it adds `PKG-INFO` (and often `*.egg-info/`, `setup.cfg`), and may omit files",
        "  that are not packaged (CI config, some tests or docs).",
        "- **Licenses.** Every archive carries its own license file at the top of its",
        "  folder (column \"license file\"); that file is the license notice for the",
        "  redistributed archive. `certifi` (MPL-2.0) and `html2text` (GPL-3.0) are",
        "  not permissive and are included on purpose so that the pipeline shows license",
        "  rejects. certifi's `LICENSE` is a short notice pointing at the MPL-2.0, not the",
        "  full text. pyparsing's `LICENSE` and the Pallets/toolz BSD texts carry no",
        "  title line (body text only). requests also ships a `NOTICE` file.",
        "- **Manifest `license`.** Deliberately mixes spellings (`mit`/`MIT`,",
        "  `bsd-3-clause`/`BSD-3-Clause`, `Apache-2.0`, `mpl-2.0`) to exercise",
        "  normalisation; `null` means the pipeline must detect the license from the",
        "  archive's license file (idna, toolz, tomli: permissive; html2text: GPL).",
        "- **Stars** are approximate values recorded by hand, not fetched from GitHub.",
        "- **`ref`** in the manifest is `v<version>` by convention; the projects' real",
        "  git tags may be spelled differently.",
        "- **PyPI sdist** paths are relative to the PyPI file host; the script finds",
        "  each file through the Simple API of the index pip is configured with and",
        "  verifies its sha256.",
        "",
    ]
    return "\n".join(out)


def with_nl_section(mono_text: str) -> str:
    """SOURCES.md: this script's part, then the NL section that build_nl_samples.py owns, kept."""
    marker = "<!-- NL samples: generated by samples/build_nl_samples.py"
    current = SOURCES.read_text(encoding="utf-8") if SOURCES.exists() else ""
    at = current.find(marker)
    return mono_text if at < 0 else mono_text.rstrip("\n") + "\n\n" + current[at:]


# --------------------------------------------------------------------------


def fetch_archive(p, dest: Path, index: list, problems: list) -> bool:
    """Download ``p``'s sdist into ``dest``, checked against the index's and the pinned sha256 and
    inspected before it replaces anything; ``index`` caches the package index's URL."""
    if not index:
        index.append(index_url())
    url, index_sha = find_sdist(index[0], p)
    log(f"fetch  {p.filename}  <- {url}")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / p.filename
        download(url, tmp)
        got = sha256_of(tmp)
        if index_sha and got != index_sha:
            problems.append(f"{p.filename}: sha256 {got} differs from the index's {index_sha}")
            return False
        if p.sha256 and got != p.sha256:
            problems.append(f"{p.filename}: sha256 {got} differs from the pin {p.sha256}")
            return False
        try:
            inspect_archive(tmp)
        except (ValueError, tarfile.TarError) as e:
            problems.append(f"{p.filename}: {e}")
            return False
        shutil.copyfile(tmp, dest)
    return True


def gather_archives(check: bool, problems: list) -> tuple[dict, list]:
    """Each project's archive, present or fetched: ``({filename: (bytes, license files)}, unpinned)``."""
    info: dict[str, tuple[int, list[str]]] = {}
    index: list = []
    unpinned: list[tuple[str, str]] = []
    for p in PROJECTS:
        dest = ARCHIVES / p.filename
        have = dest.exists() and (p.sha256 is None or sha256_of(dest) == p.sha256)
        if not have:
            if check:
                problems.append(f"{p.filename}: missing or sha256 mismatch")
                continue
            if not fetch_archive(p, dest, index, problems):
                continue
        else:
            log(f"ok     {p.filename}  (present, sha256 matches pin)")
        digest = sha256_of(dest)
        if p.sha256 is None:
            unpinned.append((p.name, digest))
        try:
            top, lic = inspect_archive(dest)
        except (ValueError, tarfile.TarError) as e:
            problems.append(f"{p.filename}: {e}")
            continue
        if not lic:
            problems.append(f"{p.filename}: no top-level LICENSE/COPYING file in {top}/")
        info[p.filename] = (dest.stat().st_size, lic)
    return info, unpinned


def check_folder(total: int, problems: list) -> None:
    """No file the table does not name, and the archives under the size ceiling."""
    known = {p.filename for p in PROJECTS}
    for extra in sorted(ARCHIVES.glob("*")):
        if extra.name not in known:
            problems.append(f"stray file not in the table: {extra.relative_to(HERE)}")
    if total > MAX_TOTAL_BYTES:
        problems.append(f"archives total {total} bytes, over the {MAX_TOTAL_BYTES} byte ceiling")


def report(info: dict, total: int, unpinned: list, problems: list) -> None:
    log("")
    log(f"{'project':<16}{'version':<12}{'manifest license':<18}{'SPDX':<14}{'bytes':>10}")
    for p in PROJECTS:
        size = info.get(p.filename, (0, []))[0]
        log(f"{p.name:<16}{p.version:<12}{str(p.manifest_license):<18}{p.spdx:<14}{size:>10}")
    log(f"{'total':<60}{total:>10}  ({total / 1024 / 1024:.2f} MiB)")
    for name, digest in unpinned:
        log(f"UNPINNED {name}: record sha256 {digest} in PROJECTS")
    for msg in problems:
        log(f"PROBLEM {msg}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="verify archives and generated files only; no network, no writes")
    args = ap.parse_args(argv)

    ARCHIVES.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    info, unpinned = gather_archives(args.check, problems)
    total = sum(s for s, _ in info.values())
    check_folder(total, problems)
    man, src = manifest_text(), with_nl_section(sources_text(info))
    for path, text in ((MANIFEST, man), (SOURCES, src)):
        changed = sync_file(path, text, check=args.check, problems=problems,
                            label=str(path.relative_to(HERE)))
        if not args.check:
            log(f"{'wrote ' if changed else 'same  '} {path.relative_to(HERE.parent)}")
    report(info, total, unpinned, problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
