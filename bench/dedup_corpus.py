#!/usr/bin/env python3
"""Build the real corpora of the near-dedup quality benchmark (see bench/DEDUP.md).

CODE  ``<cache>/code.jsonl``: every ``.py`` file (valid UTF-8) of
      * the sample repositories ``samples/mono/archives/*.tar.gz``, and
      * the published sdists of real Python projects in several versions each
        (``RELEASES`` below), downloaded from the package index pip is
        configured with and cached under ``<cache>/sdists/``.
      One line per file: ``{"id": "<project>-<version>:<path>", "text", "stars": 0}``,
      sorted by id. Several versions of one project give natural exact and near
      duplicates (files unchanged or lightly edited between releases).

PROSE ``<cache>/prose.jsonl`` (``{"id": "<dataset>:<n>", "text", "meta"}``) and the
      same documents in Pile format ``<cache>/prose.pile.jsonl``
      (``{"text", "meta": {"pile_set_name"}}``), from the prose fields of the real
      task datasets in ``/work/shared/data/instruct/`` (``PROSE`` below). A passage
      shared by several questions is kept once per question, as in the source:
      these are natural exact / near duplicates.

Sdists are found the way ``samples/build_samples.py`` does it (its functions are
reused): the Simple API page of the configured index gives the file's URL and
sha256; the file is fetched with urllib; nothing is built or imported. The
sha256 of every sdist is pinned below and checked; cached files are reused
without network access.

Usage:
    python bench/dedup_corpus.py [--cache bench/.cache] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import harness  # first: it puts the repository on sys.path
from samples import build_samples  # index_url, find_sdist, download
from transforms.sources.archive_stream import ArchiveLimits, iter_members  # noqa: E402

ROOT = Path(harness.REPO)

DEFAULT_CACHE = ROOT / "bench" / ".cache"
SAMPLE_ARCHIVES = ROOT / "samples" / "mono" / "archives"
INSTRUCT = Path("/work/shared/data/instruct")


@dataclass(frozen=True)
class Release:
    project: str  # PyPI name, lower case
    version: str
    filename: str  # sdist file name on the index
    sha256: str
    license: str  # SPDX id of the project's license

    @property
    def name(self) -> str:  # what build_samples.find_sdist reads
        return self.project


# Versions other than the sample's own (samples/mono/archives holds a fifth / fourth
# version of most of these), spread over several years so that files range from
# identical to heavily rewritten between versions.
RELEASES: list[Release] = [
    Release("requests", "2.18.4", "requests-2.18.4.tar.gz", "9c443e7324ba5b85070c4a818ade28bfabedf16ea10206da1132edaa6dda237e", "Apache-2.0"),
    Release("requests", "2.22.0", "requests-2.22.0.tar.gz", "11e007a8a2aa0323f5a921e9e6a2d7e4e67d9877e85773fba9ba6419025cbeb4", "Apache-2.0"),
    Release("requests", "2.27.1", "requests-2.27.1.tar.gz", "68d7c56fd5a8999887728ef304a6d12edc7be74f1cfa47714fc8b414525c9a61", "Apache-2.0"),
    Release("click", "7.0", "Click-7.0.tar.gz", "5b94b49521f6456670fdb30cd82a4eca9412788a93fa6dd6df72c94d5a8ff2d7", "BSD-3-Clause"),
    Release("click", "7.1.2", "click-7.1.2.tar.gz", "d2b5255c7c6349bc1bd1e59e08cd12acbbd63ce649f2588755783aa94dfb6b1a", "BSD-3-Clause"),
    Release("click", "8.0.4", "click-8.0.4.tar.gz", "8458d7b1287c5fb128c90e23381cf99dcde74beaf6c7ff6384ce84d6fe090adb", "BSD-3-Clause"),
    Release("attrs", "19.3.0", "attrs-19.3.0.tar.gz", "f7b7ce16570fe9965acd6d30101a28f62fb4a7f9e926b3bbc9b61f8b04247e72", "MIT"),
    Release("attrs", "21.4.0", "attrs-21.4.0.tar.gz", "626ba8234211db98e869df76230a137c4c40a12d72445c45d5f5b716f076e2fd", "MIT"),
    Release("attrs", "22.2.0", "attrs-22.2.0.tar.gz", "c9227bfc2f01993c03f68db37d1d15c9690188323c067c641f1a35ca58185f99", "MIT"),
    Release("flask", "1.1.4", "Flask-1.1.4.tar.gz", "0fbeb6180d383a9186d0d6ed954e0042ad9f18e0e8de088b2b419d526927d196", "BSD-3-Clause"),
    Release("flask", "2.0.3", "Flask-2.0.3.tar.gz", "e1120c228ca2f553b470df4a5fa927ab66258467526069981b3eb0a91902687d", "BSD-3-Clause"),
    Release("flask", "2.2.5", "Flask-2.2.5.tar.gz", "edee9b0a7ff26621bd5a8c10ff484ae28737a2410d99b0bb9a6850c7fb977aa0", "BSD-3-Clause"),
    Release("flask", "3.0.3", "flask-3.0.3.tar.gz", "ceb27b0af3823ea2737928a4d99d125a06175b8512c445cbd9a9ce200ef76842", "BSD-3-Clause"),
    Release("jinja2", "2.10.3", "Jinja2-2.10.3.tar.gz", "9fe95f19286cfefaa917656583d020be14e7859c6b0252588391e47db34527de", "BSD-3-Clause"),
    Release("jinja2", "2.11.3", "Jinja2-2.11.3.tar.gz", "a6d58433de0ae800347cab1fa3043cebbabe8baa9d29e668f1c768cb87a333c6", "BSD-3-Clause"),
    Release("jinja2", "3.0.3", "Jinja2-3.0.3.tar.gz", "611bb273cd68f3b993fabdc4064fc858c5b47a973cb5aa7999ec1ba405c87cd7", "BSD-3-Clause"),
    Release("itsdangerous", "1.1.0", "itsdangerous-1.1.0.tar.gz", "321b033d07f2a4136d3ec762eac9f16a10ccd60f53c0c91af90217ace7ba1f19", "BSD-3-Clause"),
    Release("itsdangerous", "2.0.1", "itsdangerous-2.0.1.tar.gz", "9e724d68fc22902a1435351f84c3fb8623f303fffcc566a4cb952df8c572cff0", "BSD-3-Clause"),
    Release("itsdangerous", "2.1.2", "itsdangerous-2.1.2.tar.gz", "5dbbc68b317e5e42f327f9021763545dc3fc3bfe22e6deb96aaf1fc38874156a", "BSD-3-Clause"),
    Release("six", "1.12.0", "six-1.12.0.tar.gz", "d16a0141ec1a18405cd4ce8b4613101da75da0e9a7aec5bdd4fa804d0e0eba73", "MIT"),
    Release("six", "1.14.0", "six-1.14.0.tar.gz", "236bdbdce46e6e6a3d61a337c0f8b763ca1e8717c03b369e87a7ec7ce1319c0a", "MIT"),
    Release("six", "1.15.0", "six-1.15.0.tar.gz", "30639c035cdb23534cd4aa2dd52c3bf48f06e5f4a941509c8bafd8ce11080259", "MIT"),
    Release("idna", "2.8", "idna-2.8.tar.gz", "c357b3f628cf53ae2c4c05627ecc484553142ca23264e593d327bcde5e9c3407", "BSD-3-Clause"),
    Release("idna", "3.3", "idna-3.3.tar.gz", "9d643ff0a55b762d5cdb124b8eaa99c66322e2157b69160bc32796e824360e6d", "BSD-3-Clause"),
    Release("idna", "3.6", "idna-3.6.tar.gz", "9ecdbbd083b06798ae1e86adcbfe8ab1479cf864e4ee30fe4e46a003d12491ca", "BSD-3-Clause"),
    Release("toolz", "0.10.0", "toolz-0.10.0.tar.gz", "08fdd5ef7c96480ad11c12d472de21acd32359996f69a5259299b540feba4560", "BSD-3-Clause"),
    Release("toolz", "0.11.2", "toolz-0.11.2.tar.gz", "6b312d5e15138552f1bda8a4e66c30e236c831b612b2bf0005f8a1df10a4bc33", "BSD-3-Clause"),
    Release("toolz", "0.12.0", "toolz-0.12.0.tar.gz", "88c570861c440ee3f2f6037c4654613228ff40c93a6c25e0eba70d17282c6194", "BSD-3-Clause"),
    Release("more-itertools", "8.0.2", "more-itertools-8.0.2.tar.gz", "b84b238cce0d9adad5ed87e745778d20a3f8487d0f0cb8b8a586816c7496458d", "MIT"),
    Release("more-itertools", "8.14.0", "more-itertools-8.14.0.tar.gz", "c09443cd3d5438b8dafccd867a6bc1cb0894389e90cb53d227456b0b0bccb750", "MIT"),
    Release("more-itertools", "9.1.0", "more-itertools-9.1.0.tar.gz", "cabaa341ad0389ea83c17a94566a53ae4c9d07349861ecb14dc6d0345cf9ac5d", "MIT"),
    Release("werkzeug", "1.0.1", "Werkzeug-1.0.1.tar.gz", "6c80b1e5ad3665290ea39320b91e1be1e0d5f60652b964a3070216de83d2e47c", "BSD-3-Clause"),
    Release("werkzeug", "2.0.3", "Werkzeug-2.0.3.tar.gz", "b863f8ff057c522164b6067c9e28b041161b4be5ba4d0daceeaa50a163822d3c", "BSD-3-Clause"),
    Release("werkzeug", "2.2.3", "Werkzeug-2.2.3.tar.gz", "2e1ccc9417d4da358b9de6f174e3ac094391ea1d4fbef2d667865d819dfd0afe", "BSD-3-Clause"),
    Release("werkzeug", "3.0.3", "werkzeug-3.0.3.tar.gz", "097e5bfda9f0aba8da6b8545146def481d06aa7d3266e7448e2cccf67dd8bd18", "BSD-3-Clause"),
    Release("pyparsing", "2.4.7", "pyparsing-2.4.7.tar.gz", "c203ec8783bf771a155b207279b9bccb8dea02d8f0c9e5f8ead507bc3246ecc1", "MIT"),
    Release("pyparsing", "3.0.9", "pyparsing-3.0.9.tar.gz", "2b020ecf7d21b687f219b71ecad3631f644a47f01403fa1d1036b0c6416d70fb", "MIT"),
    Release("markupsafe", "2.0.1", "MarkupSafe-2.0.1.tar.gz", "594c67807fb16238b30c44bdf74f36c02cdf22d1c8cda91ef8a0ed8dabf5620a", "BSD-3-Clause"),
    Release("urllib3", "1.25.11", "urllib3-1.25.11.tar.gz", "8d7eaa5a82a1cac232164990f04874c594c9453ec55eef02eab885aa02fc17a2", "MIT"),
    Release("urllib3", "1.26.18", "urllib3-1.26.18.tar.gz", "f8ecc1bba5667413457c529ab955bf8c67b45db799d159066261719e328580a0", "MIT"),
    Release("urllib3", "2.2.1", "urllib3-2.2.1.tar.gz", "d0570876c61ab9e520d776c38acbbb5b05a776d3f9ff98a5c8fd5162a444cf19", "MIT"),
    Release("pytest", "6.2.5", "pytest-6.2.5.tar.gz", "131b36680866a76e6781d13f101efb86cf674ebb9762eb70d3082b6f29889e89", "MIT"),
    Release("pytest", "8.2.2", "pytest-8.2.2.tar.gz", "de4bb8104e201939ccdc688b27a89a7be2079b22e2bd2b07f806b6ba71117977", "MIT"),
    Release("pygments", "2.10.0", "Pygments-2.10.0.tar.gz", "f398865f7eb6874156579fdf36bc840a03cab64d1cde9e93d68f46a425ec52c6", "BSD-2-Clause"),
    Release("pygments", "2.18.0", "pygments-2.18.0.tar.gz", "786ff802f32e91311bff3889f6e9a86e81505fe99f2735bb6d60ae0c5004f199", "BSD-2-Clause"),
]

# (dataset folder, splits in order, how a row becomes prose). Only fields that are running
# text; short questions, labels, triples, options and single sentences are left out.
PROSE: list[tuple[str, tuple[str, ...], str]] = [
    ("xquad_en", ("validation",), "context"),  # Wikipedia paragraphs, 240 distinct in 1,190 rows
    ("cosmos_qa", ("validation",), "context"),  # blog / personal narratives, 1,649 distinct in 2,000
    ("scitldr", ("train", "validation"), "source"),  # paper abstracts (list of sentences)
    ("gap", ("train", "validation"), "Text"),  # Wikipedia passages
    ("aqua_rat", ("validation", "test"), "question+rationale"),  # word problem + worked rationale
    # goal + one solution, one document per solution: the two solutions of a row are minimal
    # pairs (often one to a few words apart), natural near duplicates over the whole Jaccard
    # range; without them the prose duplicates would be almost all exact copies.
    ("piqa", ("validation",), "goal+sol1|goal+sol2"),
]
PROSE_LICENSES = {
    "xquad_en": "CC BY-SA 4.0",
    "cosmos_qa": "CC BY 4.0",
    "scitldr": "Apache-2.0",
    "gap": "Apache-2.0",
    "aqua_rat": "Apache-2.0",
    "piqa": "AFL-3.0",
}


log = build_samples.log
sha256_of = build_samples.sha256_of


# ----------------------------------------------------------------------------- code corpus


def fetch_releases(sdists: Path) -> list[tuple[Release, Path]]:
    """Download (or reuse) every pinned sdist; verify sha256 against the pin and the index."""
    sdists.mkdir(parents=True, exist_ok=True)
    index: Optional[str] = None
    out = []
    for r in RELEASES:
        dest = sdists / r.filename
        if dest.exists() and sha256_of(dest) == r.sha256:
            out.append((r, dest))
            continue
        if index is None:
            index = build_samples.index_url()
        url, index_sha = build_samples.find_sdist(index, r)  # type: ignore[arg-type]  (.name, .filename)
        log(f"fetch  {r.filename}  <- {url}")
        with tempfile.TemporaryDirectory(dir=sdists) as td:
            tmp = Path(td) / r.filename
            build_samples.download(url, tmp)
            got = sha256_of(tmp)
            if index_sha and got != index_sha:
                raise SystemExit(f"{r.filename}: sha256 {got} differs from the index's {index_sha}")
            if got != r.sha256:
                raise SystemExit(f"{r.filename}: sha256 {got} differs from the pin {r.sha256}")
            os.replace(tmp, dest)
        out.append((r, dest))
    return out


def _name_version(filename: str) -> tuple[str, str]:
    stem = filename[: -len(".tar.gz")]
    name, version = stem.rsplit("-", 1)
    return name.lower(), version


@dataclass
class CodeStats:
    archives: int = 0
    files: int = 0
    bytes: int = 0
    not_utf8: int = 0
    skipped: int = 0  # too large / links / odd members among .py names


def iter_python_files(path: Path, project: str, version: str, stats: CodeStats) -> Iterator[dict]:
    stats.archives += 1
    for m in iter_members(str(path), ArchiveLimits(), want=lambda p: p.endswith(".py")):
        if m.data is None:
            if m.path.endswith(".py"):
                stats.skipped += 1
            continue
        try:
            text = m.data.decode("utf-8")
        except UnicodeDecodeError:
            stats.not_utf8 += 1
            continue
        stats.files += 1
        stats.bytes += len(m.data)
        yield {"id": f"{project}-{version}:{m.path}", "text": text, "stars": 0}


def build_code(cache: Path) -> CodeStats:
    stats = CodeStats()
    docs: list[dict] = []
    archives: list[tuple[str, str, Path]] = []
    for p in sorted(SAMPLE_ARCHIVES.glob("*.tar.gz")):
        name, version = _name_version(p.name)
        archives.append((name, version, p))
    for r, p in fetch_releases(cache / "sdists"):
        archives.append((r.project, r.version, p))
    seen = set()
    for name, version, p in archives:
        key = (name, version)
        if key in seen:
            raise SystemExit(f"{name} {version} listed twice")
        seen.add(key)
        docs.extend(iter_python_files(p, name, version, stats))
    docs.sort(key=lambda d: d["id"])
    ids = [d["id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate document ids in the code corpus")
    _write_jsonl(cache / "code.jsonl", docs)
    return stats


# ----------------------------------------------------------------------------- prose corpus


def _prose_texts(row: dict, how: str) -> list[str]:
    if how == "source":
        return [" ".join(row["source"])]
    if how == "question+rationale":
        return [row["question"] + "\n" + row["rationale"]]
    if how == "goal+sol1|goal+sol2":
        return [row["goal"] + "\n" + row["sol1"], row["goal"] + "\n" + row["sol2"]]
    return [row[how]]


def build_prose(cache: Path) -> dict[str, int]:
    docs: list[dict] = []
    counts: dict[str, int] = {}
    for dataset, splits, how in PROSE:
        n = 0
        for split in splits:
            with (INSTRUCT / dataset / f"{split}.jsonl").open(encoding="utf-8") as f:
                for line in f:
                    for text in _prose_texts(json.loads(line), how):
                        if not text.strip():
                            continue
                        docs.append({"id": f"{dataset}:{n:05d}", "text": text,
                                     "meta": {"pile_set_name": dataset}})
                        n += 1
        counts[dataset] = n
    docs.sort(key=lambda d: d["id"])
    _write_jsonl(cache / "prose.jsonl", docs)
    _write_jsonl(cache / "prose.pile.jsonl", ({"text": d["text"], "meta": d["meta"]} for d in docs))
    return counts


# ----------------------------------------------------------------------------- io


def _write_jsonl(path: Path, docs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load_sorted(path: Path) -> list[dict]:
    """The corpus sorted by id, the order every method sees."""
    return sorted(load_jsonl(path), key=lambda d: d["id"])


def corpus_mb(docs: list[dict]) -> float:
    """UTF-8 megabytes (10^6) of the documents' text: what every MB/s divides."""
    return sum(len(d["text"].encode("utf-8")) for d in docs) / harness.MB


def ensure_corpora(cache: Path = DEFAULT_CACHE, force: bool = False) -> dict[str, Path]:
    """Build the corpora unless present; return {"code": path, "prose": path}."""
    paths = {"code": cache / "code.jsonl", "prose": cache / "prose.jsonl"}
    if force or not paths["code"].exists():
        s = build_code(cache)
        log(f"code : {s.files} .py files, {s.bytes / 1e6:.1f} MB from {s.archives} archives "
            f"({s.not_utf8} not UTF-8, {s.skipped} skipped by the archive limits)")
    if force or not paths["prose"].exists() or not (cache / "prose.pile.jsonl").exists():
        c = build_prose(cache)
        log(f"prose: {sum(c.values())} documents: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return paths


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--force", action="store_true", help="rebuild the JSONL files (downloads stay cached)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = ensure_corpora(args.cache, force=args.force)
    for name, p in paths.items():
        docs = load_jsonl(p)
        log(f"{name:<6}{len(docs):>7} docs {corpus_mb(docs):8.2f} MB  {p}")
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
