"""Code-domain operators: rule filters for code pretraining corpora (file type and size,
generated files, line lengths, text composition, encoded data, comments, document quality,
secrets), code tokens for near-dup, decontamination against HumanEval/MBPP-style benchmarks,
static analysis, LLM generators and judges, and evaluators that run code in the sandbox."""
