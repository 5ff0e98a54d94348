"""Data in and out: JSONL and atomic writes, the offline corpora, the text shipped with Python and gensim, the synthetic world.

Every name below imports from here (``from elastic_theory.data import ...``) and loads its module on first use.
"""

from __future__ import annotations

from .. import lazy_exports

#: The module that provides each public name.
EXPORTS: dict[str, tuple[str, ...]] = {
    ".io": (
        "NON_FINITE_KEY", "STDOUT", "atomic_file", "check_output_path", "decode_utf8", "file_lines",
        "iter_jsonl", "read_token_jsonl", "to_jsonable", "write_json_atomic", "write_text_atomic",
    ),
    ".corpora": (
        "REFUSALS", "LabelledText", "MEASURE_FRACTION", "PreferencePair", "Split", "jailbreakbench_pairs",
        "package_data_file", "pair_texts", "POLARITY_PROMPT", "polarity_pairs", "polarity_sentences",
        "read_pairs_jsonl", "read_texts_jsonl", "split_train_measure", "vader_compound", "item_hash",
        "wikipedia_sample",
    ),
    ".overlap": ("TrainingText", "documents_holding", "normalize_space", "training_text"),
    ".training_data": ("FORMATS", "CHAT_ROLES", "ChatExample", "data_format", "read_training_jsonl"),
    ".builtin_text": (
        "BYTE_VOCAB_SIZE", "WIKIPEDIA_SAMPLE", "gensim_test_file", "prose_lines", "stdlib_sentences",
        "wikipedia_articles", "wikipedia_prefix_tree", "wikipedia_sentences",
    ),
    ".synthetic": (
        "ROLES", "Datasets", "SyntheticWorld", "WeightedSequences", "WorldConfig", "check_weights",
        "exact_fraction",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
