"""Sluice's version: recorded in every manifest and read by setup.py."""

__version__ = "0.1.0"
