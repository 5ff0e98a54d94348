r"""The compression protocol (Ji et al. 2025, Def. 3.3 and Thm. 3.4), made exact and runnable.

**Protocol.** Prune the token tree of a dataset to depth :math:`d`; each root-to-leaf path is one
symbol; a response is coded as its chunks of at most :math:`d` tokens
(:func:`~elastic_theory.theory.sequences.split_chunks`: :math:`\max(1, \lceil |x|/d \rceil)` chunks, every
one but the last a *cut* leaf at depth :math:`d`, the last an *EOS* leaf, the empty response one
chunk). The coded tree is ``tree.chunked(d)``: its leaf distribution :math:`q` is the frequency
of each chunk among all chunks, and for a dataset whose responses are at most :math:`d` tokens
long it equals ``tree.prune(d)``.

**What is reported** (all per response, bits), with :math:`\bar c = E[\max(1, \lceil |x|/d\rceil)]`
and :math:`H_d = -\sum_j q_j \log_2 q_j` the chunk-leaf entropy:

* ``entropy_bits`` :math:`= \bar c\, H_d`, the ideal (Shannon) code length of the chunk code;
* ``huffman_expected_bits`` :math:`= \bar c \sum_j q_j \ell_j`, a real Huffman code's lengths
  :math:`\ell_j`; exactly :math:`H_d \le \sum_j q_j \ell_j < H_d + 1` per chunk;
* ``paper_ideal_code_bits`` :math:`= \bar c \lceil H_d \rceil`, Thm. 3.4 as stated. It lies inside
  the Huffman bounds but is not the Huffman length (1/2, 1/4, 1/4: Huffman 3/2, paper 2); the
  difference is reported as ``discrepancy_bits`` and ``relative_discrepancy``, never hidden.

The identity :math:`\sum_{\text{responses}} \sum_{\text{chunks}} \ell = (\#\text{chunks}) \sum_j q_j \ell_j`
makes these per-response numbers exact, not approximations.

**Real coder.** :class:`ChunkCoder` entropy-codes a dataset, chunk by chunk, with an ANS coder
from ``constriction`` and decodes it back exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from .._validation import check_depth
from .tolerances import sum_tolerance
from .sequences import check_token_range, pad_sequences, split_chunks
from .tree import TokenTree

__all__ = [
    "ANS_PRECISION_BITS",
    "ChunkCoder",
    "CodeLengthReport",
    "EncodedDataset",
    "HuffmanCode",
    "code_length_report",
    "huffman_code",
]

#: constriction's default stream models quantize probabilities to this many fixed-point bits:
#: every leaf gets at least 2^-24, so at most 2^24 leaves can be coded, and a leaf of probability
#: q >= 2^-14 is coded with q rounded by < 2^-24 absolute, i.e. < 2^-10 relative, an overhead below
#: log2(1 + 2^-10) = 0.0014 bits per chunk (measured overhead: docs/protocol.md).
ANS_PRECISION_BITS = 24


@dataclass(frozen=True)
class HuffmanCode:
    r"""A binary Huffman code: symbol ``j`` has probability ``probs[j]`` and a codeword of ``lengths[j]`` bits."""

    probs: np.ndarray
    lengths: np.ndarray

    @property
    def expected_length(self) -> float:
        r""":math:`E[\ell] = \sum_j p_j \ell_j` in bits per symbol; :math:`H \le E[\ell] < H + 1`."""
        return float((self.probs * self.lengths).sum())

    @property
    def kraft_sum(self) -> float:
        r""":math:`\sum_j 2^{-\ell_j}`, summed exactly (``math.fsum``): 1 for a Huffman code (a full binary tree)."""
        return math.fsum(np.ldexp(1.0, -self.lengths).tolist())


def huffman_code(probs: np.ndarray | Sequence[float]) -> HuffmanCode:
    r"""The Huffman code of a distribution, its lengths read off a real Huffman tree.

    The tree is ``constriction.symbol.huffman.EncoderHuffmanTree``; the length of symbol
    :math:`j` is the number of bits its encoder emits for :math:`j`. ``probs`` need not be
    normalized (only ratios matter) but every entry must be finite and > 0 (a leaf with zero mass
    is not a symbol). One symbol gets the empty codeword (0 bits: nothing to tell).
    """
    import constriction

    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array, got shape {p.shape}")
    bad = ~np.isfinite(p) | (p <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"every probability must be finite and > 0; entry {i} is {p[i]!r} (drop zero-mass symbols)")
    tree = constriction.symbol.huffman.EncoderHuffmanTree(p)
    lengths = np.zeros(p.size, dtype=np.int64)
    for j in range(p.size if p.size > 1 else 0):
        encoder = constriction.symbol.QueueEncoder()
        encoder.encode_symbol(j, tree)
        lengths[j] = encoder.get_compressed_and_bitrate()[1]
    return HuffmanCode(p / p.sum(), lengths)


def _ceil_bits(h: float, n_terms: int) -> int:
    """``ceil(h)`` for an entropy computed in float64, snapping values within rounding of an integer.

    An entropy summed over ``n_terms`` terms is within :func:`~elastic_theory.theory.tolerances.sum_tolerance`
    of its exact value, so an exact 2 that came out as 2.0000000000000004 gives 2, not 3.
    """
    tol = sum_tolerance(n_terms, h)
    k = round(h)
    return int(k) if abs(h - k) <= tol else math.ceil(h)


@dataclass(frozen=True)
class CodeLengthReport:
    r"""Expected code lengths of the chunk protocol at depth ``depth``; see the module docstring.

    Per response, bits: ``entropy_bits``, ``huffman_expected_bits``, ``paper_ideal_code_bits``,
    ``full_entropy_bits`` (:math:`H` of the unpruned response distribution: no code for whole
    responses can beat it, so ``entropy_bits >= full_entropy_bits``), ``discrepancy_bits``
    (paper minus Huffman). Per chunk, bits: ``chunk_entropy_bits`` (:math:`H_d`),
    ``huffman_bits_per_chunk``. ``relative_discrepancy`` is ``discrepancy_bits /
    huffman_expected_bits`` (0 when both are 0). ``n_leaves`` is :math:`M`, the number of
    distinct chunks (symbols); ``n_sequences`` is |D| in responses.
    """

    depth: int
    n_sequences: float
    n_leaves: int
    mean_chunks: float
    chunk_entropy_bits: float
    huffman_bits_per_chunk: float
    entropy_bits: float
    huffman_expected_bits: float
    paper_ideal_code_bits: float
    full_entropy_bits: float
    discrepancy_bits: float
    relative_discrepancy: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON output)."""
        return asdict(self)


