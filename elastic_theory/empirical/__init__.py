"""Language-model measurements: rates of real causal LMs, coding with a model, tracking during training.

This subpackage imports torch and transformers; the rest of :mod:`elastic_theory` does not.
"""

from __future__ import annotations

from .data import Document, check_documents, read_documents
from .loading import ModelSource, load_model_and_tokenizer, locate_model, resolve_device, smollm2_gguf_path
from .scoring import (
    DocumentScore,
    RateEstimate,
    bootstrap_ci,
    measure_rates,
    rate_estimate,
    rolling_windows,
    score_documents,
    score_token_ids,
)
from .probe import ProbeSettings, run_probe
from .probe_text import encode_dataset
from .model_coding import ModelCode, compress_text, decompress_text
from .model_tree import model_token_tree, next_token_probabilities
from .tiny import byte_bpe_tokenizer, tiny_gpt2
from .tracker import RateTracker

__all__ = [
    "Document",
    "DocumentScore",
    "ModelCode",
    "ModelSource",
    "ProbeSettings",
    "RateTracker",
    "RateEstimate",
    "bootstrap_ci",
    "byte_bpe_tokenizer",
    "check_documents",
    "compress_text",
    "decompress_text",
    "encode_dataset",
    "load_model_and_tokenizer",
    "locate_model",
    "measure_rates",
    "model_token_tree",
    "next_token_probabilities",
    "rate_estimate",
    "read_documents",
    "resolve_device",
    "rolling_windows",
    "run_probe",
    "score_documents",
    "score_token_ids",
    "smollm2_gguf_path",
    "tiny_gpt2",
]
