"""Benchmark: the experiments' training loop against a bare torch loop on the same model and batch.

In one process, on the same GPT-2 (built from a config, float64), the same full batch of the
synthetic world's union D_p + D_a + D_t and the same number of Adam steps, times

* bare: ``zero_grad; loss = nll(model, data); backward; step`` in a plain Python loop (the same loss function);
* machinery: :func:`~elastic_theory.empirical.training.train_stage` with an ``on_step`` callback that
  feeds an :class:`~elastic_theory.empirical.training.ExactRateTracker` (exact rates of D_p and D_a,
  appended to a JSONL file every ``--every`` steps) and a checkpoint at the end
  (:func:`~elastic_theory.empirical.training.save_state`), as the experiments run it;

interleaved ``--reps`` times (the machine is shared; medians are reported), and prints steps/s,
the machinery's overhead over the bare loop, and the share of the machinery's time spent in the
exact-enumeration rates (measured by the tracker itself).

Run: ``python benchmarks/bench_training.py`` (about a minute on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from elastic_theory.empirical.training import (  # noqa: E402
    ExactRateTracker,
    SequenceData,
    build_model,
    nll,
    save_state,
    train_stage,
)
from elastic_theory.data.synthetic import SyntheticWorld, WorldConfig  # noqa: E402
from elastic_theory.infra.trainconfig import ModelConfig, StageConfig  # noqa: E402


def bare_loop(model, data, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = nll(model, data)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def machinery(model, data, track, steps: int, lr: float, every: int, folder: Path) -> tuple[float, float]:
    path = folder / "track.jsonl"
    path.unlink(missing_ok=True)
    tracker = ExactRateTracker(track, path, every=every)
    t0 = time.perf_counter()
    tracker.measure(model, 0)
    train_stage(model, data, StageConfig("adam", lr, steps, "constant"), on_step=lambda s, _: tracker.maybe_measure(model, s))
    save_state(model, folder / "model.pt")
    total = time.perf_counter() - t0
    return total, sum(r["seconds"] for r in tracker.records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=10, help="tracking interval in steps (the experiments use 1 to 10)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-layer", type=int, default=1)
    ap.add_argument("--n-embd", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    world = SyntheticWorld(WorldConfig(vocab_size=3, length=3, prompt_length=1, n_prompts=3, resolution=60))
    d = world.datasets(16, 0.2, (0.6, 0.2, 0.2))
    V = world.config.data_vocab_size
    data = SequenceData(d.union, V)
    track = {"pretrain": SequenceData(d.pretrain, V), "align": SequenceData(d.align, V)}
    cfg = ModelConfig(n_layer=args.n_layer, n_embd=args.n_embd, n_head=2)
    bare, mach, rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            bare.append(bare_loop(build_model(cfg, V, 4, seed=rep), data, args.steps, 1e-2))
            total, rate_s = machinery(build_model(cfg, V, 4, seed=rep), data, track, args.steps, 1e-2, args.every, Path(tmp))
            mach.append(total)
            rates.append(rate_s)
    b, m, r = statistics.median(bare), statistics.median(mach), statistics.median(rates)
    out = {
        "model": f"GPT-2 {args.n_layer} x {args.n_embd}, float64", "rows": len(data), "steps": args.steps,
        "every": args.every, "reps": args.reps, "bare_steps_per_s": args.steps / b, "machinery_steps_per_s": args.steps / m,
        "overhead": m / b - 1.0, "rate_share_of_machinery_time": r / m, "bare_s": bare, "machinery_s": mach, "rates_s": rates,
    }
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