def code_length_report(tree: TokenTree, depth: int) -> CodeLengthReport:
    r"""Entropy, Huffman and Thm. 3.4 code lengths of ``tree``'s responses chunked at ``depth``.

    ``tree`` is an unpruned data tree (it must know whole responses to chunk them). The coded
    tree is ``tree.chunked(depth)``; see the module docstring for the formulas. All lengths are
    per response in bits; :math:`\lceil H_d \rceil` snaps an :math:`H_d` within float rounding of an
    integer to that integer.

    >>> t = TokenTree.from_sequences([[0], [1, 0], [1, 1]], 2, counts=[2, 1, 1])
    >>> r = code_length_report(t, depth=2)
    >>> r.entropy_bits, r.huffman_expected_bits, r.paper_ideal_code_bits
    (1.5, 1.5, 2.0)
    """
    d = check_depth(depth)
    chunks = tree.chunked(d)
    code = huffman_code(chunks.leaves.prob)
    mean_chunks = tree.mean_chunks(d)
    h_d = chunks.entropy()
    huffman = mean_chunks * code.expected_length
    paper = mean_chunks * _ceil_bits(h_d, chunks.n_leaves)
    disc = paper - huffman
    return CodeLengthReport(
        depth=d,
        n_sequences=tree.n_sequences,
        n_leaves=chunks.n_leaves,
        mean_chunks=mean_chunks,
        chunk_entropy_bits=h_d,
        huffman_bits_per_chunk=code.expected_length,
        entropy_bits=mean_chunks * h_d,
        huffman_expected_bits=huffman,
        paper_ideal_code_bits=paper,
        full_entropy_bits=tree.entropy(),
        discrepancy_bits=disc,
        relative_discrepancy=disc / huffman if huffman > 0 else 0.0,
    )


@dataclass(frozen=True)
class EncodedDataset:
    """A dataset entropy-coded by :class:`ChunkCoder`.

    ``compressed``: the ANS coder's uint32 words (native byte order); ``n_chunks``: symbols coded;
    ``n_responses``: responses; ``ideal_bits``: :math:`\\sum -\\log_2 q` over the coded chunks, the
    length no coder using ``q`` can beat on average.
    """

    compressed: np.ndarray
    n_chunks: int
    n_responses: int
    ideal_bits: float

    @property
    def n_bits(self) -> int:
        """Size of the compressed data in bits (whole 32-bit words)."""
        return 32 * int(self.compressed.size)

    @property
    def overhead_bits(self) -> float:
        """``n_bits - ideal_bits``: what the fixed-point coder and its final word cost over the ideal."""
        return self.n_bits - self.ideal_bits


