r"""Training small causal transformers on weighted synthetic sequences, with exact-enumeration rates.

The data are finite datasets given as distinct sequences with integer counts
(:class:`~elastic_theory.data.synthetic.WeightedSequences`). A model's probability of a sequence
:math:`x` is :math:`p_\theta(x) = \prod_i p_\theta(x_i \mid \text{BOS}, x_{<i})` (the BOS token is
one id past the data alphabet and is never a target), so on a finite support every quantity is
an exact sum, not an estimate:

* training loss: :math:`-\sum_x \hat P(x) \ln p_\theta(x)` nats per response (full batch), or its
  unbiased minibatch estimate with sequences drawn from :math:`\hat P` (``batch_size``);
* rate :math:`\gamma_i = -\sum_x P_i(x)\log_2 p_\theta(x) / E_{P_i}|x|` bits per token (THEORY §1);
* :math:`KL(\hat P \| p_\theta)` bits per response: the distance to the joint optimum of the data
  trained on (the empirical distribution; THEORY §1 "joint training").

Also: a tabular softmax model (:class:`TabularModel`), and :class:`ExactRateTracker`, which writes
lines in :class:`~elastic_theory.empirical.RateTracker`'s format. The derivatives of these rates
(influence functions, first-order changes) are in :mod:`~elastic_theory.empirical.rate_derivatives`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..data.io import atomic_file
from ..data.synthetic import WeightedSequences
from ..infra.trainconfig import DTYPE_NAMES, ModelConfig, StageConfig
from ..theory.units import LN2

__all__ = [
    "DTYPES",
    "ExactRateTracker",
    "SequenceData",
    "TabularModel",
    "build_model",
    "kl_bits",
    "load_state",
    "nll",
    "rates_bits_per_token",
    "save_state",
    "sequence_log_probs",
    "train_stage",
]

_MASKED = -1e30  # a logit whose softmax probability is exactly 0 in float32 and float64, without inf arithmetic
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def build_model(config: ModelConfig, data_vocab_size: int, max_length: int, *, seed: int, device: str = "cpu"):
    """A randomly initialized ``GPT2LMHeadModel`` over ``data_vocab_size`` tokens plus BOS (id ``data_vocab_size``).

    Initialized from a forked torch RNG seeded with ``seed`` (the global RNG is untouched), cast
    to ``config.dtype`` and moved to ``device``; train mode is irrelevant (no dropout).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    bos = int(data_vocab_size)
    cfg = GPT2Config(
        vocab_size=bos + 1, n_positions=int(max_length), n_embd=config.n_embd, n_layer=config.n_layer,
        n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=bos, eos_token_id=bos,
        attn_implementation="eager",  # SDPA's CPU kernel has no double backward (Hessian-vector products)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    return model.to(device=device, dtype=DTYPES[config.dtype])


class SequenceData:
    """A finite dataset as tensors: BOS-prefixed inputs, targets, a length mask and probabilities ``counts/size``.

    Rows are the distinct sequences with non-zero count; ``probs`` sums to 1. ``mean_length`` is
    :math:`E|x|` (tokens per response, the per-token rates' denominator).

    ``logit_mask`` (positions x (alphabet + BOS), 0 or -1e30: probability exactly 0 after the softmax) restricts each position's softmax to the
    tokens a sequence of the world can have there: never BOS; with ``end_lengths = (min_length,
    length)`` (variable lengths, end token = the last data id) the end token only from position
    ``min_length`` on and only it after ``length`` content tokens. Without it the optimum would put
    probability 0 on those tokens, a point at infinity that training approaches like 1/steps; with it
    the joint optimum of a full-support world is an interior point.
    """

    def __init__(self, data: WeightedSequences, data_vocab_size: int, *, end_lengths: tuple[int, int] | None = None,
                 device: str = "cpu", dtype=torch.float64):
        d = data.nonzero()
        if d.size == 0:
            raise ValueError("the dataset is empty: nothing to train on or measure")
        self.sequences, self.size, self.bos, self.end_lengths = d.sequences, d.size, int(data_vocab_size), end_lengths
        n, L = len(d.sequences), max(len(s) for s in d.sequences)
        targets = np.zeros((n, L), dtype=np.int64)
        lengths = np.array([len(s) for s in d.sequences])
        for i, s in enumerate(d.sequences):
            targets[i, : len(s)] = s
        inputs = np.full((n, L), self.bos, dtype=np.int64)
        inputs[:, 1:] = targets[:, :-1]
        self.input_ids = torch.as_tensor(inputs, device=device)
        self.targets = torch.as_tensor(targets, device=device)
        self.mask = torch.as_tensor(np.arange(L)[None, :] < lengths[:, None], device=device, dtype=dtype)
        self.probs = torch.as_tensor(d.probs, device=device, dtype=dtype)
        self.lengths = torch.as_tensor(lengths, device=device, dtype=dtype)
        self.mean_length = float((d.probs * lengths).sum())
        mask = np.zeros((L, self.bos + 1))
        mask[:, self.bos] = _MASKED
        if end_lengths is not None:
            lo, hi = end_lengths
            end = self.bos - 1
            mask[:lo, end] = _MASKED
            mask[hi:, :end] = _MASKED
        self.logit_mask = torch.as_tensor(mask, device=device, dtype=dtype)

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, rows: torch.Tensor) -> SimpleNamespace:
        """Rows ``rows`` (with repetition) as a minibatch with equal weights."""
        return SimpleNamespace(input_ids=self.input_ids[rows], targets=self.targets[rows], mask=self.mask[rows],
                               logit_mask=self.logit_mask, probs=torch.full((len(rows),), 1.0 / len(rows), dtype=self.probs.dtype, device=rows.device))


