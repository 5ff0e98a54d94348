r"""Fine-tuning a pretrained causal LM on preference pairs: SFT or DPO (trl), full or LoRA (peft).

One entry point, :func:`finetune`, serves the paper's protocols (align on the aligned responses,
then perturb on the unaligned ones) and runs unchanged in one process or under ``torchrun`` /
``accelerate launch`` (DDP, or FSDP with ``FinetuneConfig.fsdp``): the trainers are trl's
``SFTTrainer`` and ``DPOTrainer``, which are ``transformers.Trainer`` subclasses and so read the
launcher's environment themselves.

Data are :class:`~elastic_theory.data.corpora.PreferencePair` records. ``target`` names the side the
model is pushed towards:

* ``sft``: next-token loss on ``prompt_text(prompt) + pair.<target>`` with the prompt's tokens
  masked (trl's prompt-completion format; the tokenizer's EOS is appended);
* ``dpo``: :math:`-\log\sigma\big(\beta[\ln\frac{\pi(y_w|x)}{\pi_0(y_w|x)} - \ln\frac{\pi(y_l|x)}{\pi_0(y_l|x)}]\big)`
  with :math:`y_w` = ``pair.<target>``, :math:`y_l` the other side and :math:`\pi_0` the model as
  it was when this call started (a frozen copy; with LoRA the adapter switched off).

Plain texts (:class:`~elastic_theory.data.corpora.LabelledText`) and chat conversations
(:class:`~elastic_theory.data.training_data.ChatExample`) train with ``sft`` only: the causal LM loss on
every token of a text, and on the assistant turns of a conversation rendered with the chat template
(:mod:`~elastic_theory.empirical.finetune_data` builds the token ids and labels; ``target`` does not apply).

Examples are taken in the given order (no shuffling: the caller draws the seeded permutation,
so the first ``m`` examples of a longer run are exactly a shorter run's data), ``batch_size`` per
optimizer step over all processes, AdamW at the constant ``lr`` with the gradient's norm clipped to 1
(``transformers.Trainer``'s default). Training runs in the model's own dtype (no mixed precision, no
activation checkpointing: trl's defaults would change both) and prints nothing unless
``progress``; the loss of every optimizer step is kept (:class:`FinetuneResult`).

Bad input raises a one-line ``ValueError`` before any expensive work: a LoRA target module the
model lacks, more examples per batch than there are, a ``max_length`` beyond the model's context
for examples that need it, an example whose prompt fills ``max_length`` (trl would drop it);
running out of memory during training becomes a ``ValueError`` that
suggests a smaller ``batch_size``, a shorter ``max_length`` or LoRA.

:func:`save_checkpoint` writes the result where ``measure`` and ``compare`` read it (a LoRA
adapter folder, or a full ``save_pretrained`` folder with the tokenizer), atomically.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.corpora import PreferencePair
from ..data.training_data import data_format
from ..infra.trainconfig import FinetuneConfig
from .distributed import check_fsdp_device, world_size
from .finetune_data import lm_examples
from .trl_compat import copyable_trl_forward, interruptible_backward, is_peft, plain_loss_sft_trainer, quiet_and_seeded

__all__ = [
    "SIDES", "FinetuneResult", "check_algorithm_for", "check_batch_size", "finetune", "lora_config", "prompt_text",
    "run_finetune", "save_checkpoint",
]

SIDES = ("aligned", "unaligned")


def prompt_text(tokenizer, prompt: str) -> str:
    """The text a prompt becomes before its response, in training and in every measurement.

    The tokenizer's chat template as a one-turn user message with the generation prompt when it has
    one (SmolLM2-Instruct does). A model without one, a pre-trained base model such as ``gemma3-270m`` (its
    tokenizer has no chat template) or a tiny model built here, gets the plain format ``prompt + "\\n"``: the
    response follows on the next line, with no role markers and nothing but the tokenizer's own BOS before the
    prompt. The newline ends the prompt on a token boundary (Gemma's and the byte-level tokenizers never merge it
    with a following letter), so the prompt's tokens are a prefix of the prompt-and-response's and the response's
    tokens are exactly those after them, in training (trl's completion mask) and in every measurement.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt + "\n"


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`run_finetune` returns: the trained ``model`` (eval mode; a ``peft.PeftModel`` with LoRA)
    and ``losses[i]``, the training loss of optimizer step ``i + 1`` (mean over all processes): for ``sft``
    the mean negative log-likelihood in nats per target-response token of that batch, for ``dpo`` the
    batch mean of the DPO loss (nats); ``tokens_seen``, the non-padding input tokens the trainer fed the
    model, summed over all processes (a run on several processes equals the one-process run's count
    only when each process trained on its own share of every batch)."""

    model: object
    losses: tuple[float, ...]
    tokens_seen: int


def _context_length(model) -> int | None:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def lora_config(model, config: FinetuneConfig):
    """peft's ``LoraConfig`` for ``config``; ``ValueError`` naming a target module the model does not have.

    A target matches a module whose dotted name equals it or ends with ``"." + target`` (peft's rule for
    a list of names). GPT-2's ``Conv1D`` layers store the weight transposed: ``fan_in_fan_out`` is set
    when every matched module is one (peft would otherwise switch it with a warning).
    """
    from peft import LoraConfig
    from transformers.pytorch_utils import Conv1D

    modules = dict(model.named_modules())
    matched = []
    for target in config.lora_targets:
        hits = [m for name, m in modules.items() if name == target or name.endswith("." + target)]
        if not hits:
            linear = sorted({name.rsplit(".", 1)[-1] for name, m in modules.items()
                             if isinstance(m, (torch.nn.Linear, Conv1D))})
            shown = ", ".join(linear[:8]) + (", ..." if len(linear) > 8 else "")
            raise ValueError(f"LoRA target module {target!r} is not in the model ({type(model).__name__}); "
                             f"its linear modules are: {shown}")
        matched += hits
    conv1d = all(isinstance(m, Conv1D) for m in matched)
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=list(config.lora_targets),
                      lora_dropout=0.0, task_type="CAUSAL_LM", fan_in_fan_out=conv1d)


def check_algorithm_for(data: str, algorithm: str) -> None:
    """``ValueError`` unless ``algorithm`` can train on data of shape ``data`` (``"pairs"``, ``"text"``, ``"messages"``):
    DPO needs preference pairs."""
    if data != "pairs" and algorithm != "sft":
        raise ValueError(f"{algorithm} needs preference pairs (prompt, aligned, unaligned); {data} data trains with sft")


def check_batch_size(n_examples: int, batch_size: int, world: int) -> None:
    """``ValueError`` unless ``n_examples`` fill at least one step of ``batch_size`` and the step divides among the
    ``world`` processes; needs no model, so a command checks it before loading one."""
    if not n_examples:
        raise ValueError("no examples to fine-tune on")
    if batch_size > n_examples:
        raise ValueError(f"batch_size {batch_size} is larger than the {n_examples} examples: set batch_size <= {n_examples}")
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not a multiple of the {world} processes")


def _check_inputs(model, tokenizer, pairs, config: FinetuneConfig, target: str, world: int) -> None:
    """Every check that needs no training, so that bad input fails before the expensive part."""
    if target not in SIDES:
        raise ValueError(f"target must be one of {SIDES}, got {target!r}")
    check_batch_size(len(pairs), config.batch_size, world)
    if data_format(pairs) != "pairs":
        check_algorithm_for(data_format(pairs), config.algorithm)
        ids, _ = lm_examples(tokenizer, pairs, 10**9)  # uncut, for the context check; raises for untrainable ones
        lm_examples(tokenizer, pairs, config.max_length)
        context = _context_length(model)
        longest = max(len(x) for x in ids)
        if context is not None and config.max_length > context and longest > context:
            raise ValueError(f"max_length {config.max_length} exceeds the model's context of {context} tokens and "
                             f"the longest example has {longest}: set max_length <= {context}")
        return
    if is_peft(model) and not config.lora:
        raise ValueError("the model carries a LoRA adapter: fine-tune it with lora=True, or merge it first "
                         "(model.merge_and_unload())")
    if is_peft(model) and config.algorithm == "dpo":
        raise ValueError("DPO on a model that already carries a LoRA adapter would take the base model without the "
                         "adapter as its reference: merge the adapter first (model.merge_and_unload())")
    context = _context_length(model)
    if context is not None and config.max_length > context:
        longest = max(len(tokenizer(prompt_text(tokenizer, p.prompt) + r).input_ids)
                      for p in pairs for r in (p.aligned, p.unaligned)) + 1  # + EOS
        if longest > context:
            raise ValueError(f"max_length {config.max_length} exceeds the model's context of {context} tokens and "
                             f"the longest example has {longest}: set max_length <= {context}")


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


def _step_callback(on_step: Callable[[int, object], None] | None, losses: list[float]):
    """A ``TrainerCallback`` that calls ``on_step(0, model)`` before the first step and ``on_step(step, model)``
    after every optimizer step, and appends every logged loss to ``losses``."""
    from transformers import TrainerCallback

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if on_step is not None:
                on_step(0, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if on_step is not None:
                on_step(state.global_step, model)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return StepCallback()


def _loss_bar():
    """The progress bar with the loss as its postfix, instead of a printed dictionary per step."""
    from transformers.trainer_callback import ProgressCallback

    class LossBar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    return LossBar()


def _trainer_arguments(model, config: FinetuneConfig, out_dir, seed: int, world: int) -> dict:
    """The arguments that ``SFTConfig`` and ``DPOConfig`` share (module docstring: the optimizer, the order,
    the dtype); with ``config.fsdp``, FSDP2 with each transformer block its own shard unit."""
    common = dict(
        output_dir=str(out_dir), per_device_train_batch_size=config.batch_size // world,
        gradient_accumulation_steps=1, num_train_epochs=config.epochs, learning_rate=config.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=config.weight_decay, save_strategy="no",
        report_to=[], logging_steps=1, seed=seed, data_seed=seed, disable_tqdm=True,
        train_sampling_strategy="sequential", max_length=config.max_length,
        use_cpu=next(model.parameters()).device.type == "cpu",
        bf16=False, fp16=False, activation_checkpointing=False,
        include_num_input_tokens_seen="non_padding",  # summed over all processes: what the run trained on
    )
    if config.fsdp:
        check_fsdp_device(config.fsdp, "cpu" if common["use_cpu"] else "accelerator")
        common.update(fsdp=True, fsdp_config={"version": 2, "reshard_after_forward": True})
    return common


def _build_trainer(model, tokenizer, pairs: Sequence[PreferencePair], prompts: list[str], config: FinetuneConfig,
                   target: str, common: dict, peft_config, callbacks: list):
    """trl's trainer for ``config.algorithm`` on the prompt-completion (SFT) or preference (DPO) data; DPO's
    reference is a frozen copy of the model (with LoRA, the model with its adapter switched off)."""
    import datasets

    if config.algorithm == "sft":
        from trl import SFTConfig, SFTTrainer

        if data_format(pairs) == "pairs":
            data = datasets.Dataset.from_dict({"prompt": prompts, "completion": [getattr(p, target) for p in pairs]})
        else:  # token ids with their labels (finetune_data): trl takes them as they are
            ids, labels = lm_examples(tokenizer, pairs, config.max_length)
            data = datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})
        trainer_class = plain_loss_sft_trainer() if common["use_cpu"] else SFTTrainer
        return trainer_class(model=model, args=SFTConfig(**common), train_dataset=data,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    from trl import DPOConfig, DPOTrainer

    other = SIDES[1 - SIDES.index(target)]
    data = datasets.Dataset.from_dict({"prompt": prompts, "chosen": [getattr(p, target) for p in pairs],
                                       "rejected": [getattr(p, other) for p in pairs]})
    ref = None if config.lora else copy.deepcopy(model).eval().requires_grad_(False)
    return DPOTrainer(model=model, ref_model=ref, args=DPOConfig(beta=config.beta, **common),
                      train_dataset=data, processing_class=tokenizer, peft_config=peft_config,
                      callbacks=callbacks)


def _train(trainer, n_examples: int, config: FinetuneConfig) -> None:
    """``trainer.train()`` under :func:`copyable_trl_forward` and :func:`interruptible_backward`, once no example was
    dropped; running out of memory becomes a ``ValueError`` that says what to change."""
    with copyable_trl_forward(trainer), (contextlib.nullcontext() if config.fsdp else interruptible_backward(trainer.model)):
        try:
            dropped = n_examples - len(trainer.train_dataset)
            if dropped:  # trl drops examples whose response was cut off entirely
                raise ValueError(f"{dropped} of {n_examples} examples have no response token within max_length "
                                 f"{config.max_length} (the prompt fills it): raise max_length or shorten the prompts")
            trainer.train()
        except RuntimeError as exc:
            if not _is_out_of_memory(exc):
                raise
            raise ValueError(
                f"out of memory while fine-tuning ({config.algorithm}, batch_size {config.batch_size}, max_length "
                f"{config.max_length}{', LoRA' if config.lora else ''}): use a smaller batch_size"
                + (" or a shorter max_length" if config.lora else ", a shorter max_length or LoRA (--lora)")
            ) from None


def run_finetune(
    model,
    tokenizer,
    pairs: Sequence[PreferencePair],
    config: FinetuneConfig,
    *,
    target: str = "aligned",
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    on_step: Callable[[int, object], None] | None = None,
    progress: bool = False,
    tracker=None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``pairs`` towards ``target`` (see the module docstring); return the model and the losses.

    ``on_step(step, model)`` is called before the first step (step 0) and after every optimizer
    step; ``tracker`` (a :class:`~elastic_theory.empirical.RateTracker`) measures at step 0 and
    every ``tracker.every`` steps. The model is trained in place (with LoRA, the adapter's layers
    are inserted into it); with ``config.lora`` the returned model is a ``peft.PeftModel`` (a model
    that is one already goes on training its adapter). ``out_dir`` receives the trainer's scratch
    files only (none by default: no checkpoints are written; a temporary folder when None).
    ``progress`` shows a progress bar with the loss.
    """
    from transformers.trainer_callback import PrinterCallback

    world = world_size()  # before the trainer creates the process group: the launcher's WORLD_SIZE
    _check_inputs(model, tokenizer, pairs, config, target, world)
    peft_config = lora_config(model, config) if config.lora and not is_peft(model) else None
    prompts = [prompt_text(tokenizer, p.prompt) for p in pairs] if data_format(pairs) == "pairs" else []
    losses: list[float] = []
    callbacks = [_step_callback(on_step, losses)] + ([] if tracker is None else [tracker.as_trainer_callback()])
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_and_seeded(progress, seed))
        if out_dir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="finetune-"))
        common = _trainer_arguments(model, config, out_dir, seed, world)
        trainer = _build_trainer(model, tokenizer, pairs, prompts, config, target, common, peft_config, callbacks)
        trainer.remove_callback(PrinterCallback)
        if progress:
            trainer.add_callback(_loss_bar())
        _train(trainer, len(pairs), config)
    return FinetuneResult(trainer.model.eval(), tuple(losses), int(trainer.state.num_input_tokens_seen))


