r"""Fine-tuning a pretrained causal LM on preference pairs: SFT or DPO (trl), full or LoRA (peft).

One entry point, :func:`finetune`, serves the paper's protocols (align on the aligned responses,
then perturb on the unaligned ones) and runs unchanged in one process or under ``torchrun`` /
``accelerate launch`` (DDP, or FSDP with ``FinetuneConfig.fsdp``): the trainers are trl's
``SFTTrainer`` and ``DPOTrainer``, which are ``transformers.Trainer`` subclasses and so read the
launcher's environment themselves.

Data are :class:`~elastic_theory.corpora.PreferencePair` records. ``target`` names the side the
model is pushed towards:

* ``sft``: next-token loss on ``prompt_text(prompt) + pair.<target>`` with the prompt's tokens
  masked (trl's prompt-completion format; the tokenizer's EOS is appended);
* ``dpo``: :math:`-\log\sigma\big(\beta[\ln\frac{\pi(y_w|x)}{\pi_0(y_w|x)} - \ln\frac{\pi(y_l|x)}{\pi_0(y_l|x)}]\big)`
  with :math:`y_w` = ``pair.<target>``, :math:`y_l` the other side and :math:`\pi_0` the model as
  it was when this call started (a frozen copy; with LoRA the adapter switched off).

Examples are taken in the given order (no shuffling: the caller draws the seeded permutation,
so the first ``m`` examples of a longer run are exactly a shorter run's data), ``batch_size`` per
optimizer step over all processes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

from ..corpora import PreferencePair
from ..trainconfig import FinetuneConfig

__all__ = ["SIDES", "finetune", "prompt_text"]

SIDES = ("aligned", "unaligned")


def prompt_text(tokenizer, prompt: str) -> str:
    """The text a prompt becomes before its response, in training and in every measurement.

    The tokenizer's chat template as a one-turn user message with the generation prompt when it has
    one (SmolLM2-Instruct does), else ``prompt + "\\n"``.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt + "\n"


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def finetune(
    model,
    tokenizer,
    pairs: Sequence[PreferencePair],
    config: FinetuneConfig,
    *,
    target: str = "aligned",
    out_dir: str | Path,
    seed: int = 0,
    on_step: Callable[[int, object], None] | None = None,
    progress: bool = False,
):
    """Fine-tune ``model`` on ``pairs`` towards ``target`` (see the module docstring); return the trained model.

    ``on_step(step, model)`` is called before the first step (step 0) and after every optimizer
    step. With ``config.lora`` the returned model is a ``peft.PeftModel``. ``out_dir`` receives the
    trainer's scratch files only (no checkpoints are written here).
    """
    import datasets
    from transformers import TrainerCallback

    if target not in SIDES:
        raise ValueError(f"target must be one of {SIDES}, got {target!r}")
    if not pairs:
        raise ValueError("no examples to fine-tune on")
    if not progress:
        datasets.disable_progress_bars()
    other = SIDES[1 - SIDES.index(target)]
    prompts = [prompt_text(tokenizer, p.prompt) for p in pairs]
    world = _world_size()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not a multiple of the {world} processes")
    common = dict(
        output_dir=str(out_dir), per_device_train_batch_size=config.batch_size // world, gradient_accumulation_steps=1,
        num_train_epochs=config.epochs, learning_rate=config.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=config.weight_decay, save_strategy="no", report_to=[], logging_steps=1, seed=seed, data_seed=seed,
        disable_tqdm=not progress, train_sampling_strategy="sequential", max_length=config.max_length,
        use_cpu=next(model.parameters()).device.type == "cpu",
    )
    if config.fsdp:
        common.update(fsdp="full_shard auto_wrap")
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=list(config.lora_targets),
                                 lora_dropout=0.0, task_type="CAUSAL_LM")

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if on_step is not None:
                on_step(0, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if on_step is not None:
                on_step(state.global_step, model)

    if config.algorithm == "sft":
        from trl import SFTConfig, SFTTrainer

        data = datasets.Dataset.from_dict({"prompt": prompts, "completion": [getattr(p, target) for p in pairs]})
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[StepCallback()])
    else:
        from trl import DPOConfig, DPOTrainer

        data = datasets.Dataset.from_dict({"prompt": prompts, "chosen": [getattr(p, target) for p in pairs],
                                           "rejected": [getattr(p, other) for p in pairs]})
        ref = None if config.lora else copy.deepcopy(model).eval().requires_grad_(False)
        trainer = DPOTrainer(model=model, ref_model=ref, args=DPOConfig(beta=config.beta, **common), train_dataset=data,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=[StepCallback()])
    trainer.train()
    return trainer.model.eval()
