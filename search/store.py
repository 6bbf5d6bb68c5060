"""The on-disk index: a folder of plain files, replaced atomically, never pickled.

Layout of an index folder (default ``~/.local/share/ytnotes/index``, see `search.paths`)::

    CURRENT              name of the live generation (replaced atomically with os.replace)
    gen-<time>-<id>/     one complete, immutable build
        manifest.json    format version, model fingerprint, chunk settings, per-note hashes, build time
        meta.sqlite      notes, chunks and segments (row id = vector row)
        chunks.faiss     inner-product index of chunk vectors (unit length, so scores are cosines)
        segments.faiss   the same for segment vectors
        words.npy        word vectors of every passage, for the second pass (rows chunks.word_start..end, in
                         the order they were encoded), as codes: uint8, one a part (see `search.words`)
        word_owners.npy  int16: for each word row, its segment's place in the passage (-1: title and heading)
        word_codebook.npy  float32 centroids that decode words.npy (its digest is in the manifest)
        <fts table>.<part>.npy  the BM25 postings of chunks_fts and segments_fts, FTS5 tables of the build
                         only (see `search.lexicon`)
        tail.*, dead.*   in a generation a rebuild of a few notes made by extending the live one: the rows it
                         added and the rows it dropped (the files above are then the live one's, hard-linked;
                         see `search.parts`)
    .lock                held by the build writing this folder

A build writes a new generation in a ``.tmp-*`` folder while it reads the notes (`search.writer`), renames it,
then points CURRENT at it: a reader sees the old index or the new one, never a mixture. Then it removes every other generation. A reader that has its files
open keeps them (an unlinked file lives on while open or mapped); one that read CURRENT just before the swap and
finds its generation gone reads CURRENT again (`search.retrieve.open_index`). The exported model is not here but
in the user's model cache (`search.paths`), shared by every index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import errors, word_codebook
from search.embed import ENCODER_FOLDER
from search.errors import BuildLockedError, IndexMissingError, IndexUnusableError

if TYPE_CHECKING:
    import numpy as np

    from search import words

FORMAT_VERSION = 4
#: A generation with a tail (`search.parts`): an older ytnotes, which reads only FORMAT_VERSION, says to rebuild
#: rather than finds its vectors do not match their counts.
TAIL_FORMAT_VERSION = 5
CURRENT = "CURRENT"
LOCK = ".lock"
MANIFEST = "manifest.json"
META = "meta.sqlite"
CHUNKS = "chunks.faiss"
SEGMENTS = "segments.faiss"
WORDS = "words.npy"
WORD_OWNERS = "word_owners.npy"

SCHEMA = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, title TEXT NOT NULL, channel TEXT,
                    channel_key TEXT, video_id TEXT, sha256 TEXT NOT NULL, dropped TEXT NOT NULL);
-- A chunk's text is its segments' texts joined by spaces (`search.chunks.Chunk.text`): not kept twice.
CREATE TABLE chunks (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES notes(id), heading TEXT NOT NULL,
                     line INTEGER NOT NULL, seg_start INTEGER NOT NULL,
                     seg_end INTEGER NOT NULL, key TEXT NOT NULL, word_start INTEGER NOT NULL,
                     word_end INTEGER NOT NULL);
CREATE TABLE segments (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES notes(id),
                       chunk_id INTEGER NOT NULL REFERENCES chunks(id), text TEXT NOT NULL,
                       times TEXT NOT NULL, link_time INTEGER, line INTEGER NOT NULL);
CREATE INDEX chunks_note ON chunks(note_id);
CREATE INDEX chunks_key ON chunks(key);
CREATE INDEX segments_note ON segments(note_id);
CREATE INDEX segments_chunk ON segments(chunk_id);
"""
#: Lexical indexes, for the build only: their postings are written to files (`search.lexicon`), then they are
#: dropped. A chunk's row holds its title and heading path too, as its vector's text does (the embedded text is
#: the note's title, the chunk's heading and text: `search.chunks.embed_text`). Contentless: a copy of every text
#: was 0.94 KB a passage.
FTS_SCHEMA = """
CREATE VIRTUAL TABLE chunks_fts USING fts5(body, content = '', tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE segments_fts USING fts5(body, content = '', tokenize = 'porter unicode61 remove_diacritics 2');
"""

