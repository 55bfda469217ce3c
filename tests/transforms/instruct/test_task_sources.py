"""Task sources as the driver reads them: the source check before any job (one line naming the
registry, the task and the problem), and the evaluation splits' decontamination texts."""

from __future__ import annotations

import pytest

from schemas.instruct import RegistryError
from transforms.decontamination import MIN_ITEM_TOKENS, tokens
from transforms.instruct.task_sources import check_sources, eval_texts, load_checked_registry


def test_shipped_and_tiny_registries_pass_the_source_check(instruct_registry, tiny_registry, write_registry):
    check_sources(instruct_registry)
    assert load_checked_registry(write_registry(tiny_registry)).task("qa").trainable


@pytest.mark.parametrize("change, message", [
    (lambda d: d["tasks"][0]["fields"].update(answer="answer_text"),
     r"task qa: source train \(.*data.jsonl\) lacks mapped field answer_text"),
    (lambda d: d["tasks"][0]["source"]["splits"].update(train="/nonexistent/*.jsonl"), "no file matches"),
    (lambda d: d["tasks"][0]["source"]["splits"].update(train=d["tasks"][0]["source"]["splits"]["train"].replace(
        "data.jsonl", "*/data.jsonl")), "several files named data.jsonl"),
])
def test_bad_source_fails_with_one_clear_line(tiny_registry, write_registry, change, message):
    change(tiny_registry)
    with pytest.raises(RegistryError, match=message) as err:
        load_checked_registry(write_registry(tiny_registry))
    assert "\n" not in str(err.value) and str(err.value).startswith("registry ")


def test_hf_source_without_the_datasets_library_is_one_clear_line(tmp_path, tiny_registry, write_registry,
                                                                   monkeypatch):
    tiny_registry["tasks"][0]["source"] = {"format": "hf_disk", "path": str(tmp_path), "splits": {"train": "train"}}
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as if not installed
    with pytest.raises(RegistryError, match="needs the 'datasets' library"):
        load_checked_registry(write_registry(tiny_registry))


def test_eval_texts_are_the_long_fields_of_evaluation_examples(instruct_registry):
    items = eval_texts(instruct_registry)
    assert len({item["id"] for item in items}) == len(items)
    assert all(len(tokens(item["text"])) >= MIN_ITEM_TOKENS for item in items)
    tasks = {item["id"].split(":", 1)[1].split("/", 1)[0] for item in items}
    assert tasks <= {t.name for t in instruct_registry.tasks if "eval" in t.source.splits}
    assert not any(name.startswith("code_") for name in tasks)  # split off by hash, not listed
    # An NQ-open question is listed by its row and field; its short answer is not evidence.
    first = {item["id"]: item["text"] for item in items if item["id"].startswith("eval:nq_open/validation.jsonl:0:")}
    assert first == {"eval:nq_open/validation.jsonl:0:question": "when was the last time anyone was on the moon"}


def test_eval_texts_cover_every_field_and_the_other_references(instruct_registry):
    """Every long field of every evaluation example is still listed, plus the reference answers a
    field does not already hold (SciTLDR's second and third TL;DRs), each once."""
    import json
    import pathlib

    from schemas.instruct import FieldError, example_fields

    items = {item["id"]: item["text"] for item in eval_texts(instruct_registry)}
    task = instruct_registry.task("scitldr")
    path = pathlib.Path(task.source.splits["eval"])
    extra = 0
    for row in map(json.loads, path.read_text().splitlines()):
        try:
            fields = example_fields(task, row)
        except FieldError:
            continue
        for name, value in fields.items():
            if len(tokens(value)) >= MIN_ITEM_TOKENS:
                assert items[f"eval:scitldr/{row['paper_id']}:{name}"] == value
        for i, tldr in enumerate(row["target"]):
            key = f"eval:scitldr/{row['paper_id']}:references.{i}"
            long_enough = len(tokens(tldr)) >= MIN_ITEM_TOKENS
            assert (items.get(key) == tldr) == (long_enough and tldr not in fields.values())
            extra += key in items
    assert extra > 0  # the other summaries are decontamination texts too


def test_an_https_source_is_fetched_whole_with_retries(serve_folder):
    """A blip (503, a body cut short) does not shrink a task: the file is read again from its start."""
    from pathlib import Path

    from transforms.instruct.task_sources import jsonl_records

    folder = Path(__file__).resolve().parents[3] / "samples" / "instruct" / "piqa"
    server = serve_folder(folder)
    server.script("/piqa/validation.jsonl", ("status", 503, {"Retry-After": "0"}), ("cut",), "ok")
    local = list(jsonl_records(str(folder / "validation.jsonl")))
    assert local and list(jsonl_records(server.url("/piqa/validation.jsonl"))) == local
    assert len(server.requests) == 3
    with pytest.raises(OSError, match="^archive_not_found: HTTP 404"):
        list(jsonl_records(server.url("/piqa/missing.jsonl")))
