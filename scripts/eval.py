"""Answer-quality evaluation: run a question set through the library in one process and print hit@1, hit@5, MRR@10.

    .venv/bin/python scripts/eval.py scripts/eval/questions.jsonl                   # default settings
    .venv/bin/python scripts/eval.py scripts/eval/questions.jsonl --compare         # every retrieval mode
    .venv/bin/python scripts/eval.py QUESTIONS.jsonl --notes ~/notes --index /tmp/ix

A question: {"q": ..., "video": <videoId>, "t": [seconds, ...], "note": <path under the notes folder>, "kind": ...}.
Kinds starting with "locate" go through `locate` (hit@1 only: it answers with one sentence); the others through
`ask`. A hit is a result with the same videoId and a time within ±10 s of a gold time. Questions are split by a
hash of their text into dev (two thirds, for choosing settings) and test (one third, held out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search import embed, rank, store  # noqa: E402
from search.build import build_index  # noqa: E402
from search.retrieve import Index, open_index  # noqa: E402

TOLERANCE = 10  # seconds either side of a gold time
DEPTH = 10  # MRR@10


@dataclass
class Question:
    q: str
    video: str
    t: list[int]
    note: str
    kind: str

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
    folder = index_dir / str((manifest.get("encoder") or {}).get("path", "-"))
    return open_index(index_dir, encoder=CachedEncoder(embed.load_question_encoder(folder)))


def load(path: Path) -> list[Question]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(Question(d["q"], d["video"], [int(x) for x in d["t"]], d["note"], d["kind"]))
    if not items:
        sys.exit(f"{path}: no questions")
    return items


def score(idx: Index, questions: list[Question], weights: rank.Weights) -> dict[str, list[float]]:
    """Per question: [hit@1, hit@5, reciprocal rank, right second given right video at rank 1 (or nan)]."""
    out: dict[str, list[float]] = {}
    for item in questions:
        if item.is_locate:
            found = idx.locate(item.q, weights=weights)
            h = found.hit
            ok = float(h is not None and item.hit(h.video_id, h.seconds))
            same = h is not None and h.video_id == item.video
            out[item.q] = [ok, ok, ok, ok if same else float("nan")]
            continue
        hits = idx.ask(item.q, k=DEPTH, weights=weights)
        ranks = [h.rank for h in hits if item.hit(h.video_id, h.seconds)]
        first = ranks[0] if ranks else None
        top_same = bool(hits) and hits[0].video_id == item.video
        out[item.q] = [
            float(first == 1),
            float(first is not None and first <= 5),
            1.0 / first if first else 0.0,
            float(first == 1) if top_same else float("nan"),
        ]
    return out


def table(rows: list[tuple[str, str, str, int, list[float]]]) -> str:
    lines = [f"{'config':<22} {'split':<5} {'kind':<12} {'n':>4}  hit@1  hit@5  MRR@10  second±10s"]
    for config, split, kind, n, m in rows:
        lines.append(
            f"{config:<22} {split:<5} {kind:<12} {n:>4}  {m[0]:.3f}  {m[1]:.3f}  {m[2]:.3f}   {m[3]:.3f}"
        )
    return "\n".join(lines)


def summarise(questions: list[Question], results: dict[str, list[float]], kinds: bool) -> list[tuple]:
    groups: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for item in questions:
        family = "locate" if item.is_locate else "ask"
        for split in (item.split, "all"):
            groups[(split, family)].append(results[item.q])
            if kinds:
                groups[(split, item.kind)].append(results[item.q])
    rows = []
    for (split, kind), vals in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        arr = np.array(vals, dtype=float)
        rows.append((split, kind, len(vals), [float(np.nanmean(arr[:, i])) for i in range(4)]))
    return rows


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--index", type=Path, help="reuse (or build into) this index folder")
    ap.add_argument("--compare", action="store_true", help="run every configuration in CONFIGS")
    ap.add_argument("--kinds", action="store_true", help="also break results down by kind")
    args = ap.parse_args(argv)

    questions = load(args.questions)
    index_dir = args.index or Path(tempfile.mkdtemp(prefix="ytnotes-eval-")) / "index"
    if not (index_dir / "CURRENT").exists():
        started = time.monotonic()
        report = build_index(args.notes, index_dir)
        print(
            f"built {report.notes} notes, {report.chunks} chunks in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    idx = open_for_eval(index_dir)
    configs = CONFIGS if args.compare else {"hybrid": rank.HYBRID}
    rows = []
    for name, weights in configs.items():
        results = score(idx, questions, weights)
        rows += [(name, *r) for r in summarise(questions, results, args.kinds)]
    n_notes = len({q.note for q in questions})
    print(
        f"{len(questions)} questions over {n_notes} notes; index {index_dir} "
        f"({idx.manifest['counts']['chunks']} chunks, chunk_tokens {idx.manifest['chunking']['chunk_tokens']})"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
