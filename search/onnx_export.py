"""Export the sentence-transformers transformer body to ONNX (torch needed only here)."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

ONNX_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
#: The export is checked against sentence-transformers on these texts (the issue's bar: cosine >= 0.999 each, for
#: the fp32 model questions are encoded with; the int8 copy is the evaluation harness's to judge).
CHECK_TEXTS = (
    "why did he drop out of college?",
    "how are attention scores scaled",
    "Karpathy — Let's build GPT\nThe attention scores are divided by the square root of the head size, "
    "so that the softmax does not saturate at initialisation.",
    "Écrire des notes en français, avec des accents: ça marche aussi.",
)
MIN_COSINE = 0.999


def export_onnx(model_dir: Path, out_dir: Path) -> Path:
    """Export ``model_dir``'s transformer to ``out_dir/model.onnx`` and return its path.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, dynamic
    batch and sequence axes); output ``last_hidden_state``. Pooling and
    normalisation are left to the caller. Uses the legacy TorchScript exporter
    (``dynamo=False``), reads only the local folder, and writes every file
    atomically. ``tokenizer.json`` is copied beside the model.
    """
    import torch
    from transformers import AutoModel

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    # Eager attention traces to plain MatMul/Softmax ops (an SDPA trace measured no faster in ORT).
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"

    class _Body(torch.nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, a: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=a, attention_mask=m, token_type_ids=t).last_hidden_state

    class _BodyNoTypes(torch.nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=a, attention_mask=m).last_hidden_state

    # Some architectures (MPNet, RoBERTa-like ones without segments) take no token_type_ids.
    with_types = "token_type_ids" in inspect.signature(model.forward).parameters
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    ids = ids.clamp(max=int(model.config.vocab_size) - 1)
    mask = (ids != 0).long()
    args: tuple[torch.Tensor, ...] = (ids, mask, torch.zeros_like(ids)) if with_types else (ids, mask)
    names = ["input_ids", "attention_mask", "token_type_ids"][: len(args)]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}

    target = out_dir / ONNX_NAME
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx", dir=out_dir)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                _Body(model) if with_types else _BodyNoTypes(model),
                args,
                tmp_name,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
            )
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
        tok_tmp = out_dir / f".{TOKENIZER_NAME}.tmp"
        shutil.copyfile(model_dir / TOKENIZER_NAME, tok_tmp)
        os.replace(tok_tmp, out_dir / TOKENIZER_NAME)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def check_export(
    model_dir: Path, onnx_path: Path, max_seq_length: int, prompt: str, min_cosine: float = MIN_COSINE
) -> None:
    """Raise RuntimeError unless the exported model, run torch-free as questions are, gives the vectors
    sentence-transformers gives (cosine >= ``min_cosine`` on each of CHECK_TEXTS, with the query prompt)."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from search.fast_encoder import OnnxEncoder

    reference = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    reference.max_seq_length = max_seq_length
    texts = list(CHECK_TEXTS)
    expected = reference.encode(
        texts, prompt=prompt or None, normalize_embeddings=True, convert_to_numpy=True
    )
    encoder = OnnxEncoder(
        onnx_path, onnx_path.parent / TOKENIZER_NAME, max_seq_length=max_seq_length, prompt=prompt
    )
    got = encoder.encode(texts)
    if got.shape != expected.shape:
        raise RuntimeError(
            f"the exported model gives vectors of shape {got.shape}, sentence-transformers {expected.shape}"
        )
    worst = float(np.min(np.sum(got * expected, axis=1)))
    if worst < min_cosine:
        raise RuntimeError(
            f"the exported model disagrees with sentence-transformers (cosine {worst:.4f} < {min_cosine})"
        )


def export_in_child(
    model_dir: Path,
    out_dir: Path,
    check: bool = False,
    max_seq_length: int = 0,
    prompt: str = "",
    min_cosine: float = MIN_COSINE,
) -> Path:
    """`export_onnx` in a child process, which ignores Ctrl-C; this process, interrupted, kills it.

    torch's exporter calls back into Python from C++, where a KeyboardInterrupt can abort the whole process
    ("terminate called after throwing an instance of 'pybind11::error_already_set'"), leaving its files behind.
    The child's memory (torch, the traced model) is also returned when it ends. A failure is a RuntimeError
    naming the child's error. ``check``: the child then checks the export with `check_export` (at ``min_cosine``,
    passed from this process: the child imports this module afresh)."""
    import multiprocessing
    import signal

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    # The child starts with Ctrl-C held back (a signal mask is inherited), then ignores it: one pressed while it
    # starts cannot interrupt it half-way into a traceback. This process takes it once the child is started.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child = context.Process(
            target=_export_main,
            args=(str(model_dir), str(out_dir), send, os.getpid(), check, max_seq_length, prompt, min_cosine),
            name="ytnotes-export",
        )
        child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    send.close()
    try:
        child.join()
    except BaseException:
        child.kill()
        child.join()
        raise
    try:
        failure = receive.recv()  # sent only on failure: end of file once the child is done
    except EOFError:
        failure = None
    receive.close()
    if child.exitcode != 0:
        raise RuntimeError(failure or f"the model export ended with status {child.exitcode}")
    return out_dir / ONNX_NAME


def _export_main(
    model_dir: str,
    out_dir: str,
    report: Any,
    parent: int,
    check: bool,
    max_seq_length: int,
    prompt: str,
    min_cosine: float,
) -> None:
    """The child process of `export_in_child`."""
    import signal
    import warnings

    from search.children import end_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    end_with_parent(parent, signal.SIGKILL)
    warnings.simplefilter("ignore")  # the tracer's warnings say nothing a user can act on
    try:
        onnx_path = export_onnx(Path(model_dir), Path(out_dir))
        if check:
            check_export(Path(model_dir), onnx_path, max_seq_length, prompt, min_cosine)
    except BaseException as exc:
        report.send(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
