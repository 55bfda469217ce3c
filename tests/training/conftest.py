"""Fixtures for the training jobs: real streams from the real pipelines, and small hand-made ones."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from schemas import version_writer

# Each test module starts with pytest.importorskip("torch") and ("transformers"), so that without
# the 'train' extra it is skipped with a reason (a skip raised here would be a collection error).

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / "training" / "configs" / "tiny.json"


@pytest.fixture(scope="session")
def tiny_config() -> pathlib.Path:
    return TINY_CONFIG


@pytest.fixture(scope="session")
def nl_checkpoint(tmp_path_factory, nl_input, sample_tokenizer, tiny_config) -> pathlib.Path:
    """A real nl-stage checkpoint: 2 steps of the tiny config on the NL pipeline's output, with the
    sample tokenizer (the parent of the FLAN tests' instruct stage, the CodeGen figures' model)."""
    from pipelines import nl
    from training import train

    root = tmp_path_factory.mktemp("nl_checkpoint")
    nl.main(["--input", nl_input, "--output", str(root / "nl" / "v1"), "--tokenizer", str(sample_tokenizer),
             "--num_shards", "1", "--seq_len", "128"])
    train.main(["--stage", "nl", "--data", str(root / "nl" / "v1"), "--output", str(root / "ckpt"),
                "--config", str(tiny_config), "--max_steps", "2", "--tokenizer", str(sample_tokenizer)])
    return root / "ckpt"


@pytest.fixture(scope="session")
def corpus_streams(tmp_path_factory, sample_tokenizer, nl_input, multi_snapshot, sample_manifest) -> dict:
    """NL, Multi and Mono dataset versions ROOT/DATASET/v1 made by the real pipelines from the bundled
    samples (seq_len 128, 2 shards), all with the one tokenizer, as CodeGen used one."""
    from pipelines import mono, multi, nl

    root = tmp_path_factory.mktemp("streams")
    common = ["--tokenizer", str(sample_tokenizer), "--num_shards", "2", "--seq_len", "128"]
    nl.main(["--input", nl_input, "--output", str(root / "nl" / "v1"), *common])
    multi.main(["--bigquery_snapshot", str(multi_snapshot), "--output", str(root / "multi" / "v1"), *common])
    mono.main(["--input", str(sample_manifest), "--output", str(root / "mono" / "v1"), "--no-near_dedup", *common])
    return {name: root / name / "v1" for name in ("nl", "multi", "mono")}


@pytest.fixture(scope="session")
def instruct_version(corpus_streams, sample_tokenizer) -> pathlib.Path:
    """An --all_holdouts instruct version next to ``corpus_streams`` (ROOT/instruct/v1, one split
    folder per held-out cluster) from three real sample tasks in two clusters, short rows."""
    import json

    import yaml

    from pipelines import instruct

    registry_path = ROOT / "samples" / "instruct" / "tasks.yaml"
    data = yaml.safe_load(registry_path.read_text())
    tasks = [t for t in data["tasks"] if t["name"] in ("web_questions", "nq_open", "poem_sentiment")]
    for task in tasks:
        task["source"]["splits"] = {k: str(registry_path.parent / v) for k, v in task["source"]["splits"].items()}
    root = corpus_streams["nl"].parents[1]
    registry = root / "tasks.json"
    registry.write_text(json.dumps({"tasks": tasks}))
    out = root / "instruct" / "v1"
    instruct.main(["--tasks", str(registry), "--output", str(out), "--tokenizer", str(sample_tokenizer),
                   "--all_holdouts", "--num_shards", "1", "--mixing_cap", "100", "--no-decontaminate",
                   "--seq_len", "128", "--max_input_tokens", "96", "--max_target_tokens", "31"])
    return out


@pytest.fixture(scope="session")
def numbered_version(tmp_path_factory) -> pathlib.Path:
    """3 shards of 7, 0 and 11 rows whose row r (global, in shard order) is all ``r``: every row is
    identifiable, and one shard is empty. Has input_ids, loss_mask and segment_ids."""
    rows = [7, 0, 11]
    shards, start = [], 0
    for n in rows:
        ids = np.repeat(np.arange(start, start + n, dtype=np.int32)[:, None], 8, axis=1)
        shards.append({"input_ids": ids, "loss_mask": (ids % 2).astype(np.int8),
                       "segment_ids": np.ones_like(ids)})
        start += n
    folder = tmp_path_factory.mktemp("numbered") / "version"
    version_writer.write_version(folder, shards, dataset="numbered")
    return folder


@pytest.fixture(scope="session")
def write_version_fn():
    return version_writer.write_version


# Scoring runs completions in the bubblewrap sandbox. Where it cannot start (no bwrap, no user
# namespaces, no CAP_SYS_ADMIN as root) the tests that need it are skipped with the sandbox's own
# one-line reason; the refusal and --unsafe_no_sandbox tests still run there.
NEEDS_SANDBOX = ("test_eval.py", "test_sandbox.py")


def pytest_collection_modifyitems(config, items):
    wanting = [item for item in items if item.path.name in NEEDS_SANDBOX
               and not any(word in item.name for word in ("unless_unsafe", "bwrap_cannot_start", "without_bwrap"))]
    if not wanting:
        return
    from training.eval import sandbox

    why = sandbox.problem()
    if why is not None:
        for item in wanting:
            item.add_marker(pytest.mark.skip(reason=f"no OS sandbox here: {why}"))
