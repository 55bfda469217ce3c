"""Read The Pile's JSON Lines files (``.jsonl.zst``, ``.jsonl.gz``, ``.jsonl``) into Documents.

Each file is decompressed and split into lines as a stream (``transforms.sources.pile_stream``),
one line in memory at a time; lines over ``max_line_bytes`` are dropped as they stream by, and
counted.

Every line that is not a Pile record is a counted reject with id ``<file name>:<0-based line>``,
the document id scheme (``00.jsonl.zst:1234``). A damaged file fails the job by default, naming
the file and the lines read; with ``on_damage="continue"`` its complete lines are kept and the file
is a reject ``file_damaged`` plus a ``damaged`` entry in the per-file reports.

Matched files are grouped by path (a file two patterns match is read once) which also spreads
them over workers; documents are redistributed after reading so tokenizing is not limited to one
worker per file.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from schemas.json_lines import load_json_line
from schemas.pile import FILE_SUFFIXES, LANGUAGE, compression_of
from schemas.records import Document
from transforms.sources.pile_stream import CountingReader, Damage, decompressed_chunks, iter_lines
from transforms.stats import histograms
from transforms.stats.counting import KEPT, REJECTS, count, reject

STAGE = "read"
FILE_REPORTS = "files"
ON_DAMAGE = ("fail", "continue")
DEFAULT_MAX_LINE_BYTES = 256 << 20  # far above any Pile document; bounds one worker's memory
DAMAGE_MARK = "damaged input file"


class DamagedFileError(IOError):
    """A damaged input under ``on_damage="fail"``: the message names the file and the lines read."""

    def __init__(self, path: str, lines: int, error: str):
        super().__init__(f"{DAMAGE_MARK} {path}: {error}, after {lines} complete lines")


def damage_message(err: BaseException) -> str | None:
    """The one-line damage message inside a failed job's exception (runners wrap it), if any."""
    for line in str(err).splitlines():
        at = line.find(DAMAGE_MARK)
        if at >= 0:
            return line[at:].split(" [while running", 1)[0].strip()
    return None


