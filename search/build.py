"""Building an index from a folder of notes: read, segment, pack, embed, write."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import chunks as chunking
from search import embed, store
from search.errors import NoteError, YtnotesError
from search.notes import find_notes, read_note
from search.segments import ParsedNote, parse_note

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Texts handed to the encoder at a time: bounds memory and gives the progress bar a steady pulse.
ENCODE_BATCH = 256

#: Called as progress(stage, done, total); stage is "read" or "embed".
Progress = Callable[[str, int, int], None]


@dataclass
class BuildReport:
    """What a build did."""

    notes: int
    chunks: int
    segments: int
    seconds: float
    generation: Path
    skipped: list[NoteError] = field(default_factory=list)
    dropped_timestamps: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    parsed: ParsedNote
    chunks: list[chunking.Chunk]


def build_index(
    notes_dir: Path,
    index_dir: Path,
    encoder: embed.Encoder | None = None,
    progress: Progress | None = None,
    chunk_tokens: int = chunking.CHUNK_TOKENS,
) -> BuildReport:
    """Build the index of every note below ``notes_dir`` into ``index_dir``, replacing the old one atomically.

    A note that cannot be read is skipped and reported; when no note at all can be indexed the build fails
    with YtnotesError and the existing index is left as it was.
    """
    started = time.monotonic()
    notes_dir = notes_dir.resolve()
    if not notes_dir.is_dir():
        raise YtnotesError(f"the notes folder {notes_dir} does not exist; pass a folder of .md notes")
    report_progress = progress or (lambda stage, done, total: None)
    with store.build_lock(index_dir):
        skipped: list[NoteError] = []
        paths = list(find_notes(notes_dir, skipped))
        if not paths:
            raise YtnotesError(f"no .md notes in {notes_dir}; pass the folder that holds your notes")
        count_tokens = embed.token_counter()
        prepared: list[_Prepared] = []
        for i, path in enumerate(paths, 1):
            try:
                parsed = parse_note(read_note(path, notes_dir))
                prepared.append(_Prepared(parsed, chunking.pack(parsed, count_tokens, chunk_tokens)))
            except NoteError as exc:
                skipped.append(exc)
            except Exception as exc:  # a parser bug must not stop the other notes
                log.debug("unexpected error reading %s", path, exc_info=True)
                skipped.append(
                    NoteError(
                        path, f"could not be parsed ({type(exc).__name__}: {exc}); please report this note"
                    )
                )
            report_progress("read", i, len(paths))
        prepared = [p for p in prepared if p.chunks]
        if not prepared:
            raise YtnotesError(
                f"none of the {len(paths)} notes in {notes_dir} could be indexed (see the "
                f"warnings above); the existing index is unchanged"
            )

        rows, chunk_texts, segment_texts = _rows(prepared)
        encoder = encoder or embed.load_encoder()
        total = len(chunk_texts) + len(segment_texts)
        chunk_vectors = _encode(encoder, chunk_texts, 0, total, report_progress)
        segment_vectors = _encode(encoder, segment_texts, len(chunk_texts), total, report_progress)
        manifest = _manifest(notes_dir, prepared, len(chunk_texts), len(segment_texts), chunk_tokens)
        generation = store.write_generation(index_dir, manifest, rows, chunk_vectors, segment_vectors)

    dropped = [
        f"{p.parsed.note.path}:{s.line}: [{s.raw}] {s.reason}" for p in prepared for s in p.parsed.skipped
    ]
    return BuildReport(
        notes=len(prepared),
        chunks=len(chunk_texts),
        segments=len(segment_texts),
        seconds=time.monotonic() - started,
        generation=generation,
        skipped=skipped,
        dropped_timestamps=dropped,
    )


def _rows(prepared: list[_Prepared]) -> tuple[store.Rows, list[str], list[str]]:
    rows = store.Rows(notes=[], chunks=[], segments=[], chunk_texts=[])
    chunk_texts: list[str] = []
    segment_texts: list[str] = []
    for note_id, item in enumerate(prepared):
        note = item.parsed.note
        rows.notes.append(
            (note_id, note.rel, note.title, note.channel, note.channel_key, note.video_id, note.sha256)
        )
        for chunk in item.chunks:
            chunk_id = len(chunk_texts)
            seg_start = len(segment_texts)
            for seg in chunk.segments:
                rows.segments.append(
                    (
                        len(segment_texts),
                        note_id,
                        chunk_id,
                        seg.text,
                        json.dumps(seg.times),
                        seg.link_time,
                        seg.line,
                    )
                )
                segment_texts.append(seg.text)
            rows.chunks.append(
                (
                    chunk_id,
                    note_id,
                    json.dumps(list(chunk.heading), ensure_ascii=False),
                    chunk.text,
                    chunk.line,
                    seg_start,
                    len(segment_texts),
                )
            )
            chunk_texts.append(chunking.embed_text(note.title, chunk))
    rows.chunk_texts = chunk_texts
    return rows, chunk_texts, segment_texts


def _encode(
    encoder: embed.Encoder, texts: list[str], done: int, total: int, progress: Progress
) -> np.ndarray:
    import numpy as np

    parts = []
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = texts[start : start + ENCODE_BATCH]
        parts.append(encoder.encode(batch))
        progress("embed", done + start + len(batch), total)
    if not parts:
        return np.zeros((0, embed.DIMENSION), dtype=np.float32)
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def _manifest(
    notes_dir: Path, prepared: list[_Prepared], n_chunks: int, n_segments: int, chunk_tokens: int
) -> dict[str, Any]:
    return {
        "format_version": store.FORMAT_VERSION,
        "model": embed.fingerprint(),
        "chunking": {
            "chunk_tokens": chunk_tokens,
            "chunk_text": "title — heading path\\nsegments",
            "segment_text": "segment prose",
        },
        "notes_dir": str(notes_dir),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {"notes": len(prepared), "chunks": n_chunks, "segments": n_segments},
        "notes": {p.parsed.note.rel: p.parsed.note.sha256 for p in prepared},
    }
