"""From a batch of conversations to the model's numbers.

Everything starts from one sparse matrix: a row per message, a column per hashed
unigram or bigram of the message's normalised words (binary presence). From it:

- the text features of a conversation are the sum of its message rows divided by
  the square root of its length (so a prefix's features are a running sum: the
  running score needs no rescoring, see :meth:`FeatureBatch.prefix_dense`);
- each message's characteristic strengths are one sparse product with the hashed
  lexicon of :mod:`scoring_engine.model.lexicon`;
- the dense conversation features are running sums of per-message quantities,
  so they too exist for every prefix at the cost of a cumulative sum.

Hashing (no vocabulary) keeps model files free of message text, and gives engines a
non-reversible vector to send back as feedback in the very space the model learns in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.utils import murmurhash3_32

from scoring_engine.conversation import Conversation
from scoring_engine.model.lexicon import (
    ADULT_AGES,
    LEXICON,
    MINOR_AGES,
    PHRASE_CHARACTERISTICS,
    declared_ages,
    may_state_age,
    stated_age,
)
from scoring_engine.model.text import (
    FUNCTION_WORDS,
    batch_tokens,
    canonical_word,
    join_messages,
    normalise_words,
)

FEATURE_VERSION = 2
N_HASH_FEATURES = 2**18

# Rates divide by at least this many messages, so a prefix of one or two messages does not
# read as a conversation made of nothing else.
RATE_FLOOR = 10.0

# Dense features, in column order (each a function of running sums, so defined on prefixes).
# Participants count only beyond two: one-sided transcripts in the training data (each
# side kept apart) must not teach the model that a lone author means grooming, and a
# running score starts with one author.
DENSE_FEATURES: tuple[str, ...] = (
    *(f"log_count_{c}" for c in PHRASE_CHARACTERISTICS),
    *(f"rate_{c}" for c in PHRASE_CHARACTERISTICS),
    "age_disclosure_gap",
    "stated_minor",
    "log_extra_authors",
    "multi_party",
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


_SEPARATOR_CODE = -1
_DROPPED_CODE = -2
# Added to the code of a token that may state an age (a short number, "thirteen"), so
# the age pattern runs only on the few messages holding one.
_AGE_HINT_FLAG = 1 << 40
# Added to the code of a function word: it counts in bigrams but not as a unigram.
_FUNCTION_WORD_FLAG = 1 << 41
_FLAGS = _AGE_HINT_FLAG | _FUNCTION_WORD_FLAG
_MAX_CACHED_TOKENS = 2_000_000


def _word_hash(word: str) -> int:
    return int(murmurhash3_32(word, seed=FEATURE_VERSION, positive=True))


def _bigram_hash(first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]) -> IntArray:
    """Combine two word hashes into the hash of the bigram (vectorised, 32-bit mix)."""
    mixed = (first.astype(np.uint64) * np.uint64(0x9E3779B1)) ^ second.astype(np.uint64)
    mixed &= np.uint64(0xFFFFFFFF)
    mixed ^= mixed >> np.uint64(16)
    mixed = (mixed * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    mixed ^= mixed >> np.uint64(13)
    return mixed.astype(np.int64)


class _TokenCodes:
    """Raw token -> hash of its canonical word, computed once per distinct token."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self.codes = {"\x00": _SEPARATOR_CODE}

    def encode(self, tokens: list[str]) -> IntArray:
        codes = self.codes
        if len(codes) > _MAX_CACHED_TOKENS:
            self.reset()
            codes = self.codes
        for raw in set(tokens).difference(codes):
            word = canonical_word(raw)
            code = _word_hash(word) if word else _DROPPED_CODE
            if word and may_state_age(raw):
                code += _AGE_HINT_FLAG
            if word in FUNCTION_WORDS:
                code += _FUNCTION_WORD_FLAG
            codes[raw] = code
        return np.fromiter(map(codes.__getitem__, tokens), dtype=np.int64, count=len(tokens))


_TOKEN_CODES = _TokenCodes()


