"""Downstream GPU jobs on Sluice's datasets: readers, the CodeGen training stages, evaluation.

Imports ``schemas`` only (never Beam, ``pipelines`` or ``transforms``), so a training machine
needs torch and transformers but not the data pipeline's dependencies.
"""
