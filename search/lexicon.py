"""BM25 from arrays: the same scores as SQLite FTS5's ``bm25()``, without its cost per matching row.

FTS5 computes ``bm25()`` for every row that matches a question's words, one row at a time, before it can sort
them: 1 ms a question for 2,000 passages, 10 ms for 22,000, and it grows with the notes. The build therefore
writes each FTS5 table's postings once (`write`), read from FTS5's own index through its ``fts5vocab`` table,
so its tokens are FTS5's own (porter stemming, unicode61): for each term, the rows holding it and how often, and
each row's length in tokens. A question's words are tokenized by an in-memory FTS5 table of the same tokenizer,
and scored with FTS5's formula (`bm25`, in the same order of operations, so the same floating-point scores) by a
few numpy operations over the postings of its terms.

The FTS5 tables are needed only to tokenize and count: the build drops them once their postings are written
(they were 450 B a passage of the index). A question word that FTS5 reads as a phrase of several tokens
(``OP_RETURN``: "op" then "return"; 2 of the 746 evaluation questions have one) matches the rows holding all its
tokens, as often as its rarest token occurs there: the postings keep no positions, so "return ... op" in one
passage counts too, where FTS5 wanted them side by side.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import IndexUnusableError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

#: FTS5's bm25 constants (ext/fts5/fts5_aux.c).
K1 = 1.2
B = 0.75
#: The tables whose postings a build writes, and the tokenizer they are made with (store.FTS_SCHEMA's).
TABLES = ("chunks_fts", "segments_fts")
#: The kind of row (`search.parts.KINDS`) each table indexes.
KINDS = {"chunks_fts": "chunks", "segments_fts": "segments"}
TOKENIZE = "porter unicode61 remove_diacritics 2"
#: Each table's postings: ``<table>.<part>.npy`` (terms are in the table ``lexicon`` of meta.sqlite).
PARTS = ("starts", "rows", "counts", "lengths")
#: A term's count in one row is stored in 16 bits (rows are passages of a few hundred tokens).
MAX_COUNT = 65535
#: Postings read from SQLite at a time by a build.
BATCH = 65536


@dataclass
class Carried:
    """The live generation's postings, for a build that copies some notes whole from it: those notes' rows are not
    given to FTS5 again; their postings are carried over, renumbered (`write`)."""

    lexicon: Lexicon
    #: Each table's terms, by id.
    terms: dict[str, list[str]]
    #: Each table's (first row in the live generation, first row in the new one, rows) of each note copied whole.
    ranges: dict[str, list[tuple[int, int, int]]] = field(default_factory=lambda: {t: [] for t in TABLES})


def write(
    db: sqlite3.Connection,
    folder: Path,
    rows: dict[str, int],
    carried: Carried | None = None,
    prefix: str = "",
    first_row: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write the postings of every table in TABLES into ``folder``, and its terms into a table of ``db``; gives
    their record for the manifest. ``rows``: each table's rows in the new generation (ids 0 to rows - 1), every
    one either in the FTS5 table of ``db`` or in a range of ``carried``. A tail's (`search.parts`): files and
    terms named with its ``prefix``, rows numbered from each table's ``first_row`` on."""
    import numpy as np

    db.execute(
        "CREATE TABLE IF NOT EXISTS lexicon (tab TEXT NOT NULL, term TEXT NOT NULL, id INTEGER NOT NULL, "
        "PRIMARY KEY (tab, term)) WITHOUT ROWID"
    )
    record: dict[str, Any] = {}
    for table in TABLES:
        terms, starts, row_ids, counts = _read_fts5(db, table)
        n_rows = rows[table]
        first = (first_row or {}).get(table, 0)
        lengths = np.bincount(row_ids - first, weights=counts.astype(np.float64), minlength=n_rows).astype(
            np.int64
        )
        tf = np.minimum(counts, MAX_COUNT).astype(np.uint16)
        if carried is not None and carried.ranges[table]:
            terms, starts, row_ids, tf = _merge(
                carried, table, lengths, (terms, starts, row_ids.astype(np.int64), tf)
            )
        if len(lengths) != n_rows:
            raise RuntimeError(f"{table}: postings of {len(lengths)} rows, {n_rows} written")
        parts: dict[str, np.ndarray] = {
            "starts": starts,
            "rows": row_ids.astype(np.int32),
            "counts": tf,
            "lengths": lengths.astype(np.int32),
        }
        for part, values in parts.items():
            np.save(folder / f"{prefix}{table}.{part}.npy", values, allow_pickle=False)
        db.executemany(
            "INSERT INTO lexicon VALUES (?,?,?)", ((prefix + table, term, i) for i, term in enumerate(terms))
        )
        record[table] = {"rows": n_rows, "tokens": int(lengths.sum()), "terms": len(terms)}
    return record


