"""Instruction-tuning mixtures: task sources read and checked, examples rendered, code tasks,
per-task caps and FLAN's mixing, and the packed instruct streams with their evaluation sets."""
