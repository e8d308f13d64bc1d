"""Text-domain operators for pretraining data: refiners (HTML, URLs, emoji, whitespace, ftfy,
boilerplate lines, PII), heuristic filters (Gopher, C4, FineWeb and DataFlow-style single rules),
language ID, KenLM perplexity, and dedup. Heuristics share one batch-wise measuring core
(``_stats``); optional packages (ftfy, fastText, KenLM) are imported inside methods."""
