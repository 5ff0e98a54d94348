"""Claims about the compression protocol (Thm 3.4): the Huffman bounds, and the paper's ceiling formula measured."""

from __future__ import annotations

import numpy as np

import heapq
import math
from collections import Counter
from fractions import Fraction

from ..theory.coding import code_length_report
from ..theory.tolerances import sum_tolerance
from ..theory.tree import TokenTree
from .cases import dataset_json, random_tree
from .registry import Evidence, Worst, register


def chunk_distribution(tree: TokenTree, depth: int) -> tuple[list[Fraction], Fraction]:
    """``(q, mean chunks)`` exactly, from the tree's responses alone (not from the library's chunked tree).

    Each response of mass w becomes max(1, ceil(|x|/d)) chunks of d tokens, the last one the rest and marked as the
    end (an EOS leaf; the others cut leaves), each chunk carrying w; q is each distinct chunk's share of all chunks.
    """
    data = dataset_json(tree)
    mass: Counter = Counter()
    total_chunks = total = Fraction(0)
    for x, w in zip(data["responses"], data["weights"]):
        w = Fraction(w)
        n = max(1, -(-len(x) // depth))
        for j in range(n):
            mass[(tuple(x[j * depth:(j + 1) * depth]), j == n - 1)] += w
        total_chunks += n * w
        total += w
    return [m / total_chunks for m in mass.values()], total_chunks / total


def huffman_expected_length(q: list[Fraction]) -> Fraction:
    """The optimal (Huffman) expected code length of ``q``, exactly: the sum of the merged weights (heapq).

    Every Huffman tree of q, whatever its tie-breaking, has this expected length (it is the minimum over prefix codes).
    """
    heap = list(q)
    heapq.heapify(heap)
    length = Fraction(0)
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        length += merged
        heapq.heappush(heap, merged)
    return length


def _entropy_bits(q: list[Fraction]) -> float:
    return math.fsum(-float(p) * math.log2(float(p)) for p in q)


@register(
    "thm34_huffman_bounds",
    "A Huffman code of the depth-d chunks has H_d <= E[len] < H_d + 1 bits per chunk",
    "Thm 3.4 (Huffman form)",
    "holds",
)
def _huffman_bounds(rng: np.random.Generator) -> Evidence:
    """The library's Huffman length per chunk against an independent Huffman (exact), and inside [H_d, H_d + 1].

    The reference chunks the responses itself and sums the merged weights of a heapq Huffman tree in Fractions; the
    library's length may differ from it only by the rounding of its float sum of n_leaves terms. A code that is
    not optimal (Shannon lengths ceil(-log2 q) also satisfy the bounds) leaves it.
    """
    trees = [random_tree(rng) for _ in range(100)]
    worst, max_redundancy = Worst(), 0.0
    for tree in trees:
        d = int(rng.integers(1, max(1, tree.max_depth) + 1))
        rep = code_length_report(tree, d)
        h, e = rep.chunk_entropy_bits, rep.huffman_bits_per_chunk
        case = lambda quantity: {"quantity": quantity, "depth": d, "H_d": h, "E_len": e, "dataset": dataset_json(tree)}  # noqa: E731
        optimal = float(huffman_expected_length(chunk_distribution(tree, d)[0]))
        worst.record(abs(e - optimal), sum_tolerance(rep.n_leaves, e), lambda: case(f"|E_len - independent Huffman {optimal}|"))
        # Outside [H_d, H_d + 1] by more than the rounding of the two sums of n_leaves terms; the strict
        # "< H_d + 1" cannot be decided below rounding.
        worst.record(max(0.0, h - e, e - (h + 1.0)), sum_tolerance(rep.n_leaves, h), lambda: case("outside [H_d, H_d + 1]"))
        max_redundancy = max(max_redundancy, e - h)
    return worst.evidence(
        f"E[len] equals an independent Huffman code's (exact, within {worst.ratio:.2g} x the float sum's rounding); "
        f"max E[len] - H_d = {max_redundancy:.4f} bits < 1 over {len(trees)} random trees",
        {"max_redundancy_bits": max_redundancy}, cases=len(trees),
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
    tolerance, and a difference of 1 bit or more (a wrong Huffman code or ceiling) fails the check. The Huffman
    length must be an independent Huffman code's (as in ``thm34_huffman_bounds``). The paper's
    length itself must be E[max(1, ceil(|x|/d))] ceil(H_d) computed independently (the chunks counted from the
    responses, H_d from their exact shares): exactly, up to the rounding of the mean; where H_d is within its
    rounding of an integer m the ceiling cannot be decided in float64 and m or m + 1 is accepted.
    """
    trees = [random_tree(rng) for _ in range(100)]
    worst, diffs, exact, undecided = Worst(), [], 0, 0
    for tree in trees:
        d = int(rng.integers(1, max(1, tree.max_depth) + 1))
        rep = code_length_report(tree, d)
        case = lambda quantity: {"quantity": quantity, "depth": d, "dataset": dataset_json(tree), **rep.as_dict()}  # noqa: E731
        diff = rep.discrepancy_bits / rep.mean_chunks  # paper - Huffman, bits per chunk
        diffs.append(diff)
        exact += abs(diff) <= sum_tolerance(rep.n_leaves, rep.paper_ideal_code_bits)
        worst.record(abs(diff), 1.0, lambda: case("|paper - Huffman| bits per chunk"))
        q, mean = chunk_distribution(tree, d)
        # The measurement is of the Huffman length: it must be an optimal code's (independent Huffman, exact).
        optimal = float(huffman_expected_length(q))
        worst.record(abs(rep.huffman_bits_per_chunk - optimal), sum_tolerance(rep.n_leaves, optimal),
                     lambda: case(f"|Huffman bits per chunk - independent Huffman {optimal}|"))
        h, h_tol = _entropy_bits(q), 2 * sum_tolerance(len(q), _entropy_bits(q))
        ceilings = {math.ceil(h - h_tol), math.ceil(h + h_tol)}
        undecided += len(ceilings) > 1
        paper_error = min(abs(rep.paper_ideal_code_bits - float(mean * c)) for c in ceilings)
        worst.record(paper_error, sum_tolerance(tree.n_leaves, rep.paper_ideal_code_bits),
                     lambda: case(f"|paper - E[chunks] ceil(H_d)|, independent ceil(H_d) in {sorted(ceilings)}"))
    dev = np.abs(diffs)
    n = len(trees)
    hand = code_length_report(TokenTree.from_sequences([[0], [1, 0], [1, 1]], 2, counts=[2, 1, 1]), 2)
    stats = {
        "exact_cases": exact, "median_bits_per_chunk": float(np.median(dev)), "p90_bits_per_chunk": float(np.quantile(dev, 0.9)),
        "max_bits_per_chunk": float(dev.max()), "over_half_bit": int((dev > 0.5).sum()),
        "paper_longer": int((np.asarray(diffs) > 0).sum()), "example_1/2_1/4_1/4": hand.as_dict(),
        "ceiling_undecided_in_float64": undecided,
    }
    return worst.evidence(
        f"|ceil(H_d) - Huffman| per chunk over {n} random trees: median {stats['median_bits_per_chunk']:.3f}, 90% "
        f"{stats['p90_bits_per_chunk']:.3f}, max {stats['max_bits_per_chunk']:.3f} bits; equal in {exact}/{n}, "
        f"> 0.5 bits in {stats['over_half_bit']}/{n}, paper longer in {stats['paper_longer']}/{n}; "
        f"(1/2,1/4,1/4): Huffman {hand.huffman_bits_per_chunk:g}, paper {hand.paper_ideal_code_bits / hand.mean_chunks:g}; "
        f"Huffman length and paper length = independent Huffman and E[chunks] ceil(H_d): "
        f"{'all' if not worst.violated else 'NOT all'} {n}",
        stats, verdict="fails" if worst.violated else "measured", cases=n,
    )
