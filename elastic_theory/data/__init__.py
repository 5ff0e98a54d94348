"""Data in and out: JSONL and atomic writes, the offline corpora, the text shipped with Python and gensim, the synthetic world."""
