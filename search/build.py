"""Building an index from a folder of notes: read, segment, pack, embed, write.

A rebuild redoes only what changed. A note whose bytes hash as in the live index keeps its rows and vectors;
inside a changed note, a chunk whose text is unchanged keeps its vectors (keyed by a hash of the chunk's text and
its segments). When nothing changed, nothing is written. A different model, format or chunk setting, or
``full=True``, rebuilds everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import chunks as chunking
from search import embed, model_folder, paths, store, verified, video_clocks, word_codebook, words
from search import writer as writer_module
from search.encoding import EncodingPool
from search.errors import IndexMissingError, NoteError, YtnotesError
from search.notes import find_notes, read_note
from search.previous import NoteData, Previous, open_previous
from search.segments import parse_note

log = logging.getLogger(__name__)

#: Called as progress(stage, done, total); stage is "read" or "embed", or "export" (0, 0) when a first build starts
#: the one-time model export.
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
    #: "path:line: [value] why" for each timestamp ignored in the notes read by this build (warned of) ...
    dropped_timestamps: list[str] = field(default_factory=list)
    #: ... and in the notes reused unchanged (warned of when they were read; `build --verbose` lists them again).
    dropped_before: list[str] = field(default_factory=list)
    #: "path: how its clock was read", for each note read by this build whose timestamps were repaired as a whole.
    clock_repairs: list[str] = field(default_factory=list)
    #: Notes read and embedded anew / taken from the previous index unchanged; chunks embedded / reused.
    changed_notes: int = 0
    reused_notes: int = 0
    embedded_chunks: int = 0
    reused_chunks: int = 0
    removed_notes: int = 0
    #: Seconds spent encoding (not loading the model, reading notes or writing the index).
    encode_seconds: float = 0.0
    up_to_date: bool = False
    notice: str | None = None
    #: The folder indexed (absolute).
    notes_dir: Path | None = None


def settings(chunk_tokens: int, encoder: str = embed.ONNX, spaced_tokens: bool = False) -> dict[str, Any]:
    """Everything besides the model that decides what the vectors are; recorded in the manifest. ``encoder``:
    `embed.ONNX`, or `embed.SENTENCE_TRANSFORMERS` for a model with no torch-free export (fp32 documents).
    ``spaced_tokens``: the model's tokenizer counts a word's leading space into its token
    (`embed.offsets_take_spaces`); recorded, so that indexes made before spans left that space out are rebuilt."""
    if encoder != embed.ONNX:
        chosen = {
            "chunk_tokens": chunk_tokens,
            "chunk_text": "title — heading path\\nsegments",
            "segment_vectors": embed.SEGMENT_VECTORS,
            "encoder": encoder,
            "document_precision": "fp32",
            "word_vectors": f"{words.KEPT} words, int8",
        }
    else:
        chosen = {
            "chunk_tokens": chunk_tokens,
            "chunk_text": "title — heading path\\nsegments",
            "segment_vectors": embed.SEGMENT_VECTORS,
            "document_precision": embed.DOCUMENT_PRECISION,
            "int8": embed.INT8_RECIPE,
            "document_graph": "without " + ", ".join(embed.DOCUMENT_DISABLED_FUSIONS),
            "word_vectors": f"{words.KEPT} words, {words.RECIPE}",
        }
    if spaced_tokens:
        chosen["token_spans"] = "leading whitespace left out"
    return chosen


def build_index(
    notes_dir: Path | None,
    index_dir: Path,
    encoder: embed.Encoder | None = None,
    progress: Progress | None = None,
    chunk_tokens: int = chunking.CHUNK_TOKENS,
    full: bool = False,
    replace: bool = False,
    model: Path | None = None,
) -> BuildReport:
    """Build the index of every note below ``notes_dir`` into ``index_dir``, replacing the old one atomically.

    ``notes_dir`` None: the folder the index was built from (the bundled samples for a new index). A folder
    other than the index's own is refused unless ``replace`` (see `choose_notes`). A note that cannot be read is
    skipped and reported; when no note at all can be indexed the build fails with YtnotesError and the existing
    index is left as it was. ``model``: a sentence-transformers model folder, or ``bundled`` (default:
    YTNOTES_MODEL, else the index's own model, else the bundled one; see `choose_model`). Another model than the
    index's rebuilds everything, and says so.
    """
    started = time.monotonic()
    report_progress = progress or (lambda stage, done, total: None)
    if notes_dir is not None and not notes_dir.is_dir():
        raise YtnotesError(
            f"the notes folder {notes_dir.absolute()} does not exist; pass a folder of .md notes"
        )
    with store.build_lock(index_dir):
        notes_dir, chosen = choose_notes(index_dir, notes_dir, replace)
        if not notes_dir.is_dir():
            raise YtnotesError(f"the notes folder {notes_dir} does not exist; pass a folder of .md notes")
        chosen_model = choose_model(index_dir, model)
        # The model export is checked (or, on a first build, made: torch, ~10 s) here, in the main thread, where
        # Ctrl-C stops it cleanly; the encoding threads then only load it. Checking costs a few stat calls.
        encoder_choice = embed.choose_encoder(
            chosen_model, announce=lambda: report_progress("export", 0, 0), retry=full
        )
        wanted = {
            "model": chosen_model.fingerprint(),
            "chunking": settings(chunk_tokens, encoder_choice.kind, embed.offsets_take_spaces(chosen_model)),
        }
        previous, notice = (None, None) if full else open_previous(index_dir, wanted)
        try:
            report = _build(
                notes_dir, index_dir, encoder, report_progress, chunk_tokens, previous, wanted, chosen_model
            )
        except BaseException as exc:
            store.raise_if_disk(exc, index_dir)  # also a full disk while the new generation is written
            raise
        finally:
            if previous is not None:
                previous.close()
    report.seconds = time.monotonic() - started
    report.notice = "; ".join(n for n in (chosen, notice, encoder_choice.notice(chosen_model)) if n) or None
    report.notes_dir = notes_dir
    return report


def choose_notes(index_dir: Path, notes_dir: Path | None, replace: bool) -> tuple[Path, str | None]:
    """The folder a build indexes (absolute), and a note to tell the user, if any.

    An index remembers its notes folder (``notes_dir`` in its manifest). No folder given: that one, or the
    bundled sample notes for a new index. A folder given: it must be the index's own, unless ``replace`` is set
    or the index holds only the bundled samples (nothing of the user's is lost); else YtnotesError naming both
    folders, so that a typo or the wrong --index never replaces an index of other notes."""
    index_dir = index_dir.absolute()
    remembered, exists = _remembered_notes(index_dir)
    if remembered is not None and _is_samples(remembered):
        remembered = paths.SAMPLE_NOTES.resolve()  # the samples of this install (another may have built it)
    if notes_dir is None:
        if remembered is not None:
            if not remembered.is_dir():
                raise YtnotesError(
                    f"the notes folder of the index in {index_dir}, {remembered}, is gone; if it moved, run "
                    "`ytnotes build NEW_FOLDER --replace`"
                )
            return remembered, None
        if exists:
            raise YtnotesError(
                f"the index in {index_dir} does not say which notes folder it holds (it is damaged); name it: "
                "`ytnotes build NOTES_DIR`"
            )
        return paths.SAMPLE_NOTES.resolve(), (
            f"a new index in {index_dir}: indexing the bundled sample notes; `ytnotes build NOTES_DIR` indexes "
            "yours instead"
        )
    folder = notes_dir.resolve()
    if remembered is None or folder == remembered:
        return folder, None
    if replace or _is_samples(remembered):
        return folder, f"the index in {index_dir} now holds {folder} instead of {remembered}"
    raise YtnotesError(
        f"the index in {index_dir} holds the notes of {remembered}, not {folder}; run `ytnotes build` to update "
        f"it, `ytnotes build {folder} --replace` to index {folder} there instead, or pass another --index"
    )


def choose_model(index_dir: Path, model: Path | None) -> model_folder.Model:
    """The model a build uses: ``model`` (the --model flag; ``bundled`` names the bundled one), else YTNOTES_MODEL,
    else the model the index was built with (a model folder is remembered as the notes folder is), else the bundled
    one. A remembered folder that is gone is YtnotesError naming it and the way out."""
    remembered: Path | None = None
    if model is None and not os.environ.get(model_folder.MODEL_ENV):
        remembered = _remembered_model(index_dir.absolute())
        if remembered is not None and not remembered.is_dir():
            raise YtnotesError(
                f"the model folder of the index in {index_dir.absolute()}, {remembered}, is gone; if it moved, run "
                "`ytnotes build --model NEW_FOLDER`, or `ytnotes build --model bundled` to use the bundled model"
            )
    return model_folder.chosen(model, remembered)


def _remembered_model(index_dir: Path) -> Path | None:
    """The model folder the live index was built with (None: the bundled model, or no index to say)."""
    try:
        manifest = store.read_manifest(store.current_generation(index_dir))
    except YtnotesError:
        return None
    fingerprint, folder = manifest.get("model"), manifest.get("model_path")
    if not isinstance(fingerprint, dict) or "package" in fingerprint or not isinstance(folder, str):
        return None  # the bundled model (wherever this install keeps it)
    return Path(folder) if os.path.isabs(folder) else None


def _remembered_notes(index_dir: Path) -> tuple[Path | None, bool]:
    """The notes folder the live index was built from (None when unknown), and whether there is an index."""
    try:
        generation = store.current_generation(index_dir)
    except IndexMissingError:
        return None, False
    except YtnotesError:
        return None, True
    try:
        folder = store.read_manifest(generation).get("notes_dir")
    except YtnotesError:
        return None, True
    return (Path(folder), True) if isinstance(folder, str) and os.path.isabs(folder) else (None, True)


def _is_samples(folder: Path) -> bool:
    """Whether a folder is the bundled sample notes (of this install or of another one)."""
    return folder == paths.SAMPLE_NOTES.resolve() or folder.parts[-2:] == ("search", "sample_notes")


@dataclass
class _Summary:
    """What a build remembers of a note once its rows are written."""

    note_id: int
    rel: str
    sha256: str
    chunks: int
    segments: int
    dropped: list[str]
    clock_repair: str | None
    reused: bool


def _build(
    notes_dir: Path,
    index_dir: Path,
    encoder: embed.Encoder | None,
    progress: Progress,
    chunk_tokens: int,
    previous: Previous | None,
    wanted: dict[str, Any],
    model: model_folder.Model,
) -> BuildReport:
    skipped: list[NoteError] = []
    paths = list(find_notes(notes_dir, skipped))
    if not paths:
        raise YtnotesError(f"no .md notes in {notes_dir}; pass the folder that holds your notes")
    codebook = word_codebook.for_model(model)  # learnt on the model's first build (seconds)
    old_notes: dict[str, str] = previous.manifest["notes"] if previous else {}

    # Which notes changed, from their bytes alone (and, for a video with several notes, what the others say of
    # its clock: `search.video_clocks`), before anything is written.
    digests: list[tuple[Path, str, str]] = []
    videos: list[tuple[str, Path, str | None, bool]] = []
    for path in paths:
        rel = path.relative_to(notes_dir).as_posix()
        try:
            raw = path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
        except OSError:
            raw, digest = b"", ""  # read_note reports it
        digests.append((path, rel, digest))
        videos.append((rel, path, *video_clocks.scan(raw)))
    others_latest = video_clocks.decide(videos)
    listed: list[tuple[Path, str, bool]] = []  # (path, rel, unchanged)
    for path, rel, digest in digests:
        key = video_clocks.key(digest, others_latest.get(rel))
        listed.append((path, rel, previous is not None and old_notes.get(rel) == key))
    gone = len(set(old_notes) - {rel for _, rel, _ in listed})
    read_first: dict[Path, NoteData | None] = {}
    if previous is not None and gone == 0:
        was_skipped = set(previous.manifest.get("skipped", []))
        todo = [path for path, _, unchanged in listed if not unchanged]
        if all(str(path) in was_skipped for path in todo):
            # Nothing changed but notes that could not be read last time: read them now (they are few); when
            # they still cannot be, the index is up to date and nothing is written.
            read_first = {
                path: _read(path, notes_dir, chunk_tokens, skipped, model, others_latest) for path in todo
            }
            if all(d is None for d in read_first.values()) and not skipped_changed(previous, skipped):
                dropped = previous.dropped()
                return BuildReport(
                    notes=len(listed) - len(todo),
                    chunks=previous.manifest["counts"]["chunks"],
                    segments=previous.manifest["counts"]["segments"],
                    seconds=0.0,
                    generation=previous.generation,
                    skipped=skipped,
                    dropped_before=[d for _, rel, _ in listed for d in dropped.get(rel, [])],
                    reused_notes=len(listed) - len(todo),
                    up_to_date=True,
                )
            skipped = [e for e in skipped if e.path not in read_first]  # reported again when read below

    # A few notes changed in a large index: the new generation extends the live one (`search.parts`).
    extension, kept_notes = None, {}
    if previous is not None:
        kept = {rel for _, rel, unchanged in listed if unchanged}
        added = sum(1 for _, rel, _ in listed if rel not in old_notes)
        extension = previous.extension(kept, added, codebook.digest)
        if extension is not None:
            kept_notes = previous.kept_notes()
    writer = writer_module.Writer(
        index_dir,
        model.dimension,
        codebook,
        (previous.chunks, previous.segments) if previous is not None else None,
        previous.carried() if previous is not None and extension is None else None,
        extension,
    )
    pool: EncodingPool | None = None
    try:
        pool = EncodingPool(writer, encoder, model)
        summaries: list[_Summary] = []

        def written(data: NoteData, reused: bool = False) -> None:
            writer.add_rows(data)
            summaries.append(
                _Summary(
                    data.note_id,
                    data.rel,
                    data.sha256,
                    len(data.chunks),
                    len(data.segments),
                    data.dropped,
                    data.clock_repair,
                    reused,
                )
            )

        changed = 0
        for i, (path, rel, unchanged) in enumerate(listed, 1):
            if unchanged and extension is not None:
                note_id, n_chunks, n_segments, ignored = kept_notes[rel]
                summaries.append(
                    _Summary(note_id, rel, old_notes[rel], n_chunks, n_segments, ignored, None, reused=True)
                )
            elif unchanged:
                assert previous is not None
                written(previous.copy_note(rel, writer), reused=True)
            else:
                data = read_first.pop(path) if path in read_first else None
                if data is None:
                    data = _read(path, notes_dir, chunk_tokens, skipped, model, others_latest)
                if data is not None:
                    changed += 1
                    writer.number(data)
                    if previous is not None:
                        previous.reuse_chunks(data, writer)
                    if not pool.submit(data):  # else encoded while the next notes are read
                        written(data)
            pool.throttle(progress, written)
            progress("read", i, len(listed))

        if writer.numbered == 0 and not (extension is not None and summaries):
            raise YtnotesError(
                f"none of the {len(paths)} notes in {notes_dir} could be indexed (see the "
                f"warnings above); the existing index is unchanged"
            )
        pool.finish(progress, written)
        # Written as they were encoded; reported and recorded in the notes' order.
        summaries.sort(key=lambda n: n.note_id)
        removed = len(set(old_notes) - {n.rel for n in summaries})  # deleted, or no longer readable
        generation = writer.publish(_manifest(notes_dir, summaries, wanted, skipped, model))
    except BaseException:
        if pool is not None:
            pool.close()  # the encoding threads stop before their files go
        writer.discard()
        raise
    verified.save_pending()  # the model files checked by this build need no hashing by the next
    # A note saved while the build ran may have been missing when the folder was listed (editors often delete
    # and re-create a file): say so rather than leave it out silently.
    seen = set(paths)
    for path in find_notes(notes_dir, []):
        if path not in seen:
            reason = (
                "it appeared while the build ran (saved meanwhile?); run `ytnotes build` again to index it"
            )
            skipped.append(NoteError(path, reason))
    chunks = sum(n.chunks for n in summaries)
    return BuildReport(
        notes=len(summaries),
        chunks=chunks,
        segments=sum(n.segments for n in summaries),
        seconds=0.0,
        generation=generation,
        skipped=skipped,
        dropped_timestamps=[d for n in summaries if not n.reused for d in n.dropped],
        dropped_before=[d for n in summaries if n.reused for d in n.dropped],
        clock_repairs=[n.clock_repair for n in summaries if n.clock_repair],
        changed_notes=changed,
        reused_notes=len(summaries) - changed,
        embedded_chunks=pool.total,
        encode_seconds=pool.seconds,
        reused_chunks=chunks - pool.total,
        removed_notes=removed,
    )


def skipped_changed(previous: Previous, skipped: list[NoteError]) -> bool:
    """Whether the set of unreadable notes differs from the last build's (then the manifest is rewritten)."""
    return sorted(str(e.path) for e in skipped) != previous.manifest.get("skipped", [])


def _read(
    path: Path,
    root: Path,
    chunk_tokens: int,
    skipped: list[NoteError],
    model: model_folder.Model,
    others_latest: dict[str, int] | None = None,
) -> NoteData | None:
    """Parse and pack one note; a bad note is added to ``skipped`` and gives None. ``others_latest``: what the
    other notes of their videos decide of some notes' clocks, by their paths under ``root`` (`video_clocks.decide`)."""
    decided = None
    try:
        note = read_note(path, root)
        decided = (others_latest or {}).get(note.rel)
        parsed = parse_note(note, decided)
        packed = chunking.pack(parsed, embed.token_counter(model), chunk_tokens)
    except NoteError as exc:
        skipped.append(exc)
        return None
    except Exception as exc:  # a parser bug must not stop the other notes
        log.debug("unexpected error reading %s", path, exc_info=True)
        reason = f"could not be parsed ({type(exc).__name__}: {exc}); please report this note"
        skipped.append(NoteError(path, reason))
        return None
    if not packed:
        skipped.append(NoteError(path, "it holds no text to index; write the note or delete the file"))
        return None
    data = NoteData(
        rel=note.rel,
        title=note.title,
        channel=note.channel,
        channel_key=note.channel_key,
        video_id=note.video_id,
        sha256=video_clocks.key(note.sha256, decided),
        dropped=[f"{note.path}:{s.line}: [{s.raw}] {s.reason}" for s in parsed.skipped],
        clock_repair=f"{note.path}: {parsed.clock_repair}" if parsed.clock_repair else None,
        chunks=[],
        segments=[],
    )
    for chunk in packed:
        text, spans = chunking.embed_text_and_spans(note.title, chunk)
        key = hashlib.sha256(json.dumps([text, spans], ensure_ascii=False).encode()).hexdigest()
        heading = json.dumps(list(chunk.heading), ensure_ascii=False)
        data.chunks.append((heading, chunk.text, chunk.line, len(chunk.segments), key, text))
        data.spans.append(spans)
        data.segments += [(s.text, json.dumps(s.times), s.link_time, s.line) for s in chunk.segments]
    data.clear_vectors()
    return data


def _manifest(
    notes_dir: Path,
    notes: list[_Summary],
    wanted: dict[str, Any],
    skipped: list[NoteError],
    model: model_folder.Model,
) -> dict[str, Any]:
    """The new generation's manifest (`search.writer.Writer.publish` adds the vectors' records and word count)."""
    return {
        "format_version": store.FORMAT_VERSION,
        **wanted,
        "model_path": str(model.path),
        "encoder": embed.encoder_record(model),
        "notes_dir": str(notes_dir),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {
            "notes": len(notes),
            "chunks": sum(n.chunks for n in notes),
            "segments": sum(n.segments for n in notes),
        },
        "notes": {n.rel: n.sha256 for n in notes},
        "skipped": sorted(str(e.path) for e in skipped),
    }
