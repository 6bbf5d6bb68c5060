"""Answer-quality evaluation: run a question set through the library in one process and print hit@1, hit@5, MRR@10.

    .venv/bin/python scripts/eval.py scripts/eval/questions.jsonl                   # default settings
    .venv/bin/python scripts/eval.py scripts/eval/questions.jsonl --compare         # every retrieval mode
    .venv/bin/python scripts/eval.py QUESTIONS.jsonl --notes ~/notes --index /tmp/ix
    .venv/bin/python scripts/eval.py scripts/eval/questions.jsonl --merge 30      # moments merged 30 s apart
    .venv/bin/python scripts/eval.py scripts/eval/unrelated.jsonl QS --threshold 0.3  # flagged at another threshold

A question: {"q": ..., "video": <videoId>, "t": [seconds, ...], "note": <path under the notes folder>, "kind": ...}.
Kinds starting with "locate" go through `locate` (hit@1 only: it answers with one sentence); the others through
`ask`. A hit is a result with the same videoId and a time within ±10 s of a gold time. Questions are split by a
hash of their text into dev (two thirds, for choosing settings) and test (one third, held out). With several
configurations (--compare, --moments), a second table sets each against the default question by question: how many
questions it gets right that the default does not (won) and the reverse (lost), with the sign test's p-value, since
a few questions either way on sets this size is what chance alone does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search import embed, rank, retrieve, store  # noqa: E402
from search.build import build_index  # noqa: E402
from search.retrieve import Index, open_index  # noqa: E402

TOLERANCE = 10  # seconds either side of a gold time
DEPTH = 10  # MRR@10


@dataclass
class Question:
    q: str
    video: str | None
    t: list[int]
    note: str | None
    kind: str
    set: str = "questions"

    @property
    def split(self) -> str:
        return "test" if int(hashlib.sha1(self.q.encode()).hexdigest(), 16) % 3 == 0 else "dev"

    @property
    def is_locate(self) -> bool:
        return self.kind.startswith("locate")

    def hit(self, video: str | None, seconds: int | None) -> bool:
        return (
            video == self.video and seconds is not None and any(abs(seconds - g) <= TOLERANCE for g in self.t)
        )


class CachedEncoder:
    """The index's own question encoder (what `ytnotes ask` uses), remembering what it encoded: each question (its
    vector, and its words' vectors from `encode_spans`) once across all configurations. Texts are encoded one at a
    time, as `Index` asks, so a remembered result is the one it would get anew."""

    def __init__(self, inner: embed.Encoder) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}
        self.span_cache: dict[tuple[str, tuple[tuple[int, int], ...]], tuple[np.ndarray, np.ndarray]] = {}

    def encode(self, texts: list[str], batch_size: int = embed.BATCH_SIZE) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            for text, vec in zip(missing, self.inner.encode(missing, batch_size), strict=True):
                self.cache[text] = vec
        return np.stack([self.cache[t] for t in texts])

    def encode_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int = 1
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        inner = getattr(self.inner, "encode_spans")  # noqa: B009 - not every Encoder has it
        keys = [(t, tuple(s)) for t, s in zip(texts, spans, strict=True)]
        for key in dict.fromkeys(k for k in keys if k not in self.span_cache):
            vecs, words = inner([key[0]], [list(key[1])], batch_size=1)
            self.span_cache[key] = (vecs[0], words[0])
        return np.stack([self.span_cache[k][0] for k in keys]), [self.span_cache[k][1] for k in keys]


def open_for_eval(index_dir: Path) -> Index:
    """An index with its own question encoder, cached."""
    manifest = store.read_manifest(store.current_generation(index_dir))
    if (manifest.get("encoder") or {}).get("kind") == embed.SENTENCE_TRANSFORMERS:
        # A model with no torch-free export: sentence-transformers over its folder, as `ask` loads it.
        return open_index(index_dir, encoder=CachedEncoder(open_index(index_dir).encoder))
    folder = index_dir / str((manifest.get("encoder") or {}).get("path", "-"))
    encoder = embed.load_question_encoder(folder, fingerprint=manifest["model"])  # the index's own model
    return open_index(index_dir, encoder=CachedEncoder(encoder))


def load(path: Path) -> list[Question]:
    """A question file; its name (without .jsonl) names its set in the table. An "unrelated" question has no
    answer in the notes (only "q" and "kind")."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            gold = [int(x) for x in d.get("t", [])]
            items.append(Question(d["q"], d.get("video"), gold, d.get("note"), d["kind"], path.stem))
    if not items:
        sys.exit(f"{path}: no questions")
    return items


