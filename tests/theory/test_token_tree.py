"""Token trees: exact small cases, the THEORY §1 identities as properties, bad input.

Covers elastic_theory.theory.tree and the modules beside it: sequences, enumeration, prefix_index, mixture, divergence.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_theory.testing import datasets, mixtures, probability_vectors, token_trees, tree_families, weighted_datasets
from elastic_theory.theory.tolerances import entropy_tolerance, probability_sum_tolerance, roundings
from elastic_theory.theory.divergence import cross_entropy, kl_divergence
from elastic_theory.theory.mixing import mixture
from elastic_theory.theory.sequences import _sort_by_keys, pad_sequences, split_chunks
from elastic_theory.theory.tree import TokenTree

def leaf_map(tree: TokenTree) -> dict[tuple[tuple[int, ...], bool], float]:
    """{(prefix, is_eos): probability}: the leaf distribution keyed by content, not node id."""
    lv = tree.leaves
    tokens, lens = tree.paths(lv.node)
    return {(tuple(tokens[i, : lens[i]].tolist()), bool(lv.is_eos[i])): float(lv.prob[i]) for i in range(lv.node.size)}


# ---------------------------------------------------------------- exact small cases
def test_structure_of_a_small_tree_exactly():
    # three responses by hand: [0, 1], [0], [1, 1, 0] -> nodes root, 0, 01, 1, 11, 110 (preorder)
    t = TokenTree.from_sequences([[0, 1], [0], [1, 1, 0]], vocab_size=2)
    assert t.parent.tolist() == [-1, 0, 1, 0, 3, 4]
    assert t.token.tolist() == [-1, 0, 1, 1, 1, 0]
    assert t.depth.tolist() == [0, 1, 2, 1, 2, 3]
    assert t.weight.tolist() == [3, 2, 1, 1, 1, 1]
    assert t.eos_weight.tolist() == [0, 1, 1, 0, 0, 1]
    assert (t.n_nodes, t.n_leaves, t.n_sequences, t.max_depth) == (6, 3, 3.0, 3)
    # mean length (1 + 2 + 3) / 3 = 2 tokens, n_tokens = 3 * 2
    assert (Fraction(t.mean_length), t.n_tokens) == (Fraction(2), 6.0)
    assert t.sequence(5) == (1, 1, 0)


def test_entropy_of_half_quarter_quarter_is_three_halves():
    # counts 2, 1, 1 -> leaf probabilities 1/2, 1/4, 1/4 -> H = 1/2*1 + 2 * 1/4*2 = 3/2 bits
    t = TokenTree.from_sequences([[0], [1, 0], [1, 1]], 2, counts=[2, 1, 1])
    assert sorted(Fraction(p) for p in t.leaves.prob) == [Fraction(1, 4), Fraction(1, 4), Fraction(1, 2)]
    assert Fraction(t.entropy()) == Fraction(3, 2)
    # base 4 goes through natural logs: two roundings (log, 1/log 4) off 3/4 = (3/2 bits) / log2(4)
    assert abs(t.entropy(base=4) - 0.75) <= roundings(2)


def test_counts_versus_weights_size_convention():
    """|D| counts responses: integer counts add up, float weights only reweight the rows."""
    seqs = [[0], [1, 0], [1, 1]]
    by_count = TokenTree.from_sequences(seqs, 2, counts=[2, 1, 1])
    by_weight = TokenTree.from_sequences(seqs, 2, weights=[2.0, 1.0, 1.0])
    assert leaf_map(by_count) == leaf_map(by_weight)
    assert (by_count.n_sequences, by_weight.n_sequences) == (4.0, 3.0)


def test_padded_array_equals_list_input():
    seqs = [[0, 2], [2], [], [0, 2, 1]]
    tokens, lens = pad_sequences(seqs)
    a = TokenTree.from_sequences(seqs, 3)
    b = TokenTree.from_sequences(np.where(tokens < 0, 0, tokens), 3, lengths=lens)
    assert leaf_map(a) == leaf_map(b)
    # the empty response is an EOS leaf at the root: probability 1/4 (one of four rows)
    assert Fraction(leaf_map(a)[((), True)]) == Fraction(1, 4)


def test_prune_exact_masses():
    # [0,1,1] x1, [0] x1, [1,0] x2 pruned at 1: leaves 'EOS at 0' 1/4, 'cut at 0' 1/4, 'cut at 1' 1/2
    t = TokenTree.from_sequences([[0, 1, 1], [0], [1, 0]], 2, counts=[1, 1, 2]).prune(1)
    got = {k: Fraction(v) for k, v in leaf_map(t).items()}
    assert got == {((0,), True): Fraction(1, 4), ((0,), False): Fraction(1, 4), ((1,), False): Fraction(1, 2)}
    assert t.is_pruned and t.max_depth == 1


def test_chunked_exact():
    # [0,1,1] at d=2 -> chunks [0,1] (cut) + [1] (EOS); [1] -> [1] (EOS): 3 chunks for 2 responses
    t = TokenTree.from_sequences([[0, 1, 1], [1]], 2)
    c = t.chunked(2)
    # 1/3 and 2/3 are not binary fractions: the library must return their correctly rounded values
    assert leaf_map(c) == {((0, 1), False): float(Fraction(1, 3)), ((1,), True): float(Fraction(2, 3))}
    assert (c.n_sequences, Fraction(t.mean_chunks(2))) == (3.0, Fraction(3, 2))


def test_mixture_exact():
    # |D_a| = 3 responses all [0]; |D_b| = 1 response [1]: p_D = 3/4, 1/4
    a = TokenTree.from_sequences([[0]] * 3, 2)
    b = TokenTree.from_sequences([[1]], 2)
    m = mixture([a, b])
    assert {k: Fraction(v) for k, v in leaf_map(m).items()} == {((0,), True): Fraction(3, 4), ((1,), True): Fraction(1, 4)}
    assert m.n_sequences == 4.0
    # explicit sizes override: 1 and 1 give 1/2, 1/2
    assert set(leaf_map(mixture([a, b], sizes=[1, 1])).values()) == {0.5}


def test_cross_entropy_and_kl_exact():
    # data 1/2, 1/2 on [0], [1]; model 3/4, 1/4: CE = (log2(4/3) + log2 4)/2 = 2 - log2(3)/2 bits
    data = TokenTree.from_sequences([[0], [1]], 2)
    model = TokenTree.from_sequences([[0], [1]], 2, counts=[3, 1])
    ce, kl = cross_entropy(data=data, model=model), kl_divergence(data=data, model=model)
    # 2 * eps: one rounding in log2(3) and one in the final subtraction
    assert abs(ce - (2 - math.log2(3) / 2)) <= roundings(4)
    assert abs(kl - (ce - 1.0)) <= roundings(8)  # H(data) = 1 bit exactly


def test_from_next_token_fn_exact():
    # i.i.d. model over V=3 with token 2 = EOS: p(0) = 1/2, p(1) = 1/4, p(EOS) = 1/4, depth 1
    probs = np.array([0.5, 0.25, 0.25])
    t = TokenTree.from_next_token_fn(lambda prefixes: np.tile(probs, (len(prefixes), 1)), 3, depth=1, eos_token=2)
    got = {k: Fraction(v) for k, v in leaf_map(t).items()}
    # leaves: EOS at root 1/4; after 0: EOS 1/2*1/4, cut 1/2*3/4; after 1: EOS 1/4*1/4, cut 1/4*3/4
    assert got == {
        ((), True): Fraction(1, 4),
        ((0,), True): Fraction(1, 8),
        ((0,), False): Fraction(3, 8),
        ((1,), True): Fraction(1, 16),
        ((1,), False): Fraction(3, 16),
    }


def test_from_next_token_fn_reproduces_a_data_tree():
    """Enumerating a data tree's own conditionals (EOS as an extra token) gives back its pruned tree."""
    data = TokenTree.from_sequences([[0, 1], [0], [1, 1, 0], [0, 1]], 2)
    V, eos = 3, 2

    def conditionals(prefixes):
        out = np.zeros((len(prefixes), V))
        for r, pre in enumerate(prefixes):
            node = 0
            for tok in pre:
                node = int(data.child(np.array([node]), np.array([tok]))[0])
            w = data.weight[node]
            out[r, :2] = [data.weight[c] if c >= 0 else 0.0 for c in data.child(np.array([node, node]), np.array([0, 1]))]
            out[r, eos] = data.eos_weight[node]
            out[r] /= w
        return out

    model = TokenTree.from_next_token_fn(conditionals, V, depth=2, eos_token=eos)
    want = leaf_map(data.prune(2))
    got = leaf_map(model)
    assert got.keys() == want.keys()
    # products of <= 3 conditionals, each one rounding: 4 eps relative
    assert all(abs(got[k] - want[k]) <= roundings(4) for k in want)


