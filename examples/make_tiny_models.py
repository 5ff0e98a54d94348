"""Write a tiny base model and a fine-tune of it, for trying ``elastic-theory compare`` offline.

    python examples/make_tiny_models.py

Writes ``examples/models/base`` and ``examples/models/tuned`` (``save_pretrained`` folders with
their tokenizer; a few seconds on one CPU core; not committed). The tokenizer is a byte-level BPE
trained on both example text files; the base is a 2-layer GPT-2 (``elastic_theory.empirical.tiny``)
"pre-trained" on ``prose.txt``, and the tuned model is the base fine-tuned on ``prose.jsonl``, so
``compare`` sees the fine-tuning set's rate fall much more than the pre-training set's. Full-batch
AdamW in float32 from fixed seeds on one thread: the same weights on every run on a given
machine and torch version. So a rerun whose inputs (this script, the two text files, the torch
and transformers versions: ``models/fingerprint.txt``) have not changed keeps the folders it
wrote and says so; delete ``examples/models`` to train them again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTEXT = 128  # tokens; every example document is shorter under this tokenizer
PRETRAIN_STEPS = 150
FINETUNE_STEPS = 20
LEARNING_RATE = 3e-3


def texts() -> dict[str, list[str]]:
    """The example datasets' documents: ``prose.jsonl`` (the fine-tuning set) and ``prose.txt`` (pre-training)."""
    tune = [json.loads(line)["text"] for line in (HERE / "prose.jsonl").read_text(encoding="utf-8").splitlines()]
    pre = (HERE / "prose.txt").read_text(encoding="utf-8").splitlines()
    return {"tune": tune, "pre": pre}


def train(model, tokenizer, documents: list[str], steps: int) -> None:
    """Full-batch AdamW on next-token loss over ``documents`` (each prefixed with BOS, as compare scores them)."""
    import torch

    batch = tokenizer([tokenizer.bos_token + d for d in documents], padding=True, truncation=True,
                      max_length=CONTEXT, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval()


def fingerprint() -> str:
    """SHA-256 of what determines the models: this script, the example texts, the torch and transformers versions."""
    digest = hashlib.sha256()
    for path in (Path(__file__).resolve(), HERE / "prose.jsonl", HERE / "prose.txt"):
        digest.update(path.read_bytes())
    digest.update(f"torch {version('torch')} transformers {version('transformers')}".encode())
    return digest.hexdigest()


def main(out: Path = HERE / "models") -> None:
    stamp, wanted = out / "fingerprint.txt", fingerprint()
    if stamp.is_file() and stamp.read_text().strip() == wanted and all((out / n / "config.json").is_file() for n in ("base", "tuned")):
        print(f"{out / 'base'} and {out / 'tuned'} are up to date (delete {out} to train them again)")
        return
    import torch

    from elastic_theory.empirical import byte_bpe_tokenizer, tiny_gpt2
    from elastic_theory.empirical.finetune import save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = texts()
    tokenizer = byte_bpe_tokenizer(data["pre"] + data["tune"], vocab_size=400)
    model = tiny_gpt2(tokenizer, seed=0, n_positions=CONTEXT)
    train(model, tokenizer, data["pre"], PRETRAIN_STEPS)
    save_checkpoint(model, tokenizer, out / "base", overwrite=True)  # atomic: a rerun replaces a whole folder
    train(model, tokenizer, data["tune"], FINETUNE_STEPS)
    save_checkpoint(model, tokenizer, out / "tuned", overwrite=True)
    stamp.write_text(wanted + "\n")  # last: an interrupted run leaves no stamp, so the next run trains again
    print(f"wrote {out / 'base'} and {out / 'tuned'}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # the package from this checkout when it is not installed
    main()
