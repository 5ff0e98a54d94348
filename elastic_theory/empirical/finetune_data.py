r"""Token ids and loss labels of the plain-text and chat examples that :func:`~elastic_theory.empirical.finetune.run_finetune`
trains on with SFT (pairs go through trl's prompt-completion format instead).

* a text (:class:`~elastic_theory.data.corpora.LabelledText`): the tokenizer's own leading special tokens
  (BOS where it adds one), the text's tokens and EOS; every token after the first is a label, so the loss is
  the causal LM loss :math:`-\frac{1}{T-1}\sum_{t \geq 2} \ln p(x_t \mid x_{<t})` over the whole text;
* a conversation (:class:`~elastic_theory.data.training_data.ChatExample`): the chat template's rendering
  of all messages, cut into segments at each assistant turn. An assistant turn is the text between the
  rendering of the messages before it with the generation prompt and the rendering up to and including it
  (the template's end-of-turn marker is part of the turn: the model learns to stop). Each segment is
  tokenized on its own (no special tokens added), so a token never straddles a turn boundary; labels are
  the token ids inside assistant turns and ``-100`` (ignored by the loss) elsewhere.

Both are cut to ``max_length`` tokens. ``ValueError`` (one line) for a tokenizer without a chat template, a
template whose renderings are not prefixes of each other (the turns cannot be found), or an example
with no label left within ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["IGNORE", "chat_segments", "lm_example", "lm_examples"]

IGNORE = -100
"""The label that the loss skips (transformers' ``ignore_index``)."""


def _render(tokenizer, messages, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def chat_segments(tokenizer, messages: Sequence[dict]) -> list[tuple[str, bool]]:
    """The rendered conversation as ``(text, is_assistant_turn)`` segments whose concatenation is the rendering."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat data (a messages field) needs a tokenizer with a chat template; this model's has none")
    full = _render(tokenizer, messages, False)
    segments, done = [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, through = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[: i + 1], False)
        if not (through.startswith(before) and full.startswith(through) and done <= len(before)):
            raise ValueError("the chat template does not render a conversation's first turns as the start of the whole "
                             "conversation, so its assistant turns cannot be found")
        segments += [(full[done:len(before)], False), (full[len(before):len(through)], True)]
        done = len(through)
    segments.append((full[done:], False))
    return [(text, assistant) for text, assistant in segments if text]


def _special_prefix(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before a text (BOS for Llama-like tokenizers, none for GPT-2's)."""
    plain = tokenizer("x", add_special_tokens=False).input_ids
    marked = tokenizer("x").input_ids
    return marked[: len(marked) - len(plain)] if marked[len(marked) - len(plain):] == plain else []


def lm_example(tokenizer, example, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one text or chat example (module docstring), cut to ``max_length`` tokens."""
    ids = list(_special_prefix(tokenizer))
    labels = [IGNORE] * len(ids)
    messages = getattr(example, "messages", None)
    if messages is None:
        body = tokenizer(example.text, add_special_tokens=False).input_ids
        if tokenizer.eos_token_id is not None:
            body = body + [tokenizer.eos_token_id]
        ids += body
        labels = [IGNORE] + ids[1:]  # the first token is predicted by nothing; as a label it would only count in
        # the trainer's denominator (transformers counts the labels before the shift), lowering every loss
    else:
        for text, assistant in chat_segments(tokenizer, messages):
            piece = tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            labels += piece if assistant else [IGNORE] * len(piece)
    return ids[:max_length], labels[:max_length]


def lm_examples(tokenizer, examples: Sequence, max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """:func:`lm_example` of every example; ``ValueError`` when an example keeps no label within ``max_length``."""
    pairs = [lm_example(tokenizer, x, max_length) for x in examples]
    empty = [x.name for x, (_, labels) in zip(examples, pairs) if all(t == IGNORE for t in labels[1:])]
    if empty:
        raise ValueError(f"{len(empty)} of {len(examples)} examples have no trained token within max_length {max_length} "
                         f"(the first: {empty[0]}): raise max_length or shorten what comes before the assistant turns")
    return [p[0] for p in pairs], [p[1] for p in pairs]