NAN = float("nan")
#: The columns of a question's results (see `score`).
COLUMNS = [
    "hit@1",
    "hit@5",
    "MRR@10",
    "second±10s",
    "ceiling",
    "read@1",
    "read@5",
    "rMRR@10",
    "passage→s",
    "flagged",
]


def _ranks(links: list[tuple[str | None, int | None]], item: Question) -> list[float]:
    """hit@1, hit@5 and the reciprocal rank of the first hit in a list of (video, second) links."""
    first = next((n for n, (v, t) in enumerate(links[:DEPTH], 1) if item.hit(v, t)), None)
    return [float(first == 1), float(first is not None and first <= 5), 1.0 / first if first else 0.0]


def score(
    idx: Index,
    questions: list[Question],
    weights: rank.Weights,
    merge: int = retrieve.MERGE_SECONDS,
    threshold: float = retrieve.ANSWER_THRESHOLD,
) -> dict[str, list[float]]:
    """Per question, the COLUMNS: hit@1, hit@5 and reciprocal rank of the ranked moments (`ask`); whether the
    second is right when the top video is (else nan); whether the top passage cites a right second at all, when the
    top video is right (the most any choice of the moment inside that passage could reach); the same three on the links as a reader meets them (result 1,
    its `also` moments, result 2, ...: `answer`); whether the second pass picks a right second inside the gold
    passage (the moment step alone); whether `ask` says it found no good answer (its best score below ``threshold``).
    An unrelated question (no gold) has nan everywhere but that last column."""
    out: dict[str, list[float]] = {}
    for item in questions:
        if item.kind == "unrelated":
            results = idx.answer(item.q, k=1, weights=weights, merge=merge)
            out[item.q] = [NAN] * 9 + [float(not retrieve.found(results, threshold))]
            continue
        if item.is_locate:
            found = idx.locate(item.q, weights=weights)
            h = found.hit
            ok = float(h is not None and item.hit(h.video_id, h.seconds))
            same = h is not None and h.video_id == item.video
            out[item.q] = [ok, ok, ok, ok if same else NAN, NAN, ok, ok, ok, NAN, float(not found.found)]
            continue
        hits = idx.ask(item.q, k=DEPTH, weights=weights)
        per_result = _ranks([(h.video_id, h.seconds) for h in hits], item)
        top_same = bool(hits) and hits[0].video_id == item.video
        results = idx.answer(item.q, k=DEPTH, weights=weights, merge=merge)
        links = [(h.video_id, h.seconds) for r in results for h in (r.hit, *r.moments)]
        out[item.q] = [
            *per_result,
            per_result[0] if top_same else NAN,
            float(any(item.hit(item.video, t) for t in hits[0].times)) if top_same else NAN,
            *_ranks(links, item),
            _moment_given_passage(idx, item, weights),
            float(not retrieve.found(results, threshold)),
        ]
    return out


def _moment_given_passage(idx: Index, item: Question, weights: rank.Weights) -> float:
    """1.0 when the second pass, handed the gold passage (the first chunk of the gold note holding a gold second),
    links a right second; nan when no passage holds one."""
    rows = idx.db.execute(
        "SELECT s.chunk_id, s.link_time FROM segments s JOIN notes n ON n.id = s.note_id WHERE n.path = ? "
        "ORDER BY s.id",
        (item.note,),
    ).fetchall()
    chunk = next((c for c, t in rows if t is not None and any(abs(t - g) <= TOLERANCE for g in item.t)), None)
    if chunk is None:
        return NAN
    return float(item.hit(item.video, idx.moment_in_passage(item.q, chunk, weights)))


