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
rounding of the stored numbers. Adam turns a rounding difference ``dg`` of a gradient component near zero
into a weight difference of up to ``lr * dg / eps_adam``, and not every reduction is in the model's float64:
DPO's log-probabilities come from trl's fused LM head in float32 (SFT on the CPU uses the model's own loss),
the tracker's log-softmax is float32 and the trainer logs losses in float32. The reference run measures the
scale all of this gives.

Wrong implementations each check kills. Tried by changing the code and running these tests: the loss
normalised per process (``average_tokens_across_devices`` off: step losses off by 2e-2, tracked rates by
2e-3, weights by 5e-2); a per-process batch size (``batch_size`` not divided by the processes:
2 steps instead of 4); the tracker writing from both processes (every line twice); gradients summed
across the processes instead of averaged (each process's gradient scaled by 2, its logged loss not):
AdamW and the norm clipping are blind to the scale but for Adam's ``eps``, so the weights move by only
1.4e-9 and the step losses stay within their tolerance, but the weights' tolerance is 3.6e-13 and the
tracked rates' 3.6e-15 (both checks fail). By construction, not tried: a process that trains on every
example of a step with half the batch (twice the steps: the losses' count differs); gradients not
averaged across processes (rank 0 then saves weights trained on half of each step, which differ by the
size of an update, about ``lr`` = 1e-2, against a tolerance of about 4e-13); a process that takes every
example of a step with the whole batch while DDP averages the identical gradients (the same model at twice
the work): the input tokens the trainer counts over all processes (``tokens_seen``) are then twice the
one-process count, and the test requires them equal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.launch import env as _env
from tests.launch import free_port as _free_port
from tests.launch import torchrun as _torchrun

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

# Every test here starts two processes that each import torch and trl (10-30 s apiece): the slow tier.
pytestmark = pytest.mark.slow

N_TRAIN, N_MEASURE, BATCH, LR, SEED, EVERY = 16, 4, 4, 1e-2, 0, 2
NULL_FACTOR = 10
"""How far the two-process run may be from the one-process run, in units of the reversed-order run's distance.

Rounding differences of two reduction orders are sums of many roundings of either sign; two such orders
give maxima of the same distribution, which differ by a small factor, not by ten (measured: 0.9 for the
weights of SFT, 1.5 for DPO). The wrong implementations above differ by far more: the per-process
normalisation moves the weights by 5e-2 against a tolerance of 4e-13."""
U32 = 2.0**-24
"""Unit roundoff of float32, in which the trainer computes and logs losses."""
LOSS_TERMS = 4 * 48 + 3
"""The float32 roundings a step's logged loss may carry, for its bound :data:`LOSS_TERMS` x U32 x |loss|.

transformers' causal-LM loss casts the logits to float32 (``ForCausalLMLoss``: ``logits.float()``, also for a
float64 model) and sums the per-token cross-entropies in float32: a sum of at most BATCH x max_length = 4 x 48
terms, whose rounding in any order is within (terms - 1) U32 of the sum of the absolute values (all positive
here, so of the sum itself). Two processes sum two halves and the trainer adds their float32 values (2 more
roundings), and the logged value is rounded once more: 4 x 48 + 3 in all. (The bound used before, 2 U32, took the
loss to be float64 rounded once; with the split by hash's examples, a two-process step-4 loss differed from the
one-process one by 3.2 U32 while the reversed-order reference happened to round to the one-process value.) At 5.8e-5
relative it still kills the per-process normalisation above (step losses off by 2e-2)."""
TIMEOUT = 600


def _finetune_args(inputs: Path, out: Path, *extra: str, device: str = "cpu") -> list[str]:
    return ["-m", "elastic_theory", "finetune", "--model", str(inputs / "model"), "--data", str(inputs / "pairs.jsonl"),
            "--algorithm", "sft", "--set", f"batch_size={BATCH}", "--set", f"lr={LR}", "--set", "max_length=48",
            "--n-train", str(N_TRAIN), "--n-measure", str(N_MEASURE), "--seed", str(SEED), "--dtype", "float64",
            "--track", f"t={inputs / 'track.jsonl'}", "--every", str(EVERY), "--no-progress", "--out", str(out),
            "--device", device, *extra]


def _run(command: list[str], timeout: float = TIMEOUT) -> None:
    proc = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def _reversed_within_steps_run(inputs: Path, out: Path, device: str = "cpu", config=None) -> tuple[dict, list[float]]:
    """The reference: one process, the same examples with each step's examples reversed (weights, with a LoRA
    adapter merged; losses; track in out). ``config``: default SFT at :data:`BATCH`, :data:`LR`."""
    from elastic_theory.data import corpora
    from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.finetune import run_finetune
    from elastic_theory.infra.trainconfig import FinetuneConfig

    split = corpora.split_train_measure(corpora.read_pairs_jsonl(inputs / "pairs.jsonl"), n_measure=N_MEASURE,
                                        n_train=N_TRAIN, seed=SEED)
    order = [i for start in range(0, N_TRAIN, BATCH) for i in reversed(range(start, start + BATCH))]
    model, tok = load_model_and_tokenizer(inputs / "model", device=device, dtype=torch.float64)
    out.mkdir()
    tracker = RateTracker({"t": read_documents(inputs / "track.jsonl")}, tok, out / "track.jsonl", every=EVERY)
    config = config or FinetuneConfig(batch_size=BATCH, lr=LR, max_length=48)
    result = run_finetune(model, tok, [split.train[i] for i in order], config, seed=SEED, tracker=tracker)
    trained = result.model.merge_and_unload() if config.lora else result.model
    return {k: v.detach().cpu().clone() for k, v in trained.state_dict().items()}, list(result.losses)


def _merged_weights(folder: Path) -> dict:
    """The weights of a saved model as ``measure`` loads it (a LoRA adapter merged into its base)."""
    from elastic_theory.empirical import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(folder, device="cpu", dtype=torch.float64)
    return model.state_dict()


def _outcome(folder: Path) -> dict:
    from safetensors.torch import load_file

    result = json.loads((folder / "result.json").read_text())
    return {"weights": load_file(folder / "final" / "model.safetensors"), "losses": result["losses"], "result": result,
            "track": [json.loads(line) for line in (folder / "track.jsonl").read_text().splitlines()]}


@pytest.fixture(scope="module")
def runs(finetune_inputs):
    """The one-process run, the two-process run (torchrun, gloo) and the reversed-order reference."""
    from safetensors.torch import load_file

    inputs = finetune_inputs
    _run([sys.executable, *_finetune_args(inputs, inputs / "one")])
    _run([*_torchrun(), *_finetune_args(inputs, inputs / "two")])
    weights, losses = _reversed_within_steps_run(inputs, inputs / "reversed")
    track = [json.loads(line) for line in (inputs / "reversed" / "track.jsonl").read_text().splitlines()]
    return {"one": _outcome(inputs / "one"), "two": _outcome(inputs / "two"),
            "reversed": {"weights": weights, "losses": losses, "track": track},
            "initial": load_file(inputs / "model" / "model.safetensors")}


def _max_weight_difference(a: dict, b: dict) -> float:
    assert a.keys() <= b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _weights_agree(one: dict, other: dict, reference: dict, initial: dict, label: str) -> None:
    """``other`` within :data:`NULL_FACTOR` times the reference's distance from ``one`` (plus float64 rounding of
    the largest weight), and that tolerance far below what one update moves (so a wrong step cannot hide in it)."""
    null = _max_weight_difference(one, reference)
    moved = _max_weight_difference(one, initial)
    tolerance = NULL_FACTOR * null + 4 * 2.0**-53 * max(float(w.abs().max()) for w in one.values())
    difference = _max_weight_difference(one, other)
    print(f"{label}: max |w - w_1proc| = {difference:.3e}; reversed-order reference {null:.3e}; "
          f"tolerance {tolerance:.3e}; largest weight change in training {moved:.3e}")
    assert difference <= tolerance
    assert tolerance < 1e-3 * moved


def test_two_processes_train_the_same_weights_as_one(runs):
    _weights_agree(runs["one"]["weights"], runs["two"]["weights"], runs["reversed"]["weights"], runs["initial"],
                   "torchrun, 2 processes, gloo")


def _losses_agree(one: list[float], two: list[float], ref: list[float]) -> None:
    assert len(one) == len(two) == len(ref) == N_TRAIN // BATCH
    print(f"step losses: max |l - l_1proc| = {max(abs(a - b) for a, b in zip(one, two)):.3e}; reversed-order reference "
          f"{max(abs(a - r) for a, r in zip(one, ref)):.3e}")
    for a, b, r in zip(one, two, ref):
        assert abs(a - b) <= NULL_FACTOR * abs(a - r) + LOSS_TERMS * U32 * abs(a), (one, two, ref)


def test_two_processes_log_the_same_step_losses(runs):
    _losses_agree(*(runs[k]["losses"] for k in ("one", "two", "reversed")))
    assert runs["two"]["result"]["world_size"] == 2 and runs["one"]["result"]["world_size"] == 1


def test_two_processes_train_on_each_example_once(runs):
    """Together the two processes feed the model the one-process run's tokens, no more: each process trains on its
    own share of every batch, not on the whole batch (which would train the same weights at twice the work)."""
    one, two = (runs[k]["result"]["tokens_seen"] for k in ("one", "two"))
    assert one > 0 and two == one


def _tracks_agree(one: list[dict], two: list[dict], ref: list[dict]) -> None:
    steps = [0, *range(EVERY, N_TRAIN // BATCH + 1, EVERY)]
    assert [r["step"] for r in one] == [r["step"] for r in two] == [r["step"] for r in ref] == steps
    print(f"tracked bits per token: max difference {max(abs(a['bits_per_token'] - b['bits_per_token']) for a, b in zip(one, two)):.3e}"
          f"; reversed-order reference {max(abs(a['bits_per_token'] - r['bits_per_token']) for a, r in zip(one, ref)):.3e}")
    for a, b, r in zip(one, two, ref):
        for key in ("bits_per_token", "bits_per_byte"):
            assert abs(a[key] - b[key]) <= NULL_FACTOR * abs(a[key] - r[key]) + 4 * 2.0**-53 * a[key], (key, a, b, r)
        assert (a["n_tokens"], a["n_bytes"]) == (b["n_tokens"], b["n_bytes"])


def test_two_processes_track_the_same_rates_once(runs):
    _tracks_agree(*(runs[k]["track"] for k in ("one", "two", "reversed")))


@pytest.mark.parametrize("algorithm, lora", [("dpo", False), ("sft", True)])
def test_dpo_and_lora_train_the_same_weights_under_two_processes(finetune_inputs, tmp_path, algorithm, lora):
    """DPO (a mean over the step's pairs: each process holds the same number) and a LoRA adapter, the same way."""
    from elastic_theory.infra.trainconfig import FinetuneConfig

    extra = ["--set", f"algorithm={algorithm}", *(["--lora", "--set", 'lora_targets=["c_attn"]'] if lora else [])]
    _run([sys.executable, *_finetune_args(finetune_inputs, tmp_path / "one", *extra)])
    _run([*_torchrun(), *_finetune_args(finetune_inputs, tmp_path / "two", *extra)])
    config = FinetuneConfig(algorithm=algorithm, lora=lora, lora_targets=("c_attn",), batch_size=BATCH, lr=LR,
                            max_length=48)
    weights, losses = _reversed_within_steps_run(finetune_inputs, tmp_path / "reversed", config=config)
    one, two = (json.loads((tmp_path / n / "result.json").read_text())["losses"] for n in ("one", "two"))
    _weights_agree(_merged_weights(tmp_path / "one" / "final"), _merged_weights(tmp_path / "two" / "final"), weights,
                   _merged_weights(finetune_inputs / "model"), f"torchrun, 2 processes, {algorithm}{', LoRA' if lora else ''}")
    _losses_agree(one, two, losses)


def test_accelerate_launch_runs_the_same_command_as_torchrun(runs, finetune_inputs, tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2`` starts the same two processes (on the CPU too; without
    ``--multi_gpu`` it starts one process on a machine without GPUs): the weights equal torchrun's exactly."""
    _run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
          "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
          *_finetune_args(finetune_inputs, tmp_path / "acc")])
    launched = _outcome(tmp_path / "acc")
    assert launched["result"]["world_size"] == 2
    assert _max_weight_difference(runs["two"]["weights"], launched["weights"]) == 0.0
    assert launched["track"] == [{**r, "seconds": a["seconds"], "time": a["time"]}
                                 for r, a in zip(runs["two"]["track"], launched["track"])]


def _rates_within_float32(inputs, tok, got: dict, want: dict) -> None:
    """Two float32 evaluations of the tracked documents' rates: within twice Float32Forward.rate_tolerance each."""
    from elastic_theory.empirical import load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.data import check_documents
    from elastic_theory.empirical.scoring import encode_documents
    from elastic_theory.theory.tolerances import Float32Forward

    docs = check_documents(read_documents(inputs / "track.jsonl"))
    n = [len(ids) for ids in encode_documents(tok, docs)]
    f32 = Float32Forward.of(load_model_and_tokenizer(inputs / "model", device="cpu", dtype=torch.float32)[0])
    tol = {"bits_per_token": 2 * f32.rate_tolerance(n, n),
           "bits_per_byte": 2 * f32.rate_tolerance(n, [len(d.text.encode("utf-8")) for d in docs])}
    for key, bound in tol.items():
        assert abs(got[key] - want[key]) <= bound, key


_SHARDED_TRACKER = """
import sys, torch, torch.distributed as dist
from pathlib import Path
from torch.distributed.fsdp import fully_shard
from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents
from elastic_theory.empirical.distributed import full_state_dict, is_sharded

inputs, out = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
model, tok = load_model_and_tokenizer(inputs / "model", device="cpu", dtype=torch.float64)
for block in model.transformer.h:
    fully_shard(block)
fully_shard(model)
assert is_sharded(model)
tracker = RateTracker({"t": read_documents(inputs / "track.jsonl")}, tok, out / "track.jsonl", every=1)
records = tracker.measure(model, 0)
assert len(records) == (1 if dist.get_rank() == 0 else 0)
state = full_state_dict(model)
if dist.get_rank() == 0:
    torch.save(state, out / "gathered.pt")
dist.destroy_process_group()
"""


def test_tracker_measures_a_sharded_model_on_every_rank_and_writes_once(finetune_inputs, tmp_path):
    """FSDP2-sharded (``fully_shard``, gloo, 2 processes): the tracked rates are the unsharded model's and are
    written once; the gathered state dict is the model's. A tracker that ran the forward on rank 0 only leaves
    rank 0's all-gather unmatched (tried: gloo fails it when rank 1 moves on to the next collective; otherwise the
    timeout ends the wait); one that wrote from both ranks writes two lines."""
    from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents

    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED_TRACKER)
    _run([*_torchrun(), str(script), str(finetune_inputs), str(tmp_path)], timeout=300)
    model, tok = load_model_and_tokenizer(finetune_inputs / "model", device="cpu", dtype=torch.float64)
    (tmp_path / "whole").mkdir()
    whole = RateTracker({"t": read_documents(finetune_inputs / "track.jsonl")}, tok, tmp_path / "whole" / "t.jsonl",
                        every=1).measure(model, 0)
    sharded = [json.loads(line) for line in (tmp_path / "track.jsonl").read_text().splitlines()]
    assert len(sharded) == 1
    # The same float64 forward on the gathered weights (bit-equal, below), but scoring's log-softmax is float32, in
    # another process and thread count: a last-bit difference of a float64 logit can flip its rounding to float32.
    # Two float32 evaluations: within twice Float32Forward.rate_tolerance of the model's float32 forward, whose
    # Delta = gamma_R S exceeds the float64 logits' error plus their rounding to float32 (u S). Kills each rank
    # scoring its half of the documents and rank 0 writing its half's rates (63 bounds per token, 940 per byte).
    _rates_within_float32(finetune_inputs, tok, sharded[0], whole[0])
    gathered = torch.load(tmp_path / "gathered.pt")
    assert _max_weight_difference(model.state_dict(), gathered) == 0.0


_DDP_TRACKER = """
import json, sys, torch, torch.distributed as dist
from pathlib import Path
from torch.nn.parallel import DistributedDataParallel
from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents

inputs, out = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
model, tok = load_model_and_tokenizer(inputs / "model", device="cpu", dtype=torch.float64)
fed = []
model.register_forward_hook(lambda module, args, kwargs, output: fed.append(int(kwargs["input_ids"].numel())),
                            with_kwargs=True)
tracker = RateTracker({"t": read_documents(inputs / "track.jsonl")}, tok, out / "track.jsonl", every=1)
records = tracker.measure(DistributedDataParallel(model), 0)
assert len(records) == (1 if dist.get_rank() == 0 else 0)
(out / f"fed-{dist.get_rank()}.json").write_text(json.dumps(sum(fed)))
dist.destroy_process_group()
"""


def test_tracker_under_ddp_splits_the_documents_between_the_ranks(finetune_inputs, tmp_path):
    """DDP (gloo, 2 processes; every rank holds the whole model): each rank feeds its model a share of the tracked
    documents' tokens (both shares non-empty, together exactly what one process feeds), and rank 0 writes the one
    record, the one-process rates within the same float32 bound as the FSDP test above. Killed: rank 0 scoring
    every document (rank 1 feeds nothing), both ranks scoring everything (each feeds the whole), rank 0 writing its
    own share's rates (far outside the bound, as above)."""
    from elastic_theory.empirical import RateTracker, load_model_and_tokenizer, read_documents

    script = tmp_path / "ddp.py"
    script.write_text(_DDP_TRACKER)
    _run([*_torchrun(), str(script), str(finetune_inputs), str(tmp_path)], timeout=300)
    model, tok = load_model_and_tokenizer(finetune_inputs / "model", device="cpu", dtype=torch.float64)
    fed = []
    model.register_forward_hook(lambda module, args, kwargs, output: fed.append(int(kwargs["input_ids"].numel())),
                                with_kwargs=True)
    (tmp_path / "whole").mkdir()
    whole = RateTracker({"t": read_documents(finetune_inputs / "track.jsonl")}, tok, tmp_path / "whole" / "t.jsonl",
                        every=1).measure(model, 0)
    shares = [json.loads((tmp_path / f"fed-{r}.json").read_text()) for r in (0, 1)]
    assert 0 < min(shares) and max(shares) < sum(fed) and sum(shares) == sum(fed), (shares, sum(fed))
    split = [json.loads(line) for line in (tmp_path / "track.jsonl").read_text().splitlines()]
    assert len(split) == 1 and (split[0]["n_tokens"], split[0]["n_bytes"]) == (whole[0]["n_tokens"], whole[0]["n_bytes"])
    _rates_within_float32(finetune_inputs, tok, split[0], whole[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_fsdp_on_two_gpus_trains_the_same_weights_as_one_gpu(finetune_inputs, tmp_path):
    """Unmeasured on the CPU machines this was written on (FSDP runs only on accelerators): the FSDP2 run on two
    GPUs (NCCL) against one GPU, with the same reference and tolerance as the CPU test."""
    one, two = tmp_path / "one", tmp_path / "fsdp"
    _run([sys.executable, *_finetune_args(finetune_inputs, one, device="cuda")])
    _run([*_torchrun(), *_finetune_args(finetune_inputs, two, "--set", "fsdp=true", device="cuda")])
    weights, losses = _reversed_within_steps_run(finetune_inputs, tmp_path / "reversed", device="cuda")
    from safetensors.torch import load_file

    a, b = _outcome(one), _outcome(two)
    _weights_agree(a["weights"], b["weights"], weights, load_file(finetune_inputs / "model" / "model.safetensors"),
                   "torchrun, 2 GPUs, FSDP2")
    _losses_agree(a["losses"], b["losses"], losses)
