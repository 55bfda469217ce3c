"""Sluice processing stages: Beam transforms and the plain-Python helpers they wrap."""
