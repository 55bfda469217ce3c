"""The evaluation record layout: what the writer encodes the reader gives back, from a file, an
``eval/`` folder or a split's folder; a record lacking a feature is one clear error."""

from __future__ import annotations

import json
import pathlib

import pytest

from schemas.instruct_eval import EvalRecord, decode_eval_record, encode_eval_record, eval_files, read_eval_records
from schemas.tf_example import Example
from schemas.tfrecord import write_record

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples" / "instruct"


def records():
    """Records as the pipeline would write them, from the first real NQ-open and WSC rows."""
    nq = json.loads((SAMPLES / "nq_open" / "validation.jsonl").read_text().splitlines()[0])
    wsc = json.loads((SAMPLES / "wsc" / "test.jsonl").read_text().splitlines()[0])
    return [
        EvalRecord(task="nq_open", cluster="closed_book_qa", id="nq_open/validation.jsonl:0", template=t,
                   metrics=("exact_match", "f1"), input=f"Q: {nq['question']}?\nA:", target=nq["answer"][0],
                   references=tuple(nq["answer"]), options=(), input_ids=(5, 6, 7 + t), target_ids=(8, 9))
        for t in range(2)
    ] + [EvalRecord(task="wsc", cluster="coreference", id="wsc/test.jsonl:0", template=3, metrics=("accuracy",),
                    input=wsc["text"]["txt1"], target=wsc["answers"][0], references=(wsc["answers"][0],),
                    options=tuple(wsc["answers"]), input_ids=(1,), target_ids=(2, 3))]


def test_round_trip_from_a_file_a_folder_and_a_split(tmp_path):
    written = records()
    (tmp_path / "eval").mkdir()
    for i, part in enumerate((written[:2], written[2:])):
        with open(tmp_path / "eval" / f"eval-0000{i}-of-00002.tfrecord", "wb") as handle:
            for record in part:
                write_record(handle, encode_eval_record(record))
    assert list(read_eval_records(str(tmp_path))) == written  # the split's folder
    assert list(read_eval_records(str(tmp_path / "eval"))) == written
    assert list(read_eval_records(str(tmp_path / "eval" / "eval-00001-of-00002.tfrecord"))) == written[2:]
    assert [pathlib.Path(p).name for p in eval_files(str(tmp_path))] == [
        "eval-00000-of-00002.tfrecord", "eval-00001-of-00002.tfrecord"]
    assert written[0].metric == "exact_match" and written[0].references == ("14 December 1972 UTC", "December 1972")
    assert encode_eval_record(written[0]) == encode_eval_record(written[0])  # deterministic bytes


def test_missing_files_and_features_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="no eval-\\*.tfrecord evaluation files"):
        eval_files(str(tmp_path))
    data = Example.FromString(encode_eval_record(records()[0]))
    del data.features.feature["references"]
    with pytest.raises(ValueError, match="lacks feature 'references'"):
        decode_eval_record(data.SerializeToString())
