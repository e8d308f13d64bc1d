"""The operator toolkit: helpers that operators of several domains share (tokens and n-grams,
MinHash, the mergeable dedup base, LLM judge bases). Operators import these, never another
domain's modules."""
