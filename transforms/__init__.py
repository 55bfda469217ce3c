"""Sluice processing stages: Beam transforms and the plain-Python helpers they wrap, by stage.

- ``sources/``: what a run reads (repository lists, archives, Pile files, the Multi SQL and its rows).
- ``filters/``: per-document and per-repository rules (licenses, stars, quality, extensions, Pile sets).
- ``curation/``: each corpus's read-and-filter chain, shared by its pipeline and the tokenizer's.
- ``dedup/``: exact dedup, MinHash signatures, near-dedup and its connected components.
- ``decontamination``: removing documents that hold an evaluation benchmark's problems (the Beam
  stage; its n-gram matching is ``decontamination_matcher``).
- ``streams/``: tokenize, shuffle, pack and write the shards; tokenizer training.
- ``instruct/``: FLAN-style task examples, code tasks, mixing and the instruct streams.
- ``stats/``: counters, histograms, progress, run statistics and the Parquet side outputs.
"""