REBUILD_HINT = "run `ytnotes build --full` to rebuild it"


#: Times a build refused the lock reads the holder's pid, 10 ms apart, while the holder has not written it yet.
LOCK_PID_TRIES = 50


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's build lock; fail at once, naming the holder, when another build has it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            # The holder writes its pid just after taking the lock: two builds started together can get here in
            # that moment (measured under load: "pid unknown" in 2 of 4 runs of the two-builds drill).
            for _ in range(LOCK_PID_TRIES):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.01)
            holder = holder or "unknown"
            raise BuildLockedError(
                f"another build (pid {holder}) is writing {index_dir}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _remove_leftovers(index_dir)
        yield
    finally:
        os.close(fd)


def publish(index_dir: Path, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Complete a generation written in ``tmp`` (a ``.tmp-*`` folder of ``index_dir``, see `search.writer`) with its
    manifest and make it live atomically. Call with the build lock held."""
    try:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        for path in tmp.iterdir():
            _fsync(path)
        _fsync(tmp)
        gen = index_dir / f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        os.rename(tmp, gen)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_disk(exc, index_dir)
        raise
    pointer = index_dir / f".tmp-{CURRENT}-{secrets.token_hex(4)}"
    try:
        pointer.write_text(gen.name + "\n", encoding="utf-8")
        _fsync(pointer)
        os.replace(pointer, index_dir / CURRENT)
    except BaseException as exc:
        pointer.unlink(missing_ok=True)
        shutil.rmtree(gen, ignore_errors=True)
        raise_if_disk(exc, index_dir)
        raise
    _fsync(index_dir)
    _remove_old_generations(index_dir, keep=gen.name)
    # The index's own copy of the model, from before the shared model cache (about 200 MB): no longer read.
    shutil.rmtree(index_dir / ENCODER_FOLDER, ignore_errors=True)
    return gen


#: Up to this many vectors a FAISS file is searched exactly (a flat index); past it, approximately, with an
#: inverted-file index (IVF): one question's exact scan of 75k segment vectors took 4-5 ms on one core, of 225k
#: about 13 ms, and grows with the notes. Measured on the 10x corpus (scripts/ann_recall.py), IVF with
#: IVF_LISTS_PER_ROOT * sqrt(n) lists and IVF_PROBE of them searched: segments (75k) recall@10 0.991, recall@150
#: 0.981 against exact search; chunks (22k, with the threshold lowered) 0.994 and 0.995 at 50.
ANN_MIN = 50_000
IVF_LISTS_PER_ROOT = 4
IVF_PROBE = 64
#: The IVF's lists are learnt from at most this many vectors a list (faiss asks for 39 at least).
IVF_TRAIN_PER_LIST = 50


#: A rebuild keeps the live IVF's lists (its centroids, and each reused vector's list) while the list count the
#: vectors ask for is within this share of the live one's: learning the lists took 18 of the 34 s of a one-note
#: rebuild of the 10x corpus (75k segment vectors), and assigning every vector to its list 3 s more.
IVF_KEEP_WITHIN = 0.2


def vector_index(
    vectors: Any, dimension: int, previous: Any = None, origins: Any = None
) -> tuple[Any, dict[str, Any]]:
    """The FAISS index of some unit vectors (inner product = cosine), and its record for the manifest: exact up to
    ANN_MIN vectors, an IVF past it (with a direct map, so vectors can be read back by id). ``vectors``: an array,
    or a `search.writer.RowFile`; either is read a batch at a time (only the index holds them all).

    ``previous``: the live generation's index of the same vectors, and ``origins``: for each vector, 1 + its row
    there (0: a vector it does not hold). When both are IVFs of about the same list count (IVF_KEEP_WITHIN), the
    lists are kept rather than learnt again, and a vector found there goes to the list it was in: the index is
    the one adding every vector to those lists would make."""
    import faiss
    import numpy as np

    from search.writer import batches

    n = len(vectors)
    if n <= ANN_MIN:
        flat = faiss.IndexFlatIP(dimension)
        for batch in batches(vectors, n):
            flat.add(batch)
        return flat, {"type": "flat"}
    lists = int(IVF_LISTS_PER_ROOT * np.sqrt(n))
    old = faiss.try_extract_index_ivf(previous) if previous is not None and origins is not None else None
    if (
        old is not None
        and abs(old.nlist - lists) <= IVF_KEEP_WITHIN * lists
        and old.d == dimension
        and old.direct_map.type == faiss.DirectMap.Array  # type: ignore[attr-defined]
    ):
        return _ivf_like(vectors, old, origins), {"type": "ivf", "lists": old.nlist, "probe": IVF_PROBE}
    sample = np.random.default_rng(0).choice(n, min(n, IVF_TRAIN_PER_LIST * lists), replace=False)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.min_points_per_centroid = 1  # no warning; the sample is large enough
    ivf.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
    for batch in batches(vectors, n):
        ivf.add(batch)
    ivf.make_direct_map()
    ivf.nprobe = IVF_PROBE
    return ivf, {"type": "ivf", "lists": lists, "probe": IVF_PROBE}


def _ivf_like(vectors: Any, old: Any, origins: Any) -> Any:
    """An IVF of ``vectors`` on the lists of ``old``: a vector ``old`` holds (``origins``) goes to its list there,
    a new one to its nearest centroid (as IndexIVF.add assigns)."""
    import faiss
    import numpy as np

    from search.writer import BATCH, batches

    quantizer = faiss.IndexFlatIP(old.d)
    quantizer.add(old.quantizer.reconstruct_n(0, old.nlist))
    ivf = faiss.IndexIVFFlat(quantizer, old.d, old.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.is_trained = True
    ivf.make_direct_map()  # kept up to date by add_core
    old_lists = faiss.vector_to_array(old.direct_map.array) >> 32  # (list << 32 | offset) of each old row
    for start, batch in zip(range(0, len(vectors), BATCH), batches(vectors, len(vectors)), strict=True):
        rows = np.asarray(origins[start : start + len(batch)], dtype=np.int64) - 1
        assign = np.full(len(batch), -1, dtype=np.int64)
        known = (rows >= 0) & (rows < len(old_lists))
        assign[known] = old_lists[rows[known]]
        new = assign < 0
        if new.any():
            assign[new] = quantizer.search(np.ascontiguousarray(batch[new]), 1)[1][:, 0]
        ivf.add_core(len(batch), faiss.swig_ptr(batch), None, faiss.swig_ptr(assign))
    ivf.nprobe = IVF_PROBE
    return ivf


def raise_if_disk(exc: BaseException, index_dir: Path) -> None:
    """A failed write of the index as a one-line user error when the disk is at fault (see errors.raise_if_disk)."""
    errors.raise_if_disk(exc, f"write the index in {index_dir}", " (the old index is unchanged)")


def current_generation(index_dir: Path) -> Path:
    """The live generation folder; IndexMissingError when there is none."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexMissingError(
            f"no index in {index_dir.absolute()}; run `ytnotes build NOTES_DIR` to index your notes there, or "
            "pass --index DIR (or set YTNOTES_INDEX) to use another index"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexUnusableError(f"cannot read {index_dir / CURRENT} ({exc}); {REBUILD_HINT}") from None
    gen = index_dir / name
    if not name.startswith("gen-") or "/" in name or not gen.is_dir():
        raise IndexUnusableError(f"{index_dir / CURRENT} points at a missing build '{name}'; {REBUILD_HINT}")
    return gen


def read_manifest(gen: Path) -> dict[str, Any]:
    """The manifest of a generation, checked for format version."""
    try:
        manifest = json.loads((gen / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexUnusableError(
            f"the index manifest {gen / MANIFEST} is unreadable ({exc}); {REBUILD_HINT}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format_version") not in (
        FORMAT_VERSION,
        TAIL_FORMAT_VERSION,
    ):
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexUnusableError(
            f"the index in {gen.parent} has format version {found}, this ytnotes reads {FORMAT_VERSION} and "
            f"{TAIL_FORMAT_VERSION}; {REBUILD_HINT}"
        )
    return manifest


def open_meta(gen: Path) -> sqlite3.Connection:
    """A read-only connection to a generation's metadata (generations never change once written)."""
    path = gen / META
    if not path.is_file():
        raise IndexUnusableError(f"{path} is missing; {REBUILD_HINT}")
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        db.execute("SELECT count(*) FROM notes").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise IndexUnusableError(f"{path} is damaged ({exc}); {REBUILD_HINT}") from None
    return db


def read_vectors(gen: Path, name: str) -> Any:
    """A generation's FAISS index, memory-mapped: opening it reads nothing but its header, and a question reads
    only the pages it scans (a flat index's or an IVF's vectors alike, with IO_FLAG_MMAP_IFC: measured on 200k
    vectors, 0.2 ms and 7 ms to open instead of 132 and 155 ms, the same results and search times). A generation's
    files never change once written, and a later build's deleting them leaves an open mapping intact."""
    import faiss

    path = gen / name
    if not path.is_file():
        raise IndexUnusableError(f"{path} is missing; {REBUILD_HINT}")
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise IndexUnusableError(f"{path} is damaged ({first[:120]}); {REBUILD_HINT}") from None


def read_words(gen: Path, rows: int, dimension: int) -> tuple[np.ndarray, np.ndarray, words.Codebook]:
    """A generation's word vectors (codes) and their owners, memory-mapped (a question reads only the rows it
    needs), and the codebook that decodes them."""
    import numpy as np

    path = gen / word_codebook.FILE
    try:
        codebook = word_codebook.read(path, dimension)
    except FileNotFoundError:
        raise IndexUnusableError(f"{path} is missing; {REBUILD_HINT}") from None
    except (OSError, ValueError) as exc:
        raise IndexUnusableError(f"{path} is damaged ({str(exc)[:120]}); {REBUILD_HINT}") from None
    out = []
    for name, dtype in ((WORDS, np.uint8), (WORD_OWNERS, np.int16)):
        path = gen / name
        if not path.is_file():
            raise IndexUnusableError(f"{path} is missing; {REBUILD_HINT}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexUnusableError(f"{path} is damaged ({str(exc)[:120]}); {REBUILD_HINT}") from None
        if (
            array.dtype != dtype
            or len(array) != rows
            or (name == WORDS and array.shape[1:] != (codebook.parts,))
        ):
            raise IndexUnusableError(
                f"{path} does not match its manifest ({array.dtype}, {len(array)} rows, not {rows}); "
                f"{REBUILD_HINT}"
            )
        out.append(array)
    return out[0], out[1], codebook


def size_on_disk(gen: Path) -> int:
    try:
        return sum(p.stat().st_size for p in gen.iterdir() if p.is_file())
    except FileNotFoundError:  # removed by a build that swapped in the next one
        raise IndexUnusableError(f"{gen} is missing; {REBUILD_HINT}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_leftovers(index_dir: Path) -> None:
    """Remove what an interrupted build left behind (only the lock holder writes ``.tmp-*``). (A model export it
    was writing is in the model cache, whose next export removes it: see `search.embed.ensure_exported`.)"""
    for path in index_dir.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def live_name(index_dir: Path) -> str | None:
    """The generation CURRENT names, if it names one."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if name.startswith("gen-") and "/" not in name else None


def _remove_old_generations(index_dir: Path, keep: str) -> None:
    """Remove every generation but the live one ``keep``: the one live before it (readers that have it open keep
    their open files), and one a killed build renamed but never made live."""
    for path in index_dir.glob("gen-*"):
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