def sequence_log_probs(model, data) -> torch.Tensor:
    r""":math:`\ln p_\theta(x)` for every row of ``data`` (nats; shape ``(n,)``), differentiable."""
    logits = model(input_ids=data.input_ids).logits + data.logit_mask
    lp = torch.log_softmax(logits, dim=-1).gather(-1, data.targets.unsqueeze(-1)).squeeze(-1)
    return torch.where(data.mask > 0, lp, 0.0).sum(-1)  # padding targets may be masked tokens (-1e30): select, never multiply


def nll(model, data) -> torch.Tensor:
    r"""The training loss :math:`-\sum_x \hat P(x)\ln p_\theta(x)` in nats per response (differentiable scalar)."""
    return -(data.probs * sequence_log_probs(model, data)).sum()


def gamma_tensor(model, data: SequenceData) -> torch.Tensor:
    r""":math:`\gamma = CE/E|x|` in bits per token as a differentiable scalar."""
    return nll(model, data) / (LN2 * data.mean_length)


@torch.no_grad()
def rates_bits_per_token(model, datasets: Mapping[str, SequenceData]) -> dict[str, float]:
    """Exact rates gamma (bits per token) of the model on each named dataset."""
    return {name: float(gamma_tensor(model, d)) for name, d in datasets.items()}


@torch.no_grad()
def kl_bits(model, data: SequenceData) -> float:
    r""":math:`KL(\hat P \| p_\theta) = \sum_x \hat P(x)\log_2(\hat P(x)/p_\theta(x))` bits per response, exactly.

    ``data`` is what was trained on, so this is the distance to the joint optimum (0 iff the model
    puts exactly :math:`\hat P` on the support). Summed term by term: no cancellation of two CEs.
    """
    lp = sequence_log_probs(model, data)
    return float((data.probs * (torch.log(data.probs) - lp)).sum()) / LN2


def _optimizer(stage: StageConfig, params):
    if stage.optimizer == "adam":
        return torch.optim.Adam(params, lr=stage.lr, weight_decay=stage.weight_decay)
    if stage.optimizer == "sgd":
        return torch.optim.SGD(params, lr=stage.lr, weight_decay=stage.weight_decay)
    return torch.optim.LBFGS(params, lr=stage.lr, max_iter=1, max_eval=25, history_size=50, line_search_fn="strong_wolfe",
                             tolerance_grad=0.0, tolerance_change=0.0)


