"""Runnable Sluice pipelines: ``python -m pipelines.NAME`` (or ``sluice NAME``)."""