# ---------------------------------------------------------------- properties
@given(weighted_datasets(vocab_size=3, max_len=5), st.integers(1, 6))
def test_pruning_preserves_total_mass_and_equals_truncated_data(data, d):
    """prune(d) is the tree of the responses truncated to d tokens, cut where they went on."""
    seqs, counts = data
    pruned = TokenTree.from_sequences(seqs, 3, counts=counts).prune(d)
    assert pruned.eos_weight.sum() + pruned.cut_weight.sum() == pruned.total_weight  # integer counts: exact
    truncated = TokenTree.from_sequences([s[:d] for s in seqs], 3, counts=counts, ends=[len(s) <= d for s in seqs])
    assert leaf_map(pruned) == leaf_map(truncated)


@given(weighted_datasets(vocab_size=2, max_len=4))
def test_chunked_equals_pruned_when_responses_fit(data):
    seqs, counts = data
    t = TokenTree.from_sequences(seqs, 2, counts=counts)
    assert leaf_map(t.chunked(4)) == leaf_map(t.prune(4))
    assert t.mean_chunks(4) == 1.0


@given(datasets(vocab_size=256, max_size=30, max_len=20))
def test_leaves_are_the_response_frequencies(seqs):
    """Counting check of the builder (V = 256, length 20: several packed sort keys per row)."""
    from collections import Counter

    want = {(tuple(s), True): float(Fraction(c, len(seqs))) for s, c in Counter(map(tuple, seqs)).items()}
    assert leaf_map(TokenTree.from_sequences(seqs, 256)) == want


