"""Exact dedup by content, MinHash signatures, LSH near-dedup and the distributed connected
components it needs."""
