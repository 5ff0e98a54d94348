r"""Rate changes of checkpoints against their base on the same documents, with paired intervals.

Every model scores the same documents, so the change of a pooled rate is a statistic of the
per-document pairs. Notation for one dataset of documents :math:`d = 1..n` with UTF-8 bytes
:math:`b_d`, and a model :math:`m` that codes document :math:`d` in :math:`c_{m,d}` bits over
:math:`t_{m,d}` tokens:

* bits per byte :math:`\rho_m = \sum_d c_{m,d} / \sum_d b_d`, bits per token :math:`\sum_d c_{m,d} / \sum_d t_{m,d}`;
* change from the base :math:`\Delta_m = \rho_m - \rho_{base} = \sum_d (c_{m,d} - c_{base,d}) / \sum_d b_d`;
* ratio of two datasets' changes in the theory's convention (THEORY §2.2, :math:`R = \Delta\gamma_a /
  (-\Delta\gamma_p)`): :math:`\hat R_m = \Delta_m^{num} / (-\Delta_m^{den})`, NUM in the alignment role and DEN in
  the pre-training role. It is positive when the two changes have opposite signs, as the theorem claims; when they
  share a sign (``same_sign``) the theorem's R is not defined and the number is only a ratio.

**Intervals: leave-one-out standard error and Student's t.** Each statistic :math:`\hat\theta` (a rate, a
change per byte, a change per token) is a smooth function of sums over documents. Its standard error is
:math:`se^2 = \sum_d (\hat\theta_{(-d)} - \hat\theta)^2`, :math:`\hat\theta_{(-d)}` the statistic without document
:math:`d` under *every* model (so the pairing is kept); the 95% interval is
:math:`\hat\theta \pm t_{0.975,\,n-1}\, se`. For a ratio of sums :math:`A/B`,
:math:`\hat\theta_{(-d)} - \hat\theta = -(a_d - \hat\theta b_d)/(B - b_d)`: the residual inflated by its leverage
:math:`b_d/B` (the HC3 form), which the plain linearization (the bootstrap's spread) lacks. Simulated coverage at
n = 10, 40 and 200 documents, normal and heavy-tailed, is in docs/compare.md (``scripts/compare_coverage.py``).
Documents that are hard for one model are hard for the others, so the spread of the difference is much smaller
than that of either rate: a shift far inside the two rates' own intervals is resolved.

**Paired bootstrap, for comparison.** One matrix of resampling counts :math:`W \in \mathbb{N}^{B \times n}` per
dataset (each row a multinomial draw of n documents with replacement) is applied to the base's and every
checkpoint's bits, and ``delta_bits_per_byte_bootstrap_ci95`` is the 2.5% and 97.5% order statistics of
:math:`\Delta_m^{*} = W(c_m - c_{base}) / W b` (no interpolation), widened to the estimate. It under-covers at
small n (0.87-0.89 at 10 documents), so it is reported beside the interval, not as it.

**Ratio set (Fieller).** With :math:`v = \mathrm{diag}(se_{num}^2, se_{den}^2)` (the two datasets' documents are
drawn independently), the 95% set of :math:`R` is
:math:`\{r : (\hat\Delta^{num} + r\hat\Delta^{den})^2 \le t^2 (v_{nn} + r^2 v_{dd})\}`, :math:`t` Student's 0.975
quantile at :math:`\min(n_{num}, n_{den}) - 1` degrees of freedom: an interval when the denominator is resolved
from 0, two rays or the whole line otherwise (:mod:`elastic_theory.stats.fieller`). See docs/compare.md.

No torch here: the numbers come from any scorer (:mod:`elastic_theory.empirical.compare`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .fieller import FiellerSet, fieller_interval, fieller_set  # fieller_interval: importable from here as before

__all__ = [
    "Comparison",
    "DatasetScores",
    "MIN_DOCUMENTS",
    "RateChange",
    "RatioEstimate",
    "compare_rates",
    "leave_one_out_interval",
    "resampling_counts",
]

LEVEL = 0.95
"""Coverage of every interval here."""

MIN_DOCUMENTS = 10
"""Fewest documents at which the intervals' coverage was simulated (docs/compare.md); below it ``compare`` warns."""

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