@given(st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=1, max_size=40))
def test_sort_by_keys_is_lexsort(rows):
    """The tie-refining sort used by the builder returns exactly numpy's stable lexsort order."""
    a = np.array(rows, dtype=np.uint64)
    keys = [a[:, j].copy() for j in range(3)]
    assert np.array_equal(_sort_by_keys(keys), np.lexsort(keys[::-1]))


@given(token_trees(max_len=5))
def test_entropy_chain_rule(tree):
    r"""H(leaves) = \sum_u P(u) H(next symbol at u), next symbols = child tokens, EOS, cut."""
    W = tree.total_weight
    children = [[] for _ in range(tree.n_nodes)]
    for u in range(1, tree.n_nodes):
        children[tree.parent[u]].append(tree.weight[u])
    chain = 0.0
    for u in range(tree.n_nodes):
        outcomes = np.array(children[u] + [tree.eos_weight[u], tree.cut_weight[u]])
        q = outcomes[outcomes > 0] / tree.weight[u]
        chain += tree.weight[u] / W * float(-(q * np.log2(q)).sum())
    assert abs(tree.entropy() - chain) <= entropy_tolerance(2 * tree.n_nodes + tree.n_leaves)


@given(weighted_datasets(vocab_size=4), weighted_datasets(vocab_size=4))
def test_mixture_lemma_by_counting(a, b):
    """The MLE on the concatenated data equals the size-weighted mixture, exactly for integer counts."""
    (sa, ca), (sb, cb) = a, b
    joint = TokenTree.from_sequences(sa + sb, 4, counts=np.concatenate([ca, cb]))
    mixed = mixture([TokenTree.from_sequences(sa, 4, counts=ca), TokenTree.from_sequences(sb, 4, counts=cb)])
    assert mixed.n_sequences == joint.n_sequences
    assert leaf_map(mixed) == leaf_map(joint)


