"""A generation made of a base and a tail, so that a rebuild of a few notes writes only what they changed.

A full build writes every file of a generation (`search.writer`). At 220k passages that is 2.3 GB, and a rebuild
of one edited note took 15-18 s, most of it copying vectors into new FAISS files. A rebuild that changes few notes
(`search.previous.Previous.extension`) therefore makes a generation that shares the live one's large files and
adds a tail (scripts/bench_rebuild.py at 220k passages: 1.62 s for one note edited, 4.56 s for 300 at once):

    base files       the FAISS files, words.npy, word_owners.npy and the BM25 postings of the last full build,
                     hard links to the live generation's (never written again: an unlinked name leaves the other)
    tail.*           the rows numbered after the base's: tail.chunks.npy and tail.segments.npy (float32 unit
                     vectors, searched exactly), tail.words.npy and tail.word_owners.npy, and the tail's postings
    dead.*.npy       the rows of the base or tail whose notes changed or went: no longer in meta.sqlite, and
                     never given by a search
    meta.sqlite      every live row, as in a full build (copied from the live generation, then edited)

Row ids stay the vectors' rows across base and tail: the base holds rows 0 .. ``first`` - 1 of each kind, the tail
the rest. The manifest's ``tail`` record gives each kind's ``first`` row; a full build has none. Once the tail or
the dead rows grow past TAIL_SHARE of the base, the next rebuild is a full one again, which leaves no tail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import IndexUnusableError

if TYPE_CHECKING:
    import numpy as np

#: The kinds of row a tail extends, each with its FAISS file (store.CHUNKS, store.SEGMENTS).
KINDS = ("chunks", "segments")
#: A rebuild extends the live generation while its tail (new rows since the last full build) and its dead rows
#: each stay within this share of its base's rows; past it, it rewrites everything (and the tail is gone).
TAIL_SHARE = 0.02
#: ... and only an index of at least this many passages: below it a full rewrite costs little (a one-note rebuild
#: of 22k passages took 1.9 s rewritten, 0.66 s extended) and its row ids stay dense. A tail's passages are
#: searched exactly: at 2 % of 220k passages (4.4k passages, 15k segments), a little more than a base's IVF scan.
EXTEND_FROM = 20_000


#: What names a tail's files (and its terms in the table ``lexicon``).
TAIL_PREFIX = "tail."


def tail_file(name: str) -> str:
    """The tail's file of a base file (``words.npy`` -> ``tail.words.npy``)."""
    return TAIL_PREFIX + name


def dead_file(kind: str) -> str:
    return f"dead.{kind}.npy"


@dataclass(frozen=True)
class Tail:
    """Where a generation's tail starts (each kind's first tail row), from its manifest; None for a full build."""

    chunks: int
    segments: int
    words: int
    notes: int

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Tail | None:
        record = manifest.get("tail")
        if record is None:
            return None
        try:
            return cls(**{k: int(record[k]) for k in ("chunks", "segments", "words", "notes")})
        except (KeyError, TypeError, ValueError):
            from search.store import REBUILD_HINT

            raise IndexUnusableError(
                f"the manifest's tail record {record!r} is damaged; {REBUILD_HINT}"
            ) from None

    def first(self, kind: str) -> int:
        return int(getattr(self, kind))


def load(path: Path, dtype: Any = None, width: int | None = None) -> np.ndarray:
    """An .npy file of a generation, memory-mapped (a plain array over the map: slicing a np.memmap costs a Python
    call a slice), checked for its dtype (unless None) and width; IndexUnusableError naming it when it is missing
    or damaged."""
    import numpy as np

    from search.store import REBUILD_HINT

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise IndexUnusableError(f"{path} is missing; {REBUILD_HINT}") from None
    except (OSError, ValueError) as exc:
        raise IndexUnusableError(f"{path} is damaged ({str(exc)[:120]}); {REBUILD_HINT}") from None
    if (dtype is not None and array.dtype != np.dtype(dtype)) or (
        width is not None and array.shape[1:] != (width,)
    ):
        wanted = [str(np.dtype(dtype))] if dtype is not None else []
        if width is not None:
            wanted.append(f"(n, {width})")
        raise IndexUnusableError(
            f"{path} holds {array.dtype} {array.shape}, not {' '.join(wanted)}; {REBUILD_HINT}"
        )
    return np.asarray(array)


