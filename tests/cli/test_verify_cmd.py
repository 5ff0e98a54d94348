"""The ``verify``, ``ratio`` and ``perturb`` commands: exit codes, JSON keys, warnings, and the docs table."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elastic_theory import claims
from elastic_theory.cli import app
from elastic_theory.theory.tolerances import roundings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "theory.md"
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_verify_subset_json(tmp_path):
    """verify --claim ... --json: exit 0 when every verdict is the expected one; JSON lists each claim."""
    out = tmp_path / "v.json"
    res = _run("verify", "--claim", "ratio_lower_bound", "--claim", "no_shared_perturbation", "--json", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [c["id"] for c in data["claims"]] == ["ratio_lower_bound", "no_shared_perturbation"]
    assert {"id", "statement", "expected", "verdict", "counterexample"} <= set(data["claims"][0])
    assert "2/2 verdicts as expected" in res.output


def test_verify_exit_code_on_mismatch(monkeypatch):
    """A verdict that differs from the expected one gives exit code 1."""
    from elastic_theory.theory import elasticity

    for module in (elasticity, elasticity.closed_forms):  # the name claims call and the one ratio_R calls
        monkeypatch.setattr(module, "ratio_R_exact", lambda k, l, w3: k * (1 - l))
    res = _run("verify", "--claim", "ratio_lower_bound")
    assert res.exit_code == 1
    assert "NO" in res.output


def test_verify_unknown_claim_is_bad_input():
    """An unknown claim id is bad input: exit code 2 with the known ids."""
    res = _run("verify", "--claim", "nope")
    assert res.exit_code == 2 and "unknown claim" in res.output


@pytest.mark.slow  # draws every claim's figure
def test_verify_plots(tmp_path):
    """--plots writes the ratio, precision and Pareto figures."""
    res = _run("verify", "--claim", "highprec_closed_forms", "--claim", "pareto_entropy_offset", "--plots", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.png", "precision.png", "ratio.png"]


def test_verify_plots_into_a_file_exits_2(tmp_path):
    """--plots naming an existing file: a one-line error naming the option and the file, exit 2, before any claim runs."""
    target = tmp_path / "taken.png"
    target.write_bytes(b"")
    res = _run("verify", "--claim", "mixture_lemma", "--plots", str(target))
    assert res.exit_code == 2 and f"--plots {target}: is a file; give a folder" in res.stderr
    assert "verdicts as expected" not in res.output


@pytest.mark.slow  # every claim, then every claim once per planted fault (about 2 min)
def test_docs_tables_are_the_verify_output(tmp_path, monkeypatch):
    """One verification for the pages' four verify commands (`verify`, `verify --markdown`, `verify --faults
    --markdown`, `verify --json verify.json --plots plots/`: docs/theory.md and the README), run once as
    `verify --faults --markdown --json verify.json --plots plots/`: the claims table (what `verify --markdown` prints:
    the same render of the same claims, before the faults table) is docs/theory.md's, the planted-fault table after
    it is docs/testing.md's, every fault is caught (exit 0), the JSON lists every claim with its expected verdict,
    and the three figures are drawn."""
    monkeypatch.chdir(tmp_path)
    res = _run("verify", "--faults", "--markdown", "--json", "verify.json", "--plots", "plots/")
    assert res.exit_code == 0, res.output
    claims_table, faults_table = res.stdout.split("\n\n")
    text = DOCS.read_text(encoding="utf-8")
    table = re.search(r"<!-- verify-table:start -->\n(.*?)<!-- verify-table:end -->", text, re.S)
    assert table is not None, "docs/theory.md lost its verify-table markers"
    assert table.group(1) == claims_table + "\n", "regenerate the table with `elastic-theory verify --markdown`"
    assert claims_table.count("\n") == len(claims.CLAIMS) + 1
    text = (DOCS.parent / "testing.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- faults-table:start -->\n(.*?)<!-- faults-table:end -->", text, re.S)
    assert table is not None, "docs/testing.md lost its faults-table markers"
    assert table.group(1) == faults_table, "regenerate the table with `elastic-theory verify --faults --markdown`"
    assert faults_table.count("\n") == len(claims.FAULTS) + 2 and "| NO |" not in faults_table
    data = json.loads((tmp_path / "verify.json").read_text())
    assert [c["id"] for c in data["claims"]] == list(claims.CLAIMS)
    assert all(c["verdict"] == c["expected"] for c in data["claims"])
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["pareto.png", "precision.png", "ratio.png"]


def test_verify_faults_json_lists_the_faults_tried(tmp_path):
    """verify --faults --claim X --json: per claim the faults tried, each caught; one progress line per claim on stderr."""
    out = tmp_path / "v.json"
    res = _run("verify", "--faults", "--claim", "ratio_limit", "--claim", "ratio_upper_bound", "--json", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [(c["id"], c["faults_caught"], len(c["faults"])) for c in data["claims"]] == [
        ("ratio_upper_bound", 1, 1), ("ratio_limit", 1, 1)]
    assert res.stderr.count("planted faults caught") == 2


def test_ratio_json(tmp_path):
    """ratio --json has R, both derivatives, sign_valid, l_star and the Theta bounds; R matches the closed form."""
    out = tmp_path / "r.json"
    res = _run("ratio", "--k", "1000", "--l", "0.01", "--w3", "0.1", "--json", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {"R", "dgamma_a_dl_per_response", "dgamma_p_dl_per_response", "sign_valid", "l_star", "theta_lower",
            "theta_upper"} <= set(data)
    # (w3 k + l)/(w3 - (1 - w3) l) = 100.01/0.091 (hand computation), exactly for the binary inputs given;
    # the float path rounds w3 k, + l and the quotient, the margin exactly rounded once: 4 eps.
    exact = (Fraction(0.1) * 1000 + Fraction(0.01)) / (Fraction(0.1) - (1 - Fraction(0.1)) * Fraction(0.01))
    assert abs(Fraction(data["R"]) - exact) <= roundings(4) * exact
    assert data["sign_valid"] is True


def test_ratio_beyond_threshold_warns():
    """l > l*: a warning on stderr, the exact values still printed, exit 0."""
    res = runner.invoke(app, ["ratio", "--k", "1000", "--l", "0.5", "--w3", "0.1"])
    assert res.exit_code == 0
    assert "no longer holds" in res.stderr
    # R = (100 + 1/2)/(1/10 - 9/20) = -2010/7 = -287.142857... (hand computation), printed to 10 digits
    assert re.search(r"│ R +│ +-287\.1428571 │", res.stdout)


def test_ratio_lam_beyond_threshold_says_why_there_are_no_theta_constants(tmp_path):
    """l < l* = 1 but lam = 2 >= l*: the values are printed, the Theta constants are None, and stderr says why."""
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "0.5", "--w3", "0.5", "--lam", "2", "--json", str(out)])
    assert res.exit_code == 0
    assert "lam = 2 >= l* = 1: R is unbounded on [0, lam]" in res.stderr
    data = json.loads(out.read_text())
    assert data["theta_upper"] is None and data["sign_valid"] is True


def test_ratio_lam_below_l_says_the_band_does_not_cover_l(tmp_path):
    """--lam 0.1 < --l 0.5: R/k = 2.2 lies outside the band [1, 1.133] of 0 <= l <= 0.1; stderr says so (it was silent)
    and the JSON has l_within_lam = false. R/k = (5 + 1/2)/(1/2 - 1/4)/10 = 2.2 (hand computation)."""
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "0.5", "--w3", "0.5", "--lam", "0.1", "--json", str(out)])
    assert res.exit_code == 0
    assert "lam = 0.1 < l = 0.5: the Theta band" in res.stderr
    data = json.loads(out.read_text())
    assert data["l_within_lam"] is False and data["R_over_k"] == pytest.approx(2.2, rel=roundings(4))
    assert not data["theta_lower"] <= data["R_over_k"] <= data["theta_upper"]
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "0.1", "--w3", "0.5", "--lam", "0.1"])
    assert res.exit_code == 0 and res.stderr == ""


def test_ratio_negative_zero_prints_zero(tmp_path):
    """--w3 -0 is w3 = 0: l* = 0 and no "-0" in the table or the JSON (float -0.0 used to pass through)."""
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "-0", "--w3", "-0", "--json", str(out)])
    assert res.exit_code == 0
    assert not re.search(r"│ +-0 │", res.stdout) and re.search(r"│ l_star +│ +0 │", res.stdout)
    data = json.loads(out.read_text())
    assert all(math.copysign(1.0, data[key]) == 1.0 for key in ("w3", "l", "l_star"))


def test_ratio_takes_exact_fractions(tmp_path):
    """--w3 4/5 --l 4 is exactly l* = 4: R = inf, the sign claim fails, l_star = 4. The decimal 0.8 is the float
    just above 4/5, whose l* is above 4, so --l 4 stays (barely) on the valid side: only fractions hit l* exactly."""
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "4", "--w3", "4/5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["l_star"] == 4.0 and data["sign_valid"] is False
    assert data["R"] is None and data["non_finite"]["/R"] == "inf"  # io.to_jsonable's encoding of infinity
    assert "no longer holds" in res.stderr
    res = runner.invoke(app, ["ratio", "--k", "10", "--l", "4", "--w3", "0.8", "--json", str(out)])
    assert json.loads(out.read_text())["sign_valid"] is True
    res = runner.invoke(app, ["ratio", "--k", "1/10", "--l", "1/3", "--w3", "1/2", "--lam", "1/2", "--json", str(out)])
    data = json.loads(out.read_text())
    # R = (1/20 + 1/3)/(1/2 - 1/6) = 23/20 exactly, rounded once.
    assert res.exit_code == 0 and data["R"] == float(Fraction(23, 20)) and data["k"] == 0.1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--k", "1/0", "--l", "0.1", "--w3", "0.5"), "--k must be a number or an exact fraction such as 4/5, got '1/0'"),
        (("--k", "10", "--l", "0.1", "--w3", "a/b"), "--w3 must be a number or an exact fraction such as 4/5, got 'a/b'"),
        (("--k", "0", "--l", "0.1", "--w3", "0.5"), "k = |D_p|/|D_a| must be finite and > 0, got 0.0"),
        (("--k", "nan", "--l", "0.1", "--w3", "0.5"), "k = |D_p|/|D_a| must be finite and > 0, got nan"),
        (("--k", "10", "--l", "-1", "--w3", "0.5"), "l = |D_t|/|D_a| must be finite and >= 0, got -1.0"),
        (("--k", "10", "--l", "inf", "--w3", "0.5"), "l = |D_t|/|D_a| must be finite and >= 0, got inf"),
        (("--k", "10", "--l", "0.1", "--w3", "1.5"), "w3 (weight of the perturbation distribution inside D_p) must be in [0, 1]"),
        (("--k", "10", "--l", "0.1", "--w3", "0.5", "--lam", "-1"), "lam (end of the interval 0 <= l <= lam of the Theta"),
    ],
)
def test_ratio_bad_input(args, message):
    """k <= 0 or NaN, l < 0 or inf, w3 outside [0, 1], lam < 0: one line on stderr and exit code 2."""
    res = _run("ratio", *args)
    assert res.exit_code == 2 and f"error: {message}" in res.stderr
    assert res.stderr.count("\n") == 1


def _write(path: Path, rows: list[list[int]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_perturb_json(tmp_path):
    """perturb --json: pretrain/align cross-entropies and exact derivatives, R and k; disjoint data give the closed form."""
    p = _write(tmp_path / "p.jsonl", [[0], [2]])
    a = _write(tmp_path / "a.jsonl", [[1]])
    t = _write(tmp_path / "t.jsonl", [[2]])
    out = tmp_path / "out.json"
    res = _run("perturb", "--pretrain", str(p), "--align", str(a), "--perturb", str(t), "--l", "0.5", "--json", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for name in ("pretrain", "align"):
        assert {"cross_entropy_bits", "dcross_entropy_dl_bits"} <= set(data[name])
    # k = 2, w3 = 1/2, l = 1/2: R = (1 + 1/2)/(1/2 - 1/4) = 6 (hand computation).
    # Each derivative is ~8 roundings of O(1) terms (8 eps), so their quotient is within 16 eps (measured: 2 eps).
    assert data["k"] == 2.0 and data["R"] == pytest.approx(6.0, rel=roundings(16))


def test_perturb_in_tokens_keeps_the_model_and_names_the_units(tmp_path):
    """--size-unit tokens: the same mixture (each of the 5 responses 1/5), l read in tokens; R and R_over_k are per
    response over the response k, R_tokens = R E_p|x|/E_a|x| sits next to k_tokens (the old output divided the
    per-response R by the token k)."""
    p = _write(tmp_path / "p.jsonl", [[0, 0, 0, 0], [0, 1, 1, 1], [2, 2, 2, 2]])
    a = _write(tmp_path / "a.jsonl", [[1], [1, 2]])
    t = _write(tmp_path / "t.jsonl", [[3, 3, 3]])
    runs = {}
    for unit, l in (("responses", "0.2"), ("tokens", "0.4")):  # 0.4 |D_a|_tok = 1.2 tokens = 0.4 responses of D_t
        out = tmp_path / f"{unit}.json"
        res = _run("perturb", "--pretrain", str(p), "--align", str(a), "--perturb", str(t), "--l", l,
                   "--size-unit", unit, "--json", str(out))
        assert res.exit_code == 0, res.output
        runs[unit] = json.loads(out.read_text())
    resp, tok = runs["responses"], runs["tokens"]
    assert tok["l_responses"] == 0.2 and tok["k"] == resp["k"] == 1.5 and tok["k_tokens"] == 4.0
    assert tok["pretrain"]["cross_entropy_bits"] == resp["pretrain"]["cross_entropy_bits"]
    assert tok["R"] == pytest.approx(resp["R"], rel=roundings(8))
    assert tok["R_over_k"] == pytest.approx(tok["R"] / 1.5, rel=roundings(1))
    assert tok["R_tokens"] == pytest.approx(tok["R"] * 4 / 1.5, rel=roundings(2))


def test_perturb_sign_warning(tmp_path):
    """Perturbation data equal to the alignment data: the align rate falls, so a warning goes to stderr, exit 0."""
    p = _write(tmp_path / "p.jsonl", [[0], [1]])
    a = _write(tmp_path / "a.jsonl", [[1]])
    res = runner.invoke(app, ["perturb", "--pretrain", str(p), "--align", str(a), "--perturb", str(a), "--l", "0.1"])
    assert res.exit_code == 0
    assert "does not hold" in res.stderr


def test_perturb_bad_input(tmp_path):
    """An empty file or l < 0 exits with code 2."""
    p = _write(tmp_path / "p.jsonl", [[0]])
    empty = _write(tmp_path / "e.jsonl", [])
    res = _run("perturb", "--pretrain", str(p), "--align", str(empty), "--perturb", str(p), "--l", "0.1")
    assert res.exit_code == 2 and "no sequences" in res.output
    res = _run("perturb", "--pretrain", str(p), "--align", str(p), "--perturb", str(p), "--l", "-0.1")
    assert res.exit_code == 2 and "l = |D_t|/|D_a| must be finite and >= 0, got -0.1" in res.stderr


def test_perturb_with_rates_that_do_not_move_reports_nan(tmp_path):
    """Three files of empty responses: both derivatives are 0, so R is NaN (not inf): null in the JSON, with the
    reason under its JSON Pointer in "non_finite" (io.to_jsonable's encoding)."""
    e = _write(tmp_path / "e.jsonl", [[]])
    out = tmp_path / "r.json"
    res = _run("perturb", "--pretrain", str(e), "--align", str(e), "--perturb", str(e), "--l", "0.5", "--json", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert (data["align"]["dcross_entropy_dl_bits"], data["pretrain"]["dcross_entropy_dl_bits"]) == (0.0, 0.0)
    assert data["R"] is None and data["non_finite"]["/R"] == "nan" and data["sign_valid"] is False


def test_negative_seed_is_bad_input():
    """--seed -1: exit 2 with a message naming the seed (numpy's own error does not say which input)."""
    res = _run("verify", "--seed", "-1", "--claim", "mixture_lemma")
    assert res.exit_code == 2 and "--seed must be an integer >= 0, got -1" in res.stderr
