"""How close an index's approximate (IVF) search comes to exact search on the same vectors, and what each costs.

    .venv/bin/python scripts/ann_recall.py --index DIR [--lists-per-root 4] [--probes 16,32,64]

For the chunk and segment vectors of the index (any size: a flat file is turned into an IVF here as a build past
`search.store.ANN_MIN` would make it), the evaluation questions (scripts/eval/questions*.jsonl) are encoded by the
index's own question encoder and searched one at a time on one thread, as `ytnotes ask` does: exactly (a flat
index of the same vectors) and through the IVF at each number of probed lists. Printed: recall@10 and recall at the
depth ranking uses (50 passages, 150 segments) against exact search, and the median time of one search.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search import store  # noqa: E402
from search.retrieve import open_index  # noqa: E402

#: Candidates ranking takes from each list (search.rank.Weights.depth, and three times it for segments).
DEPTHS = {store.CHUNKS: 50, store.SEGMENTS: 150}


def _recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(found, truth, strict=True)]))


def _timed(index: object, questions: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Ids found for each question, searched one at a time, and the median time of one search (ms)."""
    out, times = [], []
    for q in questions:
        began = time.perf_counter()
        _, ids = index.search(q[None], k)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - began)
        out.append(ids[0])
    return np.asarray(out), 1000 * statistics.median(times)


def main() -> int:
    import faiss

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--lists-per-root", type=float, default=store.IVF_LISTS_PER_ROOT)
    ap.add_argument("--probes", default="16,32,64")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    idx = open_index(args.index)
    files = sorted((REPO / "scripts" / "eval").glob("questions*.jsonl"))
    texts = [
        json.loads(line)["q"] for f in files for line in f.read_text(encoding="utf-8").splitlines() if line
    ]
    questions = np.vstack([idx.encoder.encode([t]) for t in texts]).astype(np.float32)
    print(f"{args.index}: {len(texts)} questions, one search at a time on one thread")
    print(f"{'vectors':<10} {'n':>8}  {'search':<16} {'recall@10':>9}  {'recall@depth':>12}  {'ms':>6}")
    # The FAISS files (of a full build: a generation with a tail, search/parts.py, searches its tail exactly).
    for name, index in ((store.CHUNKS, idx.chunks.base), (store.SEGMENTS, idx.segments.base)):
        vectors = index.reconstruct_n(0, index.ntotal)
        n, dimension = vectors.shape
        depth = min(DEPTHS[name], n)
        exact = faiss.IndexFlatIP(dimension)
        exact.add(vectors)
        truth, exact_ms = _timed(exact, questions, depth)
        print(f"{name:<10} {n:>8}  {'exact':<16} {1.0:>9.4f}  {1.0:>12.4f}  {exact_ms:>6.2f}")
        lists = int(args.lists_per_root * np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.min_points_per_centroid = 1
        sample = np.random.default_rng(0).choice(n, min(n, store.IVF_TRAIN_PER_LIST * lists), replace=False)
        ivf.train(np.ascontiguousarray(vectors[np.sort(sample)]))
        ivf.add(vectors)
        for probe in (int(p) for p in args.probes.split(",")):
            ivf.nprobe = probe
            found, ms = _timed(ivf, questions, depth)
            label = f"IVF{lists} probe {probe}"
            print(
                f"{name:<10} {n:>8}  {label:<16} {_recall(found, truth, 10):>9.4f}  "
                f"{_recall(found, truth, depth):>12.4f}  {ms:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