def term_column(words: Sequence[str]) -> int:
    """The feature column of a one- or two-word term of normalised words."""
    hashes = np.array([_word_hash(w) for w in words], dtype=np.int64)
    if len(words) == 1:
        return int(hashes[0] % N_HASH_FEATURES)
    if len(words) == 2:
        return int(_bigram_hash(hashes[:1], hashes[1:])[0] % N_HASH_FEATURES)
    raise ValueError("terms have one or two words")


def _csr_from_sorted_rows(rows: IntArray, cols: IntArray, n_rows: int) -> sp.csr_matrix:
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    data = np.ones(cols.size, dtype=np.float32)
    return sp.csr_matrix((data, cols, indptr), shape=(n_rows, N_HASH_FEATURES))


def hash_messages(joined: str, n_messages: int) -> tuple[sp.csr_matrix, IntArray]:
    """Hashed unigram and bigram counts, one row per message of :func:`join_messages`.

    Also returns the indices of messages holding a token that may state an age.
    """
    codes = _TOKEN_CODES.encode(batch_tokens(joined))
    codes = codes[codes != _DROPPED_CODE]
    is_separator = codes == _SEPARATOR_CODE
    # Each message's tokens are followed by one separator: the row of a token is the
    # number of separators before it. Tokens come in message order, so rows are sorted.
    rows_all = np.cumsum(is_separator) - is_separator
    flags = np.where(is_separator, 0, codes & _FLAGS)
    age_hints = np.unique(rows_all[(flags & _AGE_HINT_FLAG) != 0])
    codes = np.where(is_separator, codes, codes & ~_FLAGS)
    words = ~is_separator
    counted = words & ((flags & _FUNCTION_WORD_FLAG) == 0)
    unigrams = _csr_from_sorted_rows(
        rows_all[counted], codes[counted] % N_HASH_FEATURES, n_messages
    )
    pair = words[:-1] & words[1:]
    bigrams = _csr_from_sorted_rows(
        rows_all[:-1][pair],
        _bigram_hash(codes[:-1][pair], codes[1:][pair]) % N_HASH_FEATURES,
        n_messages,
    )
    # The sum is canonical CSR: duplicate columns of a row are added into counts.
    return (unigrams + bigrams).tocsr(), age_hints


def lexicon_matrix() -> sp.csr_matrix:
    """Hashed lexicon: column c holds the weights of characteristic c's phrases."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for col, name in enumerate(PHRASE_CHARACTERISTICS):
        for phrase, weight in LEXICON[name].items():
            words = normalise_words(phrase)
            if not 1 <= len(words) <= 2:
                continue
            rows.append(term_column(words))
            cols.append(col)
            vals.append(weight)
    matrix = sp.coo_matrix(
        (vals, (rows, cols)), shape=(N_HASH_FEATURES, len(PHRASE_CHARACTERISTICS))
    ).tocsr()
    # A phrase listed twice (or two phrases colliding) counts once at its strongest.
    matrix.sum_duplicates()
    matrix.data = np.minimum(matrix.data, 1.0)
    return matrix


_LEXICON: sp.csr_matrix | None = None


def _lexicon() -> sp.csr_matrix:
    global _LEXICON  # noqa: PLW0603 - built once per process, read-only afterwards
    if _LEXICON is None:
        _LEXICON = lexicon_matrix()
    return _LEXICON


@dataclass(frozen=True)
class FeatureBatch:
    """The features of a batch of conversations, per message and per conversation."""

    n_conversations: int
    offsets: IntArray  # message rows of conversation i are offsets[i]:offsets[i+1]
    messages: sp.csr_matrix  # (n_messages, N_HASH_FEATURES) binary
    characteristic_hits: FloatArray  # (n_messages, 9) lexicon strength in [0, 1]
    per_message_dense: FloatArray  # (n_messages, len(DENSE_FEATURES)) prefix dense features
    stated_ages: dict[int, int]  # message row -> age its author states in it

    @cached_property
    def age_rows(self) -> list[int]:
        """Rows of messages stating an age, in order."""
        return sorted(self.stated_ages)

    @property
    def lengths(self) -> IntArray:
        return np.diff(self.offsets)

    def conversation_index(self) -> IntArray:
        return np.repeat(np.arange(self.n_conversations), self.lengths)

    def text(self) -> sp.csr_matrix:
        """Conversation text features: summed message rows / sqrt(length)."""
        lengths = self.lengths
        scale = 1.0 / np.sqrt(np.maximum(lengths, 1))
        rows = self.conversation_index()
        aggregate = sp.csr_matrix(
            (np.repeat(scale, lengths), (rows, np.arange(rows.size))),
            shape=(self.n_conversations, rows.size),
        )
        return (aggregate @ self.messages).tocsr()

    def dense(self) -> FloatArray:
        """Dense features of whole conversations (those of each last message)."""
        out = np.zeros((self.n_conversations, len(DENSE_FEATURES)))
        lengths = self.lengths
        nonempty = lengths > 0
        out[nonempty] = self.per_message_dense[self.offsets[1:][nonempty] - 1]
        return out

    def characteristic_counts(self) -> FloatArray:
        """Summed lexicon strength of each characteristic per conversation."""
        return (
            np.add.reduceat(
                np.vstack(
                    [self.characteristic_hits, np.zeros((1, self.characteristic_hits.shape[1]))]
                ),
                np.minimum(self.offsets[:-1], self.characteristic_hits.shape[0]),
                axis=0,
            )
            * (self.lengths > 0)[:, None]
        )

    def features(self) -> sp.csr_matrix:
        """The classifier's input: text features then dense features."""
        return sp.hstack([self.text(), sp.csr_matrix(self.dense())], format="csr")


