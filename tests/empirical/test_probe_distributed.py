"""``elastic-theory probe`` under ``torchrun --nproc-per-node 2`` (gloo, CPU): the windows' batches are sharded over the
processes and the gradients, code lengths and curvatures all-reduced, and the report equals the one-process one.

Why exactly equal (a tolerance of zero, derived): with 8 one-window documents per dataset in batches of 4, each
dataset has 2 batches, so each process holds one. Every batch is the same forward pass in both runs (same windows,
padding and thread count); one process adds its two pieces as 0 + p0 + p1, the two processes as p0 (0 + p0 is exact)
+ p1 in the all-reduce, and IEEE addition is commutative: the same roundings. A document's code length is one
window's, added to 0. So every gradient, step, curvature and interval is bitwise the same.

With 8 batches (batch size 1, four per process) the association changes: one process adds the pieces in order,
two processes add two partial sums of four. For n float64 terms each order is within (n - 1) u sum |p_b| of the
exact sum (u = 2^-53), so an entry of a gradient moves by at most e = 2 (n - 1) u sum_b |p_b|, which this test
computes from the pieces themselves. The gradients' norms then differ by at most ||e|| plus the rounding of the norm
itself (a float64 sum of P squares: relative P u, both runs), and the rates not at all (one window per document).

Wrong implementations killed: every process scoring every batch (the all-reduce doubles the gradient and every code
length: rates off by a factor 2), the partial sums never added (rank 0's report from half the batches), the pieces
scaled by the shard's tokens instead of the dataset's (off by the share), the same batches on both processes (one
half counted twice, the other never), a report from each process (two tables).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elastic_theory.cli import app

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow  # two processes that each import torch and transformers: 10-30 s apiece

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("--align", "a", "--pretrain", "p", "--perturb", "t")
U = 2.0**-53
"""Unit roundoff of float64."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from pydoc_data.topics import topics  # real English prose shipped with Python

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    texts = [topics[k][:100] for k in sorted(topics)[:24]]
    root = tmp_path_factory.mktemp("probe-dist")
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    tiny_gpt2(tok, seed=0, n_positions=128).save_pretrained(root / "model")  # every document one window (<= 75 tokens)
    tok.save_pretrained(root / "model")
    for i, name in enumerate("apt"):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i * 8:(i + 1) * 8]))
    return root


def _args(root: Path, batch_size: int, out: Path) -> list[str]:
    data = [a for n in "apt" for a in ("--data", f"{n}={root / f'{n}.jsonl'}")]
    return ["probe", "--model", str(root / "model"), *data, *ROLES, "--dtype", "float64", "--lr", "1e-2,1e-1",
            "--second-order", "--controls", "--batch-size", str(batch_size), "--no-progress", "--json", str(out)]


def _two_processes(root: Path, batch_size: int, out: Path) -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(port), "-m", "elastic_theory", *_args(root, batch_size, out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _reports(root: Path, batch_size: int) -> tuple[dict, dict, str]:
    one, two = root / f"one-{batch_size}.json", root / f"two-{batch_size}.json"
    result = CliRunner().invoke(app, _args(root, batch_size, one))
    assert result.exit_code == 0, result.output
    stdout = _two_processes(root, batch_size, two)
    a, b = (json.loads(p.read_text()) for p in (one, two))
    for r in (a, b):
        del r["provenance"]
    assert a["config"].pop("processes") == 1 and b["config"].pop("processes") == 2
    a["config"].pop("data"), b["config"].pop("data")
    return a, b, stdout


def test_two_processes_report_exactly_what_one_does(inputs):
    one, two, stdout = _reports(inputs, batch_size=4)
    assert stdout.count("rates and gradients") == 1  # one report, from rank 0
    assert two == one


def _piece_bound(root: Path, name: str, batch_size: int) -> tuple[float, float, int]:
    """``(||e||, ||g||, P)``: the bound e = 2 (n - 1) u sum_b |p_b| on a gradient entry's reassociation, from the pieces."""
    from elastic_theory.empirical import load_model_and_tokenizer, read_documents
    from elastic_theory.empirical.probe_text import encode_dataset, rate_pieces

    model, tok = load_model_and_tokenizer(root / "model", device="cpu", dtype="float64")
    params = [p for p in model.parameters()]
    data = encode_dataset(tok, read_documents(root / f"{name}.jsonl"), name, context=128)
    pieces = [torch.autograd.grad(piece, params, allow_unused=True) for piece in rate_pieces(model.eval(), data, batch_size)]
    n = len(pieces)
    abs_sum = [sum(p[j].abs() for p in pieces) for j in range(len(params))]
    g = [sum(p[j] for p in pieces) for j in range(len(params))]
    e = math.sqrt(sum(float(((2 * (n - 1) * U) * a).pow(2).sum()) for a in abs_sum))
    return e, math.sqrt(sum(float(x.pow(2).sum()) for x in g)), sum(p.numel() for p in params)


def test_two_processes_of_four_batches_each_agree_within_the_reassociation_bound(inputs):
    one, two, _ = _reports(inputs, batch_size=1)
    for name in "apt":
        a, b = one["datasets"][name], two["datasets"][name]
        assert a["bits_per_token"] == b["bits_per_token"]  # one window per document: nothing reassociated
        e, norm, n_params = _piece_bound(inputs, name, batch_size=1)
        tolerance = e + 2 * n_params * U * norm
        print(f"{name}: |grad| {a['grad_norm']:.6g}, one vs two processes {abs(a['grad_norm'] - b['grad_norm']):.2e}, "
              f"tolerance {tolerance:.2e}")
        assert abs(a["grad_norm"] - b["grad_norm"]) <= tolerance, (name, a["grad_norm"] - b["grad_norm"], tolerance)
        assert tolerance < 1e-9 * norm  # far below any wrong sharding (a factor 2, a missing half)
