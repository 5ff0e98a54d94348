"""The distributed path on the CPU: ``elastic-theory finetune`` under ``torchrun`` with two processes (gloo, DDP)
trains the same model as the same command in one process.

Why the two runs can agree: the batch size is global (each of the 2 processes takes 2 of the 4 examples
of a step, the examples in their given order, so a step's set of examples is the same), and trl's SFT
loss is normalised by the token count of the whole step over all processes (``average_tokens_across_devices``,
on by default: each process divides its token sum by the global count and DDP averages the gradients).
The examples have unequal lengths on purpose, so that a per-process normalisation would differ. What
is left is the order of the floating-point reductions: the sum over the step's tokens is split in two
and added by the all-reduce instead of in one pass.

The tolerance is measured, not guessed: a third run, in this process, trains the same examples with
each step's examples in reverse order. Mathematically it is the same run; only the reduction order
differs, exactly the kind of difference the two-process run may have. The tolerance for weights, losses
and tracked rates is :data:`NULL_FACTOR` times that run's difference from the one-process run, plus the
rounding of the stored numbers. The reductions are not float64 throughout although the model is: trl
computes log-probabilities in float32 whatever the model's dtype (its fused LM head), and Adam turns a
rounding difference ``dg`` of a gradient component near zero into a weight difference of up to ``lr *
dg / eps_adam``; both set the scale the reference run measures.

Wrong implementations each check kills (each was tried, see the commit): a process that trains on every
example of the step, or a per-process batch size (``batch_size`` not divided by the processes: the steps
double or halve, and the losses' count differs); gradients not averaged across processes (rank 0 then
saves weights trained on half of each step: weights differ by the size of an update, about ``lr``);
the loss normalised per process (the logged step losses are then the mean of two per-process means, not
the global token mean); the tracker writing from both processes (every line twice).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_MEASURE, BATCH, LR, SEED, EVERY = 16, 4, 4, 1e-2, 0, 2
NULL_FACTOR = 10
"""How far the two-process run may be from the one-process run, in units of the reversed-order run's distance.

Rounding differences of two reduction orders are sums of many roundings of either sign; two such orders
give maxima of the same distribution, which differ by a small factor, not by ten. The wrong
implementations above differ by a factor of at least 10^3 (measured: see the module docstring)."""
U32 = 2.0**-24
"""Unit roundoff of float32, in which the trainer logs losses (``Trainer`` accumulates them in float32)."""
TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A float64 tiny GPT-2 with its tokenizer saved to a folder, preference pairs of unequal lengths, tracked texts."""
    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    root = tmp_path_factory.mktemp("distributed")
    words = ["no", "thanks", "never", "sorry", "yes", "sure", "here", "it", "is", "fine"]
    pairs = [{"prompt": f"question {i} about {words[i % 10]}",
              "aligned": " ".join(words[(i + j) % 4] for j in range(1 + i % 5)),
              "unaligned": " ".join(words[4 + (i + j) % 6] for j in range(1 + (3 * i) % 7))} for i in range(24)]
    texts = [f"{p['prompt']}\n{p['aligned']}" for p in pairs] + [f"{p['prompt']}\n{p['unaligned']}" for p in pairs]
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    model = tiny_gpt2(tok, seed=0, n_layer=1, n_embd=16, n_head=2, n_positions=64).to(torch.float64)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (root / "track.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[::5]))
    return root


def _finetune_args(files: Path, out: Path) -> list[str]:
    return ["-m", "elastic_theory", "finetune", "--model", str(files / "model"), "--data", str(files / "pairs.jsonl"),
            "--algorithm", "sft", "--set", f"batch_size={BATCH}", "--set", f"lr={LR}", "--set", "max_length=48",
            "--n-train", str(N_TRAIN), "--n-measure", str(N_MEASURE), "--seed", str(SEED), "--dtype", "float64",
            "--track", f"t={files / 'track.jsonl'}", "--every", str(EVERY), "--no-progress", "--out", str(out)]


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def _reversed_within_steps_run(files: Path, out: Path) -> tuple[dict, list[float]]:
    """The reference: one process, the same examples with each step's examples reversed (weights, losses; track in out)."""
    from elastic_theory import corpora
    from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.finetune import run_finetune
    from elastic_theory.trainconfig import FinetuneConfig

    split = corpora.split_train_measure(corpora.read_pairs_jsonl(files / "pairs.jsonl"), n_measure=N_MEASURE,
                                        n_train=N_TRAIN, seed=SEED)
    order = [i for start in range(0, N_TRAIN, BATCH) for i in reversed(range(start, start + BATCH))]
    model, tok = load_model_and_tokenizer(files / "model", device="cpu", dtype=torch.float64)
    out.mkdir()
    tracker = RateTracker({"t": read_documents(files / "track.jsonl")}, tok, out / "track.jsonl", every=EVERY)
    result = run_finetune(model, tok, [split.train[i] for i in order],
                          FinetuneConfig(batch_size=BATCH, lr=LR, max_length=48), seed=SEED, tracker=tracker)
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}, list(result.losses)


