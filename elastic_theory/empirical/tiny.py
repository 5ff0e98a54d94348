"""Tiny causal LMs built from a config, with a byte-level BPE tokenizer trained offline in well under a second.

For tests, benchmarks and experiments that train from scratch: no file is read and nothing is
downloaded. Dropout is 0 (GPT-2's default 0.1 costs 30-50% speed on the CPU and makes training
non-deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["SPECIAL_TOKEN", "byte_bpe_tokenizer", "tiny_gpt2", "tiny_llama"]

SPECIAL_TOKEN = "<|endoftext|>"
"""The tokenizer's only special token, used as BOS, EOS and padding (as GPT-2 does)."""


def byte_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 300):
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic), wrapped for transformers.

    Every byte is in the alphabet, so any text encodes and ``decode(encode(text)) == text``.
    Id 0 is :data:`SPECIAL_TOKEN` (BOS = EOS = PAD); ``vocab_size`` counts it and the 256 bytes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257:
        raise ValueError(f"vocab_size must be >= 257 (256 bytes + the special token), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[SPECIAL_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL_TOKEN, eos_token=SPECIAL_TOKEN, pad_token=SPECIAL_TOKEN
    )


def tiny_gpt2(tokenizer, *, seed: int, n_layer: int = 2, n_embd: int = 32, n_head: int = 2, n_positions: int = 64):
    """A randomly initialized ``GPT2LMHeadModel`` (dropout 0) for ``tokenizer``, in eval mode.

    The initialization draws from a forked torch RNG seeded with ``seed``; the global RNG state is
    left as it was.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


def tiny_llama(tokenizer, *, seed: int, n_layer: int = 2, hidden: int = 32, n_head: int = 2, n_positions: int = 64):
    """A randomly initialized ``LlamaForCausalLM`` for ``tokenizer`` (SmolLM2's architecture: ``q_proj``,
    ``v_proj`` ... as LoRA targets; MLP width ``2 * hidden``), in eval mode; seeded like :func:`tiny_gpt2`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=n_layer,
        num_attention_heads=n_head, num_key_value_heads=n_head, max_position_embeddings=n_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
