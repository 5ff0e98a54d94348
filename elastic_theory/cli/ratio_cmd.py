"""``elastic-theory ratio`` (the §2.2 closed forms at a point) and ``elastic-theory perturb`` (§2.1 on your data)."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console, escape, json_option, parse_real, write_result


def _cell(value) -> str:
    """A table cell: floats (infinite and NaN included) in 10 significant digits, anything else as text."""
    return f"{value:.10g}" if isinstance(value, float) else escape(value)


def _emit(result: dict, json_out: Path | None, title: str, config: dict | None = None) -> None:
    """Print ``result`` as a table; with ``json_out``, write it (plus ``config``, the inputs not in the result)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")

    def rows(prefix: str, obj: dict) -> None:
        for key, value in obj.items():
            if isinstance(value, dict):
                rows(f"{prefix}{key}.", value)
            else:
                table.add_row(escape(prefix + key), _cell(value))

    rows("", result)
    console(json_out).print(table)
    if json_out is not None:
        write_result(json_out, result if config is None else {**result, "config": config})


@app.command("ratio")
@bad_input_exits_2
def ratio_command(
    k: str = typer.Option(..., "--k", metavar="K", help="k = |D_p|/|D_a| > 0 (pre-training over alignment size); a float or 4/5."),
    l: str = typer.Option(..., "--l", metavar="L", help="l = |D_t|/|D_a| >= 0 (perturbation over alignment size); a float or 4/5."),
    w3: str = typer.Option(..., "--w3", metavar="W3", help="Weight in [0, 1] of the perturbation distribution inside D_p; a float or 4/5."),
    lam: str | None = typer.Option(None, "--lam", metavar="LAM", help="Theta constants on 0 <= l <= lam (default: lam = l); a float or 4/5."),
    json_out: Path | None = json_option("Also write the numbers as JSON to this file."),
) -> None:
    """R(k, l, w3) = (w3 k + l)/(w3 - (1 - w3) l), both derivatives, l* and the Theta constants (disjoint supports).

    Derivatives are bits per response per unit l. Each number may be an exact fraction (--w3 4/5): the sign
    threshold l* = w3/(1 - w3) and R are then decided in exact arithmetic of those fractions. Beyond l* a
    warning goes to stderr (the sign claim no longer holds) and the exact values are still printed; so does
    a --lam below --l (the Theta band then covers only 0 <= l <= lam).

    Examples:

    \b
      elastic-theory ratio --k 1000 --l 0.01 --w3 0.1
      elastic-theory ratio --k 1e6 --l 0.001 --w3 0.1 --lam 0.05 --json ratio.json
      elastic-theory ratio --k 1000 --l 4 --w3 4/5   # exactly at l* = 4: the sign claim fails
    """
    from ..theory.elasticity import closed_form_result

    args = {name: parse_real(text, f"--{name}") for name, text in (("k", k), ("l", l), ("w3", w3))}
    result, warned = closed_form_result(**args, lam=None if lam is None else parse_real(lam, "--lam"))
    if not result["l_within_lam"]:
        warned.append(f"lam = {result['lam']:g} < l = {result['l']:g}: the Theta band [theta_lower, theta_upper] holds "
                      "for 0 <= l <= lam, so it need not contain R/k at this l; give --lam >= --l (or leave it out)")
    for message in warned:
        typer.echo(f"warning: {message}", err=True)
    if result["theta_upper"] is None and result["sign_valid"]:
        typer.echo(f"warning: lam = {result['lam']:g} >= l* = {result['l_star']:g}: R is unbounded on [0, lam], "
                   "so there are no Theta constants (theta_lower/upper are None); give lam < l*.", err=True)
    _emit(result, json_out, "elasticity closed forms (THEORY §2.2); derivatives in bits per response per unit l")


