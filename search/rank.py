"""Ranking: which passages and moments answer a question, in two passes.

First pass (cheap, every candidate). Three lists find candidate passages (chunks): the chunk vectors, the segment
vectors (a chunk comes with its best segment) and BM25 over chunk text. Every segment of a candidate passage is
scored by a weighted sum of normalised scores: its own cosine with the question, its passage's cosine, and BM25 of
itself and of its passage (each scaled so the best candidate scores 1). Score fusion beat reciprocal-rank fusion
on the evaluation set: a rank throws away how much better the best candidate is.

Second pass (the passages that lead). A sentence vector is too coarse to tell which sentence of a passage holds the
answer. The leading passages are read word by word: the model's contextual vectors of their informative words
(the title and heading line too), made by the build in the same pass as the passage's vector and stored
product-quantised (`search.words`), so a question encodes only itself. Each segment scores by MaxSim: for each informative word of the
question, its best cosine with a word of the segment or of its heading, averaged (late interaction, as ColBERT
does). Added to that: the segment's own cosine and its predecessor's (the sentence before often names what this one
is about).

The moment inside a passage. A segment takes a small share of the word-level score of the one before it: the
answer often follows the sentence the question's words match. A question that opens with what the asker already knows ("since fine-tuned models are
soon overtaken, what should teams be able to do?") echoes one sentence and asks for the next. For such a question
the second pass's order of the passages stands, and inside each passage the segments are read against the words of
the asked part alone, with the premise's words counting for the segment before (`premise_end`).

All weights were chosen on the dev split of scripts/eval/questions.jsonl (scripts/eval.py --compare).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from search import lexicon

if TYPE_CHECKING:
    import numpy as np

    from search.lexicon import Lexicon

#: Words too common to help BM25 find a passage; questions are full of them.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "say",
        "said",
        "says",
        "tell",
        "told",
        "talk",
        "talks",
        "talked",
        "mention",
        "mentioned",
        "mentions",
        "explain",
        "explained",
        "explains",
        "describe",
        "described",
        "video",
        "note",
        "notes",
        "according",
    ]
)

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Weights:
    """How candidates are found and scored. A weight of 0 turns its evidence off; a list with weight 0 brings no
    candidates."""

    #: First pass: the weight of the passage's (chunk's) cosine, of the segment's cosine, and of BM25 (the
    #: segment's and its passage's, each scaled to the best candidate = 1).
    chunk_dense: float = 1.0
    segment_dense: float = 1.0
    lexical: float = 0.3
    #: How many candidates each list brings.
    depth: int = 50
    #: Second pass: how many leading passages are read word by word (0: off; the first pass decides alone).
    rerank: int = 10
    #: Second pass scores: word-level MaxSim, the segment's cosine, the previous segment's cosine (same note).
    words: float = 1.0
    rerank_segment: float = 0.25
    rerank_previous: float = 0.2
    #: ... and the next segment's cosine (same note): a question may match the answer's setup, the answer follows.
    rerank_next: float = 0.0
    #: ... and the previous segment's word-level score, when it is in the same passage.
    rerank_previous_words: float = 0.0
    #: ... and that again, for questions that ask why / how / what came next: their words often match the setup,
    #: and the answer is the next segment (`asks_for_what_follows`).
    cue_previous_words: float = 0.0
    #: Choosing the moment inside a passage only (passages keep their scores): a segment that opens by pointing
    #: back ("This led to...", "However, ...", `continues`) gets this share of the word-level score of the one
    #: before, whose words the question may echo. Measured, not adopted: it wins on the dev questions written
    #: about the answer and loses on the held-out ones (README, "Answer quality").
    anaphor_previous_words: float = 0.0
    #: Choosing the moment inside a passage only, for a question that opens with a premise (`premise_end`): its
    #: segments are read against the asked part's words alone, and the segment before (same passage) read against
    #: the premise's words adds this share. Chosen on the dev splits (scripts/eval.py --moments).
    premise: bool = True
    premise_previous_words: float = 0.1
    #: Choosing the moment inside a passage only: a segment gains this share of the word-level score of the segment
    #: before it (same passage), whatever the question. The answer often follows the sentence the question's words
    #: match; a small share only moves the link where two neighbours score almost alike. Chosen on the dev splits
    #: (0.03 and 0.05 measured; README, "Answer quality").
    moment_previous_words: float = 0.03
    #: `locate` only: a claim is a near-quote, so the segment's own BM25 counts in its second pass as well.
    locate_lexical: float = 0.1

    @property
    def first_sum(self) -> float:
        """The most a first-pass score can be (every evidence at its best): shown scores are divided by it."""
        return (self.chunk_dense + self.segment_dense + 2 * self.lexical) or 1.0

    @property
    def second_sum(self) -> float:
        """The same for the second pass (cosines of at most 1; `locate`'s BM25 is left out of it)."""
        total = self.words + self.rerank_segment + self.rerank_previous + self.rerank_next
        return (total + self.rerank_previous_words) or 1.0


#: The default: both passes, every kind of evidence.
HYBRID = Weights()
#: Single methods, for comparison (scripts/eval.py --compare): one candidate list, one score, no second pass.
#: Within a passage, segments tie under DENSE and LEXICAL; ties go to the segment nearer the question's vector.
DENSE = Weights(chunk_dense=1.0, segment_dense=0.0, lexical=0.0, rerank=0)
SEGMENTS = Weights(chunk_dense=0.0, segment_dense=1.0, lexical=0.0, rerank=0)
LEXICAL = Weights(chunk_dense=0.0, segment_dense=0.0, lexical=1.0, rerank=0)
#: The first pass alone.
FIRST_PASS = Weights(rerank=0)
MODES = {"hybrid": HYBRID, "dense": DENSE, "segments": SEGMENTS, "lexical": LEXICAL}


_FOLLOWS = re.compile(
    r"^\W*(why|how|what (happened|came|did|was done|changed|made|caused|led)|what .*\b(next|then|after|afterwards)\b)",
    re.IGNORECASE,
)


_CONTINUES = re.compile(
    r"^\W*(this|these|that|those|it|its|they|their|such|however|therefore|thus|hence|so|consequently|"
    r"as a result|instead|but|then|which)\b",
    re.IGNORECASE,
)


_ASKING_WORDS = (
    "what which why how where who whom whose when is are was were does do did can could should would will"
)
_INTERROGATIVE = rf"(?:{'|'.join(_ASKING_WORDS.split())})\b"
#: Where a question asks after a comma, semicolon, colon or dash, or in a sentence of its own ("once X, what...",
#: "X; so why...", "X - what...", "X. What...").
_ASKS_AFTER = re.compile(
    rf"(?:[,;:]\s*|[.!]\s+|\s[—–-]\s*)(?:(?:so|then|and|but|now)\s+)?{_INTERROGATIVE}", re.IGNORECASE
)
#: A question that opens by asking has no premise ("what did X do, which...": a relative clause).
_OPENS_ASKING = re.compile(rf"\W*{_INTERROGATIVE}", re.IGNORECASE)


def premise_end(question: str) -> int | None:
    """Where the premise of a question ends, when the question opens with what the asker already knows and then
    asks ("since optical parts can't shrink below the light's wavelength, which way does that push chipmakers?"):
    the offset of the last comma, semicolon, colon, dash or full stop before the asking, else None. The premise
    echoes a sentence of the note, and the answer is often the one after it."""
    if _OPENS_ASKING.match(question):
        return None
    ends = [m.start() for m in _ASKS_AFTER.finditer(question)]
    if not ends or not re.search(r"\w", question[: ends[-1]]):
        return None
    return ends[-1]


def continues(text: str) -> bool:
    """A segment that opens by pointing back at the one before ("This led to...", "However, ...")."""
    return bool(_CONTINUES.search(text))


def asks_for_what_follows(question: str) -> bool:
    """A why / how / what-happened question: its answer often follows the sentence its words match."""
    return bool(_FOLLOWS.search(question))


def informative(word: str) -> bool:
    """Whether a (casefolded) word says something about what is asked: not a stopword, not a lone letter."""
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())


