"""Answering from an index: `ask` (ranked passages) and `locate` (the single source sentence of a claim)."""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from search import embed, lexicon, parts, rank, store
from search.errors import IndexUnusableError, YtnotesError
from search.layout import NO_LINK, Layout
from search.lexicon import Lexicon
from search.timestamps import format_hms, valid_video_id, video_url

if TYPE_CHECKING:
    import numpy as np

#: `locate` answers "not found" when the best sentence's cosine with the claim is below this. Measured on the
#: sample notes: verbatim quotes score 0.95-1.0, unrelated claims up to 0.43 (tests/sample_expectations.json and
#: tests/test_cli.py). On the evaluation set's 98 locate claims: 91 of the 96 answered right score at least 0.55
#: (near-quotes 0.63 and up, reworded claims down to 0.45); with the claims' own videos left out of the index, the
#: best sentence of 3 of 98 reaches 0.55 (at most 0.62). 0.50 would keep 92 right answers and pass 17 strangers.
LOCATE_THRESHOLD = 0.55
#: Below this score (the ranking's, 0-1) the best answer of `ask` is reported as no good answer; the passages are
#: still listed. Chosen on the dev part of the evaluation questions and of scripts/eval/unrelated.jsonl (see there).
#: 0.37 with int8 word vectors; product-quantised words score the closely read passages a little lower, and 0.335
#: to 0.34 flags the dev questions as 0.37 did with int8 (questions 0.004 vs 0.008, questions-2 0.014, questions-3
#: 0.015, unrelated 0.977 each) where 0.37 flagged 0.043 / 0.056 / 0.015 / 0.977.
ANSWER_THRESHOLD = 0.34
#: Characters of context shown around the best-matching sentence.
SNIPPET_CHARS = 320


@dataclass
class Hit:
    """One passage answering a question, linked to the moment of its best-matching sentence."""

    rank: int
    score: float
    note: str
    path: str
    line: int
    title: str
    channel: str | None
    video_id: str | None
    heading: list[str]
    sentence: str
    before: str
    after: str
    seconds: int | None
    timed: bool
    times: list[int] = field(default_factory=list)

    @property
    def timestamp(self) -> str | None:
        return format_hms(self.seconds) if self.seconds is not None else None

    @property
    def url(self) -> str | None:
        return video_url(self.video_id, self.seconds) if self.video_id else None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "note": self.note,
            "path": self.path,
            "line": self.line,
            "title": self.title,
            "channel": self.channel,
            "video_id": self.video_id,
            "heading": self.heading,
            "sentence": self.sentence,
            "snippet": " ".join(p for p in (self.before, self.sentence, self.after) if p),
            "seconds": self.seconds,
            "timestamp": self.timestamp,
            "timed": self.timed,
            "url": self.url,
            "times": self.times,
        }


@dataclass
class Result:
    """One video's answer: its best passage, and its other moments further than MERGE_SECONDS away (and the best
    moment of each other note about the video, however close)."""

    hit: Hit
    moments: list[Hit] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Every note the result draws on, the best passage's first."""
        return list(dict.fromkeys([self.hit.note, *(m.note for m in self.moments)]))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.hit.to_json(),
            "moments": [
                {
                    "seconds": m.seconds,
                    "timestamp": m.timestamp,
                    "url": m.url,
                    "sentence": m.sentence,
                    "note": m.note,
                    "line": m.line,
                    "heading": m.heading,
                    "score": round(m.score, 4),
                }
                for m in self.moments
            ],
            "notes": self.notes,
        }


#: Hits of one video this many seconds apart or closer are one moment (notes often cite one stretch of talk twice):
#: the tolerance of a right link in scripts/eval.py. Further apart, the one below is another sentence, often the
#: answer after the setup the link went to (half of a note's anchors are 17 s apart or less).
MERGE_SECONDS = 10
#: Further moments listed under a video's result, at most.
MAX_MOMENTS = 3


class Timed(Protocol):
    @property
    def video_id(self) -> str | None: ...
    @property
    def seconds(self) -> int | None: ...


class Reading(NamedTuple):
    """Some passages read word by word (`Index._read_words`): their segments' ids, and for each informative word of
    the question (a row) its best cosine with a word of each segment (a column) or of the segment's heading line."""

    segment_ids: list[int]
    table: np.ndarray

    def scores(self) -> dict[int, float]:
        """{segment id: MaxSim}: the table averaged over the question's words."""
        return dict(zip(self.segment_ids, self.table.mean(axis=0).tolist(), strict=True))


class Moment(NamedTuple):
    """A ranked moment before it is read in full: a segment, its passage, its video and link time."""

    segment: int
    chunk: int
    video_id: str | None
    seconds: int | None
    #: The ranking's score (see `Index._rank_moments`): what a hit shows, in the order moments are ranked.
    score: float = 0.0
    #: The note it is in (its id in the index).
    note: int = -1


#: A result's other moments come from the first this many ranked moments; moments further down only bring in
#: more videos when the first ones hold fewer than k (so a video's moments do not depend on k).
GROUP_WINDOW = 50
#: When the candidates hold fewer than k videos, `answer` looks this many times deeper (`rank.Weights.depth`).
DEEPER = 8


