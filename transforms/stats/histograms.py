"""Distributions as Beam counters: one counter per power-of-two bucket, so any runner sums them.

``observe("document_bytes_read", n)`` counts ``n`` in bucket ``n.bit_length()`` (bucket k holds
2^(k-1) .. 2^k - 1; 0 holds 0), in the namespace ``sluice_hist.<name>``: a fixed, small number of
counters whatever the data size, read back by the driver into the manifest's ``histograms``
section (the report draws them). Not in ``sluice.*``, so stage counts never include them.
"""

from __future__ import annotations

from apache_beam.metrics import Metrics

NAMESPACE_PREFIX = "sluice_hist."
DOCUMENT_BYTES_READ = "document_bytes_read"  # every document as read, before any filter
DOCUMENT_BYTES_KEPT = "document_bytes_kept"  # every document tokenized (after every filter)
NEAR_DUPLICATE_CLUSTER_SIZE = "near_duplicate_cluster_size"  # documents per near-dup component


def observe(name: str, value: int) -> None:
    Metrics.counter(NAMESPACE_PREFIX + name, f"{int(value).bit_length():02d}").inc()


def bucket_range(bucket: int) -> tuple[int, int]:
    """The smallest and largest value of a bucket."""
    return (0, 0) if bucket == 0 else (1 << (bucket - 1), (1 << bucket) - 1)


def from_counters(values: dict) -> dict:
    """``{(name, bucket string): count}`` -> ``{name: [{"min", "max", "count"}, ...]}`` by bucket."""
    out: dict = {}
    for (name, bucket), n in sorted(values.items()):
        low, high = bucket_range(int(bucket))
        out.setdefault(name, []).append({"min": low, "max": high, "count": n})
    return out
