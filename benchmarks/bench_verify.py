"""Benchmark: wall time of a cold ``elastic-theory verify`` (fresh interpreter, as from a fresh clone).

Baseline, measured in the same run: a cold ``elastic-theory --help`` (interpreter start plus the
CLI's imports), so the ratio says how much the checks themselves add. Also prints the share of
the 60 s budget of issue 3 and the per-claim times from the JSON of the last run.

    python benchmarks/bench_verify.py [--repeats 3]
"""

from __future__ import annotations

import _project_python  # noqa: F401  (first: one clear line under an interpreter without the project)

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 60.0


def wall(args: list[str]) -> float:
    """Seconds for one cold run of ``python -m elastic_theory ARGS``.

    Raises if it fails; exit code 1 (a verdict other than the expected one) is a result, not a failure.
    """
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "elastic_theory", *args], capture_output=True)
    if r.returncode not in (0, 1):
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "verify.json"
        base = [wall(["--help"]) for _ in range(repeats)]
        runs = [wall(["verify", "--json", str(out)]) for _ in range(repeats)]
        per_claim = json.loads(out.read_text())["claims"]
    b, v = statistics.median(base), statistics.median(runs)
    print(f"baseline  elastic-theory --help : median {b:6.2f} s over {repeats} runs")
    print(f"verify    elastic-theory verify : median {v:6.2f} s over {repeats} runs (min {min(runs):.2f}, max {max(runs):.2f})")
    print(f"ratio verify / baseline         : {v / b:6.1f}x")
    print(f"share of the {BUDGET_S:.0f} s budget         : {v / BUDGET_S:6.1%}")
    print("slowest claims (last run, in-process seconds):")
    for c in sorted(per_claim, key=lambda c: -c["seconds"])[:5]:
        print(f"  {c['id']:<30} {c['seconds']:6.2f} s")


if __name__ == "__main__":
    main()
