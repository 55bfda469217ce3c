"""What the corpus pipelines share: the near-dedup report that gates a publish."""

from __future__ import annotations

import pytest

from pipelines.corpus import emptied_by, near_dedup_report
from pipelines.driver import UsageError
from transforms.dedup.near import NearDedupConfig


def test_near_dedup_report_proves_convergence():
    config = NearDedupConfig(cc_rounds=3)
    counts = {"near_dedup": {"components": 4, "near_duplicate": 7, "cc_round_00_rewired": 5,
                             "cc_round_01_rewired": 0}}
    report = near_dedup_report(config, counts)
    assert (report["bands"], report["rows"]) == config.bands_rows()
    assert (report["components"], report["removed"]) == (4, 7)
    assert report["connected_components"]["first_idle_round"] == 1


def test_a_run_whose_components_did_not_converge_is_not_published():
    counts = {"near_dedup": {f"cc_round_{i:02d}_rewired": 1 for i in range(3)}}
    with pytest.raises(UsageError, match=r"did not converge in 3 rounds .* rerun with a larger --cc_rounds"):
        near_dedup_report(NearDedupConfig(cc_rounds=3), counts)


def _args(**flags):
    import argparse

    return argparse.Namespace(seq_len=2048, pack_tail="drop", **flags)


@pytest.mark.parametrize("counts, flags, stage_flags, expected", [
    # the first stage in pipeline order that kept nothing, not the alphabetical first
    ({"manifest": {"kept": 12}, "stars": {"too_few_stars": 12}, "license": {}},
     dict(min_stars=100000), {"stars": ("min_stars",)},
     "stage `stars` rejected all 12 repositories (too_few_stars 12; --min_stars 100000)"),
    ({"read": {"kept": 5}, "quality": {"empty": 3, "generated": 2, "max_line_length": 1, "avg_line_length": 1},
      "exact_dedup": {}}, {}, {},
     "stage `quality` rejected all 7 documents (empty 3, generated 2, avg_line_length 1)"),
    ({"read": {"kept": 2, "lines": 9}, "set_filter": {"set_not_selected": 2}},
     dict(include_sets=("Github", "ArXiv")), {"set_filter": ("include_sets", "exclude_sets")},
     "stage `set_filter` rejected all 2 documents (set_not_selected 2; --include_sets Github,ArXiv)"),
    ({"read": {"kept": 2}, "tokenize": {"kept": 2, "tokens": 90},
      "pack": {"sequences": 0, "documents": 2, "dropped_tail_tokens": 90}}, {}, {},
     "stage `pack` filled no sequence: all 90 tokens were a dropped tail (--seq_len 2048, --pack_tail drop)"),
    ({"pack": {"sequences": 0, "documents": 0, "dropped_tail_tokens": 0}}, dict(min_stars=7, languages=("go",)),
     {"input": ("languages", "min_stars")},
     "no record was read from the input (--languages go, --min_stars 7)"),
])
def test_emptied_by_names_the_stage_that_removed_everything(counts, flags, stage_flags, expected):
    assert emptied_by(counts, _args(**flags), stage_flags) == expected