def parse_line(line: bytes):
    """``(text, pile_set_name, utf-8 bytes of text)`` of one Pile line.

    Raises ValueError("reason: detail") for a line that is not a Pile record.
    """
    if not line.strip():
        raise ValueError("blank_line: ")
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"invalid_utf8: byte {err.start}") from None
    record = load_json_line(decoded)
    if not isinstance(record, dict):
        raise ValueError(f"not_an_object: {type(record).__name__}")
    if "text" not in record:
        raise ValueError("missing_text: ")
    text = record["text"]
    if not isinstance(text, str):
        raise ValueError(f"text_not_a_string: {type(text).__name__}")
    meta = record.get("meta")
    if not isinstance(meta, dict):
        raise ValueError(f"missing_meta: {'absent' if meta is None else type(meta).__name__}")
    name = meta.get("pile_set_name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"missing_set_name: {name!r}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as err:  # a "\ud800" escape: valid JSON, not encodable text
        raise ValueError(f"lone_surrogate: character {err.start}") from None
    if not text.strip():
        raise ValueError("empty_text: ")
    return text, name, data


def pile_document(file_name: str, line_number: int, text: str, set_name: str, data: bytes) -> Document:
    return Document(
        id=f"{file_name}:{line_number}", repo_name="", path=file_name, text=text,
        sha256=hashlib.sha256(data).hexdigest(), stars=None, license=None, license_source=None,
        license_confidence=None, ref=None, language=LANGUAGE, subset=set_name,
    )


class _ReadPileFileFn(beam.DoFn):
    def __init__(self, on_damage: str, max_line_bytes: int):
        self._on_damage = on_damage
        self._max_line_bytes = max_line_bytes

    def process(self, readable_file):
        path = readable_file.metadata.path
        name = path.rstrip("/").rsplit("/", 1)[-1]
        report = {"path": path, "name": name, "bytes": readable_file.metadata.size_in_bytes,
                  "lines": 0, "documents": 0, "rejected_lines": 0, "uncompressed_bytes": 0,
                  "status": "complete"}
        with readable_file.open(mime_type="application/octet-stream") as handle:
            raw = CountingReader(handle)
            lines = iter_lines(self._counted(decompressed_chunks(raw, compression_of(name)), report),
                               self._max_line_bytes)
            try:
                for number, (line, size) in enumerate(lines):
                    report["lines"] = number + 1
                    record_id = f"{name}:{number}"
                    if line is None:
                        report["rejected_lines"] += 1
                        yield reject(record_id, STAGE, "line_too_long",
                                     f"{size} bytes > {self._max_line_bytes}")
                        continue
                    try:
                        text, set_name, data = parse_line(line)
                    except ValueError as err:
                        report["rejected_lines"] += 1
                        reason, _, detail = str(err).partition(": ")
                        yield reject(record_id, STAGE, reason, detail)
                        continue
                    report["documents"] += 1
                    count(STAGE, KEPT)
                    histograms.observe(histograms.DOCUMENT_BYTES_READ, len(text.encode("utf-8")))
                    yield pile_document(name, number, text, set_name, data)
            except Damage as err:
                if self._on_damage == "fail":
                    raise DamagedFileError(path, report["lines"], str(err)) from None
                report.update(status="damaged", damage=str(err), compressed_bytes_read=raw.bytes_read)
                count(STAGE, "files_damaged")
                yield reject(name, STAGE, "file_damaged", f"{err}; {report['lines']} lines read before it")
            else:
                count(STAGE, "files_complete")
        count(STAGE, "lines", report["lines"])
        yield beam.pvalue.TaggedOutput(FILE_REPORTS, report)

    @staticmethod
    def _counted(chunks, report):
        for chunk in chunks:
            report["uncompressed_bytes"] += len(chunk)
            yield chunk


def _first(keyed):
    return next(iter(keyed[1]))


class ReadPile(beam.PTransform):
    """Pipeline root -> ``(documents, rejects, file_reports)`` from Pile file patterns.

    ``file_reports`` holds one small dict per input file: path, name, bytes, lines, documents,
    rejected_lines, uncompressed_bytes, status (``complete`` or ``damaged`` with ``damage``).
    A pattern that matches nothing fails the job; file names must be unique across patterns
    (``match_inputs`` checks both up front).
    """

    def __init__(self, patterns, on_damage: str = "fail", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES):
        super().__init__()
        if on_damage not in ON_DAMAGE:
            raise ValueError(f"on_damage must be one of {ON_DAMAGE}")
        self._patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        self._fn = _ReadPileFileFn(on_damage, max_line_bytes)

    def expand(self, pbegin):
        read = (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "KeyByPath" >> beam.Map(lambda metadata: (metadata.path, metadata))
            | "OnePerPath" >> beam.GroupByKey()
            | "Metadata" >> beam.Map(_first)
            | "Open" >> fileio.ReadMatches(compression=CompressionTypes.UNCOMPRESSED)
            | "Read" >> beam.ParDo(self._fn).with_outputs(REJECTS, FILE_REPORTS, main=KEPT)
        )
        documents = read[KEPT] | "Redistribute" >> beam.Reshuffle()
        return documents, read[REJECTS], read[FILE_REPORTS]


def match_inputs(patterns) -> list:
    """The files the patterns match, checked up front: ValueError (one line) when a pattern
    matches nothing, a file is not a Pile file, or two different files share a name (their
    document ids would collide)."""
    by_name: dict = {}
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        if not result.metadata_list:
            raise ValueError(f"no file matches {pattern}")
        for metadata in result.metadata_list:
            name = metadata.path.rstrip("/").rsplit("/", 1)[-1]
            if not name.endswith(FILE_SUFFIXES):
                raise ValueError(f"{metadata.path} is not a Pile file ({', '.join(FILE_SUFFIXES)})")
            other = by_name.setdefault(name, metadata)
            if other.path != metadata.path:
                raise ValueError(
                    f"{other.path} and {metadata.path} share the name {name}: document ids"
                    " (<file name>:<line>) would collide"
                )
    return sorted(by_name.values(), key=lambda metadata: metadata.path)