def dead_rows(gen: Path, tail: Tail | None, kind: str) -> np.ndarray:
    """The sorted ids of a kind's dead rows (none in a full build)."""
    import numpy as np

    if tail is None:
        return np.zeros(0, dtype=np.int64)
    return load(gen / dead_file(kind), np.int64)


class Rows:
    """Rows of a base and of its tail as one sequence, sliced by row id (a slice never spans both: a passage's
    words are all in one)."""

    def __init__(self, base: Any, tail: Any, first: int) -> None:
        self.base, self.tail, self.first = base, tail, first

    def __len__(self) -> int:
        return self.first + len(self.tail)

    def __getitem__(self, rows: slice) -> Any:
        import numpy as np

        start, stop, _ = rows.indices(len(self))
        if stop <= self.first:
            return self.base[start:stop]
        if start >= self.first:
            return self.tail[start - self.first : stop - self.first]
        return np.concatenate([self.base[start : self.first], self.tail[: stop - self.first]])


class Vectors:
    """A kind's vectors: the base's FAISS index (searched as it is: exactly, or an IVF's probed lists) and the
    tail's vectors (searched exactly), without the dead rows. A full build's generation has only the base."""

    def __init__(self, base: Any, tail: np.ndarray | None = None, dead: np.ndarray | None = None) -> None:
        import faiss
        import numpy as np

        self.base = base
        self.first = int(base.ntotal)
        self.tail = tail if tail is not None else np.zeros((0, base.d), dtype=np.float32)
        self.ntotal = self.first + len(self.tail)
        self.ivf = hasattr(base, "nprobe")
        dead = dead if dead is not None else np.zeros(0, dtype=np.int64)
        self.dead_count = len(dead)
        self._alive_tail = np.ones(len(self.tail), dtype=bool)
        self._alive_tail[dead[dead >= self.first] - self.first] = False
        base_dead = dead[dead < self.first]
        # Kept here: the Not selector does not keep the Batch it wraps alive.
        self._dead_batch = faiss.IDSelectorBatch(base_dead) if len(base_dead) else None
        self._not_dead = faiss.IDSelectorNot(self._dead_batch) if self._dead_batch is not None else None

    def reconstruct_batch(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of some rows, in the order given."""
        import numpy as np

        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.tail) or (len(ids) and int(ids.max()) < self.first):
            out: np.ndarray = self.base.reconstruct_batch(ids)
            return out
        in_base = ids < self.first
        out = np.empty((len(ids), self.tail.shape[1]), dtype=np.float32)
        if in_base.any():
            out[in_base] = self.base.reconstruct_batch(ids[in_base])
        out[~in_base] = self.tail[ids[~in_base] - self.first]
        return out

    def search(self, query: np.ndarray, k: int, allowed: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """The k rows nearest one query (scores, ids; best first) among ``allowed`` (None: every live row)."""
        import numpy as np

        scores, ids = self._search_base(query, k, allowed)
        if not len(self.tail):
            return scores, ids
        sims = self.tail @ query[0]
        if allowed is not None:
            wanted = np.zeros(len(self.tail), dtype=bool)
            chosen = np.asarray(allowed, dtype=np.int64)
            wanted[chosen[chosen >= self.first] - self.first] = True
            sims[~(wanted & self._alive_tail)] = -np.inf
        elif self.dead_count:
            sims[~self._alive_tail] = -np.inf
        rows = np.argpartition(-sims, k)[:k] if len(sims) > k else np.arange(len(sims))
        rows = rows[np.isfinite(sims[rows])]
        if not len(rows):
            return scores, ids
        scores = np.concatenate([scores, sims[rows]])
        ids = np.concatenate([ids, rows + self.first])
        # Best first; equal scores by row id, as FAISS orders them.
        best = np.lexsort((ids, -scores))[:k]
        return scores[best], ids[best]

    def _search_base(
        self, query: np.ndarray, k: int, allowed: list[int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss
        import numpy as np

        if not self.first:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        params: Any = None
        selector: Any
        if allowed is not None:
            chosen = np.asarray(allowed, dtype=np.int64)
            chosen = chosen[chosen < self.first]
            if self.ivf and len(chosen) <= EXACT_WITHIN:
                # A filter that leaves few vectors: scored exactly (an IVF would search only the lists it probes).
                sims = self.base.reconstruct_batch(chosen) @ query[0]
                best = np.argsort(-sims, kind="stable")[:k]
                return sims[best], chosen[best]
            selector = faiss.IDSelectorBatch(chosen)
        else:
            selector = self._not_dead
        if selector is not None:
            params = faiss.SearchParametersIVF() if self.ivf else faiss.SearchParameters()
            if self.ivf:
                params.nprobe = self.base.nprobe
            params.sel = selector
        scores, ids = self.base.search(query, min(k, self.first), params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]


#: A filtered search of an approximate (IVF) index scores the allowed vectors exactly when there are at most this
#: many (reading them back costs about as much as an exact scan of as many).
EXACT_WITHIN = 20_000


def open_vectors(gen: Path, manifest: dict[str, Any], kind: str) -> Vectors:
    """A generation's vectors of one kind (``chunks`` or ``segments``), checked against its manifest's count."""
    from search import store

    tail = Tail.of(manifest)
    base = store.read_vectors(gen, store.CHUNKS if kind == "chunks" else store.SEGMENTS)
    vectors = Vectors(base)
    if tail is not None:
        if base.ntotal != tail.first(kind):
            raise IndexUnusableError(f"the vectors in {gen} do not match its manifest; {store.REBUILD_HINT}")
        vectors = Vectors(
            base, load(gen / tail_file(f"{kind}.npy"), "float32", base.d), dead_rows(gen, tail, kind)
        )
    if vectors.ntotal - vectors.dead_count != manifest["counts"][kind]:
        raise IndexUnusableError(f"the vectors in {gen} do not match its manifest; {store.REBUILD_HINT}")
    return vectors


def open_words(gen: Path, manifest: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A generation's word codes and owners (base and tail as one sequence each), and its codebook."""
    from search import store

    tail = Tail.of(manifest)
    total, dimension = manifest["counts"]["words"], manifest["model"]["dimension"]
    first = total if tail is None else tail.words
    codes, owners, codebook = store.read_words(gen, first, dimension)
    if tail is None:
        return codes, owners, codebook
    tail_codes = load(gen / tail_file(store.WORDS), "uint8", codebook.parts)
    tail_owners = load(gen / tail_file(store.WORD_OWNERS), "int16")
    if len(tail_codes) != total - first or len(tail_owners) != total - first:
        raise IndexUnusableError(f"the word vectors in {gen} do not match its manifest; {store.REBUILD_HINT}")
    return Rows(codes, tail_codes, first), Rows(owners, tail_owners, first), codebook


@dataclass
class Extension:
    """What a rebuild that extends the live generation takes from it (`search.previous.Previous.extension`)."""

    #: The live generation: its base files are linked, its tail's rows copied.
    live: Path
    live_manifest: dict[str, Any]
    #: Where the tail starts: the live generation's, or its row counts when it has no tail.
    first: Tail
    #: The live generation's rows of each kind, dead ones included: the new rows are numbered from there.
    totals: Tail
    #: The notes whose rows go (changed or removed), and each kind's dead rows once they have gone.
    killed_notes: list[int]
    dead: dict[str, np.ndarray]


def base_files() -> list[str]:
    """The files a generation with a tail shares with its base."""
    from search import lexicon, store, word_codebook

    postings = [f"{table}.{part}.npy" for table in lexicon.TABLES for part in lexicon.PARTS]
    return [store.CHUNKS, store.SEGMENTS, store.WORDS, store.WORD_OWNERS, word_codebook.FILE, *postings]


def link_base(live: Path, new: Path) -> None:
    """Give a new generation the live one's base files: hard links (a copy where the file system has none)."""
    import shutil

    for name in base_files():
        try:
            os.link(live / name, new / name)
        except OSError:
            shutil.copyfile(live / name, new / name)