def finetune(*args, **kwargs):
    """:func:`run_finetune` with the same arguments, returning the trained model only."""
    return run_finetune(*args, **kwargs).model


def save_checkpoint(model, tokenizer, path: str | os.PathLike, *, overwrite: bool = False, state_dict=None) -> Path:
    """Save a fine-tuned model where ``measure``, ``compare`` and ``load_model_and_tokenizer`` read it; return ``path``.

    A ``peft.PeftModel``: its adapter folder (``adapter_config.json`` naming the base model's
    location, the adapter weights, and the tokenizer), loaded later as base + merged adapter; the
    base model must have been loaded from a location (``load_model_and_tokenizer``), not built from a
    config. Any other model: ``save_pretrained`` (safetensors) with the tokenizer. Written into a
    temporary folder next to ``path`` and renamed into place, so ``path`` is either absent or complete;
    an existing ``path`` is an error unless ``overwrite``. ``state_dict``: the weights to write instead
    of the model's own (an FSDP-sharded model's, gathered with
    :func:`~elastic_theory.empirical.distributed.full_state_dict`).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists: choose another path or pass overwrite=True")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder")
    if is_peft(model):
        base = getattr(model.get_base_model().config, "name_or_path", "")
        if not base:
            raise ValueError("the LoRA adapter's base model has no location to name (it was built from a config): "
                             "save the base with save_pretrained and load it from there before fine-tuning")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path
