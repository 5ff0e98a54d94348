"""Users' fine-tuning data in three shapes: preference pairs, plain texts and chat conversations (``finetune --data``).

A JSONL file holds one shape, told by its first record's fields:

* ``{"prompt", "aligned", "unaligned"}``: a :class:`~elastic_theory.data.corpora.PreferencePair` (SFT on one
  side with the prompt masked, or DPO);
* ``{"text"}``: a :class:`~elastic_theory.data.corpora.LabelledText`, trained on with the causal LM loss on
  every token;
* ``{"messages": [{"role", "content"}, ...]}``: a :class:`ChatExample`, rendered with the model's chat template
  and trained on with the loss on the assistant turns only.

Every record must have the file's shape; errors name ``file:line``. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .corpora import LabelledText, PreferencePair, read_pairs_jsonl
from .io import iter_jsonl

__all__ = ["FORMATS", "CHAT_ROLES", "ChatExample", "data_format", "read_training_jsonl"]

FORMATS = ("pairs", "text", "messages")
"""The shapes of training data, as :func:`data_format` names them."""
CHAT_ROLES = ("system", "user", "assistant")
"""The roles a chat message may have."""


@dataclass(frozen=True)
class ChatExample:
    """A conversation: ``messages`` is a tuple of ``{"role", "content"}`` dicts with at least one assistant turn."""

    name: str
    messages: tuple[dict, ...]

    @property
    def text(self) -> str:
        """The contents joined by newlines: the example's identity for splits and overlap checks."""
        return "\n".join(m["content"] for m in self.messages)


def data_format(examples) -> str:
    """``"pairs"``, ``"text"`` or ``"messages"``: the shape of a non-empty list of training examples."""
    first = examples[0]
    return "pairs" if isinstance(first, PreferencePair) else "messages" if isinstance(first, ChatExample) else "text"


def _messages(value, where: str) -> tuple[dict, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES or not isinstance(m.get("content"), str) \
                or not m["content"]:
            raise ValueError(f"{where}: message {i} must be an object with a role ({', '.join(CHAT_ROLES)}) and a "
                             "non-empty string content")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"{where}: the conversation has no assistant turn, so nothing would be trained on")
    return tuple(out)


def read_training_jsonl(path: str | os.PathLike) -> list:
    """The examples of a JSONL file of one shape (module docstring); ``ValueError`` naming ``file:line`` for a
    record of another shape or a bad field, and for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    records = list(iter_jsonl(path))
    if not records:
        raise ValueError(f"{path}: the file holds no records")
    first = records[0][1]
    kind = "pairs" if isinstance(first, dict) and "prompt" in first else \
        "messages" if isinstance(first, dict) and "messages" in first else "text"
    if kind == "pairs":
        return read_pairs_jsonl(path)
    out = []
    for where, record in records:
        if not isinstance(record, dict) or (kind == "messages") != ("messages" in record) or "prompt" in record:
            raise ValueError(f"{where}: every record must have the first record's shape ({kind}: "
                             f"{'a messages list' if kind == 'messages' else 'a text field'})")
        if kind == "messages":
            out.append(ChatExample(where, _messages(record["messages"], where)))
        else:
            text = record.get("text")
            if not isinstance(text, str) or not text:
                raise ValueError(f"{where}: expected a JSON object with a non-empty string field 'text' (or "
                                 "'messages', or 'prompt', 'aligned' and 'unaligned')")
            out.append(LabelledText(where, text))
    return out