def table(rows: list[tuple[str, str, str, str, int, list[float]]]) -> str:
    head = f"{'config':<22} {'set':<12} {'split':<5} {'kind':<9} {'n':>4}  " + "  ".join(COLUMNS)
    lines = [head]
    for config, qset, split, kind, n, m in rows:
        cells = "  ".join(
            f"{v:>{len(c)}.3f}" if v == v else " " * (len(c) - 1) + "-"
            for c, v in zip(COLUMNS, m, strict=False)
        )
        lines.append(f"{config:<22} {qset:<12} {split:<5} {kind:<9} {n:>4}  {cells}")
    return "\n".join(lines)


def summarise(questions: list[Question], results: dict[str, list[float]], kinds: bool) -> list[tuple]:
    groups: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)
    for item in questions:
        family = "unrelated" if item.kind == "unrelated" else "locate" if item.is_locate else "ask"
        for split in (item.split, "all"):
            groups[(item.set, split, family)].append(results[item.q])
            if kinds and item.kind != family:
                groups[(item.set, split, item.kind)].append(results[item.q])
    rows = []
    for (qset, split, kind), vals in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        arr = np.array(vals, dtype=float)
        means = [float(np.nanmean(col)) if not np.isnan(col).all() else NAN for col in arr.T]
        rows.append((qset, split, kind, len(vals), means))
    return rows


#: The columns compared question by question against the default (--compare, --moments): the right top link, and a
#: right link among the first five a reader meets.
PAIRED = ("hit@1", "read@5")


