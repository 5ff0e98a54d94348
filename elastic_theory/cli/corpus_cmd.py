"""``elastic-theory corpus``: write a built-in offline dataset (or one side of a split of it) as JSONL for measure/compare."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console

CORPORA = ("jailbreakbench", "polarity", "wikipedia")


def corpus_records(name: str, *, side: str, label: str | None, unit: str, template: str, split: str | None,
                   n_measure: int | None, n_train: int | None, seed: int) -> list[dict]:
    """The records (``name``, ``text`` and, where there is one, ``label``) that ``corpus`` writes."""
    from ..data import corpora

    if name == "jailbreakbench":
        items = corpora.jailbreakbench_pairs()
    elif name == "polarity":
        items = corpora.polarity_sentences()
        if label not in (None, "positive", "negative"):
            raise ValueError(f"--label {label!r}: the polarity sentences are 'positive' or 'negative'")
    elif name == "wikipedia":
        items = corpora.wikipedia_sample(unit=unit)
    else:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    if split is not None:
        if split not in ("train", "measure"):
            raise ValueError(f"--split {split!r}: use train or measure")
        if n_measure is None:
            raise ValueError("--split needs --n-measure (the size of the measurement set; training gets its side or --n-train)")
        items = getattr(corpora.split_train_measure(items, n_measure=n_measure, n_train=n_train, seed=seed), split)
    if label is not None:  # after the split, so that both labels come from the same disjoint halves
        items = [x for x in items if x.label == label]
    if name == "jailbreakbench":
        texts = corpora.pair_texts(items, side, template)
        return [{"name": p.name, "text": t, "label": p.category} for p, t in zip(items, texts)]
    return [{"name": x.name, "text": x.text, "label": x.label} for x in items]


@app.command("corpus")
@bad_input_exits_2
def corpus_command(
    name: str = typer.Argument(..., help=f"One of: {', '.join(CORPORA)}."),
    out: Path = typer.Option(..., "--out", help="JSONL file to write (one {name, text, label} object per line)."),
    side: str = typer.Option("aligned", "--side", help="jailbreakbench: aligned (our refusals) or unaligned (the benchmark's 'Sure, here is' targets)."),
    label: str | None = typer.Option(None, "--label", help="polarity: keep only positive or negative sentences."),
    unit: str = typer.Option("paragraph", "--unit", help="wikipedia: article or paragraph."),
    template: str = typer.Option("{prompt}\n{response}", "--template", help="jailbreakbench: how a prompt and its response form one document."),
    split: str | None = typer.Option(None, "--split", help="Write only the train or the measure part of a seeded split; each item's side is set by a hash of its text, so no size moves an item across."),
    n_measure: int | None = typer.Option(None, "--n-measure", help="Items in the measurement part (with --split; at most the measurement side, half the items)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Items in the training part (with --split; default: all of the training side, the other half)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
) -> None:
    """Write a dataset that ships inside an installed package as JSONL, offline, for measure and compare.

    jailbreakbench: 100 harmful goals with our refusals (aligned) or the benchmark's targets (unaligned).
    polarity: 200 Pang-Lee movie-review sentences. wikipedia: gensim's 106-article sample.
    The same --seed and --n-measure give the same split for every side and label (the label filter
    applies after the split; --n-measure counts items of both labels).

    Examples:

    \b
      elastic-theory corpus jailbreakbench --side aligned --split measure --n-measure 20 --out align.jsonl
      elastic-theory corpus wikipedia --split measure --n-measure 8 --out wiki.jsonl
      elastic-theory corpus polarity --label positive --out positive.jsonl
    """
    from ..data.io import to_jsonable, write_text_atomic

    if side not in ("aligned", "unaligned"):
        raise ValueError(f"--side {side!r}: use aligned or unaligned")
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give a file path for the output")
    records = corpus_records(name, side=side, label=label, unit=unit, template=template, split=split,
                             n_measure=n_measure, n_train=n_train, seed=seed)
    write_text_atomic(out, "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in records))
    console().print(f"{len(records)} documents ({sum(len(r['text'].encode()) for r in records)} bytes) written to {out}")
