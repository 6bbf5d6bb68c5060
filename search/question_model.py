"""The question encoder's copy of the model, laid out so that a new process loads it in milliseconds.

onnxruntime spends about 150 ms creating a session from the exported fp32 model: it reads 90 MB of weights into
memory and optimises the graph. The build saves the graph already optimised (ORT_ENABLE_EXTENDED: fused
operators, no hardware-specific layouts) with its weights in a separate file, which onnxruntime memory-maps;
created with optimisations off, the session is ready in about 45 ms, or 9 ms when it also skips pre-packing the
weights (then each encode costs about 4.5 ms instead of 2.6 ms: right for `ytnotes ask`, which encodes one
question, wrong for the server). Outputs match the exported model (max difference 1.3e-7; tests/test_encoders.py).

The saved graph belongs to the onnxruntime version that wrote it (runtime.json); under another version the
question encoder falls back to the exported model, and the next build writes the copy again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import raise_if_disk
from search.verified import Verified, file_sha256

if TYPE_CHECKING:
    from search.fast_encoder import OnnxEncoder

FOLDER = "question"
MODEL = "model.onnx"
WEIGHTS = "model.onnx.data"
RUNTIME = "runtime.json"
#: Folders checked in this process (hashing the weights takes about 50 ms; see `search.verified`).
_READY: set[Path] = set()
#: A question checks this many pages spread over the weights file against their recorded hash (well under a
#: millisecond): a zeroed or truncated file would otherwise load and give meaningless vectors.
SAMPLED_PAGES = 64
PAGE = 4096


def prepare(export: Path) -> None:
    """Make sure ``export/question`` holds the fast copy of ``export/model.onnx`` for this onnxruntime, undamaged;
    write it (about 1 s) when not. Call with the model cache's lock held (see `search.embed.ensure_exported`)."""
    folder = export / FOLDER
    if folder in _READY or _intact(folder):
        _READY.add(folder)
        return
    import onnxruntime as ort

    tmp = export.parent / f".tmp-q-{os.getpid()}-{export.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(tmp / MODEL)
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        ort.InferenceSession(
            str(export / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        record = {
            "onnxruntime": ort.__version__,
            "source_sha256": _source_sha256(export),
            "model_sha256": file_sha256(tmp / MODEL),
            "weights_sha256": file_sha256(tmp / WEIGHTS),
            "weights_pages_sha256": _pages_sha256(tmp / WEIGHTS),
        }
        (tmp / RUNTIME).write_text(json.dumps(record, indent=1), encoding="utf-8")
        written = Verified(tmp)
        written.trust(MODEL, record["model_sha256"])
        written.trust(WEIGHTS, record["weights_sha256"])
        written.save()
        # A process may have the old weights memory-mapped: they are unlinked, never rewritten in place.
        trash = export.parent / f".tmp-old-{os.getpid()}-{export.name}"
        if folder.exists():
            os.rename(folder, trash)
        os.rename(tmp, folder)
        shutil.rmtree(trash, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_disk(exc, f"write the question model into {export}")
        raise
    _READY.add(folder)


def forget(export: Path) -> None:
    """Check ``export``'s copy again at the next `prepare` (its folder was deleted since it was checked)."""
    _READY.discard(export / FOLDER)


def _intact(folder: Path) -> bool:
    """Whether the fast copy is for this onnxruntime and this export, and hashes as recorded."""
    import onnxruntime as ort

    try:
        record = json.loads((folder / RUNTIME).read_text(encoding="utf-8"))
        checked = Verified(folder)
        intact = bool(
            record["onnxruntime"] == ort.__version__
            and record["source_sha256"] == _source_sha256(folder.parent)
            and checked.matches(MODEL, record["model_sha256"])
            and checked.matches(WEIGHTS, record["weights_sha256"])
            and record["weights_pages_sha256"] == _pages_sha256(folder / WEIGHTS)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return intact


def load(export: Path, tokenizer: Path, one_shot: bool, max_seq_length: int, prompt: str = "") -> OnnxEncoder:
    """The question encoder: the fast copy when it was written by this onnxruntime and its weights look whole,
    else the exported model (with a warning when the copy is damaged). ``one_shot``: the process encodes a
    question or two and exits (skip pre-packing the weights). ``max_seq_length``, ``prompt``: the model's (its
    query prompt)."""
    import onnxruntime as ort

    from search.fast_encoder import OnnxEncoder

    folder = export / FOLDER
    try:
        record = json.loads((folder / RUNTIME).read_text(encoding="utf-8"))
        usable = record["onnxruntime"] == ort.__version__
        if usable and record["weights_pages_sha256"] != _pages_sha256(folder / WEIGHTS):
            usable = False
            print(
                f"warning: the question model in {folder} is damaged; using the exported model instead (run "
                "`ytnotes build` to repair it)",
                file=sys.stderr,
            )
    except (OSError, ValueError, KeyError, TypeError):
        usable = False
    # A one-shot question gets every core; a server answers several at once, one core each.
    threads = None if one_shot else 1
    if usable:
        return OnnxEncoder(
            folder / MODEL,
            tokenizer,
            threads=threads,
            optimized=True,
            prepack=not one_shot,
            max_seq_length=max_seq_length,
            prompt=prompt,
        )
    return OnnxEncoder(
        export / "model.onnx", tokenizer, threads=threads, max_seq_length=max_seq_length, prompt=prompt
    )


def _pages_sha256(path: Path) -> str:
    """Hash of the file's size and of SAMPLED_PAGES pages spread evenly over it."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for n in range(SAMPLED_PAGES):
            f.seek(max(0, size - PAGE) * n // max(1, SAMPLED_PAGES - 1))
            digest.update(f.read(PAGE))
    return digest.hexdigest()


def _source_sha256(export: Path) -> str:
    """The exported model's hash, as its export record gives it (the build has checked it)."""
    return str(json.loads((export / "encoder.json").read_text(encoding="utf-8"))["onnx_sha256"])
