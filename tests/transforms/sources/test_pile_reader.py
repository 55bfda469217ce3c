"""The Pile reader on the real NL samples: ids, bad lines as counted rejects, damaged files,
the three encodings, streaming line splitting."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
from pathlib import Path

import apache_beam as beam
import pytest
import zstandard
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import Reject
from tests.transforms.sources.strategies import JSON_VALUES, SETTINGS, json_lines
from transforms.sources.pile_reader import ReadPile, match_inputs, parse_line, pile_document

ROOT = Path(__file__).resolve().parents[3]
NL = ROOT / "samples" / "nl"
SAMPLES = (NL / "train" / "00.jsonl.zst", NL / "train" / "01.jsonl.zst", NL / "val.jsonl.zst")


def zst_content(path: Path) -> bytes:
    """A .zst file's content, read by zstandard's stream reader (not the code under test)."""
    with path.open("rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()


def expected_documents(name: str, content: bytes) -> list:
    docs = []
    for number, line in enumerate(content.splitlines()):
        record = json.loads(line)
        docs.append(pile_document(name, number, record["text"], record["meta"]["pile_set_name"],
                                  record["text"].encode("utf-8")))
    return docs


class _AppendPickled(beam.DoFn):
    """Appends each element to a file: outputs come back to the test (DoFns run on pickled copies)."""

    def __init__(self, path):
        self._path = path

    def process(self, element):
        with open(self._path, "ab") as handle:
            pickle.dump(element, handle)


def _load_all(path: Path) -> list:
    out = []
    if path.exists():
        with path.open("rb") as handle:
            while True:
                try:
                    out.append(pickle.load(handle))
                except EOFError:
                    return out
    return out


@pytest.fixture
def read(beam_helpers, tmp_path_factory):
    """read(patterns, **ReadPile kwargs) -> (documents, rejects, file reports, read counters)."""
    new_pipeline, run, counters = beam_helpers

    def read_pile(patterns, **kwargs):
        folder = tmp_path_factory.mktemp("outputs")
        p = new_pipeline()
        outputs = p | ReadPile(patterns, **kwargs)
        for name, pcoll in zip(("docs", "rejects", "reports"), outputs):
            pcoll | f"Save{name}" >> beam.ParDo(_AppendPickled(str(folder / name)))
        result = run(p)
        return (*(_load_all(folder / name) for name in ("docs", "rejects", "reports")),
                counters(result, "read"))

    return read_pile


def test_reads_every_line_of_the_real_samples(beam_helpers):
    new_pipeline, run, counters = beam_helpers
    expected = [doc for path in SAMPLES for doc in expected_documents(path.name, zst_content(path))]
    assert len(expected) > 1000
    p = new_pipeline()
    docs, rejects, reports = p | ReadPile([str(NL / "train" / "*.jsonl.zst"), str(SAMPLES[2])])
    assert_that(docs, equal_to(expected), label="docs")
    assert_that(rejects, equal_to([]), label="rejects")
    sizes = {path.name: (path.stat().st_size, len(zst_content(path))) for path in SAMPLES}
    lines = {path.name: zst_content(path).count(b"\n") for path in SAMPLES}
    assert_that(reports | beam.Map(lambda r: (r["name"], r["status"], r["lines"], r["documents"],
                                              r["bytes"], r["uncompressed_bytes"])),
                equal_to([(n, "complete", lines[n], lines[n], *sizes[n]) for n in sizes]),
                label="reports")
    result = run(p)
    assert counters(result, "read") == {"kept": len(expected), "lines": len(expected), "files_complete": 3}


def test_ids_are_file_name_and_zero_based_line(read):
    docs, _, _, _ = read(str(SAMPLES[2]))
    first = json.loads(zst_content(SAMPLES[2]).split(b"\n", 1)[0])
    by_id = {doc.id: doc for doc in docs}
    assert by_id["val.jsonl.zst:0"].text == first["text"]
    assert by_id["val.jsonl.zst:0"].subset == first["meta"]["pile_set_name"]
    assert by_id["val.jsonl.zst:0"].sha256 == hashlib.sha256(first["text"].encode()).hexdigest()
    assert sorted(int(i.rsplit(":", 1)[1]) for i in by_id) == list(range(len(docs)))
    assert all(d.path == "val.jsonl.zst" and d.language == "text" and d.stars is None for d in docs)


def test_plain_and_gzip_files_read_the_same_lines(read, tmp_path):
    content = zst_content(SAMPLES[2])
    (tmp_path / "val.jsonl").write_bytes(content)
    (tmp_path / "val.jsonl.gz").write_bytes(gzip.compress(content))
    docs, rejects, reports, _ = read(str(tmp_path / "val.jsonl*"))
    assert not rejects and {r["status"] for r in reports} == {"complete"}
    for name in ("val.jsonl", "val.jsonl.gz"):
        mine = sorted((d for d in docs if d.path == name), key=lambda d: int(d.id.rsplit(":", 1)[1]))
        assert mine == expected_documents(name, content)


def test_multi_frame_zstd_and_a_last_line_without_newline(read, tmp_path):
    lines = zst_content(SAMPLES[2]).splitlines(keepends=True)[:20]
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    frames = [compressor.compress(b"".join(lines[:7])), compressor.compress(b"".join(lines[7:]).rstrip(b"\n"))]
    (tmp_path / "two.jsonl.zst").write_bytes(b"".join(frames))
    docs, rejects, reports, _ = read(str(tmp_path / "two.jsonl.zst"))
    assert not rejects and reports[0]["lines"] == 20 and reports[0]["status"] == "complete"
    assert sorted(docs, key=lambda d: int(d.id.split(":")[1])) == expected_documents(
        "two.jsonl.zst", b"".join(lines))


def good_line(text="A real line.", set_name="Wikipedia (en)") -> bytes:
    return json.dumps({"text": text, "meta": {"pile_set_name": set_name}}).encode()


BAD_LINES = [
    (b'{"text": "cut short", "meta": {"pile_set_name": "Github"}', "invalid_json"),
    (b"not json at all", "invalid_json"),
    (b'{"text": "caf\xe9", "meta": {"pile_set_name": "Pile-CC"}}', "invalid_utf8"),
    (b'["text", "meta"]', "not_an_object"),
    (b'{"meta": {"pile_set_name": "Pile-CC"}}', "missing_text"),
    (b'{"text": null, "meta": {"pile_set_name": "Pile-CC"}}', "text_not_a_string"),
    (b'{"text": ["a", "b"], "meta": {"pile_set_name": "Pile-CC"}}', "text_not_a_string"),
    (b'{"text": "no meta"}', "missing_meta"),
    (b'{"text": "meta is a string", "meta": "Pile-CC"}', "missing_meta"),
    (b'{"text": "no set", "meta": {}}', "missing_set_name"),
    (b'{"text": "set is a number", "meta": {"pile_set_name": 3}}', "missing_set_name"),
    (b'{"text": "lone \\ud800 surrogate", "meta": {"pile_set_name": "Pile-CC"}}', "lone_surrogate"),
    (b'{"text": "  \\n ", "meta": {"pile_set_name": "Pile-CC"}}', "empty_text"),
    (b"   ", "blank_line"),
    (b'{"text": "deep", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "invalid_json"),  # not RecursionError
    (b'{"text": "x", "meta": {"pile_set_name": "Pile-CC", "n": ' + b"9" * 5000 + b"}}", "invalid_json"),
]


@pytest.mark.parametrize("line, reason", BAD_LINES)
def test_parse_line_names_the_reason(line, reason):
    with pytest.raises(ValueError) as err:
        parse_line(line)
    assert str(err.value).partition(": ")[0] == reason


def test_parse_line_keeps_meta_extras_and_escapes():
    text, name, data = parse_line(b'{"text": "caf\\u00e9 \\ud83d\\ude00", "meta": {"pile_set_name": "ArXiv", "x": 1}}')
    assert (text, name, data) == ("café \U0001F600", "ArXiv", "café \U0001F600".encode())


def test_bad_lines_are_counted_rejects_with_file_and_line(read, tmp_path):
    real = zst_content(SAMPLES[2]).splitlines()[:3]
    limit = max(len(line) for line in real + [line for line, _ in BAD_LINES])
    lines = [real[0]] + [line for line, _ in BAD_LINES] + [real[1], good_line("x" * limit), real[2]]
    (tmp_path / "bad.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    docs, rejects, reports, counts = read(str(tmp_path / "bad.jsonl.zst"), max_line_bytes=limit)
    want = {f"bad.jsonl.zst:{i + 1}": reason for i, (_, reason) in enumerate(BAD_LINES)}
    want[f"bad.jsonl.zst:{len(lines) - 2}"] = "line_too_long"
    assert {r.id: r.reason for r in rejects} == want
    assert all(r.stage == "read" for r in rejects)
    assert sorted(d.id for d in docs) == sorted(f"bad.jsonl.zst:{i}" for i in (0, len(lines) - 3, len(lines) - 1))
    tally = {}
    for reason in want.values():
        tally[reason] = tally.get(reason, 0) + 1
    assert counts == {**tally, "kept": 3, "lines": len(lines), "files_complete": 1}
    assert reports[0]["rejected_lines"] == len(want) and reports[0]["documents"] == 3


def truncated_copy(tmp_path, source: Path, fraction: float = 0.5) -> tuple[Path, int]:
    """A real sample cut short (an interrupted download) and the complete lines before the cut."""
    data = source.read_bytes()
    cut = data[: int(len(data) * fraction)]
    path = tmp_path / source.name
    path.write_bytes(cut)
    partial = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(cut), read_across_frames=True).read()
    return path, partial.count(b"\n")


def test_truncated_zst_fails_by_default_naming_file_and_lines(read, tmp_path):
    path, complete = truncated_copy(tmp_path, SAMPLES[0])
    assert 0 < complete < zst_content(SAMPLES[0]).count(b"\n")
    with pytest.raises(Exception) as err:
        read(str(path))
    message = str(err.value)
    assert f"damaged input file {path}" in message
    assert f"after {complete} complete lines" in message and "truncated zstd data" in message


def test_truncated_zst_continues_with_the_lines_before_the_damage(read, tmp_path):
    path, complete = truncated_copy(tmp_path, SAMPLES[0])
    docs, rejects, reports, counts = read([str(path), str(SAMPLES[2])], on_damage="continue")
    before = expected_documents(path.name, zst_content(SAMPLES[0]))[:complete]
    assert sorted((d for d in docs if d.path == path.name), key=lambda d: int(d.id.split(":")[1])) == before
    assert rejects == [Reject(path.name, "read", "file_damaged",
                              f"truncated zstd data (the file ends inside a frame); {complete} lines read before it")]
    report = {r["name"]: r for r in reports}[path.name]
    assert report["status"] == "damaged" and report["lines"] == complete
    assert report["damage"].startswith("truncated zstd data")
    assert counts["files_damaged"] == 1 and counts["files_complete"] == 1


@pytest.mark.parametrize("damage, expected", [
    ("flip", "corrupt zstd data"),
    ("empty", "empty file"),
])
def test_corrupt_and_empty_zst_are_damaged(read, tmp_path, damage, expected):
    data = bytearray(SAMPLES[2].read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF  # the release's files carry a checksum: the flip is caught
    else:
        data = b""
    (tmp_path / "val.jsonl.zst").write_bytes(bytes(data))
    _, rejects, reports, _ = read(str(tmp_path / "val.jsonl.zst"), on_damage="continue")
    assert [r.reason for r in rejects] == ["file_damaged"]
    assert reports[0]["status"] == "damaged" and reports[0]["damage"].startswith(expected)


def test_truncated_gzip_keeps_the_lines_before_the_damage(read, tmp_path):
    content = zst_content(SAMPLES[1])
    data = gzip.compress(content)
    (tmp_path / "01.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    docs, rejects, reports, _ = read(str(tmp_path / "01.jsonl.gz"), on_damage="continue")
    report = reports[0]
    assert report["status"] == "damaged" and report["damage"].startswith("truncated gzip data")
    assert 0 < report["lines"] == len(docs) < content.count(b"\n")
    assert sorted(docs, key=lambda d: int(d.id.split(":")[1])) == expected_documents(
        "01.jsonl.gz", content)[: report["lines"]]
    assert [r.id for r in rejects] == ["01.jsonl.gz"]


def test_a_file_matched_twice_is_read_once(read):
    docs, _, reports, _ = read([str(SAMPLES[2]), str(NL / "val.*")])
    assert len(reports) == 1 and len(docs) == len({d.id for d in docs}) == reports[0]["lines"]


def test_match_inputs_refuses_what_would_break_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "00.jsonl.zst").write_bytes(SAMPLES[0].read_bytes())
    (tmp_path / "notes.txt").write_text("hello")
    assert [m.path for m in match_inputs([str(p) for p in SAMPLES])] == sorted(str(p) for p in SAMPLES)
    with pytest.raises(ValueError, match="share the name 00.jsonl.zst"):
        match_inputs([str(tmp_path / "*" / "00.jsonl.zst")])
    with pytest.raises(ValueError, match="no file matches"):
        match_inputs([str(tmp_path / "missing-*.jsonl.zst")])
    with pytest.raises(ValueError, match="is not a Pile file"):
        match_inputs([str(tmp_path / "notes.txt")])


PILE_REASONS = {"blank_line", "invalid_utf8", "invalid_json", "not_an_object", "missing_text",
                "text_not_a_string", "missing_meta", "missing_set_name", "lone_surrogate", "empty_text"}
_PILE_RECORDS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({}, optional={
        "text": st.one_of(JSON_VALUES, st.text()),
        "meta": st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
            "pile_set_name": st.one_of(JSON_VALUES, st.sampled_from(["Pile-CC", "Github", ""]))})),
    }),
)


@settings(**SETTINGS)
@given(line=json_lines(_PILE_RECORDS))
def test_any_line_is_a_pile_record_or_a_named_reject(line):
    # The reader turns exactly these ValueErrors into counted rejects; anything else would end the job.
    try:
        text, name, data = parse_line(line)
    except ValueError as err:
        assert str(err).partition(": ")[0] in PILE_REASONS, err
        return
    assert isinstance(name, str) and name and text.strip() and data == text.encode("utf-8")
    pile_document("f.jsonl", 0, text, name, data)
