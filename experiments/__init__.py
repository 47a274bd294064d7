"""Experiments and benchmarks: each runs as `python -m experiments.NAME`."""