@given(mixtures(3))
def test_mixture_leaf_probabilities_are_size_weighted(drawn):
    trees, sizes = drawn
    m = leaf_map(mixture(trees, sizes))
    parts = [leaf_map(t) for t in trees]
    for key, p in m.items():
        want = sum(s * part.get(key, 0.0) for s, part in zip(sizes, parts)) / sizes.sum()
        # sums of 3 scaled terms plus the normalization: 16 eps relative covers every rounding
        assert abs(p - want) <= roundings(16) * want


@given(tree_families(2))
def test_gibbs_inequality(family):
    """CE(P, p) >= H(P) and KL(P || p) >= 0 for a model p covering P's support (here a mixture)."""
    data, other = family
    model = mixture([data, other])
    tol = entropy_tolerance(data.n_leaves)
    assert cross_entropy(data=data, model=model) >= data.entropy() - tol
    assert kl_divergence(data=data, model=model) >= -tol
    assert abs(kl_divergence(data=data, model=data)) <= tol
    assert abs(cross_entropy(data=data, model=data) - data.entropy()) <= tol


@given(tree_families(2, vocab_size=4), st.permutations(range(4)))
def test_invariance_under_relabelling(family, perm):
    data, other = family
    model = mixture([data, other])
    tol = entropy_tolerance(model.n_leaves)
    assert abs(data.relabel(perm).entropy() - data.entropy()) <= tol
    assert abs(cross_entropy(data=data.relabel(perm), model=model.relabel(perm)) - cross_entropy(data=data, model=model)) <= tol


@given(st.integers(2, 60).flatmap(probability_vectors))
def test_probabilities_across_magnitudes(p):
    """Leaf probabilities from 1e-15 to ~1: the tree keeps them and its entropy matches the vector's."""
    n = p.size
    t = TokenTree.from_sequences([[i] for i in range(n)], max(n, 2), weights=p)
    got = np.sort(t.leaves.prob)
    assert np.allclose(got, np.sort(p / p.sum()), rtol=roundings(4 * n), atol=0)  # renormalization: n eps
    q = p / p.sum()
    assert abs(t.entropy() - float(-(q * np.log2(q)).sum())) <= entropy_tolerance(n)


@given(datasets(vocab_size=50_000, max_size=8, max_len=4), st.sampled_from([2, 257, 50_000]))
def test_large_alphabet(seqs, V):
    seqs = [[t % V for t in s] for s in seqs]
    t = TokenTree.from_sequences(seqs, V)
    assert t.vocab_size == V and abs(t.leaves.prob.sum() - 1.0) <= probability_sum_tolerance(t.n_leaves)
    assert t.n_leaves == len({tuple(s) for s in seqs})


def test_model_pruned_shallower_than_data_is_rejected():
    data = TokenTree.from_sequences([[0, 1], [1]], 2)
    with pytest.raises(ValueError, match="prune the data tree"):
        cross_entropy(data=data, model=data.prune(1))
    assert cross_entropy(data=data.prune(1), model=data.prune(1)) == data.prune(1).entropy()


def test_from_next_token_fn_float32_softmax_over_50k_tokens():
    """A float32 softmax over V = 50,000 passes the stated tolerance (max(8, V) * eps32 = 6e-3)."""
    V, eos = 50_000, 49_999
    rng = np.random.default_rng(7)  # arbitrary fixed seed

    def softmax32(prefixes):
        logits = rng.normal(size=(len(prefixes), V)).astype(np.float32) * 4  # spread: probabilities 1e-11..1e-2
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    t = TokenTree.from_next_token_fn(softmax32, V, depth=1, eos_token=eos, candidates=range(10))
    assert t.n_nodes == 11 and abs(t.leaves.prob.sum() - 1.0) <= probability_sum_tolerance(t.n_leaves)
    assert t.leaves.prob.min() > 0


