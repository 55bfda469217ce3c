"""Instruction-tuning mixtures: read and render task examples, code tasks, per-task caps and
FLAN's mixing, and the packed instruct streams with their evaluation sets."""
