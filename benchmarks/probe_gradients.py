"""The probe's per-dataset gradients against a bare torch loop computing the same three gradients.

    OMP_NUM_THREADS=1 python benchmarks/probe_gradients.py [--model smollm2-135m] [--docs 32] [--max-tokens 256]

Three datasets (Wikipedia paragraphs, JailbreakBench refusals and "Sure, here is" targets, all shipped offline) of
``--docs`` documents each, every document cut to at most ``--max-tokens`` tokens. The probe's side is
``gradient(params, rate_pieces(model, data, batch_size=1))`` per dataset (what ``elastic-theory probe`` runs on the
CPU: one window per forward pass); the bare loop scores each document with BOS prepended, sums -ln p / (T ln 2)
and calls ``backward()`` into ``.grad``, then copies the gradients out. Both run in float32 on one thread, once
each for warm-up and then alternately, best of ``--repeats``; the gradients must agree (the script prints the
largest relative difference). Prints the ratio probe / bare; the issue's target is at most 1.2.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np
import torch


def datasets(tokenizer, n: int, max_tokens: int) -> dict[str, list[str]]:
    """``n`` documents per dataset, each cut to ``max_tokens`` tokens (decoded back to text at a token boundary)."""
    from elastic_theory.data.corpora import jailbreakbench_pairs, wikipedia_sample

    pairs = jailbreakbench_pairs()
    raw = {"wiki": [t.text for t in wikipedia_sample("paragraph")[:n]],
           "refuse": [f"{p.prompt} {p.aligned}" for p in pairs[:n]],
           "comply": [f"{p.prompt} {p.unaligned}" for p in pairs[:n]]}
    out = {}
    for name, texts in raw.items():
        cut = []
        for t in texts:
            ids = tokenizer(t, add_special_tokens=False)["input_ids"][:max_tokens]
            cut.append(tokenizer.decode(ids))
        out[name] = cut
    return out


def probe_gradients(model, params, encoded) -> dict[str, list[torch.Tensor]]:
    from elastic_theory.empirical.probe import gradient
    from elastic_theory.empirical.probe_text import rate_pieces

    return {name: gradient(params, rate_pieces(model, data, 1)) for name, data in encoded.items()}


def bare_gradients(model, params, encoded) -> dict[str, list[torch.Tensor]]:
    """The plain loop: per document, BOS + tokens through the model, -sum ln p / (T ln 2), backward into .grad."""
    out = {}
    for name, data in encoded.items():
        for p in params:
            p.grad = None
        scale = 1.0 / (data.n_tokens * math.log(2.0))
        for ids in data.token_ids:
            x = torch.as_tensor(np.concatenate(([data.prefix], ids)))[None]
            logits = model(input_ids=x[:, :-1]).logits[0]
            lp = torch.log_softmax(logits.float(), -1).gather(1, x[0, 1:, None])
            (-lp.sum() * scale).backward()
        out[name] = [p.grad.detach().clone() for p in params]
    for p in params:
        p.grad = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--docs", type=int, default=32, help="documents per dataset")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per document at most")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each side (best of)")
    parser.add_argument("--json", default=None, help="also write the timings here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from elastic_theory.empirical import load_model_and_tokenizer
    from elastic_theory.empirical.probe_text import encode_dataset

    model, tok = load_model_and_tokenizer(args.model, device="cpu", dtype="float32")
    model.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    texts = datasets(tok, args.docs, args.max_tokens)
    encoded = {n: encode_dataset(tok, t, n, context=args.max_tokens + 1) for n, t in texts.items()}
    tokens = {n: d.n_tokens for n, d in encoded.items()}
    times = {"probe": [], "bare": []}
    results = {}
    for rep in range(args.repeats + 1):  # the first round warms up and is not timed
        for side, fn in (("probe", probe_gradients), ("bare", bare_gradients)):
            t0 = time.perf_counter()
            results[side] = fn(model, params, encoded)
            if rep:
                times[side].append(time.perf_counter() - t0)
            print(f"round {rep} {side}: {time.perf_counter() - t0:.1f} s", flush=True)
    worst = max(float((a - b).norm() / b.norm()) for n in encoded
                for a, b in zip(results["probe"][n], results["bare"][n]) if b.norm() > 0)
    best = {side: min(t) for side, t in times.items()}
    report = {"model": args.model, "docs": args.docs, "max_tokens": args.max_tokens, "tokens": tokens,
              "seconds": best, "ratio": best["probe"] / best["bare"], "max_relative_difference": worst,
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, 1 thread"}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
