"""`elastic-theory compare` against `elastic-theory measure` run once per model, in one process.

compare should cost one scoring pass per model and dataset and no more: its time divided by
the summed time of `measure` on each model (same models, datasets and settings) should be
about 1, plus the paired bootstrap. The script also counts the scoring passes (calls of
``score_token_ids``) and times a second compare that finds every score in the cache.

    python benchmarks/bench_compare.py [--models 3] [--docs 50] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.empirical import byte_bpe_tokenizer, scoring, tiny_gpt2


def documents(n: int) -> list[str]:
    """``n`` pieces of Python's help text of about 1000 characters, cut at a word boundary."""
    from pydoc_data.topics import topics

    texts = [" ".join(topics[k].split()) for k in sorted(topics)]
    texts = [t[: t.rfind(" ", 0, 1000)] for t in texts if len(t) >= 1000]
    return (texts * (2 * n // len(texts) + 1))[: 2 * n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=3, help="models in all: the base and models - 1 checkpoints")
    parser.add_argument("--docs", type=int, default=50, help="documents per dataset (two datasets)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best of)")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args()
    texts = documents(args.docs)
    root = Path(tempfile.mkdtemp(prefix="bench_compare_"))
    tok = byte_bpe_tokenizer(texts, vocab_size=512)
    paths = []
    for seed in range(args.models):
        model = tiny_gpt2(tok, seed=seed, n_layer=3, n_embd=128, n_head=4, n_positions=256)
        paths.append(root / f"model{seed}")
        model.save_pretrained(paths[-1])
        tok.save_pretrained(paths[-1])
    for name, part in (("a", texts[: args.docs]), ("b", texts[args.docs :])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    data = ["--data", f"a={root / 'a.jsonl'}", "--data", f"b={root / 'b.jsonl'}"]
    common = [*data, "--context", "256", "--no-progress"]

    passes = []
    real_score = scoring.score_token_ids

    def counting(*a, **k):
        passes.append(1)
        return real_score(*a, **k)

    scoring.score_token_ids = counting
    runner = CliRunner()

    def invoke(argv):
        t0 = time.perf_counter()
        result = runner.invoke(app, [str(a) for a in argv])
        assert result.exit_code == 0, result.output
        return time.perf_counter() - t0

    checkpoints = [x for i, p in enumerate(paths[1:], 1) for x in ("--checkpoint", f"c{i}={p}")]
    invoke(["measure", "--model", paths[0], *common])  # warm-up: imports and first-call costs are paid here, untimed
    rows = {"measure once per model": [], "compare, cold (--no-cache)": [], "compare, all scores cached": []}
    counts = {}
    for _ in range(args.repeats):
        del passes[:]
        rows["measure once per model"].append(sum(invoke(["measure", "--model", p, *common]) for p in paths))
        counts["measure once per model"] = len(passes)
        del passes[:]
        rows["compare, cold (--no-cache)"].append(invoke(["compare", "--base", paths[0], *checkpoints, *common, "--no-cache"]))
        counts["compare, cold (--no-cache)"] = len(passes)
        cache = root / "cache"
        invoke(["compare", "--base", paths[0], *checkpoints, *common, "--cache-dir", cache])
        del passes[:]
        rows["compare, all scores cached"].append(invoke(["compare", "--base", paths[0], *checkpoints, *common, "--cache-dir", cache]))
        counts["compare, all scores cached"] = len(passes)
        for f in (cache / "scores").glob("*.npz"):
            f.unlink()
    best = {k: min(v) for k, v in rows.items()}
    base = best["measure once per model"]
    n_tokens = sum(len(tok(t)["input_ids"]) for t in texts)
    print(f"{args.models} models (GPT-2 3 x 128, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters), "
          f"2 datasets x {args.docs} documents, {n_tokens} tokens per model; {os.cpu_count()}-core CPU, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'run':30s} {'seconds':>8s} {'x measure':>10s} {'scoring passes':>15s}")
    for k, t in best.items():
        print(f"{k:30s} {t:8.2f} {t / base:10.3f} {counts[k]:15d}")
    if args.json:
        from elastic_theory.data.io import write_json_atomic

        write_json_atomic(args.json, {"seconds": best, "ratio_to_measure": {k: t / base for k, t in best.items()},
                                      "scoring_passes": counts, "models": args.models, "docs": args.docs,
                                      "tokens_per_model": n_tokens})


if __name__ == "__main__":
    main()