class ChunkCoder:
    r"""Entropy-code datasets chunk by chunk with the leaf probabilities of a coding tree.

    ``coding_tree``'s leaves are the symbols and its leaf probabilities :math:`q` the model: use
    ``data_tree.chunked(depth)`` (the protocol's own code), or a model tree pruned to ``depth``
    (``TokenTree.from_next_token_fn(..., depth=depth)``) to code data with a model. Each response
    is split with :func:`~elastic_theory.theory.sequences.split_chunks`; a non-final chunk must be a *cut* leaf
    of the coding tree and a final chunk an *EOS* leaf, or encoding raises ``ValueError``.

    The coder is constriction's ANS (``constriction.stream.stack.AnsCoder``) with a categorical
    model over the leaves quantized to :data:`ANS_PRECISION_BITS` bits; the size is the ideal
    :math:`\sum -\log_2 q` plus the quantization overhead (see :data:`ANS_PRECISION_BITS`) plus at
    most about 64 bits of coder state.

    >>> t = TokenTree.from_sequences([[0, 1, 1], [1], [0, 1, 1]], 2)
    >>> coder = ChunkCoder(t.chunked(2), depth=2)
    >>> enc = coder.encode([[0, 1, 1], [1]])
    >>> coder.decode(enc)
    [[0, 1, 1], [1]]
    """

    def __init__(self, coding_tree: TokenTree, depth: int):
        self.tree = coding_tree
        self.depth = check_depth(depth)
        lv = coding_tree.leaves
        if lv.node.size > 2**ANS_PRECISION_BITS:
            raise ValueError(
                f"the coding tree has {lv.node.size} leaves, more than the coder's 2^{ANS_PRECISION_BITS} "
                "probability quanta; prune it to a smaller depth"
            )
        self.leaf_prob = lv.prob
        # symbol of the EOS / cut leaf at each node (-1: no such leaf)
        self._eos_symbol = np.full(coding_tree.n_nodes, -1, dtype=np.int64)
        self._cut_symbol = np.full(coding_tree.n_nodes, -1, dtype=np.int64)
        sym = np.arange(lv.node.size)
        self._eos_symbol[lv.node[lv.is_eos]] = sym[lv.is_eos]
        self._cut_symbol[lv.node[~lv.is_eos]] = sym[~lv.is_eos]

    @cached_property
    def _model(self):
        import constriction

        return constriction.stream.model.Categorical(self.leaf_prob, perfect=False)

    def symbols(self, sequences: Sequence[Sequence[int]] | np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The leaf index (symbol) of every chunk of ``sequences``, in order; raises on a chunk that is no leaf."""
        tokens, lens = pad_sequences(sequences, lengths)
        if lens.size == 0:
            raise ValueError("the dataset is empty: nothing to encode")
        check_token_range(tokens, lens, self.tree.vocab_size)
        chunks, clen, is_last, rows = split_chunks(tokens, lens, self.depth)
        node = np.zeros(rows.size, dtype=np.int64)
        for j in range(chunks.shape[1]):
            node = np.where(clen > j, self.tree.child(node, chunks[:, j]), node)
        node_ok = np.maximum(node, 0)
        symbol = np.where(is_last, self._eos_symbol[node_ok], self._cut_symbol[node_ok])
        symbol[node < 0] = -1
        if (symbol < 0).any():
            c = int(np.flatnonzero(symbol < 0)[0])
            kind = "final (EOS)" if is_last[c] else "non-final (cut)"
            raise ValueError(
                f"response {int(rows[c])}: its {kind} chunk {chunks[c, : clen[c]].tolist()} is not a leaf of the coding "
                f"tree at depth {self.depth}; code with a tree that covers the data (e.g. a mixture with the data tree)"
            )
        return symbol

    def encode(self, sequences: Sequence[Sequence[int]] | np.ndarray, lengths: np.ndarray | None = None) -> EncodedDataset:
        r"""Entropy-code a dataset (list of token sequences, or padded array with ``lengths``)."""
        import constriction

        symbol = self.symbols(sequences, lengths)
        n_responses = int(np.count_nonzero(self.tree.leaves.is_eos[symbol]))
        ideal = float(-np.log2(self.leaf_prob[symbol]).sum())
        if self.leaf_prob.size == 1:  # one symbol: nothing to tell (constriction needs >= 2)
            return EncodedDataset(np.zeros(0, dtype=np.uint32), int(symbol.size), n_responses, ideal)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(symbol.astype(np.int32), self._model)
        return EncodedDataset(coder.get_compressed(), int(symbol.size), n_responses, ideal)

    def decode(self, encoded: EncodedDataset) -> list[list[int]]:
        """Decode an :class:`EncodedDataset` made by a coder with the same tree and depth."""
        import constriction

        if self.leaf_prob.size == 1:
            symbol = np.zeros(encoded.n_chunks, dtype=np.int64)
        else:
            coder = constriction.stream.stack.AnsCoder(encoded.compressed)
            symbol = np.asarray(coder.decode(self._model, encoded.n_chunks), dtype=np.int64)
            if not coder.is_empty():
                raise ValueError("the compressed data holds more than n_chunks symbols: it was made with another coder")
        lv = self.tree.leaves
        tokens, lens = self.tree.paths(lv.node[symbol])
        ends = lv.is_eos[symbol]
        if encoded.n_chunks and not ends[-1]:
            raise ValueError("the decoded chunks do not end with an EOS leaf: the data was made with another coder")
        flat = tokens[np.arange(tokens.shape[1])[None, :] < lens[:, None]]
        response = np.concatenate([[0], np.cumsum(ends)[:-1]])
        resp_len = np.bincount(response, weights=lens, minlength=int(ends.sum())).astype(np.int64)
        return [part.tolist() for part in np.split(flat, np.cumsum(resp_len)[:-1])]
