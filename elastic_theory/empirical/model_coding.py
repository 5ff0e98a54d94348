r"""Lossless compression of text with a causal LM's next-token distributions and a range coder.

The coder is ``constriction``'s range coder (``stream.queue``) with a ``Categorical`` entropy
model per token, built (``perfect=False``) from the model's float64 softmax. Its output exceeds
the ideal code length :math:`-\sum_t \log_2 p(x_t \mid x_{<t})` by the fixed-point quantization
of the probabilities (24-bit; every symbol keeps at least :math:`2^{-24}`) plus at most a few
32-bit words of flushing.

Decoding must recompute the very same probabilities, bit for bit. The encoder runs one forward
pass per window (windows as in :func:`~elastic_theory.empirical.scoring.rolling_windows`); the
decoder, for each token, runs a forward pass of the same shape on the same window with the
tokens not yet decoded replaced by the prefix token. Under causal attention the row that predicts
the token reads only known positions, and a kernel that is deterministic for a given shape gives
the identical row. This holds on the same device, dtype, torch build and thread count; it is not
guaranteed across machines, thread counts or GPU kernels (see docs/measurement.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from .scoring import LN2, eval_mode, max_context, prefix_token_id, rolling_windows

__all__ = ["ModelCode", "compress_text", "decompress_text"]

_HEADER = struct.Struct("<III")  # n_tokens, context, stride


@dataclass(frozen=True)
class ModelCode:
    """Compressed text: ``payload`` (header + range-coder words) and its ideal length in bits."""

    payload: bytes
    n_tokens: int
    ideal_bits: float

    @property
    def n_bits(self) -> int:
        return 8 * len(self.payload)


def _window_probs(model, window: np.ndarray, n_scored: int) -> np.ndarray:
    """Next-token probabilities (float64, shape ``(n_scored, V)``) of the last ``n_scored`` positions."""
    device = next(model.parameters()).device
    ids = torch.from_numpy(window[None, :]).to(device)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=n_scored).logits
    return torch.softmax(logits[0].double(), dim=-1).cpu().numpy()


def _family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def compress_text(model, tokenizer, text: str, *, context: int | None = None, stride: int | None = None) -> ModelCode:
    r"""Compress ``text`` with ``model``: tokens coded by a range coder under the model's distributions.

    The text is tokenized as in scoring (no special tokens; the first token conditioned on BOS).
    ``ideal_bits`` is :math:`-\sum_t \log_2 p_t` from the same float64 probabilities. Raises
    ``ValueError`` for empty text or a tokenizer whose decoding does not give back ``text``.
    """
    import constriction

    if not text:
        raise ValueError("empty text: nothing to compress")
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    if tokenizer.decode(ids) != text:
        raise ValueError("the tokenizer does not decode its tokens back to this text exactly; it cannot code it losslessly")
    context = max_context(model) if context is None else context
    stride = context if stride is None else stride
    z = np.asarray([prefix_token_id(tokenizer), *ids], dtype=np.int64)
    encoder, family, ideal = constriction.stream.queue.RangeEncoder(), _family(), 0.0
    with eval_mode(model), torch.inference_mode():
        for w in rolling_windows(len(ids), context, stride):
            probs = _window_probs(model, z[w.start : w.end], w.n_scored)
            targets = z[w.end - w.n_scored + 1 : w.end + 1]
            encoder.encode(targets.astype(np.int32), family, probs)
            ideal -= float(np.log(probs[np.arange(w.n_scored), targets]).sum()) / LN2
    words = encoder.get_compressed().astype("<u4")
    return ModelCode(_HEADER.pack(len(ids), context, stride) + words.tobytes(), len(ids), ideal)


def decompress_text(model, tokenizer, payload: bytes) -> str:
    """Invert :func:`compress_text` with the same model and tokenizer on the same kind of device.

    One forward pass per token. Raises ``ValueError`` for a truncated payload or a context the
    model cannot take.
    """
    import constriction

    if len(payload) < _HEADER.size or (len(payload) - _HEADER.size) % 4:
        raise ValueError("not a payload written by compress_text (wrong length)")
    n_tokens, context, stride = _HEADER.unpack_from(payload)
    if context > max_context(model):
        raise ValueError(f"the payload was coded with context {context}, beyond this model's {max_context(model)}")
    words = np.frombuffer(payload, dtype="<u4", offset=_HEADER.size).astype(np.uint32)
    decoder, family = constriction.stream.queue.RangeDecoder(words), _family()
    prefix = prefix_token_id(tokenizer)
    z = np.full(n_tokens + 1, prefix, dtype=np.int64)
    with eval_mode(model), torch.inference_mode():
        for w in rolling_windows(n_tokens, context, stride):
            first = w.end - w.n_scored + 1  # z index of the window's first target
            window = z[w.start : w.end].copy()  # positions >= first - start still hold the prefix token
            for j in range(w.n_scored):
                probs = _window_probs(model, window, w.n_scored)[j]
                symbol = int(decoder.decode(family, probs[None, :])[0])
                z[first + j] = symbol
                if first + j - w.start < window.size:
                    window[first + j - w.start] = symbol
    return tokenizer.decode(z[1:].tolist())
