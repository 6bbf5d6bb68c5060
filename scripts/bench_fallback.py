"""What encoding with sentence-transformers costs, next to the torch-free path, for the same weights.

    .venv/bin/python scripts/bench_fallback.py [--notes DIR] [--passages 400] [--rounds 5] [--copy DIR]

A model with no torch-free export (a Dense module after pooling, another pooling than mean, an export that
disagrees) is encoded with sentence-transformers (`search.torch_encoder`). To see the cost alone, this uses the
bundled all-MiniLM-L6-v2 twice: as it is (torch-free: int8 documents, fp32 questions) and as a copy with an
identity Dense module after pooling (the same vectors; ytnotes encodes it with sentence-transformers, fp32). The
copy is saved in --copy (kept: `scripts/compare_models.py bundled DIR` then measures builds, cold `ask` and answer
quality through the real CLI).

In one process, interleaved rounds, medians: documents as a build encodes them (`embed.encode_chunks`: chunk,
segment and word vectors of corpus passages; torch-free with one single-threaded onnxruntime session per core, as
the build's pool; sentence-transformers with torch's threads, as the build's one encoding thread), and one
question as `ask` encodes it. The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search import chunks as chunking  # noqa: E402
from search import embed, model_folder, torch_encoder  # noqa: E402
from search.build import _read  # noqa: E402
from search.errors import NoteError  # noqa: E402
from search.notes import find_notes  # noqa: E402

QUESTION = "why did he drop out of college?"
#: Chunks handed to an encoding thread at a time, as the build's pool does (`search.encoding.UNIT`).
UNIT = 8


def make_dense_copy(out: Path) -> Path:
    """The bundled model with an identity Dense module (no bias, no activation) before its Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    if (out / "modules.json").is_file():
        return out
    bundled = SentenceTransformer(str(model_folder.bundled_path()), device="cpu", local_files_only=True)
    dim = model_folder.bundled().dimension
    dense = Dense(dim, dim, bias=False, activation_function=torch.nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(torch.eye(dim))
    modules = list(bundled)
    SentenceTransformer(modules=[modules[0], modules[1], dense, *modules[2:]]).save(str(out))
    return out


def passages(
    notes: Path, limit: int, model: model_folder.Model
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """The embedded texts and segment spans of the corpus's first chunks (notes in path order)."""
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    skipped: list[NoteError] = []
    for path in sorted(find_notes(notes, skipped)):
        data = _read(path, notes, chunking.CHUNK_TOKENS, skipped, model)
        if data is None:
            continue
        texts += [c[5] for c in data.chunks]
        spans += data.spans
        if len(texts) >= limit:
            break
    return texts[:limit], spans[:limit]


def onnx_build(encoders: list[embed.Encoder], texts: list[str], spans: list[list[tuple[int, int]]]) -> object:
    """Encode as the build's pool does: units of chunks shared by one thread per session."""
    units = [(texts[i : i + UNIT], spans[i : i + UNIT]) for i in range(0, len(texts), UNIT)]

    def work(part: int) -> None:
        for t, s in units[part :: len(encoders)]:
            embed.encode_chunks(encoders[part], t, s)

    with ThreadPoolExecutor(len(encoders)) as pool:
        list(pool.map(work, range(len(encoders))))
    return None


def timed(fn: object, *args: object) -> float:
    started = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--passages", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copy", type=Path, default=Path("/tmp/ytnotes-bench/all-MiniLM-L6-v2-dense"))
    args = ap.parse_args()
    embed.offline()
    import numpy as np

    bundled = model_folder.bundled()
    copy = model_folder.read(make_dense_copy(args.copy))
    assert embed.encoder_choice(copy).kind == embed.SENTENCE_TRANSFORMERS, copy
    texts, spans = passages(args.notes, args.passages, bundled)
    folder = embed.ensure_exported(model=bundled)
    workers = max(1, min(os.cpu_count() or 1, 4))
    onnx_docs = [embed.load_document_encoder(threads=1, model=bundled) for _ in range(workers)]
    torch_docs = torch_encoder.load(copy, copy.document_prompt)
    onnx_question = embed.load_question_encoder(folder, fingerprint=bundled.fingerprint())
    torch_question = torch_encoder.load(copy, copy.query_prompt)

    # The same vectors? (int8 documents against fp32 ones; fp32 questions both.)
    a = embed.encode_chunks(onnx_docs[0], texts[:100], spans[:100]).chunks
    b = embed.encode_chunks(torch_docs, texts[:100], spans[:100]).chunks
    doc_cos = np.sum(a * b, axis=1)
    q_cos = float(onnx_question.encode([QUESTION])[0] @ torch_question.encode([QUESTION])[0])

    onnx_doc_s, torch_doc_s, onnx_q_ms, torch_q_ms = [], [], [], []
    for _ in range(args.rounds):
        onnx_doc_s.append(timed(onnx_build, onnx_docs, texts, spans))
        torch_doc_s.append(timed(embed.encode_chunks, torch_docs, texts, spans))
        onnx_q_ms.append(1000 * statistics.median(timed(onnx_question.encode, [QUESTION]) for _ in range(20)))
        torch_q_ms.append(
            1000 * statistics.median(timed(torch_question.encode, [QUESTION]) for _ in range(20))
        )

    n = len(texts)
    onnx_rate, torch_rate = n / statistics.median(onnx_doc_s), n / statistics.median(torch_doc_s)
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; {n} corpus "
        f"passages; median of {args.rounds} interleaved rounds"
    )
    print(f"{'all-MiniLM-L6-v2, same weights':<44} {'documents/s':>12} {'question ms':>12}")
    print(
        f"{'torch-free (int8 documents, fp32 questions)':<44} {onnx_rate:12.1f} {statistics.median(onnx_q_ms):12.1f}"
    )
    print(
        f"{'sentence-transformers (fp32, torch)':<44} {torch_rate:12.1f} {statistics.median(torch_q_ms):12.1f}"
    )
    print(
        f"ratio (torch-free / sentence-transformers): documents {onnx_rate / torch_rate:.2f}x faster, question "
        f"{statistics.median(torch_q_ms) / statistics.median(onnx_q_ms):.2f}x faster"
    )
    print(
        f"cosine torch-free vs sentence-transformers: documents mean {doc_cos.mean():.4f} min {doc_cos.min():.4f} "
        f"(int8 vs fp32), question {q_cos:.6f}"
    )
    print(f"the copy with a Dense module: {args.copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
