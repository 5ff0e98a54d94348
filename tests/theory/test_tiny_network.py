"""The numpy tiny network (exact gradients, masks, fit) and the first-order ratio's derived tolerance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from elastic_theory.theory import first_order, tiny_network
from elastic_theory.theory.tolerances import EPS

#: Binary tokens and an end token (2); responses of 2 or 3 tokens, so sequences have 3 or 4 tokens with the end.
NET = tiny_network.TinyNetwork(vocab_size=3, max_length=4, hidden=3)
SUPPORT = [list(s) + [2] for n in (2, 3) for s in itertools.product(range(2), repeat=n)]


@pytest.fixture(scope="module")
def table():
    return tiny_network.encode(NET, SUPPORT, min_length=2)


def _weights(rng, n_sets):
    w = rng.uniform(0.1, 1.0, size=(n_sets, len(SUPPORT)))
    return w / w.sum(axis=1, keepdims=True)


def test_model_is_a_distribution_over_the_support(table):
    """sum over all 12 sequences of p(x) = 1 to rounding: the end token is masked before min_length and certain after
    max_length - 1 tokens. Without the mask (end possible after 1 token) or scoring the certain row, the sum is < 1."""
    rng = np.random.default_rng(0)
    theta = NET.init(rng)
    eye = np.eye(len(SUPPORT))
    nll, _ = tiny_network.losses_and_grads(NET, table, theta, eye)
    assert abs(np.exp(-nll).sum() - 1.0) < 64 * len(SUPPORT) * EPS
    assert len(table.targets) == 4 * 3 + 8 * 3  # the certain end row of each 3-token response is not a row
    filled = table.features.sum(axis=1)  # the position: how many prefix slots hold a token
    assert (table.allowed[:, 2] == (filled >= 2)).all() and table.allowed[:, :2].all()


def test_encode_refuses_bad_sequences():
    """A token outside the alphabet, a sequence too long, or an end token missing or too early: one clear error."""
    for seq, match in (([0, 3], "tokens in 0..2"), ([0, 1, 0, 1, 2], "1..4 tokens"), ([0, 1, 1], "must end with the end token"),
                       ([0, 2], "after >= 2 tokens")):
        with pytest.raises(ValueError, match=match):
            tiny_network.encode(NET, [seq], min_length=2)


def test_gradients_match_central_differences(table):
    """g . u against (L(theta + h u) - L(theta - h u)) / 2h for 3 losses and 10 unit directions, h = 1e-5.

    Error of the difference: truncation h^2 |L'''| / 6 (|L'''| <= ~100 for these losses: 1e-8) plus rounding
    2 eps |L| / (2h) (|L| <= 10: 2e-10); 1e-7 absolute covers both. A gradient with a tanh' factor 1 - 0.9 h^2 or
    with the softmax residual's columns shifted against W2's rows fails it (tried by hand when it was written)."""
    rng = np.random.default_rng(1)
    theta, w = NET.init(rng), _weights(rng, 3)
    _, grads = tiny_network.losses_and_grads(NET, table, theta, w)
    h = 1e-5
    for _ in range(10):
        u = rng.standard_normal(NET.n_params)
        u /= np.linalg.norm(u)
        plus, _ = tiny_network.losses_and_grads(NET, table, theta + h * u, w)
        minus, _ = tiny_network.losses_and_grads(NET, table, theta - h * u, w)
        assert np.abs((plus - minus) / (2 * h) - grads @ u).max() < 1e-7


def test_gradients_are_linear_in_the_weights_within_the_rounding_bound(table):
    """grad(a w1 + b w2) = a grad(w1) + b grad(w2) up to gradient_rounding, which is nonzero and far below the gradient."""
    rng = np.random.default_rng(2)
    theta, w = NET.init(rng), _weights(rng, 2)
    mix = 0.3 * w[0] + 0.7 * w[1]
    _, g = tiny_network.losses_and_grads(NET, table, theta, np.vstack([w, mix]))
    r = tiny_network.gradient_rounding(NET, table, theta, np.vstack([w, mix]))
    assert (np.abs(g[2] - 0.3 * g[0] - 0.7 * g[1]) <= r[2] + 0.3 * r[0] + 0.7 * r[1]).all()
    assert 0 < r.max() < 1e-10 * np.abs(g).max() * 1e3


def test_fit_reaches_a_stationary_point(table):
    """L-BFGS then Newton: gradient norm < 1e-9, recomputed at the returned parameters; the Newton steps lowered it."""
    rng = np.random.default_rng(3)
    w, theta0 = _weights(rng, 1)[0], NET.init(rng)
    opt = tiny_network.fit(NET, table, w, theta0)
    _, g = tiny_network.losses_and_grads(NET, table, opt.theta, w)
    assert opt.grad_norm == float(np.linalg.norm(g[0])) < 1e-9
    assert opt.newton_steps > 0 and opt.lbfgs_grad_norm > opt.grad_norm


def test_network_shape_is_checked():
    """Sizes below 1 and a parameter vector of the wrong length are refused."""
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        tiny_network.TinyNetwork(3, 4, 0)
    with pytest.raises(ValueError, match=r"theta must have shape \(%d,\)" % NET.n_params):
        NET.unpack(np.zeros(3))


def _gradients_with_joint(rng, n, k, joint_norm):
    """g_a, g_p and a joint gradient G of the given norm with k g_p + g_a = (k + 1) G exactly (up to rounding)."""
    ga = rng.standard_normal(n)
    G = rng.standard_normal(n)
    G *= joint_norm / np.linalg.norm(G)
    return ga, ((k + 1) * G - ga) / k, G


def test_ratio_tolerance_covers_the_error_and_is_tight():
    """|R1/k - 1| <= ratio_tolerance along 200 random directions, and along u = G/|G| + a bit of g_a the error is at
    least 0.9 of the bound's main term (Cauchy-Schwarz is attained there): a bound 10x looser is not the derived one."""
    rng = np.random.default_rng(5)
    k = 16.0
    ga, gp, G = _gradients_with_joint(rng, 50, k, 1e-6)
    for _ in range(200):
        u = rng.standard_normal(50)
        tol = first_order.ratio_tolerance(k, float(np.linalg.norm(G)), u, ga, gp, gradient_rounding=1e-15)
        assert abs(first_order.first_order_ratio(ga, gp, u) / k - 1) <= tol
    u = G / np.linalg.norm(G) + 1e-3 * ga / np.linalg.norm(ga)
    tol = first_order.ratio_tolerance(k, float(np.linalg.norm(G)), u, ga, gp)
    err = abs(first_order.first_order_ratio(ga, gp, u) / k - 1)
    assert 0.9 * tol < err <= tol


def test_ratio_tolerance_is_infinite_far_from_stationarity():
    """delta >= 1 (the joint gradient as large as g_a . u / (k + 1)) or g . u = 0: no bound (inf)."""
    ga, gp, u = np.array([1.0, 0.0]), np.array([-1 / 16, 0.0]), np.array([1.0, 0.0])
    assert first_order.ratio_tolerance(16.0, 1.0, u, ga, gp) == math.inf
    assert first_order.ratio_tolerance(16.0, 0.0, np.array([0.0, 1.0]), ga, gp) == math.inf
    assert first_order.ratio_tolerance(16.0, 0.0, u, ga, gp) < 1e-14