def perturb_result(pretrain, align, perturb, l: float, vocab_size: int | None, size_unit: str = "responses") -> dict:
    """The numbers ``elastic-theory perturb`` prints, from three lists of token sequences (bits).

    The model is the mixture of all responses (weights: response counts) in either ``size_unit``; ``l`` is read in
    ``size_unit``. ``k``, ``R`` and ``R_over_k`` are per response; ``k_tokens`` and ``R_tokens`` =
    R E_p|x| / E_a|x| (the ratio of the per-token derivatives) come next to them when every dataset has tokens.
    """
    from ..theory.elasticity import PerturbationModel, derivative_ratio
    from ..data.io import infer_vocab_size
    from ..theory.tree import TokenTree

    V = vocab_size if vocab_size is not None else infer_vocab_size(pretrain, align, perturb)
    trees = [TokenTree.from_sequences(d, V) for d in (pretrain, align, perturb)]
    model = PerturbationModel.from_trees(*trees, size_unit=size_unit)
    out = {"size_unit": size_unit, "l": l, "l_responses": model.l_responses(l), "vocab_size": V,
           "size_pretrain_responses": model.size_pretrain, "size_align_responses": model.size_align}
    names = ("pretrain", "align", "perturb") if l > 0 else ("pretrain", "align")  # D_t is covered only for l > 0
    for name, tree in zip(names, trees):
        r = model.rates(tree, l)
        entry = asdict(r)
        del entry["l"]
        if r.mean_length > 0:
            entry["gamma_bits_per_token"] = r.gamma_bits_per_token
            entry["dgamma_dl_bits_per_token"] = r.dgamma_dl_bits_per_token
        out[name] = entry
    da, dp = out["align"]["dcross_entropy_dl_bits"], out["pretrain"]["dcross_entropy_dl_bits"]
    out["k"] = model.k_responses
    out["R"] = derivative_ratio(da, dp)
    out["R_over_k"] = out["R"] / model.k_responses
    if all(t.mean_length > 0 for t in trees[:2]):
        scale = trees[0].mean_length / trees[1].mean_length  # E_p|x| / E_a|x|
        out["k_tokens"] = model.k_responses * scale
        out["R_tokens"] = out["R"] * scale
    out["sign_valid"] = bool(dp < 0 < da)
    return out


@app.command("perturb")
@bad_input_exits_2
def perturb_command(
    pretrain: Path = typer.Option(..., "--pretrain", metavar="FILE", help="JSONL: one list of token ids per line (D_p)."),
    align: Path = typer.Option(..., "--align", metavar="FILE", help="JSONL alignment set D_a."),
    perturb: Path = typer.Option(..., "--perturb", metavar="FILE", help="JSONL perturbation set D_t (only its distribution is used)."),
    l: float = typer.Option(..., "--l", metavar="L", help="l = |D_t|/|D_a| >= 0."),
    vocab_size: int | None = typer.Option(None, "--vocab-size", metavar="V", help="Alphabet size; default: largest token id + 1."),
    size_unit: str = typer.Option(
        "responses", "--size-unit", metavar="UNIT",
        help="How --l is read: 'responses' (default) or 'tokens' (|D_t| = l |D_a| in tokens). The model is the same.",
    ),
    json_out: Path | None = json_option("Also write the numbers as JSON to this file."),
) -> None:
    """Rates of D_p and D_a under the joint model of D_p, D_a and l|D_a| copies of D_t, with exact l-derivatives.

    The model is the size-weighted mixture of the three empirical distributions (THEORY §2.1);
    cross-entropies are bits per response, derivatives by the exact formula. D_p and D_a are
    always covered by the model; D_t's own rates are added for l > 0 (at l = 0 the model may give
    its responses probability 0). If the signs are not d gamma_p/dl < 0 < d gamma_a/dl, a
    warning goes to stderr and the values are printed.

    Examples:

    \b
      elastic-theory perturb --pretrain examples/P.jsonl --align examples/A.jsonl --perturb examples/T.jsonl --l 0.01
      elastic-theory perturb --pretrain examples/P.jsonl --align examples/A.jsonl --perturb examples/T.jsonl --l 0 --json out.json
    """
    from ..theory.elasticity import check_l
    from ..data.io import read_token_jsonl

    l = check_l(l)
    data = [read_token_jsonl(p, vocab_size) for p in (pretrain, align, perturb)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy overflow/invalid: a one-line error, never NaN silently
        try:
            result = perturb_result(*data, l, vocab_size, size_unit)
        except (RuntimeWarning, OverflowError) as exc:
            raise ValueError(f"--l {l:g}: the float64 arithmetic of the joint model fails at this l ({exc}); "
                             "give a smaller --l") from None
    if not result["sign_valid"]:
        typer.echo(
            "warning: for these datasets at this l the theorem's sign claim (d gamma_p/dl < 0 < d gamma_a/dl) "
            "does not hold; the exact values follow.",
            err=True,
        )
    _emit(result, json_out, f"joint model at l = {l:g} ({size_unit}), k = {result['k']:.6g} responses (THEORY §2.1)",
          config={"pretrain": str(pretrain), "align": str(align), "perturb": str(perturb), "l": l,
                  "vocab_size": vocab_size, "size_unit": size_unit})
