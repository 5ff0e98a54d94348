"""What fine-tuning through trl 1.16 (pinned in ``scripts/constraints.txt``) needs around its trainers.

:func:`~elastic_theory.empirical.finetune.run_finetune` builds trl's ``SFTTrainer`` or
``DPOTrainer`` and trains under these: :func:`copyable_trl_forward`, the one owner of trl's patch of
the model's ``forward``; :func:`plain_loss_sft_trainer`, SFT with the model's own loss on the CPU;
:func:`quiet_and_seeded`, the libraries' notices hidden and the global RNGs left as they were;
:func:`interruptible_backward`, Ctrl-C honoured inside a backward pass.
"""

from __future__ import annotations

import contextlib
import functools
import random
import types
import warnings
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["copyable_trl_forward", "interruptible_backward", "is_peft", "plain_loss_sft_trainer", "quiet_and_seeded"]


def is_peft(model) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (it has an adapter config and a base model)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _patched_modules(model) -> list:
    """The modules on which trl's fused LM head replaced ``forward`` (an instance attribute)."""
    found = [model, model.get_base_model()] if is_peft(model) else [model]
    return [m for m in found if "forward" in vars(m)]


@contextlib.contextmanager
def copyable_trl_forward(trainer) -> Iterator[None]:
    """The one owner of trl's patch of the model's ``forward``: made safe to deepcopy inside, always removed after.

    What is patched: building trl 1.16's ``SFTTrainer`` or ``DPOTrainer`` (the version pinned in
    ``scripts/constraints.txt``) replaces ``forward`` on the trainer's model (with LoRA, on its base
    model) by an instance attribute, a fused-LM-head forward (``trl.trainer.utils.add_fused_lm_head``). Why it is patched again: trl's
    forward keeps the original *bound* ``forward`` in a closure for ordinary calls, so a deep copy of
    the model (taken in ``on_step``, say) would run the original model's weights in every ordinary
    forward pass. Inside this context each such module's ``forward`` is one that calls the class's
    ``forward`` on whichever object it is bound to, and trl's fused forward when asked for it
    (``fused_lm_head=True``). Always undone: on leaving, normally or by an exception (try/finally),
    the instance attribute is deleted from every module that carries one, trl's and this one alike,
    so the model runs its class's own ``forward`` again. ``trainer.model`` is read again on leaving:
    under FSDP the trainer replaces it while training.
    """
    try:
        for module in _patched_modules(trainer.model):
            fused = vars(module)["forward"].__func__

            @functools.wraps(type(module).forward)
            def forward(self, *args, fused_lm_head=False, _fused=fused, **kwargs):
                if fused_lm_head:
                    return _fused(self, *args, fused_lm_head=True, **kwargs)
                return type(self).forward(self, *args, **kwargs)

            module.forward = types.MethodType(forward, module)
        yield
    finally:
        for module in _patched_modules(trainer.model):
            del module.forward  # the class's own forward again


@contextlib.contextmanager
def quiet_and_seeded(progress: bool, seed: int) -> Iterator[None]:
    """Hide what the libraries print that a caller cannot act on, and leave the global RNGs as they were.

    The warnings hidden are transformers 5's deprecation notices about gradient checkpointing, raised
    inside peft and trl when they ask whether it is on (it is off here); ``datasets``' progress bars
    are hidden unless ``progress``. ``Trainer`` seeds the global RNGs (``transformers.set_seed``): the
    states of Python's, NumPy's and torch's generators are restored afterwards; torch's is seeded with
    ``seed`` inside.
    """
    import datasets
    from datasets.utils import are_progress_bars_disabled

    bars_were_off = are_progress_bars_disabled()
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
        warnings.filterwarnings("ignore", message=r".*`?(is_)?gradient_checkpointing\w*`? is deprecated",
                                category=FutureWarning)
        if not progress:
            datasets.disable_progress_bars()
        torch.manual_seed(seed)  # LoRA's initialization draws before the trainer seeds
        try:
            yield
        finally:
            if not progress and not bars_were_off:
                datasets.enable_progress_bars()
            random.setstate(py_state)
            np.random.set_state(np_state)


def plain_loss_sft_trainer():
    """``SFTTrainer`` with the model's own loss (full logits, cross-entropy over the unmasked labels, divided
    by their number in the batch), for the CPU.

    trl's default runs the LM head through a fused, chunked kernel that never builds the logits and
    also computes the entropy and token accuracy it logs; its backward recomputes the logits, which on
    the CPU (no Triton kernel) costs one more LM-head product per step: with SmolLM2's 49k vocabulary
    +7% for full fine-tuning and about +25% with LoRA (benchmarks/bench_finetune.py). The loss is the
    same quantity.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class PlainLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return PlainLossSFTTrainer


def _let_signals_in(grad):
    """A gradient hook that does nothing: running Python code lets the interpreter raise a pending KeyboardInterrupt."""
    return None


@contextlib.contextmanager
def interruptible_backward(model) -> Iterator[None]:
    """Ctrl-C stops a backward pass at the next parameter's gradient instead of after the whole pass.

    The autograd engine runs a backward pass as one C++ call that never looks at Python's pending signals, so
    Ctrl-C waited for the whole step: 13-26 s for a full SmolLM2-135M step on a loaded 2-core CPU. A no-op hook on
    every trainable parameter runs Python code in the calling thread (the CPU engine's) as each gradient is made, and
    the interpreter raises the KeyboardInterrupt there; the engine passes it out of ``backward()``. The hooks are
    removed on exit and change no gradient.
    """
    handles = [p.register_hook(_let_signals_in) for p in model.parameters() if p.requires_grad]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
