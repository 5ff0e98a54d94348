"""A model's token tree: leaf probabilities are products of the model's conditional probabilities."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from elastic_theory.empirical.model_tree import model_token_tree, next_token_probabilities

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
def test_leaf_probabilities_are_products_of_the_models_conditionals(model, candidates):
    prompt = [EOS]
    tree = model_token_tree(model, DEPTH, prompt, eos_token=EOS, candidates=candidates)
    leaves = tree.leaves
    assert leaves.prob.sum() == pytest.approx(1.0, abs=TOL)
    for node, is_eos, prob in zip(leaves.node, leaves.is_eos, leaves.prob):
        seq = tree.sequence(int(node))
        if is_eos:
            expected = _sequence_prob(model, prompt, seq, eos=True, candidates=candidates)
        elif len(seq) < DEPTH:  # an inner node's cut leaf holds only the rounding residue of its children
            expected = 0.0
        else:  # a depth-3 cut leaf: the prefix probability minus its EOS share
            expected = _sequence_prob(model, prompt, seq, eos=False, candidates=candidates) - _sequence_prob(
                model, prompt, seq, eos=True, candidates=candidates
            )
        assert prob == pytest.approx(expected, rel=TOL, abs=TOL)


def test_padded_prefixes_give_the_same_rows_as_single_ones(model):
    rows = next_token_probabilities(model, [EOS], [(), (1,), (2, 3)])
    for r, prefix in zip(rows, [(), (1,), (2, 3)]):
        # padding changes GEMM shapes only: float32 logits agree to a few eps32, probabilities too
        np.testing.assert_allclose(r, next_token_probabilities(model, [EOS], [prefix])[0], rtol=0,
                                   atol=64 * np.finfo(np.float32).eps)


def test_bad_prompts_are_errors(model):
    with pytest.raises(ValueError, match="at least one token"):
        model_token_tree(model, 2, [])
    with pytest.raises(ValueError, match="exceeds the model's context"):
        model_token_tree(model, 8, [EOS])