def group_moments(
    moments: Sequence[Timed],
    k: int,
    notes: Sequence[object] | None = None,
    window: int = GROUP_WINDOW,
    merge: int = MERGE_SECONDS,
) -> list[tuple[int, list[int]]]:
    """Group ranked moments by video: the first moment of a video leads its group; later ones within
    ``merge`` seconds of a moment already in the group merge into it, the others (up to MAX_MOMENTS) join it. With
    ``notes`` (each moment's note), the first moment of another note about the video joins it too, however close:
    two notes about one video are one result that shows both. Moments without a video id stand alone. A moment
    past ``window`` only leads a new group, or joins one led from past it. Gives (index of the lead, indices of
    the others) for up to k groups."""
    groups: list[tuple[int, list[int]]] = []
    by_video: dict[str, tuple[int, list[int]]] = {}
    for i, moment in enumerate(moments):
        key, seconds = moment.video_id, moment.seconds
        if key is not None and key in by_video:
            lead, others = by_video[key]
            if i >= window > lead:
                continue
            members = (lead, *others)
            if notes is not None and notes[i] not in {notes[j] for j in members}:
                others.append(i)
                continue
            shown = [moments[j].seconds for j in members]
            if (
                seconds is None
                or len(others) >= MAX_MOMENTS
                or any(t is not None and abs(t - seconds) <= merge for t in shown)
            ):
                continue
            others.append(i)
            continue
        if len(groups) == k:
            continue
        group: tuple[int, list[int]] = (i, [])
        groups.append(group)
        if key is not None:
            by_video[key] = group
    return groups


def group_by_video(hits: list[Hit], k: int) -> list[Result]:
    """Ranked hits as k results, one per video (see `group_moments`), ranks renumbered."""
    groups = group_moments(hits, k, [h.note for h in hits])
    results = [Result(hits[lead], [hits[j] for j in others]) for lead, others in groups]
    for n, res in enumerate(results, 1):
        res.hit.rank = n
    return results


@dataclass
class Located:
    """The answer to `locate`: the best sentence, and whether it clears the threshold."""

    found: bool
    confidence: float
    hit: Hit | None


