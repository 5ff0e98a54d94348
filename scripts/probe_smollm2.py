"""The probe on SmolLM2-135M before and after an alignment fine-tune: R1, the measured step, the elastic limit, cosines.

    nice -n 10 python scripts/probe_smollm2.py [--out runs/probe-smollm2]

Runs, and prints before running, these commands (docs/probe.md quotes them with the numbers they gave):

1. ``elastic-theory corpus``: 16 Wikipedia paragraphs (the lm experiments' pre-training proxy), 16 refusals
   (JailbreakBench prompts with the package's refusals: the alignment data) and the same 16 prompts with the
   benchmark's "Sure, here is" targets (the perturbation), all from the measurement side of the seed-0 split;
2. ``elastic-theory probe`` on ``smollm2-135m`` (SmolLM2-135M-Instruct: "before" this alignment, though its
   makers' own instruction tuning is in it): one SGD step at lr 1e-4 on the targets, every weight, with curvatures;
3. ``elastic-theory finetune``: a LoRA SFT on 16 refusals from the training side of the same split (8 AdamW
   steps at lr 1e-3), the alignment;
4. the same probe on the aligned checkpoint (the adapter merged into the base, every weight stepped);
5. the first probe without curvatures on the responses alone (``corpus --template '{response}'``): the refusal and
   target documents of 1-4 share their prompts, and this separates what the prompts contribute.

Then one markdown table of both probes, with the quantities that decide R1 (module docstring of
:mod:`elastic_theory.empirical.probe`): for an SGD step u = -lr ln2 g_t,
R1 = -(g_a.g_t)/(g_p.g_t) = -(|g_a| cos(a,t)) / (|g_p| cos(p,t)), and the joint optimum's stationarity
g_p = -g_a/k, whose residual norm(g_a + k g_p) / norm(g_a) is reported for k = 2e12 pre-training tokens (SmolLM2's) over the
input tokens the fine-tune trained on (docs/experiments.md, lm-rebound). About 12 CPU minutes in all.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

PRETRAIN_TOKENS = 2e12
"""SmolLM2-135M's pre-training tokens (its model card), the numerator of k as docs/experiments.md takes it."""

PROBE = ("--data", "wiki={out}/wiki.jsonl", "--data", "refuse={out}/refuse.jsonl", "--data", "comply={out}/comply.jsonl",
         "--align", "refuse", "--pretrain", "wiki", "--perturb", "comply", "--lr", "1e-4", "--second-order",
         "--no-progress")


def commands(out: str) -> list[list[str]]:
    """The commands, as a user types them (``elastic-theory ...``)."""
    corpus = [["corpus", "wikipedia", "--split", "measure", "--n-measure", "16", "--out", f"{out}/wiki.jsonl"]] + [
        ["corpus", "jailbreakbench", "--side", side, "--split", "measure", "--n-measure", "16", "--out", f"{out}/{name}.jsonl"]
        for side, name in (("aligned", "refuse"), ("unaligned", "comply"))]
    responses = [["corpus", "jailbreakbench", "--side", side, "--split", "measure", "--n-measure", "16", "--template",
                  "{response}", "--out", f"{out}/{name}-responses.jsonl"] for side, name in (("aligned", "refuse"), ("unaligned", "comply"))]
    probe = [a.format(out=out) for a in PROBE]
    return [["elastic-theory", *c] for c in [
        *corpus,
        ["probe", "--model", "smollm2-135m", *probe, "--json", f"{out}/before.json"],
        ["finetune", "--model", "smollm2-135m", "--data", "jailbreakbench", "--algorithm", "sft", "--lora",
         "--n-train", "16", "--set", "batch_size=4", "--set", "epochs=2", "--set", "lr=1e-3", "--set", "max_length=96",
         "--out", f"{out}/aligned", "--no-progress"],
        ["probe", "--model", f"{out}/aligned/final", *probe, "--json", f"{out}/after.json"],
        *responses,
        ["probe", "--model", "smollm2-135m", *[a.replace("refuse.jsonl", "refuse-responses.jsonl").replace(
            "comply.jsonl", "comply-responses.jsonl") for a in probe if a != "--second-order"],
         "--json", f"{out}/responses.json"],
    ]]


