"""The torch-free encoder (onnxruntime) agrees with sentence-transformers, and the question path needs no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import EXPECTATIONS, SAMPLE_NOTES
from search import embed, store
from search.retrieve import open_index


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from search.markup import clean

    out = [
        clean(line) for p in sorted(SAMPLE_NOTES.rglob("*.md")) for line in p.read_text("utf-8").splitlines()
    ]
    out = [t for t in out if len(t) > 20][:90]
    out += [item["q"] for item in EXPECTATIONS["ask"]]  # short questions
    out += [" ".join(out[i : i + 12]) for i in range(0, 48, 12)]  # longer than the 256-token window
    out += ["Gangnam style 강남스타일 江南", "Café, über, mañana — 100 °C and 5 µs", "a", "?"]
    return out


def test_onnx_matches_sentence_transformers(sample_index: Path, texts: list[str]) -> None:
    assert len(texts) >= 100
    reference = embed.load_encoder().encode(texts)
    gen = store.current_generation(sample_index)
    manifest = store.read_manifest(gen)
    fast = embed.load_onnx_encoder(sample_index / manifest["encoder"]["path"]).encode(texts)
    cosines = np.sum(reference * fast, axis=1)
    assert cosines.min() >= 0.999, (cosines.min(), texts[int(cosines.argmin())])


def test_onnx_and_torch_questions_find_the_same_top_ten(sample_index: Path) -> None:
    idx = open_index(sample_index)
    reference = embed.load_encoder()
    for item in EXPECTATIONS["ask"]:
        a = idx.chunks.search(reference.encode([item["q"]]), 10)[1][0].tolist()
        b = idx.chunks.search(idx.encoder.encode([item["q"]]), 10)[1][0].tolist()
        assert a == b, item["q"]


def test_the_question_path_imports_no_torch(sample_index: Path) -> None:
    # app() rather than main(): main leaves through os._exit after a question, before this could print.
    code = (
        "import sys\n"
        "from search.cli import app\n"
        f"app(['ask', 'why do people procrastinate', '--index', {str(sample_index)!r}], standalone_mode=False)\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Answer:" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