def grouped_cumsum(values: FloatArray, offsets: IntArray) -> FloatArray:
    """Cumulative sum along axis 0 restarting at each conversation."""
    if values.shape[0] == 0:
        return values.copy()
    totals = np.cumsum(values, axis=0)
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    before = np.zeros_like(values[: len(starts)])
    has_before = starts > 0
    before[has_before] = totals[starts[has_before] - 1]
    return totals - np.repeat(before, lengths, axis=0)


def featurize(conversations: Sequence[Conversation]) -> FeatureBatch:
    """Compute the features of a batch of conversations."""
    lengths = np.fromiter((len(c.messages) for c in conversations), dtype=np.int64)
    offsets = np.zeros(len(conversations) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_messages = int(offsets[-1])

    texts = [m.text for c in conversations for m in c.messages]
    joined = join_messages(texts)
    messages, age_hints = hash_messages(joined, n_messages)
    ages: dict[int, int] = {}
    for index in age_hints.tolist():
        age = stated_age(texts[index])
        if age is not None:
            ages[index] = age

    new_author = np.zeros(n_messages)
    gap = np.zeros(n_messages)
    minor = np.zeros(n_messages)
    row = 0
    for conversation in conversations:
        seen: set[str] = set()
        declared = declared_ages(conversation.participants)
        minors = {a for a, age in declared.items() if age in MINOR_AGES}
        adults = {a for a, age in declared.items() if age in ADULT_AGES}
        for message in conversation.messages:
            author = message.author
            if author not in seen:
                seen.add(author)
                new_author[row] = 1.0
            age = ages.get(row)
            if age is not None:
                (minors if age in MINOR_AGES else adults).add(author)
            if minors:
                minor[row] = 1.0
                if adults - minors:
                    gap[row] = 1.0
                elif len(seen) > 1:
                    gap[row] = 0.5
            row += 1

    hits = np.minimum((messages @ _lexicon()).toarray(), 1.0)

    positions = np.arange(n_messages) - np.repeat(offsets[:-1], lengths) + 1.0
    counts = grouped_cumsum(hits, offsets)
    authors = grouped_cumsum(new_author[:, None], offsets)[:, 0]
    dense = np.column_stack(
        [
            np.log1p(counts),
            counts / np.maximum(positions, RATE_FLOOR)[:, None],
            gap,
            minor,
            np.log(np.maximum(authors, 2.0) / 2.0),
            (authors > 2).astype(np.float64),
        ]
    )
    return FeatureBatch(
        n_conversations=len(conversations),
        offsets=offsets,
        messages=messages,
        characteristic_hits=hits,
        per_message_dense=dense,
        stated_ages=ages,
    )
