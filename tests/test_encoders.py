"""The torch-free encoder (onnxruntime) agrees with sentence-transformers, and the question path needs no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import EXPECTATIONS, SAMPLE_NOTES, run_cli
from search import embed, question_model, store
from search.fast_encoder import OnnxEncoder
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


@pytest.mark.parametrize("which", ["exported", "question", "question one-shot"])
def test_onnx_matches_sentence_transformers(sample_index: Path, texts: list[str], which: str) -> None:
    """The exported model, and the question encoder `ask` and the server use (its fast-loading copy, with and
    without pre-packed weights), each agree with sentence-transformers."""
    assert len(texts) >= 100
    reference = embed.load_encoder().encode(texts)
    gen = store.current_generation(sample_index)
    folder = sample_index / store.read_manifest(gen)["encoder"]["path"]
    if which == "exported":
        encoder = embed.load_onnx_encoder(folder)
    else:
        encoder = embed.load_question_encoder(folder, one_shot=which.endswith("one-shot"))
        assert (
            isinstance(encoder, OnnxEncoder) and encoder.path == folder / question_model.FOLDER / "model.onnx"
        )
    cosines = np.sum(reference * encoder.encode(texts), axis=1)
    assert cosines.min() >= 0.999, (cosines.min(), texts[int(cosines.argmin())])


def test_a_stale_or_damaged_question_copy_falls_back_and_the_next_build_rewrites_it(
    sample_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YTNOTES_CACHE", str(tmp_path / "cache"))  # its own model cache, damaged on purpose
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    run_cli("build", index=index, check=True)  # up to date; exports the model into the new cache
    folder = embed.export_folder()
    assert folder.is_relative_to(tmp_path)
    copy = folder / question_model.FOLDER
    runtime = json.loads((copy / question_model.RUNTIME).read_text())
    (copy / question_model.RUNTIME).write_text(json.dumps({**runtime, "onnxruntime": "0.0.1"}))
    stale = embed.load_question_encoder(folder, one_shot=True)
    assert isinstance(stale, OnnxEncoder) and stale.path == folder / "model.onnx"

    run_cli("build", index=index, check=True)  # nothing changed in the notes: only the copy is rewritten
    assert json.loads((copy / question_model.RUNTIME).read_text())["onnxruntime"] == runtime["onnxruntime"]
    fresh = embed.load_question_encoder(folder, one_shot=True)
    assert isinstance(fresh, OnnxEncoder) and fresh.path == copy / "model.onnx"

    weights = copy / question_model.WEIGHTS
    size = weights.stat().st_size
    weights.unlink()  # zeroed in a new file: a running process may map the old one
    weights.write_bytes(bytes(size))
    proc = run_cli("ask", EXPECTATIONS["ask"][0]["q"], "--json", index=index, check=True)
    assert "question model in" in proc.stderr and "damaged" in proc.stderr
    assert json.loads(proc.stdout)["results"][0]["video_id"] == EXPECTATIONS["ask"][0]["video"]
    run_cli("build", index=index, check=True)
    proc = run_cli("ask", EXPECTATIONS["ask"][0]["q"], index=index, check=True)
    assert "damaged" not in proc.stderr


def test_onnx_and_torch_questions_find_the_same_top_ten(sample_index: Path) -> None:
    idx = open_index(sample_index)
    reference = embed.load_encoder()
    for item in EXPECTATIONS["ask"]:
        a = idx.chunks.search(reference.encode([item["q"]]), 10, None)[1].tolist()
        b = idx.chunks.search(idx.encoder.encode([item["q"]]), 10, None)[1].tolist()
        assert a == b, item["q"]


def test_the_question_path_imports_neither_torch_nor_pydantic(sample_index: Path) -> None:
    """Nor pydantic: typer 0.29 checked every option with it, 77 ms of a cold question (README, "Speed")."""
    # app() rather than main(): main leaves through os._exit after a question, before this could print.
    code = (
        "import sys\n"
        "from search.cli import app\n"
        f"app(['ask', 'why do people procrastinate', '--index', {str(sample_index)!r}], standalone_mode=False)\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'pydantic', 'pydantic_core'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Answer:" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
