"""What an index holds, from its manifest and the sizes of its files: `ytnotes info` opens nothing else.

Opening the whole index to print counts (FAISS files, SQLite, the question encoder) took 0.41 s for the shared
corpus and 0.83 s for 30 times it; the manifest says everything `info` prints, and its size grows only with the
number of notes (their paths and hashes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search import store
from search.embed import ONNX
from search.errors import IndexUnusableError

#: Attempts at reading the live generation when a build swaps in another meanwhile (as `search.retrieve`).
TRIES = 3


def describe(index_dir: Path) -> dict[str, Any]:
    """What the live index in ``index_dir`` holds (the document `ytnotes info --json` prints)."""
    for attempt in range(TRIES):
        before = store.live_name(index_dir)
        try:
            generation = store.current_generation(index_dir)
            manifest = store.read_manifest(generation)
            return summary(index_dir, generation, manifest, store.size_on_disk(generation))
        except IndexUnusableError:
            if attempt + 1 == TRIES or store.live_name(index_dir) in (before, None):
                raise
    raise AssertionError("unreachable")


def summary(index_dir: Path, generation: Path, manifest: dict[str, Any], size_bytes: int) -> dict[str, Any]:
    """The info document of a generation, from its manifest."""
    m = manifest
    try:
        return {
            "index": str(index_dir),
            "generation": generation.name,
            "notes_dir": m["notes_dir"],
            "notes": m["counts"]["notes"],
            "chunks": m["counts"]["chunks"],
            "segments": m["counts"]["segments"],
            "model": m["model"]["name"],
            "dimension": m["model"]["dimension"],
            "encoder": (m.get("encoder") or {}).get("kind", ONNX),
            "chunk_tokens": m["chunking"]["chunk_tokens"],
            "built_at": m["built_at"],
            "size_bytes": size_bytes,
            "format_version": m["format_version"],
            # How each FAISS file is searched ({"type": "flat"} exactly, or an IVF's lists and probes).
            "vectors": {
                name.removesuffix(".faiss"): record for name, record in (m.get("vectors") or {}).items()
            },
            # Where the rows a rebuild added after the last full write begin (`search.parts`); None for none.
            "tail": m.get("tail"),
        }
    except (KeyError, TypeError) as exc:
        raise IndexUnusableError(f"the manifest in {generation} lacks {exc}; {store.REBUILD_HINT}") from None
