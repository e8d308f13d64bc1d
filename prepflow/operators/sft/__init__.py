"""SFT data synthesis: instructions from seed tasks, responses, LLM judging and rewriting,
diversity selection over embeddings, and conversion to chat messages."""
