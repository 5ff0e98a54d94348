"""The synthetic world: exact counts, disjoint supports, exact k and l, JSONL export = the multiset trained on."""

import math
import re
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from elastic_theory.theory.elasticity import ratio_R
from elastic_theory.data.io import read_token_jsonl
from elastic_theory.data.synthetic import SyntheticWorld, WorldConfig


def world(**kw):
    return SyntheticWorld(WorldConfig(**{"vocab_size": 3, "length": 3, "prompt_length": 1, "n_prompts": 3, "resolution": 60, **kw}))


def test_components_disjoint_full_support_and_exact_masses():
    w = world()
    supports = [set(c.sequences) for c in w.components]
    assert not (supports[0] & supports[1] or supports[0] & supports[2] or supports[1] & supports[2])
    # default n_general=None: P1 takes every other length-3 sequence, so the union is all 3^3 of them
    assert len(supports[0] | supports[1] | supports[2]) == 27
    assert [c.size for c in w.components] == [60, 60, 60]
    # P2 and P3 answer the same prompts with the same prompt masses, differently
    assert [s[:1] for s in w.components[1].sequences] == [s[:1] for s in w.components[2].sequences]
    assert list(w.components[1].counts) == list(w.components[2].counts)


def test_overlap_breaks_disjointness_by_the_requested_share():
    w = world(overlap=2 / 3)
    assert len(set(w.components[1].sequences) & set(w.components[2].sequences)) == 2


def test_exact_mode_k_l_exact_and_union_is_p_l():
    w = world()
    d = w.datasets(16, 0.1, (0.6, 0.2, 0.2))
    assert (d.k, d.l) == (16, Fraction(1, 10))
    # the union's empirical distribution is p_l of the perturbation model, leaf by leaf
    pm = d.perturbation_model()
    p_l = pm.model(0.1)
    u = d.union
    probs = dict(zip(u.sequences, u.probs))
    tree_probs = {tuple(int(t) for t in p_l.sequence(n)): float(p_l.eos_weight[n] / p_l.total_weight)
                  for n in np.flatnonzero(p_l.eos_weight)}
    assert probs.keys() == tree_probs.keys()
    assert max(abs(probs[s] - tree_probs[s]) for s in probs) < 1e-15
    # disjoint supports + exact weights: the predicted derivative ratio is the closed form (fixed length: per token = per response)
    assert pm.ratio(0.1, per_token=True) == pytest.approx(ratio_R(16, 0.1, 0.2), rel=1e-12)


def test_export_jsonl_union_with_multiplicity_is_the_training_multiset(tmp_path):
    d = world().datasets(4, 0.2, (0.5, 0.25, 0.25))
    paths = d.export_jsonl(tmp_path)
    seen = Counter()
    for p in paths.values():
        seen.update(tuple(s) for s in read_token_jsonl(p))
    assert seen == Counter(dict(zip(d.union.sequences, (int(c) for c in d.union.counts))))
    assert len(read_token_jsonl(paths["pretrain"])) == 4 * len(read_token_jsonl(paths["align"]))


def test_variable_length_sequences_end_with_the_end_token():
    w = SyntheticWorld(WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24))
    end = w.config.end_token
    assert end == 2 and w.config.data_vocab_size == 3
    seqs = [s for c in w.components for s in c.sequences]
    assert all(s[-1] == end and end not in s[:-1] and 3 <= len(s) <= 4 for s in seqs)
    assert len(seqs) == 4 + 8  # every sequence of length 2 or 3 over 2 tokens, each once


def test_sampled_mode_exact_ratios_and_nested_perturbation():
    w = world()
    kw = dict(n_align=50, l_max=0.4)
    a = w.datasets(4, 0.2, (0.6, 0.2, 0.2), "sampled", rng=np.random.default_rng(1), **kw)
    b = w.datasets(4, 0.4, (0.6, 0.2, 0.2), "sampled", rng=np.random.default_rng(1), **kw)
    assert (a.pretrain.size, a.align.size, a.perturb.size) == (200, 50, 10)
    assert (b.k, b.l) == (4, Fraction(2, 5))
    assert np.array_equal(a.align.counts, b.align.counts) and np.array_equal(a.pretrain.counts, b.pretrain.counts)
    assert (b.perturb.counts >= a.perturb.counts).all()  # D_t(0.2) is the first half of D_t(0.4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=0, l=0.1, w=(0.6, 0.2, 0.2)), "k = |D_p|/|D_a| must be finite and > 0"),
        (dict(k=4, l=-0.1, w=(0.6, 0.2, 0.2)), "l = |D_t|/|D_a| must be finite and >= 0"),
        (dict(k=4, l=0.1, w=(0.5, 0.2, 0.2)), "summing to 1"),
        (dict(k=4, l=math.pi / 10, w=(0.6, 0.2, 0.2)), "is not a ratio with denominator <= 10^6"),
    ],
)
def test_bad_dataset_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        world().datasets(**kwargs)


def test_bad_world_configs():
    with pytest.raises(ValueError, match="world.resolution = 10 must be >= the largest support"):
        WorldConfig(vocab_size=3, length=3, prompt_length=1, n_prompts=3, resolution=10)
    with pytest.raises(ValueError, match="world.prompt_length = 3 must be below"):
        WorldConfig(length=3, prompt_length=3)
