"""The shared flag groups: spelt once, checked once, and the configs they give."""

from __future__ import annotations

import pytest

from pipelines import flags
from pipelines.driver import ArgumentParser, UsageError
from transforms.dedup.near import NearDedupConfig
from transforms.filters.quality import QualityThresholds


def corpus_parser(near_dedup_default=True, decontamination=True):
    parser = ArgumentParser(prog="sluice test")
    flags.add_quality_flags(parser)
    return flags.add_corpus_flags(parser, near_dedup_default=near_dedup_default, decontamination=decontamination)


def parse(argv, **kwargs):
    return flags.parse_built(corpus_parser(**kwargs), ["--output", "/r/d/v1", "--tokenizer", "t.model", *argv])


def test_defaults_match_the_transforms_defaults_and_unknown_flags_go_to_beam():
    args, beam_args = parse(["--runner=DirectRunner"])
    assert beam_args == ["--runner=DirectRunner"]
    assert flags.quality_thresholds(args) == QualityThresholds()
    assert flags.near_dedup_config(args) == NearDedupConfig()
    assert flags.decontamination_config(args)["benchmarks"] == ["humaneval", "mtpb"]
    assert flags.stream_config(args) == {"tokenizer": "t.model", "seq_len": 2048, "num_shards": 64,
                                         "seed": 0, "pack_tail": "drop"}


def test_quality_flags_are_applied_and_checked():
    args, _ = parse(["--max_line_length", "500", "--max_digit_fraction", "0.5", "--generated_scan_lines", "0"])
    quality = flags.quality_thresholds(args)
    assert (quality.max_line_length, quality.max_digit_fraction, quality.generated_scan_lines) == (500, 0.5, 0)
    args, _ = parse(["--max_digit_fraction", "1.5"])
    with pytest.raises(UsageError, match=r"^--max_digit_fraction: must be in \(0, 1\]$"):
        flags.quality_thresholds(args)


def test_near_dedup_is_off_where_the_corpus_says_and_its_flags_are_checked():
    args, _ = parse([], near_dedup_default=False)
    assert flags.near_dedup_config(args) is None
    args, _ = parse(["--near_dedup", "--dedup_threshold", "0.8", "--num_perm", "128"], near_dedup_default=False)
    assert (flags.near_dedup_config(args).threshold, flags.near_dedup_config(args).num_perm) == (0.8, 128)
    for bad, message in ((["--dedup_threshold", "0"], "--dedup_threshold"),
                         (["--lsh_false_negative_weight", "1"], "--lsh_false_negative_weight")):
        args, _ = parse(bad)
        with pytest.raises(UsageError, match=message):
            flags.near_dedup_config(args)


def test_decontamination_flags_are_checked(tmp_path):
    args, _ = parse(["--benchmarks", "humaneval,nosuch"])
    with pytest.raises(UsageError, match="--benchmarks"):
        flags.decontamination_config(args)
    args, _ = parse(["--benchmark_jsonl", str(tmp_path / "missing.jsonl")])
    with pytest.raises(UsageError, match="--benchmark_jsonl: no file matches"):
        flags.decontamination_config(args)
    args, _ = parse(["--no-decontaminate"])
    assert flags.decontamination_config(args) is None
    args, _ = parse([], decontamination=False)
    assert not hasattr(args, "decontaminate")


def test_stream_flags_are_checked():
    with pytest.raises(UsageError, match="--num_shards: at most 99999"):
        parse(["--num_shards", "100000"])
    with pytest.raises(UsageError, match="--seq_len"):
        parse(["--seq_len", "0"])
    args, _ = parse([])
    with pytest.raises(UsageError, match="--tokenizer: no file matches t.model"):
        flags.stream_tokenizer(args)


def tokenizer_versions(root, sample_tokenizer):
    """ROOT/tokenizer/VERSION, a copy of the sample tokenizer's published version, tagged @pinned,
    and ROOT/mono/v1, a version of another dataset."""
    import shutil

    import numpy as np

    from pipelines import aliases
    from schemas import version_writer

    version = root / "tokenizer" / sample_tokenizer.parent.name
    shutil.copytree(sample_tokenizer.parent, version)
    aliases.tag(str(version), "pinned")
    version_writer.write_version(root / "mono" / "v1", [{"input_ids": np.zeros((2, 4), dtype=np.int32)}], "mono")
    return version


def test_tokenizer_takes_a_version_folder_an_alias_or_a_model_file(sample_tokenizer, tmp_path):
    version = tokenizer_versions(tmp_path, sample_tokenizer)
    model = str(version / "tokenizer.model")
    for given in (str(version), f"{version}/", str(tmp_path / "tokenizer" / "@pinned"), model):
        args, _ = parse([])
        args.tokenizer = given
        assert flags.stream_config(args)["tokenizer"] == model  # never the alias, whatever the order
        assert flags.stream_tokenizer(args).vocab_size == 4000 and args.tokenizer == model


@pytest.mark.parametrize("given, says", [
    ("tokenizer/@latest", "tokenizer/@latest: no such alias"),
    ("mono/v1", "mono/v1 is a 'mono' version, not a tokenizer version"),
    ("tokenizer/v9", "no file matches"),
])
def test_a_tokenizer_that_is_not_one_is_one_line(sample_tokenizer, tmp_path, given, says):
    tokenizer_versions(tmp_path, sample_tokenizer)
    args, _ = parse([])
    args.tokenizer = str(tmp_path / given)
    with pytest.raises(UsageError, match="^--tokenizer: ") as caught:
        flags.stream_tokenizer(args)
    assert says in str(caught.value) and "\n" not in str(caught.value)