class Index:
    """An open index: metadata in SQLite, vectors in FAISS, the question encoder loaded on first use."""

    def __init__(self, index_dir: Path, encoder: embed.Encoder | None = None, one_shot: bool = False) -> None:
        """``one_shot``: this process asks a question or two and exits (load the encoder fastest, not for
        throughput)."""
        self.dir = index_dir
        self.one_shot = one_shot
        self.generation = store.current_generation(index_dir)
        self.manifest = store.read_manifest(self.generation)
        # The model is the one the index was built with (its fingerprint in the manifest), whichever it is.
        self.model: dict[str, Any] = self.manifest.get("model") or {}
        if not isinstance(self.model.get("dimension"), int) or not isinstance(
            self.model.get("max_seq_length"), int
        ):
            raise IndexUnusableError(
                f"the manifest in {self.generation} names no usable model; {store.REBUILD_HINT}"
            )
        bundled = embed.fingerprint()
        if "package" in self.model and self.model != bundled:
            # Built with the bundled model of another version than the one installed.
            raise IndexUnusableError(
                f"the index in {index_dir} was built with {self.model.get('name')} "
                f"({self.model.get('package')}), not {bundled['package']} as installed; {store.REBUILD_HINT}"
            )
        self._encoder = encoder
        self._loading: Future[embed.Encoder] | None = None
        self._video_counts: dict[tuple[str | None, str | None], int] = {}
        self._note_paths: dict[str, str] = {}  # a note's path in the index: its path on disk
        self._layout: Layout | None = None
        if encoder is None:
            # numpy first, in this thread: its C extension cannot be imported by two threads at once (the loader
            # needs it for onnxruntime, this thread for faiss; measured: 1 cold `ask` in 8 failed).
            import numpy  # noqa: F401

            # Importing onnxruntime and loading the model (in C++, mostly without the GIL) overlap with opening
            # the rest.
            self._loading = ThreadPoolExecutor(max_workers=1).submit(self._load_encoder)
        self.db = store.open_meta(self.generation)
        self.chunks = parts.open_vectors(self.generation, self.manifest, "chunks")
        self.segments = parts.open_vectors(self.generation, self.manifest, "segments")
        self.lexicon = Lexicon.of(self.generation, self.db, self.manifest)
        self.words, self.word_owners, self.word_codebook = parts.open_words(self.generation, self.manifest)
        # Measured now: a later build deletes this folder once it has swapped in the next (`info` may come after).
        self.size_bytes = store.size_on_disk(self.generation)

    def close(self) -> None:
        self.db.close()

    @property
    def bundled_model(self) -> bool:
        """Whether the index was made with the bundled all-MiniLM-L6-v2 (its fingerprint names the package)."""
        return bool((self.manifest.get("model") or {}).get("package"))

    @property
    def layout(self) -> Layout | None:
        """Where every segment is, read on first use by a process that answers many questions; None for a
        one-shot process, which asks SQLite for the few rows it needs (see `search.layout`)."""
        if self.one_shot:
            return None
        if self._layout is None:
            self._layout = Layout.read(self.db)
        return self._layout

    @property
    def encoder(self) -> embed.Encoder:
        if self._encoder is None:
            assert self._loading is not None
            self._encoder = self._loading.result()
        return self._encoder

    def _load_encoder(self) -> embed.Encoder:
        if (self.manifest.get("encoder") or {}).get("kind") == embed.SENTENCE_TRANSFORMERS:
            return self._load_torch_encoder()
        # The model exported in the user's cache (the manifest has checked that it is the index's model); an index
        # built before the cache was shared has its own copy, used until its next build. The export's path as the
        # build recorded it is used too when this process's cache is another (an MCP server started by a client
        # gets a bare environment): the recorded export is of the manifest's model.
        folder = embed.export_folder(fingerprint=self.model)
        own = self.dir / str((self.manifest.get("encoder") or {}).get("path", "-"))
        if not folder.is_dir() and own.is_dir():
            folder = own
        if not folder.is_dir():
            path = self.manifest.get("model_path")
            again = "`ytnotes build`" if self.model.get("package") else f"`ytnotes build --model {path}`"
            raise IndexUnusableError(
                f"the exported model in {folder} is missing (was the model cache deleted?); run {again} "
                "to export it again"
            )
        try:
            return embed.load_question_encoder(folder, one_shot=self.one_shot, fingerprint=self.model)
        except Exception as exc:  # onnxruntime and tokenizers raise their own types for a damaged file
            first = (str(exc).strip().splitlines() or ["unreadable"])[0][:160]
            raise IndexUnusableError(
                f"the exported model in {folder} is damaged ({first}); {store.REBUILD_HINT}"
            ) from None

    def _load_torch_encoder(self) -> embed.Encoder:
        """sentence-transformers over the model folder the index was built with (it has no torch-free export),
        checked to be the same model still."""
        from search import model_folder, torch_encoder

        path = Path(str(self.manifest.get("model_path")))
        again = f"`ytnotes build --model {path}`"
        try:
            model = model_folder.read(path)
        except YtnotesError as exc:
            raise IndexUnusableError(
                f"the index in {self.dir} is encoded with sentence-transformers from {path}, which is no longer "
                f"a usable model ({exc}); put the model back, or rebuild with another: `ytnotes build --model DIR`"
            ) from None
        if model.fingerprint() != self.model:
            raise IndexUnusableError(
                f"the model folder {path} has changed since the index was built; run {again} to rebuild with it"
            )
        return torch_encoder.load(model, model.query_prompt)

    def info(self) -> dict[str, Any]:
        """What is indexed."""
        from search.describe import summary

        return summary(self.dir, self.generation, self.manifest, self.size_bytes)

    def answer(
        self,
        question: str,
        k: int = 5,
        channel: str | None = None,
        video: str | None = None,
        weights: rank.Weights = rank.HYBRID,
        merge: int = MERGE_SECONDS,
    ) -> list[Result]:
        """`ask` as a person sees it: the k best videos, each with its best passage, its other moments (``merge``
        seconds or closer to one shown merge into it) and the best moment of each other note about it. Fewer than k
        only when the notes (filtered) hold fewer videos."""
        moments = self._moments(question, k, channel, video, weights)
        # Grouped before Hits are made: only the moments shown are read in full.
        groups = group_moments(moments, k, [m.note for m in moments], merge=merge)
        if len(groups) < k and self._videos(channel, video) > len(groups):
            # The candidates hold too few videos: look deeper for more, keeping the ones found (a deeper search
            # ranks a little differently, and the first results should not depend on k).
            seen = {moments[lead].video_id or moments[lead].segment for lead, _ in groups}
            deeper = replace(weights, depth=weights.depth * DEEPER)
            more = [
                m
                for m in self._moments(question, k, channel, video, deeper)
                if (m.video_id or m.segment) not in seen
            ]
            # Ranked below every moment of the first search, so shown no higher than its last.
            floor = min((m.score for m in moments), default=float("inf"))
            moments = moments + [m._replace(score=min(m.score, floor)) for m in more]
            groups = group_moments(moments, k, [m.note for m in moments], merge=merge)
        shown = [(n, moments[i]) for n, (lead, others) in enumerate(groups, 1) for i in (lead, *others)]
        hits = iter(self._moment_hits(shown))
        return [Result(next(hits), [next(hits) for _ in others]) for _, others in groups]

    def _videos(self, channel: str | None, video: str | None) -> int:
        """The most results the notes (filtered) could give: their videos, and each segment of a note without a
        video id (those moments stand alone). Counted once per filter: a generation never changes, and the count
        reads every segment."""
        key = (channel, video)
        if key not in self._video_counts:
            self._video_counts[key] = self._count_videos(channel, video)
        return self._video_counts[key]

    def _count_videos(self, channel: str | None, video: str | None) -> int:
        allowed = self._filter(channel, video)
        where = "" if allowed is None else "WHERE s.chunk_id IN (SELECT value FROM json_each(?))"
        row = self.db.execute(
            "SELECT COUNT(DISTINCT n.video_id) + COALESCE(SUM(n.video_id IS NULL), 0) FROM segments s "
            f"JOIN notes n ON n.id = s.note_id {where}",
            () if allowed is None else (json.dumps(allowed),),
        ).fetchone()
        return int(row[0])

    def ask(
        self,
        question: str,
        k: int = 5,
        channel: str | None = None,
        video: str | None = None,
        weights: rank.Weights = rank.HYBRID,
    ) -> list[Hit]:
        """The k moments that best answer the question, best first: each a passage linked to the moment of its
        best-matching sentence. (Grouping by video is `group_by_video`'s job.)"""
        moments = self._moments(question, k, channel, video, weights)
        return self._moment_hits(list(enumerate(moments[:k], 1)))

    def _moments(
        self, question: str, k: int, channel: str | None, video: str | None, weights: rank.Weights
    ) -> list[Moment]:
        """The ranked moments that answer a question (k is checked here, for `ask` and `answer` alike)."""
        if not 1 <= k <= 50:
            raise YtnotesError(f"-k must be between 1 and 50, not {k}")
        question = _check_text(question, "question")
        allowed = self._filter(channel, video)
        query, asked = self._encode_question(question)
        return self._rank_moments(question, query, asked, allowed, weights)

    def _moment_hits(self, ranked: list[tuple[int, Moment]]) -> list[Hit]:
        """Moments read in full as hits, each with its rank and the score it was ranked by."""
        return self._hits([(n, m.score, m.chunk, m.segment) for n, m in ranked]) if ranked else []

    def _encode_question(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The question's vector (a 1-row array) and its informative words' vectors, from one pass of the model
        (None when the encoder gives no word vectors)."""
        encode_spans = getattr(self.encoder, "encode_spans", None)
        asked = rank.question_spans(text)
        if encode_spans is None or not asked:
            return self.encoder.encode([text]), None
        query, (question_words,) = encode_spans([text], [asked], batch_size=1)
        return query, question_words

    def _rank_moments(
        self,
        question: str,
        query: np.ndarray,
        asked: np.ndarray | None,
        allowed: list[int] | None,
        weights: rank.Weights,
        locate: bool = False,
    ) -> list[Moment]:
        """The best moments, best first (see `rank` for the two passes). A moment with
        the same video and second as a better one is left out: it would be the same link."""
        import numpy as np

        chunk_ids, chunk_matches = self._candidates(question, query, allowed, weights)
        if not chunk_ids:
            return []
        sids, owner, note, link, video_of = self._segment_rows(chunk_ids)
        q = query[0]
        sims = self.segments.reconstruct_batch(sids) @ q
        score = weights.segment_dense * sims
        if weights.chunk_dense:
            chunk_sim = dict(
                zip(chunk_ids, self.chunks.reconstruct_batch(np.asarray(chunk_ids)) @ q, strict=True)
            )
            score = score + weights.chunk_dense * np.asarray([chunk_sim[c] for c in owner])
        seg_bm25: dict[int, float] = {}
        if weights.lexical or (locate and weights.locate_lexical):
            seg_bm25 = rank.scaled(rank.lexical(self.lexicon, "segments_fts", question, None, sids.tolist()))
        if weights.lexical:
            chunk_bm25 = rank.scaled(self.lexicon.scores_of("chunks_fts", chunk_matches, chunk_ids))
            score = score + weights.lexical * np.asarray(
                [seg_bm25.get(int(s), 0.0) + chunk_bm25.get(c, 0.0) for s, c in zip(sids, owner, strict=True)]
            )
        # Best first; ties (segments of one passage under a passage-level score) go to the segment's own cosine.
        first = [int(i) for i in np.lexsort((sids, -sims, -score))]
        lead = list(dict.fromkeys(owner[i] for i in first))[: weights.rerank]
        # The score shown is the one each moment was ranked by, scaled to about 0-1 by its weights' sum: the second
        # pass's for the passages read closely (all ranked first), the first pass's below them for the rest.
        shown_score = np.zeros(len(sids))
        second: list[int] = []
        if lead and weights.words and asked is not None:
            pos = {int(s): i for i, s in enumerate(sids)}
            lexical = seg_bm25 if locate and weights.locate_lexical else None
            reading = self._read_words(asked, lead)
            close = self._close_scores(question, reading, q, lead, weights, lexical)
            ids = np.asarray(list(close), dtype=np.int64)
            final = np.asarray(list(close.values()))
            if not locate:
                bonus = self._moment_bonus(question, reading, lead, weights)
                if bonus is not None:
                    passage = np.asarray([owner[pos[int(i)]] for i in ids])
                    final = _within_passages(final, final + bonus, passage)
            order = np.lexsort((ids, -final))
            second = [pos[int(ids[i])] for i in order]
            shown_score[second] = final[order] / weights.second_sum
        floor = float(shown_score[second[-1]]) if second else np.inf
        taken = set(second)
        rest = [i for i in first if i not in taken]
        shown_score[rest] = np.minimum(score[rest] / weights.first_sum, floor)
        out: list[Moment] = []
        shown: set[tuple[str, int | None]] = set()
        for i in second + rest:
            video = video_of[i]
            if video is not None:
                if (video, link[i]) in shown:
                    continue
                shown.add((video, link[i]))
            out.append(Moment(int(sids[i]), owner[i], video, link[i], float(shown_score[i]), note[i]))
        return out

    def _segment_rows(
        self, chunk_ids: list[int]
    ) -> tuple[np.ndarray, list[int], list[int], list[int | None], list[str | None]]:
        """The segments of some passages, by id: their ids (an array), and for each its passage, note, link second
        and video."""
        import numpy as np

        layout = self.layout
        if layout is None:
            rows = self.db.execute(
                "SELECT s.id, s.chunk_id, s.note_id, s.link_time, n.video_id FROM segments s JOIN notes n "
                "ON n.id = s.note_id WHERE s.chunk_id IN (SELECT value FROM json_each(?)) ORDER BY s.id",
                (json.dumps(chunk_ids),),
            ).fetchall()
            sids = np.asarray([r[0] for r in rows], dtype=np.int64)
            return (
                sids,
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
            )
        sids = layout.segments_of(chunk_ids)
        notes = layout.note[sids].tolist()
        links = [None if t == NO_LINK else t for t in layout.link[sids].tolist()]
        return sids, layout.chunk[sids].tolist(), notes, links, [layout.video[n] for n in notes]

    def _close_scores(
        self,
        question: str,
        reading: Reading,
        query: np.ndarray,
        chunk_ids: list[int],
        weights: rank.Weights,
        lexical: dict[int, float] | None = None,
    ) -> dict[int, float]:
        """The second pass: {segment id: score} for every segment of some passages, read word by word (MaxSim,
        ``reading``: `_read_words` of the passages), plus the segment's own cosine, its neighbours' (same note) and,
        for `locate`, its own BM25 (``lexical``). This is also the choice of the moment inside a passage: its
        best-scoring segment is the second linked (`_moment_bonus` may reorder a passage's segments)."""
        import numpy as np

        close = reading.scores()
        if not close:
            return {}
        ids = np.asarray(list(close), dtype=np.int64)
        final = weights.words * np.asarray(list(close.values()))
        final = final + weights.rerank_segment * (self.segments.reconstruct_batch(ids) @ query)
        if weights.rerank_previous:
            final = final + weights.rerank_previous * self._neighbour_sims(ids, query, -1)
        if weights.rerank_next:
            final = final + weights.rerank_next * self._neighbour_sims(ids, query, +1)
        before_weight = weights.rerank_previous_words
        if weights.cue_previous_words and rank.asks_for_what_follows(question):
            before_weight += weights.cue_previous_words
        if before_weight:
            # The segment before, read word by word, when it is in the same passage: the question may match the
            # setup, and the answer follow it.
            final = final + before_weight * self._before(close, ids, chunk_ids)
        if lexical is not None:
            final = final + weights.locate_lexical * np.asarray([lexical.get(int(s), 0.0) for s in ids])
        return dict(zip(ids.tolist(), final.tolist(), strict=True))

    def _before(self, close: dict[int, float], ids: np.ndarray, chunk_ids: list[int]) -> np.ndarray:
        """For each segment of ``ids``, the word-level score (``close``) of the segment before it in its passage
        (0 for a passage's first)."""
        import numpy as np

        before = np.asarray([close.get(s - 1, 0.0) for s in ids.tolist()])
        before[np.isin(ids, self._passage_starts(chunk_ids))] = 0.0
        return before

    def _moment_bonus(
        self, question: str, reading: Reading, chunk_ids: list[int], weights: rank.Weights
    ) -> np.ndarray | None:
        """What the choice of the moment inside a passage adds to each segment's second-pass score (the segments of
        ``reading``, in its order, which is `_close_scores`'), or None when nothing: passages keep their scores
        (`_within_passages`).

        - A question that opens with a premise (`rank.premise_end`): the segment is read against the asked part's
          words instead of all the question's, and the segment before it, read against the premise's words, adds
          `rank.Weights.premise_previous_words` of that.
        - Every segment gets `rank.Weights.moment_previous_words` of the word-level score of the segment before it.
        - A segment that opens by pointing back at the one before ("This led to...", `rank.continues`) gets
          `rank.Weights.anaphor_previous_words` of that one's word-level score (measured, off by default)."""
        import numpy as np

        segment_ids, table = reading
        ids = np.asarray(segment_ids, dtype=np.int64)
        bonus = np.zeros(len(ids))
        end = rank.premise_end(question) if weights.premise else None
        # The question's words are `asked`'s rows (`question_spans`): those of the premise, and the others.
        premise = (
            [] if end is None else [n for n, (_, s) in enumerate(rank.question_spans(question)) if s <= end]
        )
        if 0 < len(premise) < len(table):
            asking = np.ones(len(table), dtype=bool)
            asking[premise] = False
            bonus += weights.words * (table[asking].mean(axis=0) - table.mean(axis=0))
            if weights.premise_previous_words:
                said = dict(zip(segment_ids, table[premise].mean(axis=0).tolist(), strict=True))
                bonus += weights.premise_previous_words * self._before(said, ids, chunk_ids)
        before = (
            self._before(reading.scores(), ids, chunk_ids)
            if weights.moment_previous_words or weights.anaphor_previous_words
            else None
        )
        if before is not None and weights.moment_previous_words:
            bonus += weights.moment_previous_words * before
        if before is not None and weights.anaphor_previous_words:
            texts = dict(
                self.db.execute(
                    "SELECT id, substr(text, 1, 40) FROM segments WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids.tolist()),),
                ).fetchall()
            )
            points_back = np.asarray(
                [rank.continues(texts.get(s, "")) for s in ids.tolist()], dtype=np.float64
            )
            bonus += weights.anaphor_previous_words * points_back * before
        return bonus if bonus.any() else None

    def moment_in_passage(
        self, question: str, chunk_id: int, weights: rank.Weights = rank.HYBRID
    ) -> int | None:
        """The link second the second pass chooses inside one passage (the evaluation's "given the right passage,
        which segment answers?")."""
        import numpy as np

        query, asked = self._encode_question(_check_text(question, "question"))
        if asked is None:
            return None
        reading = self._read_words(asked, [chunk_id])
        scores = self._close_scores(question, reading, query[0], [chunk_id], weights)
        if not scores:
            return None
        bonus = self._moment_bonus(question, reading, [chunk_id], weights)
        if bonus is not None:
            scores = dict(zip(scores, (np.asarray(list(scores.values())) + bonus).tolist(), strict=True))
        best = max(scores, key=lambda s: (scores[s], -s))
        row = self.db.execute("SELECT link_time FROM segments WHERE id = ?", (best,)).fetchone()
        return None if row is None else row[0]

    def _passage_starts(self, chunk_ids: list[int]) -> list[int]:
        """The first segment id of each of some passages."""
        if self.layout is not None:
            return self.layout.seg_start[chunk_ids].tolist()
        rows = self.db.execute(
            "SELECT seg_start FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(chunk_ids),),
        )
        return [int(r[0]) for r in rows]

    def _read_words(self, asked: np.ndarray, chunk_ids: list[int]) -> Reading:
        """The segments of some passages read word by word with the question's word vectors ``asked`` (see
        `Reading`). The passages' word vectors were made by the build (see `search.words`)."""
        import numpy as np

        layout = self.layout
        if layout is None:
            rows = self.db.execute(
                "SELECT seg_start, seg_end, word_start, word_end FROM chunks WHERE id IN "
                "(SELECT value FROM json_each(?)) ORDER BY id",
                (json.dumps(chunk_ids),),
            ).fetchall()
        else:
            ids = sorted(chunk_ids)
            rows = list(
                zip(
                    layout.seg_start[ids].tolist(),
                    layout.seg_end[ids].tolist(),
                    layout.word_start[ids].tolist(),
                    layout.word_end[ids].tolist(),
                    strict=True,
                )
            )
        if not rows:
            return Reading([], np.zeros((len(asked), 0), dtype=np.float32))
        segment_of_word: list[np.ndarray] = []
        passage_of_word: list[np.ndarray] = []
        passage_of_segment: list[np.ndarray] = []
        segment_ids: list[int] = []
        placed = 0  # segments of the passages before this one
        for n, (seg_start, seg_end, word_start, word_end) in enumerate(rows):
            owners = np.asarray(self.word_owners[word_start:word_end], dtype=np.int64)
            segment_of_word.append(np.where(owners >= 0, owners + placed, -1))
            passage_of_word.append(np.full(len(owners), n, dtype=np.int64))
            passage_of_segment.append(np.full(seg_end - seg_start, n, dtype=np.int64))
            segment_ids.extend(range(seg_start, seg_end))
            placed += seg_end - seg_start
        vectors = self.word_codebook.decode(np.concatenate([self.words[a:b] for _, _, a, b in rows]))
        table = rank.maxsim_table(
            asked,
            vectors,
            np.concatenate(segment_of_word),
            np.concatenate(passage_of_word),
            np.concatenate(passage_of_segment),
        )
        return Reading(segment_ids, table)

    def _neighbour_sims(self, segment_ids: np.ndarray, query: np.ndarray, step: int) -> np.ndarray:
        """Each segment's neighbour's cosine with the question: the previous one (step -1) or the next (+1); 0 where
        that neighbour is in another note or there is none."""
        import numpy as np

        other = segment_ids + step
        layout = self.layout
        if layout is not None:
            inside = (other >= 0) & (other < len(layout.note))
            same = np.zeros(len(segment_ids), dtype=bool)
            same[inside] = layout.note[other[inside]] == layout.note[segment_ids[inside]]
            out = np.zeros(len(segment_ids), dtype=np.float32)
            if same.any():
                out[same] = self.segments.reconstruct_batch(other[same]) @ query
            return out
        notes = dict(
            self.db.execute(
                "SELECT id, note_id FROM segments WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(np.concatenate([segment_ids, other]).tolist()),),
            ).fetchall()
        )
        same = np.asarray(
            [p in notes and notes[p] == notes[int(s)] for s, p in zip(segment_ids, other, strict=True)]
        )
        out = np.zeros(len(segment_ids), dtype=np.float32)
        if same.any():
            out[same] = self.segments.reconstruct_batch(other[same]) @ query
        return out

    def locate(self, claim: str, weights: rank.Weights = rank.HYBRID) -> Located:
        """The single sentence that best matches a claim or quote; its confidence is their cosine similarity."""
        claim = _check_text(claim, "claim")
        query, asked = self._encode_question(claim)
        moments = self._rank_moments(claim, query, asked, None, weights, locate=True)
        if not moments:
            return Located(False, 0.0, None)
        seg_id, chunk_id = moments[0].segment, moments[0].chunk
        # Confidence: the claim against the sentence itself, encoded on its own like the claim (the stored segment
        # vectors are pooled in context, so their cosine with a verbatim quote is lower and varies).
        sentence = self.db.execute("SELECT text FROM segments WHERE id = ?", (seg_id,)).fetchone()["text"]
        similarity = float(self.encoder.encode([sentence])[0] @ query[0])
        (hit,) = self._hits([(1, similarity, chunk_id, seg_id)])
        return Located(similarity >= LOCATE_THRESHOLD, similarity, hit)

    def _candidates(
        self, question: str, query: np.ndarray, allowed: list[int] | None, weights: rank.Weights
    ) -> tuple[list[int], tuple[np.ndarray, np.ndarray]]:
        """Candidate chunk ids: those the chunk vectors, the segment vectors and BM25 find (each list whose
        weight is not 0, `depth` chunks each); and every (allowed) chunk BM25 matches, with its score (empty when
        the lexical weight is 0), from which the ranking reads the candidates' own."""
        depth = weights.depth
        matches = lexicon.no_matches()
        found: dict[int, None] = {}
        if weights.chunk_dense:
            _, ids = self.chunks.search(query, depth, allowed)
            found.update(dict.fromkeys(int(i) for i in ids))
        if weights.segment_dense:
            allowed_segments = None
            if allowed is not None:
                spans = self.db.execute(
                    "SELECT seg_start, seg_end FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(allowed),),
                )
                allowed_segments = [i for a, b in spans for i in range(a, b)]
            _, seg_ids = self.segments.search(query, depth * 3, allowed_segments)
            found.update(dict.fromkeys(self._chunks_of([int(i) for i in seg_ids])[:depth]))
        if weights.lexical:
            matches = rank.lexical_matches(self.lexicon, "chunks_fts", question, allowed)
            found.update(dict.fromkeys(i for i, _ in lexicon.best(*matches, depth)))
        return list(found), matches

    def _chunks_of(self, segment_ids: list[int]) -> list[int]:
        """The chunks of ranked segments, in the order of each chunk's best segment."""
        if not segment_ids:
            return []
        if self.layout is not None:
            return list(dict.fromkeys(self.layout.chunk[segment_ids].tolist()))
        rows = dict(
            self.db.execute(
                "SELECT id, chunk_id FROM segments WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(segment_ids),),
            ).fetchall()
        )
        return list(dict.fromkeys(rows[i] for i in segment_ids))

    def _filter(self, channel: str | None, video: str | None) -> list[int] | None:
        if channel is None and video is None:
            return None
        where, args = [], []
        if channel is not None:
            where.append("(n.channel_key = ? OR lower(n.channel) = ?)")
            args += [channel.casefold(), channel.casefold()]
        if video is not None:
            if not valid_video_id(video):
                raise YtnotesError(
                    f"--video {video!r} is not a YouTube video id (11 letters, digits, - or _)"
                )
            where.append("n.video_id = ?")
            args.append(video)
        sql = f"SELECT c.id FROM chunks c JOIN notes n ON n.id = c.note_id WHERE {' AND '.join(where)}"
        ids = [r[0] for r in self.db.execute(sql, args)]
        if not ids:
            raise YtnotesError(self._no_match(channel, video))
        return ids

    def _no_match(self, channel: str | None, video: str | None) -> str:
        """One short line: the index may hold hundreds of channels, so it names at most the few closest to a
        mistyped one."""
        if channel is not None:
            names = {
                name.casefold(): name
                for row in self.db.execute("SELECT channel, channel_key FROM notes WHERE channel IS NOT NULL")
                for name in row
                if name
            }
            if channel.casefold() not in names:
                channels = self.db.execute("SELECT COUNT(DISTINCT channel_key) FROM notes").fetchone()[0]
                close = difflib.get_close_matches(channel.casefold(), list(names), n=3)
                hint = (
                    "; did you mean " + " or ".join(repr(names[c]) for c in close) + "?"
                    if close
                    else f" (the index holds notes from {channels} channels)"
                )
                return f"no notes from channel {channel!r}{hint}"
        if (
            video is not None
            and not self.db.execute("SELECT 1 FROM notes WHERE video_id = ?", (video,)).fetchone()
        ):
            return f"no notes about video {video} in the index"
        return f"no notes match both --channel {channel} and --video {video}"

    def _hits(self, wanted: list[tuple[int, float, int, int]]) -> list[Hit]:
        """Hits read in full, in the order asked: each (rank, score, passage id, id of its best segment)."""
        chunk_ids = json.dumps(sorted({chunk_id for _, _, chunk_id, _ in wanted}))
        chunks = {
            row[0]: row
            for row in self.db.execute(
                "SELECT c.id, c.seg_start, c.heading, n.path, n.title, n.channel, n.video_id FROM chunks c "
                "JOIN notes n ON n.id = c.note_id WHERE c.id IN (SELECT value FROM json_each(?))",
                (chunk_ids,),
            )
        }
        lines: dict[int, list[int]] = {}
        texts: dict[int, list[str]] = {}
        links: dict[int, list[int | None]] = {}
        times_json: dict[int, list[str]] = {}
        for chunk_id, line, text, link, seg_times in self.db.execute(
            "SELECT chunk_id, line, text, link_time, times FROM segments "
            "WHERE chunk_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (chunk_ids,),
        ):
            if chunk_id not in texts:
                lines[chunk_id], texts[chunk_id], links[chunk_id], times_json[chunk_id] = [], [], [], []
            lines[chunk_id].append(line)
            texts[chunk_id].append(text)
            links[chunk_id].append(link)
            times_json[chunk_id].append(seg_times)
        # Each passage's times once, however many of its moments are shown: one parse of its segments' lists.
        times: dict[int, list[list[int]]] = {
            c: json.loads(f"[{','.join(each)}]") for c, each in times_json.items()
        }
        hits = []
        for place, score, chunk_id, best_segment in wanted:
            _, seg_start, heading, note, title, channel, video_id = chunks[chunk_id]
            best = best_segment - seg_start
            before, after = _context(texts[chunk_id], best)
            hits.append(
                Hit(
                    rank=place,
                    score=score,
                    note=note,
                    path=self._note_path(note),
                    line=lines[chunk_id][best],
                    title=title,
                    channel=channel,
                    video_id=video_id,
                    heading=json.loads(heading),
                    sentence=texts[chunk_id][best],
                    before=before,
                    after=after,
                    seconds=links[chunk_id][best],
                    timed=bool(times[chunk_id][best]),
                    times=[t for seg_times in times[chunk_id] for t in seg_times],
                )
            )
        return hits

    def _note_path(self, note: str) -> str:
        """A note's path on disk, from its path in the index (each made once: a generation never changes)."""
        path = self._note_paths.get(note)
        if path is None:
            path = self._note_paths[note] = str(Path(self.manifest["notes_dir"]) / note)
        return path


def found(results: Sequence[Result], threshold: float = ANSWER_THRESHOLD) -> bool:
    """Whether `ask` found a good answer: its best result scores at least the threshold."""
    return bool(results) and results[0].hit.score >= threshold


#: How many times a reader reads CURRENT again when the generation it named was removed while it opened it (a
#: build removes the previous generation right after the swap; each try takes milliseconds, a build seconds).
OPEN_TRIES = 5


def _within_passages(scores: np.ndarray, choice: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """``scores`` given out again inside each passage in the order of ``choice``: a passage keeps the scores it
    had (so passages rank as before), and the segment ``choice`` puts first gets its best."""
    import numpy as np

    out = scores.copy()
    for p in np.unique(passage):
        mine = np.flatnonzero(passage == p)
        out[mine[np.argsort(-choice[mine], kind="stable")]] = np.sort(scores[mine])[::-1]
    return out


def open_index(index_dir: Path, encoder: embed.Encoder | None = None, one_shot: bool = False) -> Index:
    """Open the live index in a folder; IndexMissingError / IndexUnusableError say how to fix it.

    A build that swaps in a new generation removes the old one at once: a reader that read CURRENT just before
    finds files missing, sees CURRENT name another generation, and opens that one instead."""
    for attempt in range(OPEN_TRIES):
        before = store.live_name(index_dir)
        try:
            try:
                return Index(index_dir, encoder, one_shot)
            except sqlite3.DatabaseError as exc:
                raise IndexUnusableError(
                    f"the index in {index_dir} is damaged ({exc}); {store.REBUILD_HINT}"
                ) from None
        except IndexUnusableError:
            if attempt + 1 == OPEN_TRIES or store.live_name(index_dir) in (before, None):
                raise
    raise AssertionError("unreachable")


def _check_text(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise YtnotesError(f"the {what} is empty; say what you are looking for")
    if len(text) > 1000:
        raise YtnotesError(f"the {what} is {len(text)} characters; keep it under 1,000")
    return text


def _context(texts: list[str], best: int) -> tuple[str, str]:
    """Text before and after the best sentence, trimmed to about SNIPPET_CHARS in all."""
    room = max(0, SNIPPET_CHARS - len(texts[best])) // 2
    before = " ".join(texts[:best])
    after = " ".join(texts[best + 1 :])
    if len(before) > room:
        before = "…" + before[len(before) - room :].split(" ", 1)[-1]
    if len(after) > room:
        after = after[:room].rsplit(" ", 1)[0] + "…"
    return before, after
