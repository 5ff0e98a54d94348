"""Rates measured during training: every N optimizer steps, one JSON line per dataset.

Works from a plain torch loop (:meth:`RateTracker.maybe_measure`) and inside
``transformers.Trainer`` (:meth:`RateTracker.as_trainer_callback`). Under ``torch.distributed``
only rank 0 writes. With DDP every rank holds the whole model (unwrapped from DDP's ``.module``), so the
documents are split between the ranks as ``measure`` splits them
(:func:`~elastic_theory.empirical.sharding.score_dataset_sharded`: balanced by tokens, each document's code
length sent to rank 0 and put back in document order), and rank 0 pools them: the same numbers as one process
up to the float32 forward pass, in about 1/N of the time. With FSDP the parameters are sharded and every
forward pass gathers them from all ranks: every rank then runs the same measurement (the same documents in the
same order, so the collectives match) and rank 0 writes; nothing is gathered into one process's memory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.io import to_jsonable
from .data import Document, check_documents
from .distributed import group_ready, is_main_process, is_sharded, world_size
from .scoring import DocumentScore, encode_documents, max_context, prefix_token_id, rate_estimate, score_token_ids

__all__ = ["RateTracker"]


class RateTracker:
    r"""Measure bits per token and per byte of named datasets every ``every`` optimizer steps.

    ``datasets``: name -> documents (texts or :class:`~elastic_theory.empirical.Document`),
    tokenized once here with ``tokenizer`` (no special tokens, as in scoring). Each measurement
    appends to the JSONL file ``path`` one line per dataset::

        {"step", "dataset", "bits_per_token", "bits_per_byte", "n_tokens", "n_bytes", "seconds", "time"}

    where ``seconds`` is the time the measurement took and ``time`` the Unix time it ended. Rates
    are pooled over documents as in :func:`~elastic_theory.empirical.rate_estimate` (no interval:
    it would cost resampling at every measurement). ``context`` defaults to the model's maximum
    length; ``stride`` and ``batch_size`` as in scoring. The model's train/eval mode is restored.
    """

    def __init__(
        self,
        datasets: Mapping[str, Sequence[Document | str]],
        tokenizer,
        path: str | os.PathLike,
        *,
        every: int,
        context: int | None = None,
        stride: int | None = None,
        batch_size: int | None = None,
    ):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1 (optimizer steps between measurements), got {every!r}")
        if not datasets:
            raise ValueError("give at least one named dataset to track")
        self.every, self.context, self.stride, self.batch_size = every, context, stride, batch_size
        self.path = Path(path)
        self.prefix, self.tokenizer = prefix_token_id(tokenizer), tokenizer
        self._data = {}
        for name, docs in datasets.items():
            docs = check_documents(docs, source=name)
            self._data[name] = (docs, encode_documents(tokenizer, docs))

    def measure(self, model, step: int) -> list[dict]:
        """Measure every dataset now, append the lines to ``path`` and return them (rank 0; ``[]`` elsewhere).

        A sharded (FSDP) model is measured by every rank together; see the module docstring."""
        sharded = is_sharded(model)
        split = not sharded and group_ready() and world_size() > 1  # DDP: every rank scores its share
        if not (sharded or split or is_main_process()):
            return []
        if not sharded:
            model = getattr(model, "module", model)
        context = max_context(model) if self.context is None else self.context
        records = []
        for name, (docs, ids) in self._data.items():
            t0 = time.perf_counter()
            if split:
                rates = self._split_rates(model, docs, context)
                if rates is None:  # not rank 0: its documents' code lengths went to rank 0
                    continue
            else:
                log_probs = score_token_ids(
                    model, ids, self.prefix, context=context, stride=self.stride, batch_size=self.batch_size,
                    names=[d.name for d in docs],
                )
                est = rate_estimate(
                    [DocumentScore(d.name, lp, len(d.text.encode("utf-8"))) for d, lp in zip(docs, log_probs)], rng=None
                )
                rates = {"bits_per_token": est.bits_per_token, "bits_per_byte": est.bits_per_byte,
                         "n_tokens": est.n_tokens, "n_bytes": est.n_bytes}
            records.append({"step": int(step), "dataset": name, **rates,
                            "seconds": time.perf_counter() - t0, "time": time.time()})
        if not is_main_process():
            return []
        with self.path.open("a", encoding="utf-8") as fh:
            # each line its own object, in the project's encoding of non-finite numbers (io.to_jsonable)
            fh.writelines(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records)
        return records

    def _split_rates(self, model, docs: list[Document], context: int) -> dict | None:
        """Pooled rates of ``docs``, each rank scoring its share (rank 0's result; None on the other ranks)."""
        from .sharding import score_dataset_sharded

        scores = score_dataset_sharded(model, self.tokenizer, docs, context=context, stride=self.stride,
                                       batch_size=self.batch_size)
        if scores is None:
            return None
        est = rate_estimate(scores, rng=None)
        return {"bits_per_token": est.bits_per_token, "bits_per_byte": est.bits_per_byte, "n_tokens": est.n_tokens,
                "n_bytes": est.n_bytes}

    def maybe_measure(self, model, step: int) -> list[dict]:
        """:meth:`measure` when ``step`` (optimizer steps done so far) is a multiple of ``every``; else ``[]``."""
        return self.measure(model, step) if step % self.every == 0 else []

    def as_trainer_callback(self):
        """A ``transformers.TrainerCallback`` that measures before training and after every ``every`` steps."""
        from transformers import TrainerCallback

        tracker = self

        class RateTrackerCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                tracker.maybe_measure(model, state.global_step)

            def on_step_end(self, args, state, control, model=None, **kwargs):
                tracker.maybe_measure(model, state.global_step)

        return RateTrackerCallback()
