"""A model's token tree: leaf probabilities are products of the model's conditional probabilities."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from elastic_theory.empirical.model_tree import model_token_tree, next_token_probabilities
from elastic_theory.theory.tolerances import Float32Forward

V, EOS, DEPTH = 5, 4, 3  # a 5-token alphabet with token 4 as EOS: 4^3 = 64 full-depth paths, enumerable by hand
TOL = 64 * np.finfo(np.float64).eps  # products of <= 4 float64 softmax rows, each summing V terms


@pytest.fixture(scope="module")
def model():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=V, n_positions=8, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=EOS, eos_token_id=EOS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = GPT2LMHeadModel(config)
    with torch.no_grad():  # sharpen the random logits so the tree is far from uniform
        m.lm_head.weight.mul_(20.0)
    return m.eval()


@pytest.fixture(scope="module")
def delta(model):
    """Float32Forward's bound (nats) on each of the model's log-probabilities, for inputs of up to 1 + DEPTH tokens
    (the prompt and a depth-3 prefix, queried for its EOS probability)."""
    return Float32Forward.of(model, context=1 + DEPTH).logprob_tolerance()


@functools.cache
def _row(model, prompt, prefix):
    """The model's next-token row after one prefix, from its own forward pass (no batching)."""
    return next_token_probabilities(model, prompt, [prefix])[0]


def _sequence_prob(model, prompt, seq, eos, candidates=None):
    """Product of the model's conditionals along ``seq`` (then EOS if ``eos``)."""
    p = 1.0
    steps = list(seq) + ([EOS] if eos else [])
    for t, token in enumerate(steps):
        row = _row(model, tuple(prompt), tuple(seq[:t]))
        if candidates is not None:
            row = row[candidates] / row[candidates].sum()
            token = candidates.index(token)
        p *= row[token]
    return p


@pytest.mark.parametrize("candidates", [None, [0, 2, EOS]])
def test_leaf_probabilities_are_products_of_the_models_conditionals(model, delta, candidates):
    prompt = [EOS]
    tree = model_token_tree(model, DEPTH, prompt, eos_token=EOS, candidates=candidates)
    leaves = tree.leaves
    assert leaves.prob.sum() == pytest.approx(1.0, abs=TOL)
    # The tree's rows come from batched forward passes, the expected ones from one prefix at a time: two float32
    # evaluations. Each factor's log is within delta of exact (2 delta renormalized over the candidates: the log of
    # their sum moves by delta at most), so a product of <= DEPTH + 1 factors from one evaluation is within
    # expm1(2 (DEPTH + 1) factor) of the other's, relative to it; a depth-3 cut leaf, a difference of two such products,
    # within that times their sum. The rest is float64 arithmetic (TOL). Measured: 1e-4 of the bound. Killed: a batch's
    # rows matched to the wrong prefixes (in reverse order), 6.7e8 bounds at the worst leaf (1e6 with candidates).
    factor = delta if candidates is None else 2 * delta
    spread = math.expm1(2 * (DEPTH + 1) * factor)
    for node, is_eos, prob in zip(leaves.node, leaves.is_eos, leaves.prob):
        seq = tree.sequence(int(node))
        if is_eos:
            expected = _sequence_prob(model, prompt, seq, eos=True, candidates=candidates)
            tol = spread * expected
        elif len(seq) < DEPTH:  # an inner node's cut leaf holds only the float64 rounding residue of its children
            expected = tol = 0.0
        else:  # a depth-3 cut leaf: the prefix probability minus its EOS share
            prefix = _sequence_prob(model, prompt, seq, eos=False, candidates=candidates)
            share = _sequence_prob(model, prompt, seq, eos=True, candidates=candidates)
            expected, tol = prefix - share, spread * (prefix + share)
        assert prob == pytest.approx(expected, rel=TOL, abs=TOL + tol)


def test_padded_prefixes_give_the_same_rows_as_single_ones(model, delta):
    rows = next_token_probabilities(model, [EOS], [(), (1,), (2, 3)])
    for r, prefix in zip(rows, [(), (1,), (2, 3)]):
        # Padding changes GEMM shapes only: two float32 evaluations, each log-probability within delta of exact, so each
        # probability within expm1(2 delta) = 4.8e-4 of the other's, relative (measured: 2.5e-4 of that). Killed: rows
        # read at the last, padded position instead of the last real one (840 bounds).
        np.testing.assert_allclose(r, next_token_probabilities(model, [EOS], [prefix])[0], rtol=math.expm1(2 * delta),
                                   atol=0)


def test_bad_prompts_are_errors(model):
    with pytest.raises(ValueError, match="at least one token"):
        model_token_tree(model, 2, [])
    with pytest.raises(ValueError, match="exceeds the model's context"):
        model_token_tree(model, 8, [EOS])
