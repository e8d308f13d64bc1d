"""Evaluations of models on public benchmarks, with untrusted code run in the sandbox
(``prepflow eval ...``)."""
