"""Benchmark: a fine-tuning step through :func:`~elastic_theory.empirical.finetune.run_finetune` against a bare loop.

In one process, on the same model and the same batch of ``--batch`` prompt-response examples of
``--tokens`` tokens each (no padding), times an optimizer step (forward, backward, AdamW step) of

* bare: ``model(input_ids, labels=labels).loss.backward()``, gradient norm clipped to 1 (the
  Trainer's default), ``opt.step(); opt.zero_grad()`` with
  transformers (and ``peft.get_peft_model`` for LoRA), the prompt's labels masked as SFT does;
* finetune: SFT through trl's ``SFTTrainer`` as :func:`run_finetune` runs it (the batch repeated
  ``--steps`` times, in order), timed between its ``on_step`` calls.

The first step of each is left out (allocation, warm-up); medians over the steps and over
``--reps`` interleaved repetitions. Prints the wall-clock and the CPU time (of this process, one
thread: what other jobs on a shared machine do not inflate) per step of each, the ratios finetune /
bare, and finetune's one-off setup time (data preparation and trainer construction,
before step 0). Full fine-tuning and LoRA (r 8 on q_proj and v_proj).

Run: ``python benchmarks/bench_finetune.py`` (a tiny Llama, about a minute on 2 idle cores);
``python benchmarks/bench_finetune.py --smollm2 --steps 4 --reps 1`` for SmolLM2-135M at 4 x 128
tokens (6 to 11 CPU seconds a step on this 2-core CPU: docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import _project_python  # noqa: F401,E402  (first: one clear line under an interpreter without the project)
import torch  # noqa: E402

from elastic_theory.data.corpora import PreferencePair  # noqa: E402
from elastic_theory.empirical.finetune import prompt_text, run_finetune  # noqa: E402
from elastic_theory.infra.trainconfig import FinetuneConfig  # noqa: E402

WORDS = "the model learns to answer every question with a short and careful reply".split()


def examples(tok, batch: int, tokens: int) -> tuple[list[PreferencePair], torch.Tensor, torch.Tensor]:
    """``batch`` pairs whose prompt + response + EOS is exactly ``tokens`` tokens, and the bare loop's
    (input ids, labels) for them: the same ids, the prompt's labels set to -100."""
    pairs, rows, labels = [], [], []
    for i in range(batch):
        prompt = f"Question {i}: " + " ".join(WORDS[:6])
        p_ids = tok(prompt_text(tok, prompt)).input_ids
        words, response = 0, ""
        while len(p_ids) + len(tok(response).input_ids) + 1 < tokens:
            words += 1
            response = " ".join(WORDS[j % len(WORDS)] for j in range(words))
        r_ids = tok(response).input_ids[: tokens - 1 - len(p_ids)]
        response = tok.decode(r_ids)
        if tok(response).input_ids != r_ids:
            raise RuntimeError("the response does not re-tokenize to the same ids; choose other words")
        ids = p_ids + r_ids + [tok.eos_token_id]
        pairs.append(PreferencePair(f"b{i}", prompt, response, response, ""))
        rows.append(ids)
        labels.append([-100] * len(p_ids) + ids[len(p_ids):])
    return pairs, torch.tensor(rows), torch.tensor(labels)


def lora_config(cfg: FinetuneConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets), lora_dropout=0.0,
                      task_type="CAUSAL_LM")


def clocks() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a shared machine the CPU time is the one that other jobs
    do not inflate (with one thread, as here, it is the time the step would take alone)."""
    return time.perf_counter(), time.process_time()


def step_times(times: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per-step (wall, CPU) seconds from consecutive clock readings, leaving out the first step."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(times[1:], times[2:])]


def bare_steps(model, ids, labels, cfg: FinetuneConfig, steps: int) -> list[float]:
    """Seconds of each optimizer step after the first, of a plain transformers/peft loop."""
    if cfg.lora:
        from peft import get_peft_model

        from elastic_theory.empirical.loading import quiet_peft_deprecations

        with quiet_peft_deprecations():
            model = get_peft_model(model, lora_config(cfg))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    times = [clocks()]
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # as the Trainer does by default (max_grad_norm 1)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(clocks())
    return step_times(times)


def finetune_steps(model, tok, pairs, cfg: FinetuneConfig, steps: int) -> tuple[list[float], float]:
    """(wall, CPU) seconds of each optimizer step after the first through run_finetune, and the wall-clock setup
    before step 0."""
    times = []
    t0 = time.perf_counter()
    run_finetune(model, tok, pairs * steps, cfg, on_step=lambda step, m: times.append(clocks()))
    return step_times(times), times[0][0] - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct instead of a tiny Llama")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=None, help="tokens per example (default 128 SmolLM2, 64 tiny)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["full", "lora"], default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.smollm2:
        from elastic_theory.empirical.loading import load_model_and_tokenizer

        base, tok = load_model_and_tokenizer("smollm2-135m", device="cpu")
        tokens = args.tokens or 128
        name = "SmolLM2-135M-Instruct, float32"

        def make():
            import copy

            return copy.deepcopy(base)
    else:
        from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_llama

        tok = byte_bpe_tokenizer([" ".join(WORDS)] * 4, vocab_size=400)
        tokens = args.tokens or 64
        name = "Llama 4 layers x 128, float32"

        def make():
            return tiny_llama(tok, seed=0, n_layer=4, hidden=128, n_head=4, n_positions=max(64, tokens))
    pairs, ids, labels = examples(tok, args.batch, tokens)
    out = {"model": name, "batch": args.batch, "tokens": tokens, "steps": args.steps, "reps": args.reps,
           "threads": args.threads, "modes": {}}
    for mode in [args.only] if args.only else ["full", "lora"]:
        cfg = FinetuneConfig(lora=mode == "lora", lr=1e-5, batch_size=args.batch, max_length=tokens)
        bare, mach, setup = [], [], []
        for _ in range(args.reps):
            bare += bare_steps(make(), ids, labels, cfg, args.steps)
            steps, s = finetune_steps(make(), tok, pairs, cfg, args.steps)
            mach += steps
            setup.append(s)
        row = {"finetune_setup_s": statistics.median(setup)}
        for i, clock in enumerate(("wall", "cpu")):
            b, m = statistics.median(t[i] for t in bare), statistics.median(t[i] for t in mach)
            row.update({f"bare_{clock}_s_per_step": b, f"finetune_{clock}_s_per_step": m, f"{clock}_ratio": m / b})
        out["modes"][mode] = row
        parts = [f"{clock}: bare {row[f'bare_{clock}_s_per_step']:.4f} s/step, finetune "
                 f"{row[f'finetune_{clock}_s_per_step']:.4f} s/step, ratio {row[f'{clock}_ratio']:.3f}"
                 for clock in ("wall", "cpu")]
        print(f"{mode}: {'; '.join(parts)}; setup {row['finetune_setup_s']:.2f} s", flush=True)
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
