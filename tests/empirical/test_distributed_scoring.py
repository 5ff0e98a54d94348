"""Scoring sharded across processes on the CPU: ``measure`` and ``compare`` under ``torchrun`` with two processes
(gloo) give the one-process results, each rank scores only its shard, and the score cache serves both counts.

The tolerance is derived, not measured: each document's code length is a float64 sum of float32
log-probabilities, within :meth:`Float32Forward.sum_tolerance` of exact arithmetic per evaluation, so two
evaluations (one and two processes, or batches of other neighbours) differ by at most twice that (in bits:
divided by ln 2). A pooled rate, and each end of a percentile-bootstrap interval, moves by at most
:meth:`Float32Forward.rate_tolerance` per evaluation (its docstring: every resampled rate is a weighted mean of
the documents' rates and the ends are order statistics), so twice that between two evaluations. The
intervals must come from the same per-document numbers in the same order: the test recomputes the two-process
statistics from the two-process per-document file and requires the JSON to be exactly that.

Wrong implementations, and the check that kills each:

* every rank scoring every document and rank 0 writing (equal results, no speed-up):
  ``test_each_rank_scores_only_its_shard`` counts the tokens each rank's model is fed;
* the gathered sums put together in rank order instead of document order: the per-document file's bits per
  document (the shards interleave: checked), and ``test_the_intervals_see_the_documents_in_their_order`` shows
  that rank order moves the bootstrap interval by far more than its tolerance;
* both ranks writing, or rank 1 printing tables: ``wrote`` once, one table;
* the cache keyed by the number of processes (scores cached by 2 processes rescored by 1): a planted change in a
  cache entry written by one count shows up in the other count's result;
* a rank that fails leaving the others waiting in the gather: ``test_a_failing_rank_stops_every_rank`` (the
  group's timeout is 60 s and the subprocess's 300 s: a hang fails the test instead of passing it).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.launch import env, torchrun

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

# Every test starts processes that each import torch and transformers (15-40 s apiece on a loaded 2-core machine).
pytestmark = pytest.mark.slow

CONTEXT = 32  # tokens per window: the longer documents take several windows
N_RESAMPLES = 200
TIMEOUT = 600


def _run(command: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, env=env(COLUMNS="200"), capture_output=True, text=True, timeout=TIMEOUT)
    assert (proc.returncode == 0) == (expect == 0), proc.stderr[-3000:]
    if expect == 0:
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A float32 tiny GPT-2 base and a perturbed checkpoint (saved with their tokenizer), and two datasets of
    documents of unequal lengths, in an order whose token-balanced shards interleave."""
    from pydoc_data.topics import topics

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    root = tmp_path_factory.mktemp("sharded")
    keys = sorted(topics)
    rng = np.random.default_rng(3)
    texts = [topics[k][: int(rng.integers(20, 260))] for k in keys[:24]]
    tok = byte_bpe_tokenizer([topics[k][:300] for k in keys[:40]], vocab_size=300)
    base = tiny_gpt2(tok, seed=0, n_positions=CONTEXT)
    tuned = tiny_gpt2(tok, seed=1, n_positions=CONTEXT)
    for name, model in (("base", base), ("tuned", tuned)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    for name, part in (("a", texts[:12]), ("b", texts[12:])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    return root


def _measure(inputs: Path, out: Path) -> list[str]:
    return ["-m", "elastic_theory", "measure", "--model", str(inputs / "base"), "--data", f"a={inputs / 'a.jsonl'}",
            "--data", f"b={inputs / 'b.jsonl'}", "--context", str(CONTEXT), "--n-resamples", str(N_RESAMPLES),
            "--no-progress", "--json", str(out)]


def _compare(inputs: Path, out: Path, cache: Path) -> list[str]:
    # batch 3: windows of several documents share a forward pass, and the shards give them other neighbours
    return ["-m", "elastic_theory", "compare", "--base", str(inputs / "base"), "--checkpoint",
            f"tuned={inputs / 'tuned'}", "--data", f"a={inputs / 'a.jsonl'}", "--data", f"b={inputs / 'b.jsonl'}",
            "--ratio", "a/b", "--context", str(CONTEXT), "--batch-size", "3", "--n-resamples", str(N_RESAMPLES),
            "--cache-dir", str(cache), "--per-document", str(out.with_suffix(".jsonl")), "--no-progress",
            "--json", str(out)]


@pytest.fixture(scope="module")
def runs(inputs):
    """measure and compare with one process and with two (torchrun, gloo); each compare with its own fresh cache."""
    out = {}
    for label, launcher in (("one", [sys.executable]), ("two", torchrun())):
        out[f"measure_{label}"] = _run([*launcher, *_measure(inputs, inputs / f"m_{label}.json")])
        out[f"compare_{label}"] = _run([*launcher, *_compare(inputs, inputs / f"c_{label}.json", inputs / f"cache_{label}")])
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _per_document(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _float32_bounds(inputs: Path):
    from elastic_theory.empirical import load_model_and_tokenizer
    from elastic_theory.theory.tolerances import Float32Forward

    models = [load_model_and_tokenizer(inputs / n, device="cpu", dtype=torch.float32)[0] for n in ("base", "tuned")]
    return Float32Forward.of(*models, context=CONTEXT)


def test_the_shards_interleave_and_balance(inputs):
    """Precondition of the order checks: rank order is not document order on these datasets."""
    from elastic_theory.empirical import load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.scoring import encode_documents
    from elastic_theory.empirical.sharding import shard_by_tokens

    _, tok = load_model_and_tokenizer(inputs / "base", device="cpu")
    for d in ("a", "b"):
        n = [len(x) for x in encode_documents(tok, read_documents(inputs / f"{d}.jsonl"))]
        shards = shard_by_tokens(n, 2)
        assert sorted(shards[0] + shards[1]) == list(range(len(n)))
        assert shards[0] + shards[1] != list(range(len(n)))
        loads = [sum(n[i] for i in s) for s in shards]
        assert abs(loads[0] - loads[1]) <= max(n), (loads, n)  # Graham's bound for longest-first


def test_shard_by_tokens_balances_and_covers():
    from elastic_theory.empirical.sharding import shard_by_tokens

    rng = np.random.default_rng(0)
    for n_shards in (1, 2, 3, 7):
        counts = rng.integers(1, 1000, size=50)
        shards = shard_by_tokens(counts, n_shards)
        assert sorted(i for s in shards for i in s) == list(range(50)) and all(s == sorted(s) for s in shards)
        loads = [int(counts[s].sum()) for s in shards]
        assert max(loads) - counts.sum() / n_shards <= counts.max()
    assert shard_by_tokens([4, 4], 3) == [[0], [1], []]
    with pytest.raises(ValueError, match="n_shards"):
        shard_by_tokens([1], 0)


def test_measure_under_two_processes_gives_the_one_process_json(runs, inputs):
    one, two = _json(inputs / "m_one.json"), _json(inputs / "m_two.json")
    assert (one["config"].pop("processes"), two["config"].pop("processes")) == (1, 2)
    assert one["config"] == two["config"]
    assert runs["measure_two"].stderr.count("wrote ") == 1 and runs["measure_two"].stdout.count("compression rates") == 1
    per_doc = _per_document(inputs / "c_one.jsonl")  # the same model and settings: measure's documents' bits
    f32 = _float32_bounds(inputs)
    for d, r in one["datasets"].items():
        n = [p["n_tokens"]["base"] for p in per_doc if p["dataset"] == d]
        b = [p["n_bytes"] for p in per_doc if p["dataset"] == d]
        tol = {"bits_per_token": 2 * f32.rate_tolerance(n, n), "bits_per_byte": 2 * f32.rate_tolerance(n, b)}
        for key, bound in tol.items():
            assert abs(two["datasets"][d][key] - r[key]) <= bound, (d, key)
        for key, unit in (("ci95", "bits_per_byte"), ("ci95_bits_per_token", "bits_per_token")):
            assert np.abs(np.subtract(two["datasets"][d][key], r[key])).max() <= tol[unit], (d, key)
        for key in ("n_tokens", "n_bytes", "n_documents"):
            assert two["datasets"][d][key] == r[key]
        print(f"measure {d}: max |2 proc - 1 proc| over rates and interval ends "
              f"{max(abs(a - b) for k in ('bits_per_token', 'bits_per_byte') for a, b in [(two['datasets'][d][k], r[k])]):.3e}; "
              f"ci95 {np.abs(np.subtract(two['datasets'][d]['ci95'], r['ci95'])).max():.3e}; tolerance {tol['bits_per_byte']:.3e}")


def test_the_intervals_see_the_documents_in_their_order(runs, inputs):
    """measure's interval recomputed from the per-document bits, in document order, is measure's exactly; in rank
    order (the shards concatenated) it moves by far more than the tolerance: the interval check above can tell."""
    from elastic_theory.empirical import load_model_and_tokenizer, rate_estimate, read_documents
    from elastic_theory.empirical.scoring import encode_documents
    from elastic_theory.empirical.sharding import shard_by_tokens
    from elastic_theory.stats.comparison import DatasetScores

    one = _json(inputs / "m_one.json")
    per_doc = _per_document(inputs / "c_one.jsonl")
    _, tok = load_model_and_tokenizer(inputs / "base", device="cpu")
    f32 = _float32_bounds(inputs)
    rng, shuffled_rng = np.random.default_rng(0), np.random.default_rng(0)
    for d in ("a", "b"):
        rows = [p for p in per_doc if p["dataset"] == d]
        bits = np.array([p["bits"]["base"] for p in rows])
        n = np.array([p["n_tokens"]["base"] for p in rows])
        b = np.array([p["n_bytes"] for p in rows])
        assert list(n) == [len(x) for x in encode_documents(tok, read_documents(inputs / f"{d}.jsonl"))]
        order = [i for s in shard_by_tokens(n, 2) for i in s]
        in_order = rate_estimate(DatasetScores(bits, n, b, ""), rng, N_RESAMPLES)
        rank_order = rate_estimate(DatasetScores(bits[order], n[order], b[order], ""), shuffled_rng, N_RESAMPLES)
        tol = 2 * f32.rate_tolerance(n, b)
        assert abs(in_order.ci95[0] - one["datasets"][d]["ci95"][0]) <= tol
        assert abs(in_order.ci95[1] - one["datasets"][d]["ci95"][1]) <= tol
        assert np.abs(np.subtract(rank_order.ci95, in_order.ci95)).max() > tol
        print(f"{d}: rank order moves the interval by {np.abs(np.subtract(rank_order.ci95, in_order.ci95)).max():.3e}; "
              f"tolerance {tol:.3e}")


def test_compare_under_two_processes_gives_the_one_process_scores(runs, inputs):
    """Per-document bits within twice the float32 sum bound, in document order (names and counts equal)."""
    one, two = _per_document(inputs / "c_one.jsonl"), _per_document(inputs / "c_two.jsonl")
    assert [(p["dataset"], p["document"], p["n_bytes"], p["n_tokens"]) for p in one] == \
        [(p["dataset"], p["document"], p["n_bytes"], p["n_tokens"]) for p in two]
    f32 = _float32_bounds(inputs)
    worst = 0.0
    for p, q in zip(one, two):
        for m in ("base", "tuned"):
            bound = 2 * f32.sum_tolerance(p["n_tokens"][m]) / math.log(2)
            assert abs(p["bits"][m] - q["bits"][m]) <= bound, (p, q)
            worst = max(worst, abs(p["bits"][m] - q["bits"][m]) / bound)
    print(f"compare: largest |bits 2 proc - bits 1 proc| / tolerance over documents = {worst:.3e}")
    assert runs["compare_two"].stderr.count("wrote ") == 1 and runs["compare_two"].stdout.count("Rate changes") == 1


def test_compare_statistics_are_those_of_the_gathered_documents(runs, inputs):
    """The two-process JSON is exactly what the statistics give on its own per-document numbers, in document order
    (the interval code saw them, with the seed's generator); checked against the one-process JSON above."""
    from elastic_theory.cli.compare_cmd import build_report, parse_ratio
    from elastic_theory.data.io import to_jsonable
    from elastic_theory.stats.comparison import DatasetScores, compare_rates

    for label in ("one", "two"):
        report = _json(inputs / f"c_{label}.json")
        rows = _per_document(inputs / f"c_{label}.jsonl")
        scores = {m: {d: DatasetScores(np.array([p["bits"][m] for p in rows if p["dataset"] == d]),
                                       np.array([p["n_tokens"][m] for p in rows if p["dataset"] == d]),
                                       np.array([p["n_bytes"] for p in rows if p["dataset"] == d]), "same")
                      for d in ("a", "b")} for m in ("base", "tuned")}
        comparison = compare_rates(scores["base"], {"tuned": scores["tuned"]}, np.random.default_rng(0),
                                   n_resamples=N_RESAMPLES, ratio=parse_ratio("a/b", ["a", "b"]))
        rebuilt = build_report({"base": "", "tuned": ""}, {}, scores, comparison, None, config={})
        rebuilt = json.loads(json.dumps(to_jsonable(rebuilt)))
        assert rebuilt["base"]["datasets"] == report["base"]["datasets"]
        assert rebuilt["checkpoints"]["tuned"]["datasets"] == report["checkpoints"]["tuned"]["datasets"]
        assert rebuilt["checkpoints"]["tuned"]["ratio"] == report["checkpoints"]["tuned"]["ratio"]
    one, two = _json(inputs / "c_one.json"), _json(inputs / "c_two.json")
    assert (one["config"].pop("processes"), two["config"].pop("processes")) == (1, 2)
    assert one["config"].pop("cache") != two["config"].pop("cache") and one["config"] == two["config"]


def _planted(cache: Path, into: Path) -> float:
    """A copy of ``cache`` with every entry's first document's bits raised by 1000: a result that shows them was
    read from the cache, not scored."""
    shutil.copytree(cache, into)
    entries = sorted((into / "scores").glob("*.npz"))
    assert entries
    for entry in entries:
        with np.load(entry) as z:
            data = dict(z)
        data["bits"] = data["bits"].copy()
        data["bits"][0] += 1000.0
        with entry.open("wb") as fh:
            np.savez(fh, **data)
    return 1000.0


def test_the_cache_serves_both_process_counts(runs, inputs, tmp_path):
    """The same cache keys with one and two processes, and each count reads the other's entries (a planted change
    comes back in the result: nothing was rescored)."""
    names = {label: sorted(p.name for p in (inputs / f"cache_{label}" / "scores").glob("*.npz")) for label in ("one", "two")}
    assert names["one"] == names["two"] and len(names["one"]) == 4  # 2 models x 2 datasets
    for reader, writer, launcher in (("one", "two", [sys.executable]), ("two", "one", torchrun())):
        shift = _planted(inputs / f"cache_{writer}", tmp_path / f"planted_{writer}")
        out = tmp_path / f"read_by_{reader}.json"
        _run([*launcher, *_compare(inputs, out, tmp_path / f"planted_{writer}")])
        rows, clean = _per_document(out.with_suffix(".jsonl")), _per_document(inputs / f"c_{writer}.jsonl")
        firsts = [i for i, p in enumerate(rows) if i == 0 or rows[i - 1]["dataset"] != p["dataset"]]
        for i, (row, kept) in enumerate(zip(rows, clean)):
            planted = shift if i in firsts else 0.0
            assert row["bits"] == {m: b + planted for m, b in kept["bits"].items()}
        assert sorted(p.name for p in (tmp_path / f"planted_{writer}" / "scores").glob("*.npz")) == names[writer]


_SCRIPT = """
import datetime, json, sys, torch, torch.distributed as dist
from pathlib import Path
from elastic_theory.empirical import load_model_and_tokenizer, read_documents
from elastic_theory.empirical.sharding import ShardFailed, score_dataset_sharded

inputs, out = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
rank = dist.get_rank()
model, tok = load_model_and_tokenizer(inputs / "base", device="cpu")
docs = read_documents(inputs / "a.jsonl")
fed = []
forward = model.forward
def counting(*args, **kwargs):
    fed.append(int(kwargs["input_ids"].numel()))
    return forward(*args, **kwargs)
model.forward = counting
scores = score_dataset_sharded(model, tok, docs, context=32)
record = {"rank": rank, "windows_tokens": sum(fed), "n_windows": len(fed), "has_scores": scores is not None}
def failing(*args, **kwargs):
    raise RuntimeError("planted failure")
if rank == 1:
    model.forward = failing
try:
    score_dataset_sharded(model, tok, docs, context=32)
    record["failure"] = None
except ShardFailed as exc:
    record["failure"] = "ShardFailed: " + str(exc)
except RuntimeError as exc:
    record["failure"] = "RuntimeError: " + str(exc)
(out / f"rank{rank}.json").write_text(json.dumps(record))
dist.destroy_process_group()
"""


def test_each_rank_scores_only_its_shard_and_a_failing_rank_stops_every_rank(inputs, tmp_path):
    """Each rank feeds its model exactly the windows of its shard (the one-process windows split, none twice), only
    rank 0 gets the scores; then rank 1's model fails and both ranks stop with its message, none waits."""
    from elastic_theory.empirical import load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.scoring import encode_documents, rolling_windows
    from elastic_theory.empirical.sharding import shard_by_tokens

    script = tmp_path / "sharded.py"
    script.write_text(_SCRIPT)
    _run([*torchrun(), str(script), str(inputs), str(tmp_path)])
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    _, tok = load_model_and_tokenizer(inputs / "base", device="cpu")
    n = [len(x) for x in encode_documents(tok, read_documents(inputs / "a.jsonl"))]
    for r, shard in enumerate(shard_by_tokens(n, 2)):
        windows = [w for i in shard for w in rolling_windows(n[i], CONTEXT)]
        assert records[r]["n_windows"] == len(windows)
        assert records[r]["windows_tokens"] == sum(w.end - w.start for w in windows)
        assert records[r]["has_scores"] == (r == 0)
    assert records[1]["failure"] == "RuntimeError: planted failure"
    assert records[0]["failure"].startswith("ShardFailed: scoring stopped: process 1 of 2 failed: RuntimeError: planted")


def test_bad_input_stops_every_rank_with_one_line(inputs, tmp_path):
    """Under torchrun, a bad option is refused by each rank before any model loads: one line each, exit 2."""
    proc = _run([*torchrun(), "-m", "elastic_theory", "measure", "--model", str(inputs / "base"), "--data",
                 f"a={inputs / 'missing.jsonl'}", "--json", str(tmp_path / "m.json")], expect=2)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("missing.jsonl" in e for e in errors), proc.stderr[-2000:]
    # the one traceback is torchrun's own report that a worker exited non-zero (its ChildFailedError), with code 2
    assert proc.stderr.count("Traceback") == 1 and "ChildFailedError" in proc.stderr, proc.stderr[-2000:]
    assert re.search(r"exitcode\s*:\s*2\b", proc.stderr) and not (tmp_path / "m.json").exists()
