"""Fine-tune a save_pretrained folder with plain transformers and torch, saving trainer-style checkpoints.

    python examples/finetune_plain.py MODEL_DIR OUT_DIR [--steps 4] [--save-every 2] [--lr 1e-4]

This is the kind of script a user writes themselves; it uses nothing from elastic-theory. It fine-tunes
MODEL_DIR (e.g. the folder of ``elastic-theory models export smollm2-135m smollm2-base``) with AdamW on the
documents of ``examples/prose.jsonl`` (next-token loss on every token, each document prefixed with BOS when the
tokenizer has one, batches of 4, at most 64 tokens: a few seconds a step for SmolLM2-135M on one CPU core) and
writes ``OUT_DIR/checkpoint-<step>`` every ``--save-every`` steps with the tokenizer, as a transformers Trainer
does. ``elastic-theory compare --base MODEL_DIR --series NAME=OUT_DIR`` then follows the run (docs/compare.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--save-every", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prefix = tokenizer.bos_token or ""
    texts = [prefix + json.loads(line)["text"] for line in (HERE / "prose.jsonl").read_text(encoding="utf-8").splitlines()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    model.train()
    for step in range(1, args.steps + 1):
        start = ((step - 1) * args.batch_size) % len(texts)
        batch = tokenizer(texts[start:start + args.batch_size], padding=True, truncation=True, max_length=64,
                          return_tensors="pt", add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        optimizer.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f}")
        if step % args.save_every == 0 or step == args.steps:
            folder = args.out / f"checkpoint-{step}"
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            print(f"saved {folder}")


if __name__ == "__main__":
    main()