@pytest.fixture(scope="module")
def runs(files):
    """The one-process run, the two-process run (torchrun, gloo) and the reversed-order reference."""
    from safetensors.torch import load_file

    one, two, ref = files / "one", files / "two", files / "reversed"
    _run([sys.executable, *_finetune_args(files, one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
          "--master-port", str(_free_port()), *_finetune_args(files, two)])
    ref_weights, ref_losses = _reversed_within_steps_run(files, ref)
    out = {}
    for name, folder in (("one", one), ("two", two)):
        result = json.loads((folder / "result.json").read_text())
        out[name] = {"weights": load_file(folder / "final" / "model.safetensors"), "losses": result["losses"],
                     "result": result, "track": _track(folder)}
    out["reversed"] = {"weights": ref_weights, "losses": ref_losses, "track": _track(ref)}
    return out


def _track(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "track.jsonl").read_text().splitlines()]


def _max_weight_difference(a: dict, b: dict) -> float:
    assert a.keys() <= b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_processes_train_the_same_weights_as_one(runs):
    one, two, ref = runs["one"]["weights"], runs["two"]["weights"], runs["reversed"]["weights"]
    null = _max_weight_difference(one, ref)
    moved = _max_weight_difference(one, load_model_weights(runs))
    tolerance = NULL_FACTOR * null + 4 * 2.0**-53 * max(float(w.abs().max()) for w in one.values())
    difference = _max_weight_difference(one, two)
    print(f"max |w_2proc - w_1proc| = {difference:.3e}; reversed-order reference {null:.3e}; "
          f"tolerance {tolerance:.3e}; largest weight change in training {moved:.3e}")
    assert difference <= tolerance
    assert tolerance < 1e-3 * moved  # the check can see a wrong step: an update moves weights by about lr


def load_model_weights(runs) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(runs["one"]["result"]["model"]["location"]) / "model.safetensors")


def test_two_processes_log_the_same_step_losses(runs):
    one, two, ref = (runs[k]["losses"] for k in ("one", "two", "reversed"))
    assert len(one) == len(two) == len(ref) == N_TRAIN // BATCH
    assert runs["two"]["result"]["world_size"] == 2 and runs["one"]["result"]["world_size"] == 1
    for a, b, r in zip(one, two, ref):
        assert abs(a - b) <= NULL_FACTOR * abs(a - r) + 2 * U32 * abs(a), (one, two, ref)


def test_two_processes_track_the_same_rates_once(runs):
    one, two, ref = (runs[k]["track"] for k in ("one", "two", "reversed"))
    steps = [0, *range(EVERY, N_TRAIN // BATCH + 1, EVERY)]
    assert [r["step"] for r in one] == [r["step"] for r in two] == [r["step"] for r in ref] == steps
    for a, b, r in zip(one, two, ref):
        for key in ("bits_per_token", "bits_per_byte"):
            assert abs(a[key] - b[key]) <= NULL_FACTOR * abs(a[key] - r[key]) + 4 * 2.0**-53 * a[key], (key, a, b, r)
        assert (a["n_tokens"], a["n_bytes"]) == (b["n_tokens"], b["n_bytes"])
