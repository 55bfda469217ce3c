"""Output-record schemas shared by Sluice writers and training-side readers, and the evaluation
benchmarks' problems (``schemas.benchmarks``) shared by decontamination and evaluation.

Kept free of Apache Beam imports: GPU training jobs import this package and
must not pull in Beam.
"""
