"""What the corpus pipelines share: the near-dedup report that gates a publish."""

from __future__ import annotations

import pytest

from pipelines.corpus import near_dedup_report
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