def _ratio_shifts(a: np.ndarray, b: np.ndarray, value: float) -> np.ndarray:
    r""":math:`\hat\theta_{(-d)} - \hat\theta = -(a_d - \hat\theta b_d)/(B - b_d)` for :math:`\hat\theta = A/B` (no
    cancellation: the residual is formed first); an infinite shift where the other documents have :math:`B - b_d = 0`."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    rest = b.sum() - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rest > 0, -(a - value * b) / np.where(rest > 0, rest, 1.0), np.inf)


def leave_one_out_interval(value: float, shifts: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    r"""``value`` :math:`\pm t_{(1+level)/2,\,n-1}\, se`, :math:`se^2 = \sum_d s_d^2` over the ``shifts``
    :math:`s_d = \hat\theta_{(-d)} - \hat\theta` of the n >= 2 leave-one-out estimates.

    >>> lo, hi = leave_one_out_interval(1.0, np.array([0.3, -0.4]))  # se 0.5, t_{0.975,1} = 12.7062
    >>> print(f"{lo:.4f} {hi:.4f}")
    -5.3531 7.3531
    """
    from scipy.stats import t

    s = np.asarray(shifts, dtype=np.float64)
    if s.size < 2:
        raise ValueError(f"a leave-one-out interval needs at least 2 documents, got {s.size}")
    half = float(t.ppf((1.0 + level) / 2, s.size - 1)) * math.sqrt(float(np.sum(s * s)))
    return value - half, value + half


@dataclass(frozen=True)
class RateChange:
    """Rates of one checkpoint on one dataset and their change from the base (bits; 95% intervals).

    ``delta_bits_per_byte_ci95``: paired leave-one-out t interval (module docstring); ``bits_per_byte_ci95``: the
    checkpoint's own (unpaired) interval, for comparison; ``delta_bits_per_byte_bootstrap_ci95``: the paired
    percentile bootstrap, for comparison. Bits-per-token changes are None when the checkpoint tokenizes the dataset
    differently from the base (``same_tokenization`` False).
    """

    bits_per_token: float
    bits_per_byte: float
    bits_per_byte_ci95: tuple[float, float]
    delta_bits_per_byte: float
    delta_bits_per_byte_ci95: tuple[float, float]
    delta_bits_per_byte_bootstrap_ci95: tuple[float, float]
    delta_bits_per_token: float | None
    delta_bits_per_token_ci95: tuple[float, float] | None
    same_tokenization: bool
    n_tokens: int
    n_documents: int

    def to_dict(self) -> dict:
        return {
            "bits_per_token": self.bits_per_token,
            "bits_per_byte": self.bits_per_byte,
            "bits_per_byte_ci95": list(self.bits_per_byte_ci95),
            "delta_bits_per_byte": self.delta_bits_per_byte,
            "delta_bits_per_byte_ci95": list(self.delta_bits_per_byte_ci95),
            "delta_bits_per_byte_bootstrap_ci95": list(self.delta_bits_per_byte_bootstrap_ci95),
            "delta_bits_per_token": self.delta_bits_per_token,
            "delta_bits_per_token_ci95": None if self.delta_bits_per_token_ci95 is None else list(self.delta_bits_per_token_ci95),
            "same_tokenization": self.same_tokenization,
            "n_tokens": self.n_tokens,
        }


@dataclass(frozen=True)
class RatioEstimate:
    """:math:`\\hat R = \\Delta^{num} / (-\\Delta^{den})` in ``unit`` (``"byte"`` or ``"token"``) with Fieller's 95% set:
    the theory's R with ``numerator`` in the alignment role and ``denominator`` in the pre-training role.

    ``ci95``: the interval when the set is one (the denominator's change is resolved from 0), else None;
    ``rays``: ``(a, b)`` when the set is two rays, :math:`R \\le a` or :math:`R \\ge b`, else None; both None: the
    set is the whole line. ``df``: the degrees of freedom of Student's critical value. ``same_sign``: the two
    changes have the same sign (R <= 0), where the theorem's R (a rise over a fall) is not defined.
    """

    numerator: str
    denominator: str
    unit: str
    value: float
    ci95: tuple[float, float] | None
    rays: tuple[float, float] | None = None
    df: int | None = None
    same_sign: bool = False

    @property
    def fieller(self) -> FiellerSet:
        """The set as a :class:`~elastic_theory.stats.fieller.FiellerSet`."""
        if self.ci95 is not None:
            return FiellerSet("interval", *self.ci95)
        return FiellerSet("rays", *self.rays) if self.rays is not None else FiellerSet("line", math.nan, math.nan)

    def to_dict(self) -> dict:
        return {
            "numerator": self.numerator, "denominator": self.denominator, "unit": self.unit, "value": self.value,
            "ci95": None if self.ci95 is None else list(self.ci95), "rays": None if self.rays is None else list(self.rays),
            "df": self.df, "convention": "R = delta(numerator) / -delta(denominator)", "same_sign": self.same_sign,
        }


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_rates`: the base's rates with their own 95% intervals (bits per byte),
    ``changes[checkpoint][dataset]`` and, with a ratio, ``ratios[checkpoint]``."""

    base_bits_per_byte_ci95: dict[str, tuple[float, float]]
    changes: dict[str, dict[str, RateChange]]
    ratios: dict[str, RatioEstimate]


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
    """Rate changes of every checkpoint against ``base`` on every dataset, with paired 95% intervals.

    ``base``: dataset -> scores; ``checkpoints``: checkpoint name -> dataset -> scores (same
    datasets, same documents in the same order). The intervals are leave-one-out t intervals (module docstring);
    one resampling matrix per dataset (:func:`resampling_counts`, drawn from ``rng`` in the order of ``base``'s
    datasets, ``n_resamples`` rows) gives the paired bootstrap shown beside them. ``ratio=(num, den)`` adds, per
    checkpoint, :math:`R = \\Delta^{num}/(-\\Delta^{den})` in ``unit`` (``"byte"``: bits per byte; ``"token"``: bits per
    token, refused with ``ValueError`` when a checkpoint tokenizes either dataset differently from the base).

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
    counts: dict[str, np.ndarray] = {}
    for dataset, base_scores in base.items():
        for name, ckpt in checkpoints.items():
            if dataset not in ckpt:
                raise ValueError(f"checkpoint {name!r} has no scores for dataset {dataset!r}")
            _check_same_documents(dataset, base_scores, ckpt[dataset], name)
        if base_scores.n_documents < 2:
            raise ValueError(f"dataset {dataset!r} has 1 document; an interval needs at least 2")
        counts[dataset] = resampling_counts(base_scores.n_documents, n_resamples, rng)
    changes = {name: {d: _rate_change(base[d], ckpt[d], counts[d]) for d in base} for name, ckpt in checkpoints.items()}
    ratios = {} if ratio is None else {name: _ratio(name, changes[name], base, ckpt, ratio, unit)
                                       for name, ckpt in checkpoints.items()}
    base_ci = {d: _own_interval(s) for d, s in base.items()}
    return Comparison(base_ci, changes, ratios)


def _own_interval(scores: DatasetScores) -> tuple[float, float]:
    value = scores.bits_per_byte
    return leave_one_out_interval(value, _ratio_shifts(scores.bits, scores.n_bytes, value))


def _change_shifts(base: DatasetScores, ckpt: DatasetScores, unit: str, value: float) -> np.ndarray:
    """Leave-one-out shifts of the change in ``unit``: per byte one ratio of sums, per token a difference of two."""
    if unit == "byte":
        return _ratio_shifts(np.asarray(ckpt.bits, np.float64) - base.bits, base.n_bytes, value)
    return (_ratio_shifts(ckpt.bits, ckpt.n_tokens, ckpt.bits_per_token)
            - _ratio_shifts(base.bits, base.n_tokens, base.bits_per_token))


def _rate_change(base: DatasetScores, ckpt: DatasetScores, counts: np.ndarray) -> RateChange:
    same = ckpt.tokenization == base.tokenization
    sums = _resampled_sums(counts, np.column_stack([base.n_bytes, base.bits, ckpt.bits]).astype(np.float64))
    delta = float((np.sum(ckpt.bits) - np.sum(base.bits)) / np.sum(base.n_bytes))
    delta_t = ckpt.bits_per_token - base.bits_per_token if same else None
    return RateChange(
        bits_per_token=ckpt.bits_per_token,
        bits_per_byte=ckpt.bits_per_byte,
        bits_per_byte_ci95=_own_interval(ckpt),
        delta_bits_per_byte=delta,
        delta_bits_per_byte_ci95=leave_one_out_interval(delta, _change_shifts(base, ckpt, "byte", delta)),
        delta_bits_per_byte_bootstrap_ci95=_percentile_interval((sums[:, 2] - sums[:, 1]) / sums[:, 0], delta),
        delta_bits_per_token=delta_t,
        delta_bits_per_token_ci95=leave_one_out_interval(delta_t, _change_shifts(base, ckpt, "token", delta_t)) if same else None,
        same_tokenization=same,
        n_tokens=int(np.sum(ckpt.n_tokens)),
        n_documents=ckpt.n_documents,
    )


def _ratio(name: str, changes: dict[str, RateChange], base: Mapping[str, DatasetScores], ckpt: Mapping[str, DatasetScores],
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
    estimate = [float(getattr(changes[d], key)) for d in ratio]
    variances = [float(np.sum(_change_shifts(base[d], ckpt[d], unit, e) ** 2)) for d, e in zip(ratio, estimate)]
    df = min(changes[num].n_documents, changes[den].n_documents) - 1
    fall = -estimate[1]  # the theory's R divides by the pre-training set's fall
    value = estimate[0] / fall if fall != 0 else math.nan
    s = fieller_set(estimate[0], fall, np.diag(variances), LEVEL, df)
    return RatioEstimate(num, den, unit, value, (s.lo, s.hi) if s.kind == "interval" else None,
                         (s.lo, s.hi) if s.kind == "rays" else None, df, estimate[0] * estimate[1] > 0)
