"""Does a faster way of encoding documents cost answer quality? One run, one table.

    .venv/bin/python scripts/compare_doc_encoders.py [--notes DIR] [--work DIR] [--only NAME ...]

Builds the corpus index once per variant (all with the same fp32 question encoder) and runs the evaluation
question set (scripts/eval/questions.jsonl) through each: hit@1, hit@5, MRR@10 for ask and locate, build
seconds and chunks/s. Variants: segment vectors encoded separately or pooled from the chunk pass; document
model fp32 or int8 (onnxruntime dynamic quantisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import eval as ev  # noqa: E402

from search import embed, rank  # noqa: E402
from search.build import build_index  # noqa: E402
from search.retrieve import open_index  # noqa: E402

VARIANTS = {
    "fp32-separate": ("fp32", "separate"),
    "fp32-pooled": ("fp32", "pooled"),
    "int8-separate": ("int8", "separate"),
    "int8-pooled": ("int8", "pooled"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--questions", type=Path, default=REPO / "scripts" / "eval" / "questions.jsonl")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ytnotes-docenc"))
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS))
    args = ap.parse_args()

    questions = ev.load(args.questions)
    rows, lines = [], []
    for name in args.only or VARIANTS:
        precision, segments = VARIANTS[name]
        index = args.work / name
        fp32 = embed.ensure_exported()
        embed.SEGMENT_VECTORS = segments
        embed.DOCUMENT_PRECISION = precision
        model_file = embed.INT8_FILE if precision == "int8" else embed.ONNX_FILE
        encoder = embed.load_onnx_encoder(fp32, model_file, None, embed.DOCUMENT_DISABLED_FUSIONS)
        started = time.monotonic()
        report = build_index(args.notes, index, encoder=encoder, full=True)
        seconds = time.monotonic() - started
        idx = open_index(index)  # questions: the index's own fp32 export
        results = ev.score(idx, questions, rank.HYBRID)
        rows += [(name, *r) for r in ev.summarise(questions, results, False) if r[0] == "all"]
        lines.append(
            f"{name:<15} build {seconds:6.1f} s  {report.chunks / seconds:6.1f} chunks/s  "
            f"({report.chunks} chunks, {report.segments} segments)"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    print(ev.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
