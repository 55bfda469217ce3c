"""Dataflow Flex Templates, one per pipeline, generated from the pipelines' argument parsers."""
