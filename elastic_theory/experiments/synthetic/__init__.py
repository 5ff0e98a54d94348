"""Experiments on small transformers trained on the synthetic world (each module registers one or more experiments)."""
