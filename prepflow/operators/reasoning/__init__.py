"""Math reasoning operators: question filtering, synthesis and classification, answers with
chain of thought and self-consistency, symbolic ground-truth verification, and export."""
