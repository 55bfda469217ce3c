"""``python -m pipelines.summary DIR``: the manifest read through schemas.dataset_version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import summary
from schemas import version_writer


@pytest.fixture
def version(tmp_path):
    folder = tmp_path / "nl" / "v1"
    version_writer.write_version(folder, [{"input_ids": np.zeros((3, 4), dtype=np.int32)},
                              {"input_ids": np.ones((2, 4), dtype=np.int32)}], "nl")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sluice"]["git_commit"] = "0123456789abcdef"  # a pipeline records it; write_version does not
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_prints_the_summary(version, capsys):
    assert summary.main([str(version)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dataset nl  config ") and "sluice test (0123456789)" in out
    assert "2 shards, 5 sequences, 20 tokens" in out


@pytest.mark.parametrize("below", ["", "train-00000-of-00002.arrow"])
def test_no_manifest_is_one_line_and_status_2(version, tmp_path, capsys, below):
    folder = version / below if below else tmp_path
    assert summary.main([str(folder)]) == 2
    assert capsys.readouterr().err == f"error: no manifest at {folder}/manifest.json\n"


@pytest.mark.parametrize("damage, says", [
    (lambda m: m["totals"].update(records=m["totals"]["records"] + 1), "totals do not match the shards"),
    (lambda m: m.update(shards=[{"shard": 0}]), "shards[0].records missing"),
    (lambda m: "not json {", "Expecting value"),
])
def test_a_damaged_manifest_is_one_line_and_status_2(version, capsys, damage, says):
    manifest = json.loads((version / "manifest.json").read_text())
    text = damage(manifest)
    (version / "manifest.json").write_text(text if isinstance(text, str) else json.dumps(manifest))
    assert summary.main([str(version)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {version}: invalid manifest (")
    assert says in captured.err and captured.err.count("\n") == 1