def query_words(text: str) -> list[str]:
    """The text's informative words, casefolded, each once, in order: what is searched for lexically."""
    words: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if informative(word) and word not in words:
            words.append(word)
    return words


def lexical(
    postings: Lexicon, table: str, text: str, limit: int | None, allowed: Sequence[int] | None = None
) -> list[tuple[int, float]]:
    """(rowid, bm25 score, higher is better) of the rows of an FTS5 table (now its postings, `search.lexicon`)
    that best match any of the text's informative words, best first; with no ``limit``, every match among
    ``allowed``, in no order. The scores are FTS5's bm25(), negated."""
    words = query_words(text)
    if not words:
        return []
    return postings.search(table, lexicon.TOKENIZER.phrases(words), limit, allowed)


def lexical_matches(
    postings: Lexicon, table: str, text: str, allowed: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every row among ``allowed`` (all when None) matching any of the text's informative words, in no order,
    and its score (`lexical`'s): for picking the best (`search.lexicon.best`) and reading others' scores
    (`Lexicon.scores_of`) from one pass."""
    return postings.matches(table, lexicon.TOKENIZER.phrases(query_words(text)), allowed)


def scaled(scores: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Scores divided by the best one (so the best scores 1); empty when there is none above 0."""
    best = max((s for _, s in scores), default=0.0)
    return {i: s / best for i, s in scores} if best > 0 else {}


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of a text."""
    return [m.span() for m in _WORD.finditer(text)]


def question_spans(text: str) -> list[tuple[int, int]]:
    """Spans of a question's informative words (all its words when none is informative)."""
    spans = word_spans(text)
    keep = [(a, b) for a, b in spans if informative(text[a:b].casefold())]
    return keep or spans


def maxsim(question: np.ndarray, words: np.ndarray, owners: np.ndarray, n_segments: int) -> np.ndarray:
    """Late-interaction scores of a passage's segments: for each question word (rows of ``question``), its best
    cosine with a word of the segment or of the passage's heading line, averaged over the question's words.

    ``words`` are the passage's word vectors; ``owners`` says whose each is: a segment's index in the passage, or
    -1 for the title and heading line. Vectors are unit length.
    """
    import numpy as np

    none = np.zeros(len(owners), dtype=np.int64)
    table = maxsim_table(question, words, owners, none, np.zeros(n_segments, dtype=np.int64))
    result: np.ndarray = table.mean(axis=0)
    return result


def maxsim_table(
    question: np.ndarray,
    words: np.ndarray,
    segment_of_word: np.ndarray,
    passage_of_word: np.ndarray,
    passage_of_segment: np.ndarray,
) -> np.ndarray:
    """Late interaction with the segments of several passages at once (one product, no loop in Python), before the
    average of `maxsim`: for each question word (a row) and segment (a column), the word's best cosine with a word
    of the segment or of its passage's heading line. ``words`` are the passages' word vectors one after another,
    each owned by a segment (its index among all the segments, whose passages ``passage_of_segment`` gives) or,
    when -1, by the heading line of its passage (``passage_of_word``)."""
    import numpy as np

    sims = question @ words.T
    out = np.full((question.shape[0], len(passage_of_segment)), -1.0, dtype=np.float32)
    _group_max(out, sims, segment_of_word)
    heading = segment_of_word < 0
    if heading.any():
        by_passage = np.full(
            (question.shape[0], int(passage_of_segment.max(initial=-1)) + 1), -1.0, np.float32
        )
        _group_max(by_passage, sims[:, heading], passage_of_word[heading])
        out = np.maximum(out, by_passage[:, passage_of_segment])
    return out


def _group_max(out: np.ndarray, sims: np.ndarray, group: np.ndarray) -> None:
    """Into each column ``g`` of ``out``, the row-wise max of the columns of ``sims`` whose ``group`` is g (those
    with a negative group are left out)."""
    import numpy as np

    keep = group >= 0
    if not keep.any():
        return
    order = np.argsort(group[keep], kind="stable")
    keys = group[keep][order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    out[:, keys[starts]] = np.maximum.reduceat(sims[:, keep][:, order], starts, axis=1)
