"""Evaluation of trained checkpoints: HumanEval and MTPB in a sandbox, prompt perplexity."""
