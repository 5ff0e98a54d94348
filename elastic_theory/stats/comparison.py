r"""Rate changes of checkpoints against their base on the same documents, with paired intervals.

Every model scores the same documents, so the change of a pooled rate is a statistic of the
per-document pairs. Notation for one dataset of documents :math:`d = 1..n` with UTF-8 bytes
:math:`b_d`, and a model :math:`m` that codes document :math:`d` in :math:`c_{m,d}` bits over
:math:`t_{m,d}` tokens:

* bits per byte :math:`\rho_m = \sum_d c_{m,d} / \sum_d b_d`, bits per token :math:`\sum_d c_{m,d} / \sum_d t_{m,d}`;
* change from the base :math:`\Delta_m = \rho_m - \rho_{base} = \sum_d (c_{m,d} - c_{base,d}) / \sum_d b_d`;
* ratio of two datasets' changes :math:`\hat R_m = \Delta_m^{num} / \Delta_m^{den}` (the measured
  analogue of the theory's R when NUM is the alignment set and DEN the pre-training proxy).

**Paired bootstrap.** One matrix of resampling counts :math:`W \in \mathbb{N}^{B \times n}` per
dataset (each row a multinomial draw of n documents with replacement) is applied to *every*
model's per-document numbers, so each resample keeps a document's bits under all models
together. The 95% interval of :math:`\Delta_m` is the 2.5% and 97.5% percentiles of
:math:`\Delta_m^{*} = W(c_m - c_{base}) / W b`, taken as order statistics (no interpolation).
Documents that are hard for one model are hard for the others, so the spread of the difference is much smaller than that of either rate: a
shift far inside the two rates' own intervals is resolved.

**Ratio interval (Fieller).** With the bootstrap covariance :math:`v` of
:math:`(\Delta^{num}, \Delta^{den})`, the 95% set of :math:`R` is
:math:`\{r : (\hat\Delta^{num} - r\hat\Delta^{den})^2 \le z^2 (v_{nn} - 2 r v_{nd} + r^2 v_{dd})\}`,
:math:`z = \Phi^{-1}(0.975)`. It is an interval exactly when the denominator is resolved from 0
(:math:`(\hat\Delta^{den})^2 > z^2 v_{dd}`); otherwise the set is unbounded and no interval is
reported. See docs/compare.md.

No torch here: the numbers come from any scorer (:mod:`elastic_theory.empirical.compare`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Comparison",
    "DatasetScores",
    "RateChange",
    "RatioEstimate",
    "compare_rates",
    "fieller_interval",
    "resampling_counts",
]

LEVEL = 0.95
"""Coverage of every interval here."""

_CHUNK = 256  # resamples per matrix product: bounds memory at 256 x n counts


@dataclass(frozen=True)
class DatasetScores:
    """Per-document numbers of one dataset under one model.

    ``bits``: code length of each document (bits); ``n_tokens``: its tokens under the model's
    tokenizer; ``n_bytes``: UTF-8 bytes of its text; ``tokenization``: a digest of the token ids of
    all documents (equal digests: the same tokens, so bits-per-token changes are meaningful).
    """

    bits: np.ndarray
    n_tokens: np.ndarray
    n_bytes: np.ndarray
    tokenization: str

    def __post_init__(self) -> None:
        n = np.asarray(self.bits).shape
        if len(n) != 1 or n[0] == 0 or np.shape(self.n_tokens) != n or np.shape(self.n_bytes) != n:
            raise ValueError("bits, n_tokens and n_bytes must be 1-d arrays of the same non-zero length (one per document)")

    @property
    def n_documents(self) -> int:
        return int(np.shape(self.bits)[0])

    @property
    def bits_per_byte(self) -> float:
        return float(np.sum(self.bits) / np.sum(self.n_bytes))

    @property
    def bits_per_token(self) -> float:
        return float(np.sum(self.bits) / np.sum(self.n_tokens))


def resampling_counts(n_documents: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_documents)`` int32 counts: row b says how often each document is in resample b.

    Each row is a multinomial draw of ``n_documents`` from the documents with equal probability,
    i.e. sampling with replacement. Applying the same matrix to every model pairs the models.
    """
    if n_documents < 1 or n_resamples < 1:
        raise ValueError(f"need at least one document and one resample, got {n_documents} and {n_resamples}")
    return rng.multinomial(n_documents, np.full(n_documents, 1.0 / n_documents), size=n_resamples).astype(np.int32)


