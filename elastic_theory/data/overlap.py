"""Whether measurement documents hold text a model was trained on: the check behind "training and measurement share
a document" (``finetune --track``, ``compare`` against a ``finetune`` run, the protocols' held-out sets).

A training example is described by what it put in front of the model (:class:`TrainingText`): the strings that
all appear in it (``required``) and, for a preference pair, the responses of which it holds one (``any_of``).
A measurement document *holds* the example when, after collapsing runs of whitespace to one space, it contains
every required string and (when there are any) one of the ``any_of`` strings. So a ``corpus`` document
``"{prompt}\\n{response}"`` holds its pair under any template that keeps the prompt and response verbatim,
while two pairs that share a prompt but not a response (the polarity pairs) stay apart. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TrainingText", "documents_holding", "normalize_space", "training_text"]


def normalize_space(text: str) -> str:
    """``text`` with every run of whitespace made one space and the ends stripped."""
    return " ".join(text.split())


@dataclass(frozen=True)
class TrainingText:
    """What one training example put in front of the model: all of ``required`` and, if given, one of ``any_of``."""

    name: str
    required: tuple[str, ...]
    any_of: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "required": list(self.required), "any_of": list(self.any_of)}

    @classmethod
    def from_dict(cls, record: dict) -> TrainingText:
        """The inverse of :meth:`to_dict`; ``ValueError`` for a record of another shape."""
        try:
            required = tuple(str(x) for x in record["required"])
            any_of = tuple(str(x) for x in record.get("any_of", ()))
            return cls(str(record["name"]), required, any_of)
        except (KeyError, TypeError):
            raise ValueError(f"not a training-text record: {str(record)[:80]}") from None


def documents_holding(training: Sequence[TrainingText], documents: Sequence[str]) -> list[int]:
    """The indices (ascending) of ``documents`` that hold at least one of the ``training`` examples.

    One pass over the joined documents per example finds the examples that occur anywhere (a C-speed
    substring search); only those are then looked for document by document.
    """
    docs = [normalize_space(d) for d in documents]
    joined = "\0".join(docs)
    hits: set[int] = set()
    for example in training:
        required = [normalize_space(r) for r in example.required if normalize_space(r)]
        any_of = [normalize_space(a) for a in example.any_of if normalize_space(a)]
        if not required and not any_of:
            continue
        if any(r not in joined for r in required) or (any_of and not any(a in joined for a in any_of)):
            continue
        hits.update(i for i, d in enumerate(docs)
                    if all(r in d for r in required) and (not any_of or any(a in d for a in any_of)))
    return sorted(hits)


def training_text(example) -> TrainingText:
    """The :class:`TrainingText` of a training example: a preference pair (its prompt and one of its two
    responses), a chat example (every message's content) or any record with ``name`` and ``text`` (the text)."""
    from .corpora import PreferencePair

    if isinstance(example, PreferencePair):
        return TrainingText(example.name, (example.prompt,), (example.aligned, example.unaligned))
    messages = getattr(example, "messages", None)
    if messages is not None:
        return TrainingText(example.name, tuple(m["content"] for m in messages))
    return TrainingText(example.name, (example.text,))
