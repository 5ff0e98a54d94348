"""Test configuration: offline hub, GPU tests skipped without a GPU, one hypothesis profile for CI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# A stray hub call must fail at once, not hang ~46 s: set before anything imports transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# pytest-xdist runs one worker per core; torch's own threads on top oversubscribe the cores and slow
# small-matrix kernels several-fold. One thread per worker (read by torch when it is first imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# CI: the same examples on every run (derandomize: the seed is a hash of each test) and no example
# database, so a failure saved by an earlier run in the same checkout cannot fail a later one; the
# only way to make CI fail is a defect those fixed examples reach. Local runs keep the random
# search (new examples every run, failures saved in .hypothesis/ and replayed first).
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


ROOT = Path(__file__).resolve().parent.parent
_UNTRACKED_BEFORE = pytest.StashKey[frozenset]()


def _untracked_files() -> frozenset[str] | None:
    """Files in the checkout that git neither tracks nor ignores (None outside a git checkout)."""
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(proc.stdout.decode(errors="replace").split("\0")) - {""} if proc.returncode == 0 else None


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the xdist controller (or a plain run) checks for all workers
        before = _untracked_files()
        if before is not None:
            session.config.stash[_UNTRACKED_BEFORE] = before


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a test left a new file in the checkout: tests write under tmp_path only (a test once wrote
    its ``--json -`` output into a file named ``-`` in the working folder, and it got committed)."""
    before = session.config.stash.get(_UNTRACKED_BEFORE, None)
    after = _untracked_files() if before is not None else None
    new = sorted(after - before) if after is not None else []
    if new:
        session.config.get_terminal_writer().line(
            f"\nERROR: the tests left new files in the checkout (write them under tmp_path): {', '.join(new)}", red=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config, items):
    """Slow items first (stable order otherwise), so that under ``-n 2`` the long ones do not form a tail at the end
    of the run; GPU items skipped without a CUDA device."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


#: The fast tier's budget per test (seconds of wall time on the shared 2-core machine): a test that takes longer is
#: marked ``slow`` (docs/testing.md, "Tiers"). Checked after each run as a report, never as a failure: a loaded machine
#: is slow, not wrong.
FAST_TEST_SECONDS = 2.0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name the unmarked tests that took longer than :data:`FAST_TEST_SECONDS` (candidates for the ``slow`` mark)."""
    durations: dict[str, float] = {}
    # setup, call and teardown together: a module fixture's cost lands on the first test that uses it
    for report in (r for key in ("passed", "failed", "") for r in terminalreporter.stats.get(key, [])):
        if getattr(report, "when", None) and "slow" not in report.keywords:
            durations[report.nodeid] = durations.get(report.nodeid, 0.0) + report.duration
    over = sorted(((t, n) for n, t in durations.items() if t > FAST_TEST_SECONDS), reverse=True)
    if over:
        terminalreporter.write_sep("-", f"unmarked tests over {FAST_TEST_SECONDS:g} s (mark them slow or make them faster)")
        for seconds, nodeid in over:
            terminalreporter.write_line(f"{seconds:7.2f}s {nodeid}")


@pytest.fixture(scope="module")
def finetune_inputs(tmp_path_factory):
    """A float64 tiny GPT-2 saved with its tokenizer (``model/``), 32 preference pairs whose responses have unequal
    lengths (``pairs.jsonl``; 16 on each side of the split by hash) and texts to track that hold no pair
    (``track.jsonl``): the inputs of ``elastic-theory finetune`` tests."""
    import json

    import torch

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    root = tmp_path_factory.mktemp("finetune")
    words = ["no", "thanks", "never", "sorry", "yes", "sure", "here", "it", "is", "fine"]
    pairs = [{"prompt": f"question {i} about {words[i % 10]}",
              "aligned": " ".join(words[(i + j) % 4] for j in range(1 + i % 5)),
              "unaligned": " ".join(words[4 + (i + j) % 6] for j in range(1 + (3 * i) % 7))} for i in range(32)]
    texts = [f"{p['prompt']}\n{p['aligned']}" for p in pairs] + [f"{p['prompt']}\n{p['unaligned']}" for p in pairs]
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    model = tiny_gpt2(tok, seed=0, n_layer=1, n_embd=16, n_head=2, n_positions=64).to(torch.float64)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    held_out = [" ".join(words[(i + j) % 10] for j in range(3 + i % 4)) for i in range(10)]  # no training text in them
    (root / "track.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in held_out))
    return root