def stationarity(report: dict, k: float) -> dict:
    """R1's ingredients for an SGD step, and the joint optimum's residual norm(g_a + k g_p) / norm(g_a) from the
    norms and the cosine: |g_a + k g_p|^2 = |g_a|^2 + 2k |g_a||g_p| cos(a,p) + k^2 |g_p|^2."""
    d, cos = report["datasets"], report["cosines"]
    na, npre, nt = (d[report["roles"][r]]["grad_norm"] for r in ("align", "pretrain", "perturb"))
    a, p, t = (report["roles"][r] for r in ("align", "pretrain", "perturb"))
    residual = math.sqrt(max(na**2 + 2 * k * na * npre * cos[a][p] + (k * npre) ** 2, 0.0)) / na
    return {"R1 from norms and cosines": -(na * cos[a][t]) / (npre * cos[p][t]), "norm(g_p) / norm(g_a)": npre / na,
            "cos(g_a, g_p)": cos[a][p], "norm(g_a + k g_p) / norm(g_a)": residual}


COLUMNS = {"before": "before (smollm2-135m)", "after": "after (LoRA SFT on refusals)",
           "responses": "before, responses only (first order)"}
"""The probes' JSON files (in ``--out``) and their columns in the table."""


def _num(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(columns: dict[str, dict], k: float) -> str:
    """The probes side by side (``columns``: heading -> report; bits per token; measured changes with compare's
    paired 95% interval; "-" for what a probe without ``--second-order`` does not compute)."""
    rows = []

    def row(label, f):
        rows.append(f"| {label} | " + " | ".join(f(r) for r in columns.values()) + " |")

    before = next(iter(columns.values()))
    roles = before["roles"]
    for name in before["datasets"]:
        row(f"gamma {name} (bits/token)", lambda r, n=name: f"{r['datasets'][n]['bits_per_token']:.4f}")
        row(f"gradient norm, {name}", lambda r, n=name: f"{r['datasets'][n]['grad_norm']:.3g}")
    names = list(before["datasets"])
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            row(f"cos({x}, {y})", lambda r, x=x, y=y: f"{r['cosines'][x][y]:+.3f}")
    for name in names:
        def change(r, n=name):
            e = r["steps"][0]
            m = e["measured"][n]
            inside = "inside" if e["prediction_inside_ci"][n] else "OUTSIDE"
            second = None if e["predicted_second_order"] is None else e["predicted_second_order"][n]
            return (f"{e['predicted_first_order'][n]:+.3g} / {_num(second, '+.3g')} / "
                    f"{m['value']:+.3g} [{m['ci95'][0]:+.3g}, {m['ci95'][1]:+.3g}] ({inside})")
        row(f"change of {name}: 1st / 2nd order / measured", change)

    def measured_r(r):
        e = r["steps"][0]["R_measured"]
        return f"{e['value']:+.3g}" + (f" [{e['ci95'][0]:+.3g}, {e['ci95'][1]:+.3g}]" if e["ci95"] else " (unbounded)")
    row("R1 / R2", lambda r: f"{r['steps'][0]['R_first_order']:+.3g} / {_num(r['steps'][0]['R_second_order'], '+.3g')}")
    row("R measured (Fieller)", measured_r)
    row("signs hold (measured)", lambda r: str(r["steps"][0]["signs_hold"]))

    def limit(r):
        e = r["elastic_limit"]
        if e["step_scale"] is None:
            return "-" if r["steps"][0]["curvature"] is None else "none"
        return f"s* = {e['step_scale']:.3g} (one SGD step at lr {e['lr']:.3g})"
    row(f"elastic limit of {roles['pretrain']}", limit)
    for key in stationarity(before, k):
        row(key, lambda r, key=key: f"{stationarity(r, k)[key]:.3g}")
    head = "| quantity | " + " | ".join(columns) + " |\n|---" + "|---" * len(columns) + "|\n"
    return head + "\n".join(rows) + f"\n\nk = {k:.3g} (pre-training tokens over the fine-tune's input tokens)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/probe-smollm2", help="folder for the data, the checkpoint and the JSON")
    out = parser.parse_args().out
    if Path(out, "aligned", "result.json").exists():  # finetune would refuse it after the first probe's minutes
        parser.error(f"--out {out} holds an earlier run (aligned/result.json); give another folder")
    Path(out).mkdir(parents=True, exist_ok=True)
    for command in commands(out):
        print("$ " + shlex.join(command), flush=True)
        subprocess.run([sys.executable, "-m", "elastic_theory", *command[1:]], check=True, stdout=subprocess.DEVNULL)
    reports = {heading: json.loads(Path(out, f"{name}.json").read_text()) for name, heading in COLUMNS.items()}
    tokens = json.loads(Path(out, "aligned", "result.json").read_text())["tokens_seen"]
    print(table(reports, PRETRAIN_TOKENS / tokens))


if __name__ == "__main__":
    main()
