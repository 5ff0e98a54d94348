"""Exact enumeration of a model's sequence distribution, checked on tabular models whose probabilities are known."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elastic_theory.empirical.enumeration import (  # noqa: E402
    aligned_probabilities,
    all_sequences,
    conditional_kl_bits,
    full_log_probs,
    prompt_index,
)
from elastic_theory.empirical.training import TabularModel  # noqa: E402
from elastic_theory.data.synthetic import WeightedSequences  # noqa: E402

V, L = 3, 3
# Every sequence of length 3 over 3 tokens gets a distinct count, so the distribution has full support
# and no two sequences share a probability (an off-by-one in positions or rows would show).
SEQS = [tuple(int(t) for t in s) for s in all_sequences(V, L)]
COUNTS = np.arange(1, len(SEQS) + 1)
P = COUNTS / COUNTS.sum()


def _model(counts):
    return TabularModel(WeightedSequences(tuple(SEQS), np.asarray(counts)), V)


def test_full_log_probs_reproduce_the_tabular_distribution():
    """A tabular model built at P puts exactly P on every sequence (float64: ~1e-15 relative)."""
    lp = full_log_probs(_model(COUNTS), V, L)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(np.exp(lp), P, rtol=1e-12, atol=0)


def test_answer_probabilities_are_exact_conditionals():
    """p(answer | prompt) with a one-token prompt: P(x) / sum over completions of the prompt."""
    seqs = np.array([[0, 1, 2], [2, 0, 0], [1, 2, 1]])
    got = aligned_probabilities(_model(COUNTS), seqs, 1, V)
    table = P.reshape(V, V * V)
    want = [table[s[0], s[1] * V + s[2]] / table[s[0]].sum() for s in seqs]
    assert np.allclose(got, want, rtol=1e-12, atol=0)


def test_conditional_kl_is_the_mean_over_prompts_of_the_answer_kl():
    """Against a direct computation; the whole-sequence KL differs (it also counts the prompt marginal)."""
    other = COUNTS[::-1].copy()
    lp, lq = full_log_probs(_model(COUNTS), V, L), full_log_probs(_model(other), V, L)
    Q = other / other.sum()
    prompts = np.array([[0, 1], [2, 2]])
    want = []
    for pr in prompts:
        rows = [i for i, s in enumerate(SEQS) if s[:2] == tuple(pr)]
        p, q = P[rows] / P[rows].sum(), Q[rows] / Q[rows].sum()
        want.append((p * np.log2(p / q)).sum())
    assert conditional_kl_bits(lp, lq, V, L, 2, prompts) == pytest.approx(np.mean(want), rel=1e-12)
    assert prompt_index(prompts, V).tolist() == [1, 8]
    assert conditional_kl_bits(lp, lp, V, L, 2, prompts) == 0.0
    whole = float((P * np.log2(P / Q)).sum())
    assert not math.isclose(whole, np.mean(want), rel_tol=1e-3)