def _read_fts5(db: sqlite3.Connection, table: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """An FTS5 table's terms (in order), where each one's postings start (and where the last ends), and the rows
    and counts of its postings, read from FTS5's own index."""
    import numpy as np

    vocab = f"temp.vocab_{table}"
    db.execute(f"CREATE VIRTUAL TABLE {vocab} USING fts5vocab(main, '{table}', 'row')")
    db.execute(f"CREATE VIRTUAL TABLE {vocab}_at USING fts5vocab(main, '{table}', 'instance')")
    # The terms and how many rows hold each (both lists in term order), then each (term, row)'s count read a
    # batch at a time into arrays: a large index has tens of millions of postings, too many for Python lists.
    terms, holding = [], []
    for term, n in db.execute(f"SELECT term, doc FROM {vocab} ORDER BY term"):
        terms.append(term)
        holding.append(n)
    starts = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(holding, out=starts[1:])
    found = db.execute(f"SELECT doc, COUNT(*) FROM {vocab}_at GROUP BY term, doc ORDER BY term, doc")
    pairs = np.zeros((int(starts[-1]), 2), dtype=np.int32)
    filled = 0
    while batch := found.fetchmany(BATCH):
        pairs[filled : filled + len(batch)] = batch
        filled += len(batch)
    if filled != len(pairs):
        raise RuntimeError(f"{table}: {filled} postings read, {len(pairs)} counted")
    db.execute(f"DROP TABLE {vocab}_at")
    db.execute(f"DROP TABLE {vocab}")
    return terms, starts, pairs[:, 0], pairs[:, 1]


def _merge(
    carried: Carried,
    table: str,
    lengths: np.ndarray,
    fresh: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The postings of the rows read by FTS5 (``fresh``: terms, starts, rows, counts) and of the rows carried over
    from the live generation, renumbered, as one table's: what FTS5 would have given for all of them. Fills in
    the carried rows' ``lengths``."""
    import numpy as np

    postings = carried.lexicon._postings(table)
    old = postings.pieces[0]  # the base's: the rows of a tail are given to FTS5 again (`Previous.copy_note`)
    old_terms = carried.terms[table]
    f_terms, f_starts, f_rows, f_counts = fresh
    renumber = np.full(len(postings.lengths), -1, dtype=np.int64)
    for a, b, k in carried.ranges[table]:
        renumber[a : a + k] = np.arange(b, b + k)
        lengths[b : b + k] = postings.lengths[a : a + k]
    # Terms in FTS5's order (by their UTF-8 bytes, which is Python's order of code points).
    terms = sorted(set(old_terms).union(f_terms))
    place = {t: i for i, t in enumerate(terms)}

    # Each posting as one number, (term << 32) | row: ordered as FTS5 orders them (by term, then row).
    def term_ids(names: list[str], starts: np.ndarray) -> np.ndarray:
        ids = np.fromiter((place[t] for t in names), dtype=np.int64, count=len(names))
        return np.repeat(ids, np.diff(starts)) << 32

    old_terms_of = term_ids(old_terms, old.starts)
    renumbered = renumber[old.rows]
    kept = renumbered >= 0  # the rows of notes changed or removed are gone
    old_keys = old_terms_of[kept] | renumbered[kept]
    old_counts = old.counts[kept]
    del old_terms_of, renumbered, kept
    if len(old_keys) > 1 and not bool(np.all(old_keys[1:] > old_keys[:-1])):
        # Notes copied in another order than they had (e.g. one renamed): sorted again.
        order = np.argsort(old_keys, kind="stable")
        old_keys, old_counts = old_keys[order], old_counts[order]
    fresh_keys = term_ids(f_terms, f_starts) | f_rows
    at = np.searchsorted(old_keys, fresh_keys)
    every = np.insert(old_keys, at, fresh_keys)
    counts = np.insert(old_counts, at, f_counts)
    term_of = every >> 32
    holding = np.bincount(term_of, minlength=len(terms))
    used = np.flatnonzero(holding)  # a term only the removed rows held is gone
    starts = np.zeros(len(used) + 1, dtype=np.int64)
    np.cumsum(holding[used], out=starts[1:])
    return [terms[i] for i in used.tolist()], starts, every & 0xFFFFFFFF, counts


@dataclass(frozen=True)
class _Piece:
    """One set of a table's postings files: the base's, or a tail's (`search.parts`), its row ids global."""

    #: Its terms' ``tab`` in the table ``lexicon``: the table's name, with the tail's prefix for a tail.
    name: str
    starts: np.ndarray
    rows: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class _Postings:
    pieces: tuple[_Piece, ...]
    #: Every row's length in tokens, base then tail.
    lengths: np.ndarray
    #: The live rows (BM25's document count) and their mean length.
    n_rows: int
    avgdl: float
    #: Whether each row is live, when some are dead (`search.parts`); None when all are.
    alive: np.ndarray | None = None


class Lexicon:
    """The postings of an index's generation, memory-mapped when the index is opened: a build removes the previous
    generation right after the swap, and a reader keeps only the files it has open or mapped."""

    def __init__(self, db: sqlite3.Connection, tables: dict[str, _Postings]) -> None:
        self.db = db
        self._tables = tables
        self._ids: dict[tuple[str, str], int | None] = {}  # (table, term): its id, None if not in the table
        self._local = threading.local()

    @classmethod
    def of(cls, gen: Path, db: sqlite3.Connection, manifest: dict[str, Any]) -> Lexicon:
        """The generation's lexicon. IndexUnusableError when its record or a file is missing or damaged (a file
        gone as the generation was swapped out: `search.retrieve.open_index` then opens the live one)."""
        import numpy as np

        # Imported here: search.store imports (through search.words) a module that imports this one.
        from search import parts
        from search.store import REBUILD_HINT

        record = manifest.get("lexicon")
        if not isinstance(record, dict):
            raise IndexUnusableError(f"the manifest in {gen} records no BM25 postings; {REBUILD_HINT}")
        tail = parts.Tail.of(manifest)
        tables: dict[str, _Postings] = {}
        for table in TABLES:
            base = _read_piece(gen, table, "")
            pieces: tuple[_Piece, ...] = (base[0],)
            lengths, alive = base[1], None
            if tail is not None:
                extra = _read_piece(gen, table, parts.TAIL_PREFIX)
                pieces += (extra[0],)
                lengths = np.concatenate([lengths, extra[1]])
                alive = np.ones(len(lengths), dtype=bool)
                alive[parts.dead_rows(gen, tail, KINDS[table])] = False
            n_rows = int(record[table]["rows"])
            avgdl = int(record[table]["tokens"]) / n_rows if n_rows else 0.0
            tables[table] = _Postings(pieces, lengths, n_rows, avgdl, alive)
        return cls(db, tables)

    def _postings(self, table: str) -> _Postings:
        return self._tables[table]

    def search(
        self, table: str, phrases: list[list[str]], limit: int | None, allowed: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """FTS5's bm25() over the postings, for a question tokenized into phrases (`Tokenizer.phrases`): (row id,
        -bm25) of the best ``limit`` matching rows among ``allowed``, best first (ties by row id); with no
        ``limit``, every allowed match, in no order. A phrase of one token scores as FTS5 scores it; one of several
        as described in the module's docstring."""
        rows, scores = self.matches(table, phrases, allowed)
        if limit is not None:
            return best(rows, scores, limit)
        return list(zip(rows.tolist(), scores.tolist(), strict=True))

    def matches(
        self, table: str, phrases: list[list[str]], allowed: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row among ``allowed`` (all when None) that matches, in no order, and its score (`search`'s)."""
        import numpy as np

        p = self._postings(table)
        phrases = [ph for ph in phrases if ph]
        if not phrases or not p.n_rows:
            return no_matches()
        asked = [t for ph in phrases for t in ph]
        ids = {piece.name: self._term_ids(piece.name, asked) for piece in p.pieces}
        wanted = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
        found_rows: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for phrase in phrases:  # one phrase after another, as FTS5 adds them up
            held = self._holding(p, [[ids[piece.name].get(t) for t in phrase] for piece in p.pieces])
            if held is None:
                continue
            rows, counts = held
            hits = len(rows)
            idf = math.log((p.n_rows - hits + 0.5) / (hits + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            if wanted is not None:
                # The term's rows are in order: find the allowed ones without reading the others.
                at = np.searchsorted(rows, wanted)
                inside = at < len(rows)
                inside[inside] = rows[at[inside]] == wanted[inside]
                rows, counts = wanted[inside], counts[at[inside]]
            f = counts.astype(np.float64)
            length = p.lengths[rows].astype(np.float64)
            weights.append(idf * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * length / p.avgdl))))
            found_rows.append(np.asarray(rows, dtype=np.int64))
        if not found_rows:
            return no_matches()
        every = np.concatenate(found_rows)
        if wanted is None:
            return self._summed(table, len(p.lengths), every, np.concatenate(weights))
        unique, where = np.unique(every, return_inverse=True)
        return unique, np.bincount(where, weights=np.concatenate(weights), minlength=len(unique))

    def scores_of(
        self, table: str, matched: tuple[np.ndarray, np.ndarray], ids: Sequence[int]
    ) -> list[tuple[int, float]]:
        """(row id, score) of those of ``ids`` among some `matches` of a table, in no order: what `search` with
        these ids allowed gives, read from a search of more rows (linear in the matches: their scores are
        scattered into a buffer of the table's rows, kept by the thread, and cleared again)."""
        import numpy as np

        rows, scores = matched
        if not len(rows) or not len(ids):
            return []
        buffer = self._buffer("scores", table, lambda: np.full(len(self._postings(table).lengths), np.nan))
        buffer[rows] = scores
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        found = buffer[wanted]
        buffer[rows] = np.nan
        held = ~np.isnan(found)
        return list(zip(wanted[held].tolist(), found[held].tolist(), strict=True))

    def _buffer(self, kind: str, table: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """A scratch array of a table's rows kept by the calling thread (``make`` makes it the first time); each use
        writes the entries it reads, or clears them after."""
        buffers: dict[tuple[str, str], np.ndarray] | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buffer = buffers.get((kind, table))
        if buffer is None:
            buffer = buffers[(kind, table)] = make()
        return buffer

    def _summed(
        self, table: str, n_rows: int, rows: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The distinct ``rows`` (in no particular order) and the sum of each one's ``weights``, added in
        the order given (each phrase's weight in turn, as FTS5 adds them).

        In time linear in the postings, without sorting them and without reading an array of every row of the
        table: each row's place is scattered into a buffer of the table's rows, kept by the thread (at 220k
        passages, 0.34 ms a question where summing into a new array of every row and finding its non-zero
        entries took 0.85 ms, mostly the new array's page faults)."""
        import numpy as np

        place = self._buffer("places", table, lambda: np.zeros(n_rows, dtype=np.int64))
        at = np.arange(len(rows))
        place[rows] = at  # a row found several times keeps one of its places
        first = place[rows]  # each posting's row's kept place
        kept = first == at
        # The rows' numbers 0.. in the order of their kept places, for every posting.
        number = (np.cumsum(kept) - 1)[first]
        return rows[kept], np.bincount(number, weights=weights, minlength=int(kept.sum()))

    @staticmethod
    def _holding(p: _Postings, term_ids: list[list[int | None]]) -> tuple[np.ndarray, np.ndarray] | None:
        """The live rows holding every one of some terms (their ids in each piece, in order) and the fewest times
        one of them occurs in each; None when no row holds them."""
        import numpy as np

        found = [held for piece, ids in zip(p.pieces, term_ids, strict=True) if (held := _held(piece, ids))]
        if not found:
            return None
        if len(found) == 1:
            rows, counts = found[0]
        else:  # a tail's rows come after the base's: still in order
            rows, counts = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        if p.alive is not None:
            live = p.alive[rows]
            rows, counts = rows[live], counts[live]
        return (rows, counts) if len(rows) else None

    def _term_ids(self, table: str, terms: list[str]) -> dict[str, int | None]:
        """The ids of some terms in a table's piece (None: not in it), each looked up once by this process."""
        missing = sorted({t for t in terms if (table, t) not in self._ids})
        if missing:
            found = dict(
                self.db.execute(
                    "SELECT term, id FROM lexicon WHERE tab = ? AND term IN (SELECT value FROM json_each(?))",
                    (table, json.dumps(missing)),
                ).fetchall()
            )
            for term in missing:
                self._ids[(table, term)] = found.get(term)
        return {t: self._ids[(table, t)] for t in terms}


def no_matches() -> tuple[np.ndarray, np.ndarray]:
    """`Lexicon.matches` when nothing matches."""
    import numpy as np

    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)


def best(rows: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The ``limit`` best of some matches (`Lexicon.matches`), best first, ties by row id."""
    import numpy as np

    if len(scores) > limit:
        # Only rows scoring at least the limit-th best can be shown; ties there go by row id below.
        kth = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        rows, scores = rows[scores >= kth], scores[scores >= kth]
    order = np.lexsort((rows, -scores))[:limit]
    return list(zip(rows[order].tolist(), scores[order].tolist(), strict=True))


def _held(piece: _Piece, term_ids: list[int | None]) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of one piece holding every one of some terms, and the fewest times one of them occurs in each."""
    import numpy as np

    if not term_ids or any(t is None for t in term_ids):
        return None
    rows = counts = None
    for t in term_ids:
        assert t is not None
        a, b = int(piece.starts[t]), int(piece.starts[t + 1])
        if rows is None or counts is None:
            rows, counts = piece.rows[a:b], piece.counts[a:b]
            continue
        rows, mine, theirs = np.intersect1d(rows, piece.rows[a:b], assume_unique=True, return_indices=True)
        counts = np.minimum(counts[mine], piece.counts[a:b][theirs])
    assert rows is not None and counts is not None
    return (rows, counts) if len(rows) else None


def _read_piece(gen: Path, table: str, prefix: str) -> tuple[_Piece, np.ndarray]:
    """A table's postings files of a generation (``prefix``: a tail's), mapped, and its rows' lengths."""
    from search.parts import load

    arrays = {part: load(gen / f"{prefix}{table}.{part}.npy") for part in PARTS}
    piece = _Piece(prefix + table, arrays["starts"], arrays["rows"], arrays["counts"])
    return piece, arrays["lengths"]


class Tokenizer:
    """A question's words as FTS5 tokenizes them, by an in-memory FTS5 table of the index's tokenizer (one
    connection per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(":memory:")
            db.execute(f"CREATE VIRTUAL TABLE q USING fts5(body, tokenize = '{TOKENIZE}')")
            db.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance')")
            self._local.db = db
        return db

    def phrases(self, words: list[str]) -> list[list[str]]:
        """Each word's tokens (a word FTS5 splits is a phrase of several)."""
        return [list(p) for p in self._phrases(tuple(words))]

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one Tokenizer lives as long as the process)
    def _phrases(self, words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        # An answer searches three tables or lists with the same words.
        db = self._db()
        db.execute("DELETE FROM q")
        db.executemany("INSERT INTO q(rowid, body) VALUES (?,?)", enumerate(words))
        out: list[list[str]] = [[] for _ in words]
        for term, row in db.execute("SELECT term, doc FROM qv ORDER BY doc, offset"):
            out[row].append(term)
        return tuple(tuple(p) for p in out)


TOKENIZER = Tokenizer()