# ---------------------------------------------------------------- bad input
def test_zero_model_probability_rule():
    data = TokenTree.from_sequences([[0], [1]], 2)
    model = TokenTree.from_sequences([[0]], 2)
    with pytest.raises(ValueError, match=r"probability 0 .*\(1,\)"):
        cross_entropy(data=data, model=model)
    assert cross_entropy(data=data, model=model, on_zero="inf") == math.inf
    assert kl_divergence(data=data, model=model, on_zero="inf") == math.inf
    with pytest.raises(ValueError, match="on_zero"):
        cross_entropy(data=data, model=model, on_zero="ignore")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sequences": []}, "empty"),
        ({"sequences": [[0, 2]]}, "position 1: token 2 is outside"),
        ({"sequences": [[0, -3]]}, "token -3 is outside"),
        ({"sequences": [[0], [1]], "weights": [1.0, -1.0]}, "finite and >= 0"),
        ({"sequences": [[0], [1]], "weights": [1.0, float("nan")]}, "finite and >= 0"),
        ({"sequences": [[0], [1]], "weights": [1.0, float("inf")]}, "finite and >= 0"),
        ({"sequences": [[0], [1]], "counts": [1, -2]}, "finite and >= 0"),
        ({"sequences": [[0], [1]], "counts": [1.5, 1.0]}, "integers"),
        ({"sequences": [[0], [1]], "counts": [0, 0]}, "no mass"),
        ({"sequences": [[0], [1]], "counts": [1, 1], "weights": [1.0, 1.0]}, "not both"),
        ({"sequences": [[0]], "vocab_size": 1}, ">= 2"),
        ({"sequences": [[0.5]]}, "integer token ids"),
    ],
)
def test_from_sequences_bad_input(kwargs, message):
    kwargs = {"vocab_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        TokenTree.from_sequences(kwargs.pop("sequences"), **kwargs)


@pytest.mark.parametrize("depth", [0, -1, 1.5])
def test_depth_below_one_is_rejected(depth):
    t = TokenTree.from_sequences([[0, 1]], 2)
    for op in (t.prune, t.chunked, t.mean_chunks):
        with pytest.raises(ValueError, match="depth"):
            op(depth)


@pytest.mark.parametrize("sizes", [[1, 0], [1, -2], [1, float("nan")], [1, float("inf")], [1]])
def test_mixture_sizes_must_be_positive(sizes):
    a, b = TokenTree.from_sequences([[0]], 2), TokenTree.from_sequences([[1]], 2)
    with pytest.raises(ValueError, match="sizes"):
        mixture([a, b], sizes)


def test_mixture_needs_one_alphabet_and_a_tree():
    with pytest.raises(ValueError, match="one alphabet"):
        mixture([TokenTree.from_sequences([[0]], 2), TokenTree.from_sequences([[0]], 3)])
    with pytest.raises(ValueError, match="at least one"):
        mixture([])


def test_next_token_probabilities_must_sum_to_one_within_tolerance():
    V = 4
    tol = probability_sum_tolerance(V)  # the stated tolerance: max(8, V) * eps
    inside = np.full(V, 0.25) + np.array([tol / 2, 0, 0, 0])
    outside = np.full(V, 0.25) + np.array([4 * tol, 0, 0, 0])
    TokenTree.from_next_token_fn(lambda ps: np.tile(inside, (len(ps), 1)), V, depth=1)
    with pytest.raises(ValueError, match="sum to .* not 1 within"):
        TokenTree.from_next_token_fn(lambda ps: np.tile(outside, (len(ps), 1)), V, depth=1)
    with pytest.raises(ValueError, match="shape"):
        TokenTree.from_next_token_fn(lambda ps: np.ones((len(ps), V + 1)) / (V + 1), V, depth=1)
    with pytest.raises(ValueError, match="finite and >= 0"):
        TokenTree.from_next_token_fn(lambda ps: np.tile([1.5, -0.5, 0, 0], (len(ps), 1)), V, depth=1)


def test_pruned_tree_has_no_responses():
    t = TokenTree.from_sequences([[0, 1, 1]], 2).prune(1)
    with pytest.raises(ValueError, match="pruned"):
        t.chunked(1)


def test_relabel_needs_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        TokenTree.from_sequences([[0]], 2).relabel([0, 0])


def test_depth_beyond_every_response_keeps_responses_whole():
    """d = 10^12 (far beyond the longest response, 3 tokens) is one chunk per response, as d = 3 is; the
    chunk array is as wide as the data, not d (a (n, d) array would need terabytes)."""
    t = TokenTree.from_sequences([[0, 1, 1], [1], []], 2)
    assert leaf_map(t.chunked(10**12)) == leaf_map(t.chunked(3))
    chunks, clen, is_last, rows = split_chunks(np.array([[0, 1, 1], [1, -1, -1]]), np.array([3, 1]), 10**12)
    assert chunks.tolist() == [[0, 1, 1], [1, -1, -1]] and clen.tolist() == [3, 1]
    assert is_last.tolist() == [True, True] and rows.tolist() == [0, 1]


def test_next_token_enumeration_budget_and_batches():
    """Uniform over V = 3 with EOS = 2, depth 3: 1 + 2 + 4 + 8 = 15 nodes. max_nodes = 14 stops it with a
    message; batch_size 1 and 1000 give the same tree; batch_size < 1 (which used to return a bare root, or
    fail inside range()) and max_nodes < 1 are rejected."""
    uniform = lambda ps: np.full((len(ps), 3), 1 / 3)  # noqa: E731
    full = TokenTree.from_next_token_fn(uniform, 3, depth=3, eos_token=2, max_nodes=15)
    assert full.n_nodes == 15
    assert leaf_map(TokenTree.from_next_token_fn(uniform, 3, depth=3, eos_token=2, batch_size=1)) == leaf_map(full)
    with pytest.raises(ValueError, match="passed max_nodes=14"):
        TokenTree.from_next_token_fn(uniform, 3, depth=3, eos_token=2, max_nodes=14)
    for kwargs, name in (({"batch_size": 0}, "batch_size"), ({"batch_size": -1}, "batch_size"), ({"max_nodes": 0}, "max_nodes")):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
            TokenTree.from_next_token_fn(uniform, 3, depth=3, eos_token=2, **kwargs)


def test_single_leaf_entropy_is_plus_zero():
    """One response: H = CE = 0 bits, and +0.0 (a -0.0 printed as '-0' in tables and JSON)."""
    t = TokenTree.from_sequences([[0, 1]], 2)
    for value in (t.entropy(), t.entropy(base=math.e), cross_entropy(data=t, model=t), kl_divergence(data=t, model=t)):
        assert value == 0.0 and math.copysign(1.0, value) == 1.0


def test_padded_array_error_names_the_row_that_is_too_long():
    """A length above the array width is reported for its own row, not for an earlier full-width row."""
    tokens = np.zeros((3, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"lengths\[2\] = 3 is outside \[0, 2\]"):
        pad_sequences(tokens, np.array([2, 1, 3]))


def test_next_token_fn_accepts_token_zero_as_eos():
    """eos_token may be any id in 0..V-1, 0 included: token 0 ends the response, token 1 continues."""
    t = TokenTree.from_next_token_fn(lambda prefixes: np.full((len(prefixes), 2), 0.5), 2, depth=1, eos_token=0)
    # EOS at the root 1/2; after [1]: EOS 1/4 and the cut continuation 1/4 (dyadic: exact)
    assert t.leaves.prob.tolist() == [0.5, 0.25, 0.25] and t.leaves.is_eos.tolist() == [True, True, False]
