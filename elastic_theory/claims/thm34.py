"""Claims about the compression protocol (Thm 3.4): the Huffman bounds, and the paper's ceiling formula measured."""

from __future__ import annotations

import numpy as np

from ..theory.coding import code_length_report
from ..theory.tolerances import sum_tolerance
from ..theory.tree import TokenTree
from .cases import dataset_json, random_tree
from .registry import Evidence, Worst, register


@register(
    "thm34_huffman_bounds",
    "A Huffman code of the depth-d chunks has H_d <= E[len] < H_d + 1 bits per chunk",
    "Thm 3.4 (Huffman form)",
    "holds",
)
def _huffman_bounds(rng: np.random.Generator) -> Evidence:
    trees = [random_tree(rng) for _ in range(100)]
    worst, max_redundancy = Worst(), 0.0
    for tree in trees:
        d = int(rng.integers(1, max(1, tree.max_depth) + 1))
        rep = code_length_report(tree, d)
        h, e = rep.chunk_entropy_bits, rep.huffman_bits_per_chunk
        # Outside [H_d, H_d + 1] by more than the rounding of the two sums of n_leaves terms; the strict
        # "< H_d + 1" cannot be decided below rounding.
        outside = max(0.0, h - e, e - (h + 1.0))
        worst.record(outside, sum_tolerance(rep.n_leaves, h), lambda: {"depth": d, "H_d": h, "E_len": e, "dataset": dataset_json(tree)})
        max_redundancy = max(max_redundancy, e - h)
    return worst.evidence(
        f"max E[len] - H_d = {max_redundancy:.4f} bits < 1 over {len(trees)} random trees",
        {"max_redundancy_bits": max_redundancy},
    )


@register(
    "thm34_ceiling_formula",
    "E[L(x)] = ceil(|x|/d) * ceil(H_d) is the expected Huffman code length per response",
    "Thm 3.4 (as stated)",
    "measured",
)
def _ceiling_formula(rng: np.random.Generator) -> Evidence:
    """A measurement: how far ceil(H_d) is from the Huffman length per chunk, and how often they are equal.

    Both lie in [H_d, H_d + 1), so they differ by less than 1 bit per chunk: that bound is the
    tolerance, and a difference of 1 bit or more (a wrong Huffman code or ceiling) fails the check.
    """
    trees = [random_tree(rng) for _ in range(100)]
    worst, diffs, exact = Worst(), [], 0
    for tree in trees:
        d = int(rng.integers(1, max(1, tree.max_depth) + 1))
        rep = code_length_report(tree, d)
        diff = rep.discrepancy_bits / rep.mean_chunks  # paper - Huffman, bits per chunk
        diffs.append(diff)
        exact += abs(diff) <= sum_tolerance(rep.n_leaves, rep.paper_ideal_code_bits)
        worst.record(abs(diff), 1.0, lambda: {"depth": d, "dataset": dataset_json(tree), **rep.as_dict()})
    dev = np.abs(diffs)
    n = len(trees)
    hand = code_length_report(TokenTree.from_sequences([[0], [1, 0], [1, 1]], 2, counts=[2, 1, 1]), 2)
    stats = {
        "exact_cases": exact, "median_bits_per_chunk": float(np.median(dev)), "p90_bits_per_chunk": float(np.quantile(dev, 0.9)),
        "max_bits_per_chunk": float(dev.max()), "over_half_bit": int((dev > 0.5).sum()),
        "paper_longer": int((np.asarray(diffs) > 0).sum()), "example_1/2_1/4_1/4": hand.as_dict(),
    }
    return worst.evidence(
        f"|ceil(H_d) - Huffman| per chunk over {n} random trees: median {stats['median_bits_per_chunk']:.3f}, 90% "
        f"{stats['p90_bits_per_chunk']:.3f}, max {stats['max_bits_per_chunk']:.3f} bits; equal in {exact}/{n}, "
        f"> 0.5 bits in {stats['over_half_bit']}/{n}, paper longer in {stats['paper_longer']}/{n}; "
        f"(1/2,1/4,1/4): Huffman {hand.huffman_bits_per_chunk:g}, paper {hand.paper_ideal_code_bits / hand.mean_chunks:g}",
        stats, verdict="fails" if worst.violated else "measured",
    )