def sign_test(won: int, lost: int) -> float:
    """The two-sided exact sign test's p-value for ``won`` against ``lost`` (ties left out): how often a change
    that helps and hurts alike would move this many questions apart. 1.0 when nothing moved."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(won, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(
    questions: list[Question], base: dict[str, list[float]], other: dict[str, list[float]]
) -> list[tuple[str, str, int, list[tuple[int, int]]]]:
    """For each set and split of the `ask` questions, and for every set together ("every set"): (set, split, n,
    [(won, lost) per PAIRED column]), a question won when ``other`` gets it right and ``base`` does not, lost the
    other way round."""
    columns = [COLUMNS.index(c) for c in PAIRED]
    groups: dict[tuple[str, str], list[Question]] = defaultdict(list)
    for item in questions:
        if item.kind != "unrelated" and not item.is_locate:
            for split in (item.split, "all"):
                groups[(item.set, split)].append(item)
                groups[("every set", split)].append(item)
    rows = []
    for (qset, split), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "every set", kv[0])):
        counts = []
        for c in columns:
            pairs = [(other[i.q][c] == 1.0, base[i.q][c] == 1.0) for i in items]
            counts.append((sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)))
        rows.append((qset, split, len(items), counts))
    return rows


def _p(value: float) -> str:
    return "<0.01" if value < 0.01 else f"{value:.2f}"


def paired_table(rows: list[tuple[str, str, str, int, list[tuple[int, int]]]], base: str) -> str:
    cells = "".join(f"  {c + ' won/lost (p)':<22}" for c in PAIRED)
    lines = [
        f"each against {base}, question by question (sign test p)",
        f"{'config':<22} {'set':<12} {'split':<5} {'n':>4}{cells}",
    ]
    for config, qset, split, n, counts in rows:
        shown = "".join(f"  {f'+{w} -{lo} ({_p(sign_test(w, lo))})':<22}" for w, lo in counts)
        lines.append(f"{config:<22} {qset:<12} {split:<5} {n:>4}{shown}")
    return "\n".join(line.rstrip() for line in lines)


#: --compare: the single methods (one candidate list, one score), then the hybrid's first pass alone, the default
#: (both passes) and what its second pass is made of.
CONFIGS: dict[str, rank.Weights] = {
    "dense-chunks": rank.DENSE,
    "dense-segments": rank.SEGMENTS,
    "lexical-bm25": rank.LEXICAL,
    "hybrid-first-pass": rank.FIRST_PASS,
    "hybrid-rerank5": replace(rank.HYBRID, rerank=5),
    "hybrid": rank.HYBRID,
    "hybrid-rerank20": replace(rank.HYBRID, rerank=20),
    "hybrid-words-only": replace(rank.HYBRID, rerank_segment=0.0, rerank_previous=0.0, locate_lexical=0.0),
}
#: --moments: ways to choose the moment inside a passage (issue 12), each the default with one change.
MOMENT_CONFIGS: dict[str, rank.Weights] = {
    "hybrid": rank.HYBRID,
    "no-premise": replace(rank.HYBRID, premise=False),
    "premise-prev-words-0": replace(rank.HYBRID, premise_previous_words=0.0),
    "premise-prev-words-0.2": replace(rank.HYBRID, premise_previous_words=0.2),
    "next-cos-0.1": replace(rank.HYBRID, rerank_next=0.1),
    "prev-cos-0.4": replace(rank.HYBRID, rerank_previous=0.4),
    "prev-cos-0": replace(rank.HYBRID, rerank_previous=0.0),
    "prev-words-0.1": replace(rank.HYBRID, rerank_previous_words=0.1),
    "prev-words-0.2": replace(rank.HYBRID, rerank_previous_words=0.2),
    "segment-cos-0.5": replace(rank.HYBRID, rerank_segment=0.5),
    "cue-prev-words-0.2": replace(rank.HYBRID, cue_previous_words=0.2),
    "cue-prev-words-0.4": replace(rank.HYBRID, cue_previous_words=0.4),
    "anaphor-prev-words-0.2": replace(rank.HYBRID, anaphor_previous_words=0.2),
    "moment-prev-words-0": replace(rank.HYBRID, moment_previous_words=0.0),
    "moment-prev-words-0.05": replace(rank.HYBRID, moment_previous_words=0.05),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("questions", type=Path, nargs="+", help="question files (JSON lines), each a set")
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--index", type=Path, help="reuse (or build into) this index folder")
    ap.add_argument("--compare", action="store_true", help="run every configuration in CONFIGS")
    ap.add_argument("--moments", action="store_true", help="run every configuration in MOMENT_CONFIGS")
    ap.add_argument("--split", choices=["dev", "test", "all"], help="print only this split's rows")
    ap.add_argument("--kinds", action="store_true", help="also break results down by kind")
    ap.add_argument(
        "--merge",
        type=int,
        metavar="SECONDS",
        help=f"merge a video's moments this close as one link (default {retrieve.MERGE_SECONDS}; the reader's view)",
    )
    ap.add_argument(
        "--threshold",
        type=float,
        default=retrieve.ANSWER_THRESHOLD,
        help=f"the flagged column of `ask` at this 'no good answer' threshold (default {retrieve.ANSWER_THRESHOLD})",
    )
    args = ap.parse_args(argv)
    merge = retrieve.MERGE_SECONDS if args.merge is None else args.merge
    questions = [q for path in args.questions for q in load(path)]
    index_dir = args.index or Path(tempfile.mkdtemp(prefix="ytnotes-eval-")) / "index"
    if not (index_dir / "CURRENT").exists():
        started = time.monotonic()
        report = build_index(args.notes, index_dir)
        print(
            f"built {report.notes} notes, {report.chunks} chunks in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    idx = open_for_eval(index_dir)
    configs = CONFIGS if args.compare else MOMENT_CONFIGS if args.moments else {"hybrid": rank.HYBRID}
    rows = []
    scored = {}
    for name, weights in configs.items():
        results = scored[name] = score(idx, questions, weights, merge, args.threshold)
        if args.merge is not None:
            name = f"{name} merge-{args.merge}"
        if args.threshold != retrieve.ANSWER_THRESHOLD:
            name = f"{name} flag<{args.threshold:g}"
        rows += [(name, *r) for r in summarise(questions, results, args.kinds) if args.split in (None, r[1])]
    n_notes = len({q.note for q in questions if q.note})
    print(
        f"{len(questions)} questions over {n_notes} notes; index {index_dir} "
        f"({idx.manifest['counts']['chunks']} chunks, chunk_tokens {idx.manifest['chunking']['chunk_tokens']})"
    )
    print(table(rows))
    if len(scored) > 1:
        base = scored["hybrid"]
        pairs = [
            (name, *r)
            for name, results in scored.items()
            if name != "hybrid"
            for r in paired(questions, base, results)
            if args.split in (None, r[1])
        ]
        print()
        print(paired_table(pairs, "hybrid"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