def train_stage(
    model,
    data: SequenceData,
    stage: StageConfig,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    """Run ``stage.steps`` optimizer steps on ``data``; return the last step's loss (nats per response).

    ``on_step(step, loss)`` is called after every step (step counts from 1) for tracking and
    checkpoints. Minibatches draw rows from ``data.probs`` with ``generator`` (required then).
    LBFGS stops early at a fixed point of its iteration (see :class:`~elastic_theory.infra.trainconfig.StageConfig`):
    the parameters are then exactly those of ``stage.steps`` steps, and so is the returned loss.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(stage, params)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(stage.steps, 1))
             if stage.schedule == "cosine" and stage.optimizer != "lbfgs" else None)
    if stage.batch_size is not None and generator is None:
        raise ValueError("minibatch training draws rows: pass generator=torch.Generator().manual_seed(seed)")
    loss_value = math.nan
    for step in range(1, stage.steps + 1):
        if stage.optimizer == "lbfgs":
            def closure():
                opt.zero_grad(set_to_none=True)
                loss = nll(model, data)
                loss.backward()
                return loss

            before = _flat_parameters(params)
            loss_value = float(opt.step(closure).detach())
            if on_step is not None:
                on_step(step, loss_value)
            if step > 1 and torch.equal(before, _flat_parameters(params)):
                break
            continue
        batch = data if stage.batch_size is None else data.subset(
            torch.multinomial(data.probs, stage.batch_size, replacement=True, generator=generator).to(data.probs.device))
        opt.zero_grad(set_to_none=True)
        loss = nll(model, batch)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        loss_value = float(loss.detach())
        if on_step is not None:
            on_step(step, loss_value)
    return loss_value


def _flat_parameters(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


class ExactRateTracker:
    """Exact rates of named datasets every ``every`` steps, appended to a JSONL file in RateTracker's format.

    Each line: ``{"step", "dataset", "bits_per_token", "bits_per_byte": null, "n_tokens", "n_bytes": null,
    "seconds", "time", "kl_bits"}`` where ``n_tokens`` is E|x| (tokens per response) and ``kl_bits`` is
    KL(dataset || model) bits per response. ``elastic-theory plot FILE`` draws it.
    """

    def __init__(self, datasets: Mapping[str, SequenceData], path: str | os.PathLike, *, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not datasets:
            raise ValueError("give at least one named dataset to track")
        self.datasets, self.path, self.every = dict(datasets), Path(path), every
        self.records: list[dict] = []
        # One forward pass over the union of the supports serves every dataset (D_a's support lies inside D_p's).
        first = next(iter(self.datasets.values()))
        rows = list(dict.fromkeys(s for d in self.datasets.values() for s in d.sequences))
        index = {s: i for i, s in enumerate(rows)}
        self.union = SequenceData(WeightedSequences(tuple(rows), np.ones(len(rows), dtype=np.int64)), first.bos,
                                  end_lengths=first.end_lengths, device=first.probs.device, dtype=first.probs.dtype)
        self.weights = {}
        for name, d in self.datasets.items():
            w = torch.zeros(len(rows), dtype=d.probs.dtype, device=d.probs.device)
            w[torch.as_tensor([index[s] for s in d.sequences], device=w.device)] = d.probs
            self.weights[name] = w

    @torch.no_grad()
    def measure(self, model, step: int) -> list[dict]:
        """Measure every dataset now (one forward pass); append the lines to the file and to ``records``.

        ``seconds`` is the measurement's time shared equally among the datasets' lines.
        """
        t0 = time.perf_counter()
        lp = sequence_log_probs(model, self.union)
        out = []
        for name, w in self.weights.items():
            on = w > 0
            ce = float(-(w * lp).sum())
            kl = float((w[on] * (torch.log(w[on]) - lp[on])).sum())
            out.append((name, ce / (LN2 * self.datasets[name].mean_length), kl / LN2))
        seconds = (time.perf_counter() - t0) / len(out)
        lines = [{"step": int(step), "dataset": name, "bits_per_token": rate, "bits_per_byte": None,
                  "n_tokens": self.datasets[name].mean_length, "n_bytes": None, "seconds": seconds, "time": time.time(),
                  "kl_bits": kl} for name, rate, kl in out]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in lines)
        self.records.extend(lines)
        return lines

    def maybe_measure(self, model, step: int) -> list[dict]:
        """:meth:`measure` when ``step`` is a multiple of ``every``."""
        return self.measure(model, step) if step % self.every == 0 else []


def save_state(model, path: str | os.PathLike) -> None:
    """Save the model's parameters atomically (temporary file, then rename)."""
    with atomic_file(path) as tmp:
        torch.save(model.state_dict(), tmp)


def load_state(model, path: str | os.PathLike):
    """Load parameters saved by :func:`save_state` into ``model`` (same architecture); return the model."""
    model.load_state_dict(torch.load(Path(path), map_location=next(model.parameters()).device, weights_only=True))
    return model


class TabularModel(torch.nn.Module):
    r"""A tabular softmax model: free next-token logits for every prefix of a finite support.

    :math:`p(x_i \mid x_{<i}) = \mathrm{softmax}(z_{x_{<i}})`; prefixes outside ``support`` share one
    uniform row. Built at a distribution (``init``, e.g. the joint optimum): logits
    :math:`\ln p(\cdot\mid\text{prefix})`, with :math:`-\text{floor}` where a next token has no mass. Its
    ``forward(input_ids)`` returns an object with ``.logits`` like a transformers model, so every
    function here and in :mod:`~elastic_theory.empirical.rate_derivatives` works on it; its gradient
    steps are the "tabular" (unrestricted-capacity) learner.
    """

    def __init__(self, init: WeightedSequences, data_vocab_size: int, *, dtype=torch.float64, floor: float = 50.0):
        super().__init__()
        self.bos, V = int(data_vocab_size), int(data_vocab_size) + 1
        index: dict[tuple[int, ...], int] = {(): 1}
        mass: dict[tuple[int, ...], np.ndarray] = {}
        for s, c in zip(init.sequences, init.counts):
            for i, t in enumerate(s):
                prefix = tuple(s[:i])
                index.setdefault(prefix, len(index) + 1)
                mass.setdefault(prefix, np.zeros(V))[t] += c
        table = np.zeros((len(index) + 1, V))
        for prefix, m in mass.items():
            with np.errstate(divide="ignore"):
                table[index[prefix]] = np.maximum(np.log(m / m.sum()), -floor)
        self.index = index
        self.logit_table = torch.nn.Parameter(torch.as_tensor(table, dtype=dtype))

    def forward(self, input_ids: torch.Tensor):
        rows = [[self.index.get(tuple(int(t) for t in seq[1: j + 1]), 0) for j in range(len(seq))]
                for seq in input_ids.tolist()]
        return SimpleNamespace(logits=self.logit_table[torch.as_tensor(rows, device=input_ids.device)])
