"""Experiments on a pretrained language model: rebound, data-to-revert, resistance and ratio (each module registers its experiments)."""
