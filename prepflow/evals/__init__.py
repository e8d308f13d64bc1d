"""Evaluations of models on benchmarks (``prepflow eval ...``)."""
