"""What a checkpoint records about its data (``sluice_lineage.json``), so a model's data can be read back.

A stage writes the dataset version it trained on (``dataset/version[/split]`` from its manifest, the
manifest fingerprint, the version's parents and so its tokenizer's version), its config and the
parent checkpoint's whole lineage; :func:`lineage_chain` reads that back as one entry per stage.
"""

from __future__ import annotations

import json
import os

from schemas import dataset_version as dv
from schemas.manifest import fingerprint
from schemas.version import __version__
from training.cli import UsageError

LINEAGE = "sluice_lineage.json"


def lineage_record(stage: str, data: str, manifest: dict, config: dict, init) -> dict:
    """The lineage a stage's checkpoints record: trained on ``data`` (its ``manifest``) with
    ``config``, from the checkpoint ``init`` (None for nl); steps and tokens are added per checkpoint."""
    train = config["train"]
    return {
        "stage": stage,
        "sluice": __version__,
        "data": {"path": data, "dataset": manifest["dataset"], "version": dv.version_label(manifest),
                 "format": train["format"], "manifest_fingerprint": dv.manifest_fingerprint(manifest),
                 "parents": manifest["lineage"]["parents"], "tokenizer_version": tokenizer_version(manifest),
                 "config_fingerprint": manifest["config_fingerprint"],
                 "tokenizer_sha256": manifest["tokenizer"]["sha256"], "sequences": manifest["totals"]["records"],
                 "seq_len": dv.seq_len_of(manifest)},
        "parent_path": init,
        "parent": read_lineage(init) if init else None,
        "config": config,
        "config_fingerprint": fingerprint(config),
    }


def read_lineage(checkpoint: str) -> dict:
    """The lineage a checkpoint folder records (stage, dataset version, parent lineage...)."""
    path = os.path.join(checkpoint, LINEAGE)
    if not os.path.exists(path):
        raise UsageError(f"{checkpoint}: no {LINEAGE} (not a Sluice checkpoint)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def lineage_chain(checkpoint: str) -> list:
    """One entry per stage, from the first to this checkpoint: ``{"stage", "data"`` (dataset/version
    [/split]), ``"manifest_fingerprint", "tokenizer"`` (the tokenizer's version, dataset/version)``}``."""
    chain, node = [], read_lineage(checkpoint)
    while node:
        data = node["data"]
        # checkpoints from before manifest format 2 name the dataset only
        chain.append({"stage": node["stage"], "data": data.get("version", data["dataset"]),
                      "manifest_fingerprint": data["manifest_fingerprint"], "tokenizer": data.get("tokenizer_version")})
        node = node.get("parent")
    return chain[::-1]


def tokenizer_version(manifest: dict):
    """``tokenizer/VERSION`` the dataset's lineage names as its tokenizer's parent version (None when
    the tokenizer file was not a published version)."""
    parent = manifest["lineage"]["parents"].get("tokenizer")
    if not parent:
        return None
    return "/".join(str(p) for p in (parent.get("dataset"), parent.get("version")) if p) or parent.get("path")
