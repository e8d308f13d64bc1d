"""Agentic RAG data: a search index over chunks (BM25, dense, hybrid), multi-hop questions that
need retrieval, and search-agent trajectories verified by replaying their searches."""
