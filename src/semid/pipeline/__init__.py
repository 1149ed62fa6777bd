"""End-to-end runs: data -> modality features -> tokenizer -> generative model -> full-ranking metrics."""
