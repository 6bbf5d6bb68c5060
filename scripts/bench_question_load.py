"""How fast a new process gets its question encoder ready: the exported model as it is, and the fast-loading copy
the build writes (search/question_model.py), with and without pre-packed weights.

    .venv/bin/python scripts/bench_question_load.py [--index index] [--runs 15]

Each measurement is a fresh process (after the imports, which are the same for all): the time to create the
encoder, and the time of its first encode of one question. Variants take turns, so a noisy machine hurts each
alike; printed are medians over the runs and each variant's ratio to the exported model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
from pathlib import Path
import numpy, onnxruntime, tokenizers
from search import question_model
from search.fast_encoder import OnnxEncoder
folder, variant = Path(sys.argv[1]), sys.argv[2]
tokenizer = folder / "tokenizer.json"
started = time.perf_counter()
if variant == "exported":
    encoder = OnnxEncoder(folder / "model.onnx", tokenizer)
else:
    encoder = question_model.load(folder, tokenizer, one_shot=variant == "copy, one-shot")
    assert encoder.path.parent.name == question_model.FOLDER, encoder.path
created = time.perf_counter()
encoder.encode(["how does a transformer decide which words to pay attention to?"])
print(json.dumps([created - started, time.perf_counter() - created]))
"""

VARIANTS = ("exported", "copy, pre-packed", "copy, one-shot")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=REPO / "index", help="a built index (its exported model)")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from search import store

    manifest = store.read_manifest(store.current_generation(args.index))
    folder = args.index / manifest["encoder"]["path"]
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.runs):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), variant],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            ).stdout
            create, encode = json.loads(out)
            times[variant].append((create, encode))

    base = statistics.median(c + e for c, e in times["exported"])
    print(f"question encoder in a new process, {args.runs} runs each, medians (ms)")
    print(f"{'variant':<20} {'create':>8} {'1st encode':>11} {'both':>8}  ratio to exported")
    for variant in VARIANTS:
        create = statistics.median(c for c, _ in times[variant]) * 1000
        encode = statistics.median(e for _, e in times[variant]) * 1000
        both = statistics.median(c + e for c, e in times[variant])
        print(f"{variant:<20} {create:8.1f} {encode:11.1f} {both * 1000:8.1f}  {both / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