def _resampled_sums(counts: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``counts @ columns`` in float64, ``_CHUNK`` resamples at a time: (B, k) resampled sums of k per-document columns."""
    out = np.empty((counts.shape[0], columns.shape[1]))
    for s in range(0, counts.shape[0], _CHUNK):
        out[s : s + _CHUNK] = counts[s : s + _CHUNK].astype(np.float64) @ columns
    return out


def _percentile_interval(samples: np.ndarray, estimate: float) -> tuple[float, float]:
    """The 2.5% and 97.5% order statistics of ``samples`` (``inverted_cdf``: each endpoint is a replicate, never an
    interpolation between two), widened to hold ``estimate``: when every document has the same ratio the replicates
    agree with the estimate only to a few ulps of rounding in their sums, all possibly on one side of it."""
    alpha = (1.0 - LEVEL) / 2
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(min(lo, estimate)), float(max(hi, estimate))


def fieller_interval(
    numerator: float, denominator: float, covariance: np.ndarray, level: float = LEVEL
) -> tuple[float, float] | None:
    r"""Fieller's interval for :math:`N/D` from estimates ``numerator``, ``denominator`` and their 2x2 ``covariance``.

    The set :math:`\{r : (N - rD)^2 \le z^2 (v_{NN} - 2 r v_{ND} + r^2 v_{DD})\}` with
    :math:`z = \Phi^{-1}((1+level)/2)`. Returns ``(lo, hi)`` when :math:`D^2 > z^2 v_{DD}` (the
    denominator is resolved from 0), else None (the set is unbounded: two rays or the whole line).

    >>> lo, hi = fieller_interval(10.0, 2.0, np.diag([1.0, 0.01]))
    >>> round(lo, 3) < 5.0 < round(hi, 3)
    True
    >>> fieller_interval(10.0, 0.1, np.diag([1.0, 0.01])) is None
    True
    """
    from scipy.stats import norm

    z2 = float(norm.ppf((1.0 + level) / 2)) ** 2
    v = np.asarray(covariance, dtype=np.float64)
    a = denominator**2 - z2 * v[1, 1]
    if not a > 0:
        return None
    b = -2.0 * (numerator * denominator - z2 * v[0, 1])
    c = numerator**2 - z2 * v[0, 0]
    disc = max(b * b - 4 * a * c, 0.0)  # >= 0 whenever a > 0 and v is positive semi-definite; rounding guarded
    root = math.sqrt(disc)
    # Citardauq form for the root that would cancel: both roots to full relative precision.
    q = -0.5 * (b + math.copysign(root, b))
    r1 = q / a
    r2 = c / q if q != 0 else r1
    return float(min(r1, r2)), float(max(r1, r2))


@dataclass(frozen=True)
class RateChange:
    """Rates of one checkpoint on one dataset and their change from the base (bits; 95% intervals).

    ``delta_bits_per_byte_ci95``: paired percentile bootstrap; ``bits_per_byte_ci95``: the
    checkpoint's own (unpaired) interval, for comparison. Bits-per-token changes are None when the
    checkpoint tokenizes the dataset differently from the base (``same_tokenization`` False).
    """

    bits_per_token: float
    bits_per_byte: float
    bits_per_byte_ci95: tuple[float, float]
    delta_bits_per_byte: float
    delta_bits_per_byte_ci95: tuple[float, float]
    delta_bits_per_token: float | None
    delta_bits_per_token_ci95: tuple[float, float] | None
    same_tokenization: bool
    n_tokens: int

    def to_dict(self) -> dict:
        return {
            "bits_per_token": self.bits_per_token,
            "bits_per_byte": self.bits_per_byte,
            "bits_per_byte_ci95": list(self.bits_per_byte_ci95),
            "delta_bits_per_byte": self.delta_bits_per_byte,
            "delta_bits_per_byte_ci95": list(self.delta_bits_per_byte_ci95),
            "delta_bits_per_token": self.delta_bits_per_token,
            "delta_bits_per_token_ci95": None if self.delta_bits_per_token_ci95 is None else list(self.delta_bits_per_token_ci95),
            "same_tokenization": self.same_tokenization,
            "n_tokens": self.n_tokens,
        }


@dataclass(frozen=True)
class RatioEstimate:
    """:math:`\\hat R = \\Delta^{num} / \\Delta^{den}` in ``unit`` (``"byte"`` or ``"token"``) with Fieller's 95% interval.

    ``ci95`` is None when the denominator's change is not resolved from 0 (the interval is unbounded).
    """

    numerator: str
    denominator: str
    unit: str
    value: float
    ci95: tuple[float, float] | None

    def to_dict(self) -> dict:
        return {
            "numerator": self.numerator, "denominator": self.denominator, "unit": self.unit, "value": self.value,
            "ci95": None if self.ci95 is None else list(self.ci95),
        }


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_rates`: the base's rates with their own 95% intervals (bits per byte),
    ``changes[checkpoint][dataset]`` and, with a ratio, ``ratios[checkpoint]``."""

    base_bits_per_byte_ci95: dict[str, tuple[float, float]]
    changes: dict[str, dict[str, RateChange]]
    ratios: dict[str, RatioEstimate]


@dataclass(frozen=True)
class _Resampled:
    """Bootstrap replicates of one dataset: bytes and, per model, bits and tokens (each a length-B array)."""

    n_bytes: np.ndarray
    bits: dict[str, np.ndarray]
    tokens: dict[str, np.ndarray]


def _resample(scores: Mapping[str, DatasetScores], counts: np.ndarray) -> _Resampled:
    names = list(scores)
    columns = np.column_stack(
        [next(iter(scores.values())).n_bytes]
        + [scores[m].bits for m in names]
        + [scores[m].n_tokens for m in names]
    ).astype(np.float64)
    sums = _resampled_sums(counts, columns)
    k = len(names)
    return _Resampled(sums[:, 0], {m: sums[:, 1 + i] for i, m in enumerate(names)},
                      {m: sums[:, 1 + k + i] for i, m in enumerate(names)})


def _check_same_documents(dataset: str, base: DatasetScores, other: DatasetScores, model: str) -> None:
    if other.n_documents != base.n_documents or not np.array_equal(other.n_bytes, base.n_bytes):
        raise ValueError(f"dataset {dataset!r}: model {model!r} was scored on other documents than the base "
                         f"({other.n_documents} vs {base.n_documents}); score every model on the same files")


def compare_rates(
    base: Mapping[str, DatasetScores],
    checkpoints: Mapping[str, Mapping[str, DatasetScores]],
    rng: np.random.Generator,
    *,
    n_resamples: int = 2000,
    ratio: tuple[str, str] | None = None,
    unit: str = "byte",
) -> Comparison:
    """Rate changes of every checkpoint against ``base`` on every dataset, with paired bootstrap intervals.

    ``base``: dataset -> scores; ``checkpoints``: checkpoint name -> dataset -> scores (same
    datasets, same documents in the same order). One resampling matrix per dataset
    (:func:`resampling_counts`, drawn from ``rng`` in the order of ``base``'s datasets) serves all
    models. ``ratio=(num, den)`` adds, per checkpoint, :math:`\\Delta^{num}/\\Delta^{den}` in
    ``unit`` (``"byte"``: bits per byte; ``"token"``: bits per token, refused with ``ValueError``
    when a checkpoint tokenizes either dataset differently from the base).

    Raises ``ValueError`` for unknown ratio datasets, a dataset of one document (no interval), or
    checkpoints scored on other documents than the base.
    """
    if unit not in ("byte", "token"):
        raise ValueError(f"unit must be 'byte' or 'token', got {unit!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if ratio is not None:
        missing = [d for d in ratio if d not in base]
        if missing:
            raise ValueError(f"ratio: no dataset named {missing[0]!r} (datasets: {', '.join(base)})")
        if ratio[0] == ratio[1]:
            raise ValueError(f"ratio: numerator and denominator are both {ratio[0]!r}; name two different datasets")
    replicates: dict[str, _Resampled] = {}
    for dataset, base_scores in base.items():
        per_model = {"": base_scores}
        for name, ckpt in checkpoints.items():
            if dataset not in ckpt:
                raise ValueError(f"checkpoint {name!r} has no scores for dataset {dataset!r}")
            _check_same_documents(dataset, base_scores, ckpt[dataset], name)
            per_model[name] = ckpt[dataset]
        if base_scores.n_documents < 2:
            raise ValueError(f"dataset {dataset!r} has 1 document; a bootstrap interval needs at least 2")
        replicates[dataset] = _resample(per_model, resampling_counts(base_scores.n_documents, n_resamples, rng))
    changes = {name: {d: _rate_change(base[d], ckpt[d], replicates[d], name) for d in base}
               for name, ckpt in checkpoints.items()}
    ratios = {} if ratio is None else {name: _ratio(changes[name], replicates, name, ratio, unit) for name in checkpoints}
    base_ci = {d: _percentile_interval(rep.bits[""] / rep.n_bytes, base[d].bits_per_byte) for d, rep in replicates.items()}
    return Comparison(base_ci, changes, ratios)


def _rate_change(base: DatasetScores, ckpt: DatasetScores, rep: _Resampled, name: str) -> RateChange:
    same = ckpt.tokenization == base.tokenization
    delta_bpb = (rep.bits[name] - rep.bits[""]) / rep.n_bytes
    delta_bpt = rep.bits[name] / rep.tokens[name] - rep.bits[""] / rep.tokens[""] if same else None
    delta = float((np.sum(ckpt.bits) - np.sum(base.bits)) / np.sum(base.n_bytes))
    delta_t = ckpt.bits_per_token - base.bits_per_token if same else None
    return RateChange(
        bits_per_token=ckpt.bits_per_token,
        bits_per_byte=ckpt.bits_per_byte,
        bits_per_byte_ci95=_percentile_interval(rep.bits[name] / rep.n_bytes, ckpt.bits_per_byte),
        delta_bits_per_byte=delta,
        delta_bits_per_byte_ci95=_percentile_interval(delta_bpb, delta),
        delta_bits_per_token=delta_t,
        delta_bits_per_token_ci95=_percentile_interval(delta_bpt, delta_t) if same else None,
        same_tokenization=same,
        n_tokens=int(np.sum(ckpt.n_tokens)),
    )


def _delta_replicates(rep: _Resampled, name: str, unit: str) -> np.ndarray:
    if unit == "byte":
        return (rep.bits[name] - rep.bits[""]) / rep.n_bytes
    return rep.bits[name] / rep.tokens[name] - rep.bits[""] / rep.tokens[""]


def _ratio(changes: dict[str, RateChange], replicates: dict[str, _Resampled], name: str,
           ratio: tuple[str, str], unit: str) -> RatioEstimate:
    num, den = ratio
    if unit == "token":
        for d in ratio:
            if not changes[d].same_tokenization:
                raise ValueError(
                    f"checkpoint {name!r} tokenizes dataset {d!r} differently from the base (another tokenizer): "
                    "bits-per-token changes are not comparable; use the ratio in bits per byte (--unit byte)"
                )
    key = "delta_bits_per_byte" if unit == "byte" else "delta_bits_per_token"
    estimate = np.array([getattr(changes[num], key), getattr(changes[den], key)])
    samples = np.column_stack([_delta_replicates(replicates[d], name, unit) for d in ratio])
    covariance = np.cov(samples, rowvar=False) if samples.shape[0] > 1 else np.zeros((2, 2))
    value = float(estimate[0] / estimate[1]) if estimate[1] != 0 else math.nan
    return RatioEstimate(num, den, unit, value, fieller_interval(float(estimate[0]), float(estimate[1]), covariance))
