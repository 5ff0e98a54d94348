"""``elastic-theory models``: the built-in models, their float32 copies in the cache, and plain folders of them."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import PlainHelpCommand, app, bad_input_exits_2, console, folder_option, require_extra

models_app = typer.Typer(name="models", add_completion=False, rich_markup_mode=None, invoke_without_command=True)
app.add_typer(models_app)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.0f} MB"


def models_rows(cache_dir: Path | None) -> list[dict]:
    """One row per built-in model: what ``models`` prints (the source file's content hash keys the cached copy)."""
    from ..empirical.builtin_models import BUILTIN_MODELS, cached_copy_path

    rows = []
    for name, m in BUILTIN_MODELS.items():
        src = m.source()
        copy = cached_copy_path(name, cache_dir) if src is not None else None
        cached = copy is not None and (copy / "config.json").is_file()
        rows.append({"name": name, "family": m.family, "parameters": m.parameters, "license": m.license,
                     "source": str(src) if src else f"not installed ({m.install})",
                     "cached": str(copy) if cached else ("not yet converted" if copy else "-"),
                     "size": _mb(_size(copy)) if cached else "-"})
    return rows


@models_app.callback(invoke_without_command=True)
@bad_input_exits_2
def models_command(
    ctx: typer.Context,
    prune: bool = typer.Option(False, "--prune", help="Remove the stale copies in the cache (of an older or reinstalled-and-changed source file, or of an interrupted conversion)."),
    cache_dir: Path | None = folder_option("The cache folder; default: $ELASTIC_THEORY_CACHE or ~/.cache/elastic-theory.",
                                           "--cache-dir"),
) -> None:
    """List the built-in models (name, family, parameters, source file, license, cached copy, size) and the stale
    copies in the cache.

    A built-in model's float32 copy sits in CACHE/models/NAME-sha256-HASH, keyed by the content of its source file,
    so a reinstall of the same file reuses it. `models export NAME DIR` writes a plain save_pretrained folder for
    your own transformers code.

    Examples:

    \b
      elastic-theory models
      elastic-theory models --prune
      elastic-theory models export smollm2-135m smollm2-base
    """
    if ctx.invoked_subcommand is not None:
        if prune:
            raise ValueError("--prune goes without a subcommand: elastic-theory models --prune")
        return
    from rich.table import Table

    from ..empirical.builtin_models import prune_stale, stale_copies

    table = Table(title="Built-in models (--model NAME)")
    columns = ("name", "family", "parameters", "license", "source", "cached", "size")
    for col in columns:
        table.add_column(col, justify="right" if col in ("parameters", "size") else "left", overflow="fold")
    for row in models_rows(cache_dir):
        table.add_row(*(f"{row[c]:,}" if c == "parameters" else str(row[c]) for c in columns))
    out = console()
    out.print(table)
    stale = stale_copies(cache_dir)
    if prune:
        for path in prune_stale(cache_dir):
            out.print(f"removed {path}", soft_wrap=True)
        out.print(f"{len(stale)} stale {'copy' if len(stale) == 1 else 'copies'} removed")
    elif stale:
        for path in stale:
            out.print(f"stale: {path} ({_mb(_size(path))})", soft_wrap=True)
        out.print(f"{len(stale)} stale {'copy' if len(stale) == 1 else 'copies'}; remove with: elastic-theory models --prune",
                  soft_wrap=True)


@models_app.command("export", cls=PlainHelpCommand)
@bad_input_exits_2
def export_command(
    name: str = typer.Argument(..., metavar="NAME", help="A built-in model (see `elastic-theory models`)."),
    out: Path = typer.Argument(..., metavar="DIR", help="A new (or empty) folder to write."),
    cache_dir: Path | None = folder_option("The cache folder; default: $ELASTIC_THEORY_CACHE or ~/.cache/elastic-theory.",
                                           "--cache-dir"),
) -> None:
    """Write a built-in model as a plain save_pretrained folder (float32 weights, config, tokenizer, chat template)
    that any transformers script loads with from_pretrained(DIR) and can fine-tune.

    The first use converts the source file once into the cache (about 20 s for smollm2-135m); the export copies
    that folder (538 MB for smollm2-135m).

    Examples:

    \b
      elastic-theory models export smollm2-135m smollm2-base
    """
    require_extra("transformers", "empirical", "models export")
    from ..empirical.builtin_models import builtin_model, export_builtin

    builtin_model(name)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; give a new folder to export into")
    written = export_builtin(name, out, cache_dir)
    console().print(f"{name} written to {written} ({_mb(_size(written))}); load it with "
                    f"AutoModelForCausalLM.from_pretrained({str(written)!r})", soft_wrap=True)
