"""An in-memory inverted index over flat numpy arrays, scored with BM25.

Documents are rows (small integers handed out by the engine) with *weighted* term frequencies, so
a field can count more than another (BM25F with one length). Postings live in immutable segments,
each a CSR matrix both ways (term -> rows for scoring, row -> terms for feedback and explanations).
Adding documents buffers them; the buffer becomes a new segment before the next query. Removing a
row marks a tombstone and corrects the document frequencies at once; :meth:`TextIndex.compact`
merges the segments and drops dead rows, optionally renumbering rows.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["PostingSpans", "Query", "TextIndex", "ranges"]

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
HalfArray = np.ndarray[Any, np.dtype[np.float16]]
IntArray = np.ndarray[Any, np.dtype[np.int32]]


#: Postings per run above which reading runs by slices beats gathering their positions.
_RUN = 64


#: Postings whose BM25 weights are computed at a time (see _Segment.weights).
_WEIGHT_RUN = 1 << 20


class _Segment:
    """Immutable postings for a batch of rows."""

    __slots__ = (
        "bm25",
        "cosine",
        "doc_indptr",
        "doc_terms",
        "doc_tf",
        "lookup",
        "rows",
        "t_indptr",
        "t_rows",
        "t_tf",
        "terms",
    )

    def __init__(
        self,
        rows: IntArray,
        doc_indptr: IntArray,
        doc_terms: IntArray,
        doc_tf: FloatArray | HalfArray,
    ):
        self.rows = rows
        self.doc_indptr = doc_indptr
        self.doc_terms = doc_terms
        # half precision, like the postings side: a weighted frequency needs no more than three
        # significant digits (BM25 saturates in it), and the forward arrays are the biggest part
        # of a large index
        self.doc_tf: HalfArray = np.asarray(doc_tf, dtype=np.float16)
        # a stable sort of 16-bit keys is a radix sort: use it when the term ids fit
        small = len(doc_terms) and int(doc_terms.max()) < 2**16 and int(doc_terms.min()) >= 0
        keys = doc_terms.astype(np.uint16) if small else doc_terms
        order = np.argsort(keys, kind="stable")
        del keys
        # the postings of each term are a run of ``order``: count them instead of searching
        counts = np.bincount(doc_terms)
        self.terms = np.flatnonzero(counts).astype(doc_terms.dtype)
        self.t_indptr = np.zeros(len(self.terms) + 1, dtype=np.int32)
        np.cumsum(counts[self.terms], out=self.t_indptr[1:])
        # (temporaries are dropped as soon as they are used: on a big build each is as long as
        # every posting, and together they are the build's peak memory)
        owner = np.repeat(rows.astype(np.int32, copy=False), np.diff(doc_indptr))
        self.t_rows = owner[order]
        del owner
        # half precision, as the forward arrays: the postings side feeds first-stage estimates
        # and the dense scores of small indexes; exact scoring reads the rows' own frequencies
        # (widened to single precision to be summed)
        self.t_tf = self.doc_tf[order]
        del order
        # term id -> position in ``terms`` (-1: absent), so a lookup is one index, not a search
        self.lookup = np.full(int(self.terms[-1]) + 1 if len(self.terms) else 0, -1, np.int32)
        self.lookup[self.terms] = np.arange(len(self.terms), dtype=np.int32)
        # (k1, b, avgdl) -> the BM25 term-frequency part of every posting, in term order
        self.bm25: tuple[tuple[float, float, float], HalfArray] | None = None
        # 1 / sqrt(row length) of every posting, in term order (see inverse_roots)
        self.cosine: FloatArray | None = None

    def span(self, term: int) -> tuple[int, int]:
        """Where the postings of ``term`` are in ``t_rows``/``t_tf`` (empty: ``a == b``)."""
        if term >= len(self.lookup):
            return 0, 0
        i = int(self.lookup[term])
        if i < 0:
            return 0, 0
        return int(self.t_indptr[i]), int(self.t_indptr[i + 1])

    def postings(self, term: int) -> tuple[IntArray, HalfArray] | None:
        a, b = self.span(term)
        if a == b:
            return None
        return self.t_rows[a:b], self.t_tf[a:b]

    def weights(
        self, k1: float, b: float, avgdl: float, length: FloatArray, *, drift: float = 0.0
    ) -> HalfArray:
        """``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl))`` of every posting, cached
        until the average length changes by more than ``drift`` (relative; a row's length never
        changes within a segment)."""
        key = (k1, b, avgdl)
        cached = self.bm25
        if cached is None or cached[0][:2] != key[:2] or abs(cached[0][2] - avgdl) > drift * avgdl:
            # a run of postings at a time: the single-precision temporaries of every posting at
            # once would be several times the result (and a big index's peak memory)
            part = np.empty(len(self.t_tf), dtype=np.float16)
            for start in range(0, len(part), _WEIGHT_RUN):
                end = start + _WEIGHT_RUN
                tf = self.t_tf[start:end].astype(np.float32)
                norm = (k1 * (1.0 - b)) + (k1 * b / avgdl) * length[self.t_rows[start:end]]
                part[start:end] = tf * np.float32(k1 + 1.0) / (tf + norm)
            cached = self.bm25 = key, part
        return cached[1]

    def inverse_roots(self, length: FloatArray) -> FloatArray:
        """``1 / sqrt(max(len, 1))`` of every posting's row: what a cosine estimate divides
        by, cached (a row's length never changes within a segment). Single precision, so the
        estimate is the one dividing by the root gives."""
        cached = self.cosine
        if cached is None:
            own = np.maximum(length[self.t_rows], np.float32(1.0))
            cached = (np.float32(1.0) / np.sqrt(own)).astype(np.float32, copy=False)
            self.cosine = cached
        return cached


def ranges(starts: np.ndarray[Any, Any], sizes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The positions ``starts[i] .. starts[i] + sizes[i] - 1`` of every ``i``, concatenated."""
    sizes = sizes.astype(np.int64)
    total = int(sizes.sum())
    offsets = np.cumsum(sizes) - sizes
    out: np.ndarray[Any, Any] = np.arange(total, dtype=np.int64)
    out += np.repeat(starts.astype(np.int64) - offsets, sizes)
    return out


def _take(
    values: np.ndarray[Any, Any], at: list[tuple[int, int]] | np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """``values`` at ``at``: positions, or ``(start, end)`` runs whose slices are concatenated
    (copying runs beats gathering their positions one by one once the runs are long)."""
    out: np.ndarray[Any, Any]
    if not isinstance(at, list):
        out = values[at]
    elif len(at) == 1:
        out = values[at[0][0] : at[0][1]]
    else:
        out = np.concatenate([values[a:b] for a, b in at])
    return out


@attrs.frozen
class PostingSpans:
    """Where the postings of some query terms are in one segment, and what each posting of each
    term is worth (see :meth:`TextIndex.spans`)."""

    segment: _Segment
    starts: np.ndarray[Any, np.dtype[np.int64]]
    sizes: np.ndarray[Any, np.dtype[np.int64]]
    scales: np.ndarray[Any, np.dtype[np.float64]]


class Query(dict[str, float]):
    """A weighted bag of terms that remembers its term ids per index (for queries reused across
    calls, such as the engine's cached skill queries)."""

    __slots__ = ("vectors",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vectors: dict[tuple[int, int], tuple[IntArray, FloatArray]] = {}


class TextIndex:
    """BM25 over weighted term frequencies, with incremental add/remove."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, max_segments: int = 8) -> None:
        self.k1 = k1
        self.b = b
        self.max_segments = max_segments
        self.vocab: dict[str, int] = {}
        self.terms: list[str] = []
        self._df = np.zeros(0, dtype=np.float64)
        self._segments: list[_Segment] = []
        # Buffered rows, in order: their numbers, how many terms each has, and all their term ids
        # and weighted frequencies end to end. Document frequencies count flushed rows only;
        # every read of them flushes first. (Growing C arrays, not an object per row: a big
        # build leaves no small allocations behind to fragment memory.)
        self._pending_rows = array("i")
        self._pending_sizes = array("i")
        self._pending_terms = array("i")
        self._pending_tf = array("f")
        # Per row: length, live flag, and where its forward vector lives.
        self._length = np.zeros(0, dtype=np.float32)
        self._live = np.zeros(0, dtype=bool)
        self._seg_of = np.full(0, -1, dtype=np.int32)
        self._pos_of = np.full(0, -1, dtype=np.int32)
        self._total_length = 0.0
        self._n_live = 0

    # ---------------------------------------------------------------------------------- updates

    def _grow(self, rows: int) -> None:
        size = len(self._length)
        if rows <= size:
            return
        new = max(rows, 2 * size, 64)
        for name, fill in (("_length", 0), ("_live", False), ("_seg_of", -1), ("_pos_of", -1)):
            old = getattr(self, name)
            grown = np.full(new, fill, dtype=old.dtype)
            grown[:size] = old
            setattr(self, name, grown)

    def term_id(self, term: str, *, create: bool = False) -> int:
        t = self.vocab.get(term)
        if t is None:
            if not create:
                return -1
            t = self.vocab[term] = len(self.terms)
            self.terms.append(term)
        return t

    def _new_term(self, term: str) -> int:
        t = self.vocab[term] = len(self.terms)
        self.terms.append(term)
        return t

    def add(self, row: int, counts: Mapping[str, float]) -> None:
        """Index ``row`` with weighted term frequencies (replaces a live row of that number)."""
        if row < len(self._live) and self._live[row]:
            self.remove(row)
        if not all(x > 0 for x in counts.values()):  # (also drops NaN)
            counts = {t: x for t, x in counts.items() if x > 0}
        get, new = self.vocab.get, self._new_term
        id_list = [t if (t := get(term)) is not None else new(term) for term in counts]
        tf_list = list(counts.values())
        self._grow(row + 1)
        self._length[row] = sum(tf_list)
        length = float(self._length[row])  # as stored, in float32
        self._live[row] = True
        self._seg_of[row] = -1
        self._total_length += length
        self._n_live += 1
        self._pending_rows.append(row)
        self._pending_sizes.append(len(id_list))
        self._pending_terms.extend(id_list)
        self._pending_tf.extend(tf_list)

    def add_many(self, rows: IntArray, sizes: IntArray, term_ids: IntArray, tf: FloatArray) -> None:
        """:meth:`add` for rows that are not indexed yet, given as arrays: row ``rows[i]`` has
        the next ``sizes[i]`` of ``term_ids`` (ids of :meth:`term_id`, distinct within a row)
        with weighted frequencies ``tf`` (all > 0)."""
        if not len(rows):
            return
        rows = np.asarray(rows, dtype=np.int32)
        sizes = np.asarray(sizes, dtype=np.int32)
        tf = np.asarray(tf, dtype=np.float32)
        self._grow(int(rows.max()) + 1)
        owner = np.repeat(np.arange(len(rows)), sizes)
        lengths = np.bincount(owner, weights=tf, minlength=len(rows)).astype(np.float32)
        self._length[rows] = lengths
        self._live[rows] = True
        self._seg_of[rows] = -1
        self._total_length += float(lengths.sum(dtype=np.float64))
        self._n_live += len(rows)
        self._pending_rows.frombytes(rows.tobytes())
        self._pending_sizes.frombytes(sizes.tobytes())
        self._pending_terms.frombytes(np.asarray(term_ids, dtype=np.int32).tobytes())
        self._pending_tf.frombytes(tf.tobytes())

    def remove(self, row: int) -> bool:
        """Tombstone ``row``; returns False when it was not indexed."""
        if row >= len(self._live) or not self._live[row]:
            return False
        if self._seg_of[row] == -1:
            pass  # buffered: not counted in the document frequencies yet, dropped at the flush
        else:
            ids, _ = self.vector(row)
            self._df[ids] -= 1.0
        self._live[row] = False
        self._total_length -= float(self._length[row])
        self._n_live -= 1
        return True

    def flush(self) -> None:
        """Turn the buffered rows into a segment now (queries do it on demand)."""
        self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        # Each buffer is dropped once read (on a big build they are the biggest arrays there
        # are): the term ids copied to an array of their size, the frequencies read in place
        # until they are made half precision below.
        rows = np.frombuffer(self._pending_rows, dtype=np.int32).copy()
        sizes = np.frombuffer(self._pending_sizes, dtype=np.int32).astype(np.int64)
        self._pending_rows = array("i")
        self._pending_sizes = array("i")
        terms = np.frombuffer(self._pending_terms, dtype=np.int32).copy()
        self._pending_terms = array("i")
        tf = np.frombuffer(self._pending_tf, dtype=np.float32)
        self._pending_tf = array("f")
        # keep live rows, and of a row buffered twice only its last version
        last = np.zeros(len(rows), dtype=bool)
        _, first_from_end = np.unique(rows[::-1], return_index=True)
        last[len(rows) - 1 - first_from_end] = True
        keep = last & self._live[rows] & (self._seg_of[rows] == -1)
        if not keep.all():
            postings = np.repeat(keep, sizes)
            rows, sizes, terms, tf = rows[keep], sizes[keep], terms[postings], tf[postings]
        if len(rows) == 0:
            return
        indptr = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum(sizes, out=indptr[1:])
        half = tf.astype(np.float16)  # what the segment keeps: the buffer can go
        del tf
        self._append_segment(rows, indptr, terms, half)

    def _append_segment(
        self, rows: IntArray, indptr: IntArray, terms: IntArray, tf: FloatArray | HalfArray
    ) -> None:
        """Add a segment of rows that are live and in no other segment; counts their terms."""
        if len(self._df) < len(self.terms):
            df = np.zeros(max(len(self.terms), 2 * len(self._df)), dtype=np.float64)
            df[: len(self._df)] = self._df
            self._df = df
        self._df[: len(self.terms)] += np.bincount(terms, minlength=len(self.terms))
        self._segments.append(_Segment(rows, indptr, terms, tf))
        seg = len(self._segments) - 1
        self._seg_of[rows] = seg
        self._pos_of[rows] = np.arange(len(rows), dtype=np.int32)
        if len(self._segments) > self.max_segments:
            self.compact()

    def compact(self, row_map: IntArray | None = None) -> None:
        """Merge every segment into one, dropping dead rows; ``row_map[old] -> new`` renumbers
        rows (-1 drops the row)."""
        self._flush()
        size = len(self._seg_of)
        rows_parts: list[IntArray] = []
        sizes_parts: list[IntArray] = []
        terms_parts: list[IntArray] = []
        tf_parts: list[FloatArray] = []
        for k, seg in enumerate(self._segments):
            current = self._live[seg.rows] & (self._seg_of[seg.rows] == k)
            sizes = np.diff(seg.doc_indptr).astype(np.int32)
            keep_posting = np.repeat(current, sizes)
            rows_parts.append(seg.rows[current])
            sizes_parts.append(sizes[current])
            terms_parts.append(seg.doc_terms[keep_posting])
            tf_parts.append(seg.doc_tf[keep_posting])
        rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int32)
        sizes = np.concatenate(sizes_parts) if sizes_parts else np.zeros(0, np.int32)
        terms = np.concatenate(terms_parts) if terms_parts else np.zeros(0, np.int32)
        tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.float32)
        length = self._length[rows]
        if row_map is not None:
            new_rows = row_map[rows]
            keep = new_rows >= 0
            terms = terms[np.repeat(keep, sizes)]
            tf = tf[np.repeat(keep, sizes)]
            rows, sizes, length = new_rows[keep].astype(np.int32), sizes[keep], length[keep]
            size = int(new_rows.max()) + 1 if len(new_rows) else 0
        # rows ascending, as a rebuild adds them
        order = np.argsort(rows, kind="stable")
        if not np.array_equal(order, np.arange(len(rows))):
            starts = np.cumsum(sizes, dtype=np.int64) - sizes  # where each row's terms are
            moved = sizes[order]
            to = np.cumsum(moved, dtype=np.int64) - moved  # where they go
            take = np.arange(int(moved.sum()), dtype=np.int64) + np.repeat(
                starts[order] - to, moved
            )
            rows, sizes, length, terms, tf = (
                rows[order],
                sizes[order],
                length[order],
                terms[take],
                tf[take],
            )
        self._length = np.zeros(size, dtype=np.float32)
        self._live = np.zeros(size, dtype=bool)
        self._seg_of = np.full(size, -1, dtype=np.int32)
        self._pos_of = np.full(size, -1, dtype=np.int32)
        self._length[rows] = length
        self._live[rows] = True
        self._segments = []
        self._df = np.zeros(len(self.terms), dtype=np.float64)
        self._n_live = len(rows)
        self._total_length = sum(length.tolist())  # in row order, as a rebuild adds them
        if len(rows):
            indptr = np.zeros(len(rows) + 1, dtype=np.int32)
            np.cumsum(sizes, out=indptr[1:])
            self._append_segment(rows, indptr, terms.astype(np.int32), tf.astype(np.float32))

    # ---------------------------------------------------------------------------------- queries

    @property
    def size(self) -> int:
        """Number of live rows."""
        return self._n_live

    def vector(self, row: int) -> tuple[IntArray, FloatArray]:
        """The term ids and weighted frequencies of ``row``."""
        seg = int(self._seg_of[row]) if row < len(self._seg_of) else -1
        if seg == -1:
            self._flush()  # buffered rows are read rarely: make them a segment
            seg = int(self._seg_of[row]) if row < len(self._seg_of) else -1
            if seg == -1:
                return np.zeros(0, np.int32), np.zeros(0, np.float32)
        s = self._segments[seg]
        pos = int(self._pos_of[row])
        a, b = s.doc_indptr[pos], s.doc_indptr[pos + 1]
        return s.doc_terms[a:b], s.doc_tf[a:b].astype(np.float32)

    def idf(self, ids: IntArray) -> np.ndarray[Any, np.dtype[np.float64]]:
        self._flush()
        n = max(self._n_live, 1)
        df = self._df[ids] if len(self._df) else np.zeros(len(ids))
        return np.log1p((n - df + 0.5) / (df + 0.5))

    def query_vector(self, query: Mapping[str, float]) -> tuple[IntArray, FloatArray]:
        """The known terms of ``query`` as ids, and their weights (a :class:`Query` keeps them
        for the next call on this index while the vocabulary is unchanged)."""
        memo = query.vectors if isinstance(query, Query) else None
        key = (id(self), len(self.terms))
        if memo is not None and key in memo:
            return memo[key]
        get = self.vocab.get
        ids_list = [get(t, -1) for t in query]
        weight_list = list(query.values())
        ids = np.array(ids_list, dtype=np.int32)
        weights = np.array(weight_list, dtype=np.float32)
        keep = (ids >= 0) & (weights > 0)
        if not keep.all():
            ids, weights = ids[keep], weights[keep]
        if memo is not None:
            memo[key] = (ids, weights)
        return ids, weights

    def scores(self, query: Mapping[str, float], rows: int) -> FloatArray:
        """BM25 of every row ``< rows`` for a weighted bag of terms (dead rows score 0)."""
        self._flush()
        out = np.zeros(rows, dtype=np.float32)
        ids, weights = self.query_vector(query)
        if len(ids) == 0 or self._n_live == 0:
            return out
        avgdl = max(self._total_length / self._n_live, 1e-9)
        idf = self.idf(ids)
        for seg in self._segments:
            bm25 = seg.weights(self.k1, self.b, avgdl, self._length)
            for t, w, i in zip(ids.tolist(), weights.tolist(), idf.tolist(), strict=True):
                if i <= 0:
                    continue
                a, b = seg.span(t)
                if a < b:
                    out[seg.t_rows[a:b]] += np.float32(w * i) * bm25[a:b]
        out[: min(rows, len(self._live))] *= self._live[:rows]
        return out

    def coverage(
        self, query: Mapping[str, float], rows: int
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """For every row ``< rows``, the sum of the query weights of the terms it contains (0 for
        dead rows)."""
        out = np.zeros(rows)
        live = np.flatnonzero(self._live[: min(rows, len(self._live))])
        if len(live):
            out[live] = self.coverage_at(query, live)
        return out

    @property
    def avgdl(self) -> float:
        """The average weighted length of the live rows (BM25's length normaliser)."""
        return max(self._total_length / max(self._n_live, 1), 1e-9)

    def spans(self, query: Mapping[str, float], kind: str = "bm25") -> list[PostingSpans]:
        """Per segment, where the postings of the query terms are.

        ``kind`` says what a posting is worth: ``"bm25"``: query weight times idf (times the BM25
        term-frequency part, :meth:`posting_values`), so a row's :meth:`scores` is the sum of
        its postings; ``"flat"``: the query weight; ``"cosine"``: the query weight over the
        square root of the row's length.
        """
        self._flush()
        ids, weights = self.query_vector(query)
        if len(ids) == 0 or self._n_live == 0:
            return []
        if kind == "bm25":
            scales = weights.astype(np.float64) * self.idf(ids)
        else:
            scales = weights.astype(np.float64)
        out: list[PostingSpans] = []
        for seg in self._segments:
            known = ids < len(seg.lookup)
            at = np.full(len(ids), -1, dtype=np.int64)
            at[known] = seg.lookup[ids[known]]
            found = (at >= 0) & (scales > 0)
            pos = at[found]
            starts = seg.t_indptr[pos].astype(np.int64)
            sizes = seg.t_indptr[pos + 1].astype(np.int64) - starts
            if len(pos):
                out.append(PostingSpans(seg, starts, sizes, scales[found]))
        return out

    def posting_values(
        self, spans: PostingSpans, take: np.ndarray[Any, np.dtype[np.bool_]], kind: str
    ) -> tuple[IntArray, FloatArray]:
        """The rows and values of the postings of the spans selected by ``take``. The rows may
        be a view of the segment's own array: read them, do not write to them."""
        seg = spans.segment
        sizes = spans.sizes[take]
        starts = spans.starts[take]
        at: list[tuple[int, int]] | np.ndarray[Any, Any] = (
            list(zip(starts.tolist(), (starts + sizes).tolist(), strict=True))
            if len(sizes) * _RUN < int(sizes.sum())  # long runs: copy them
            else ranges(starts, sizes)
        )
        rows: IntArray = _take(seg.t_rows, at)
        scale = np.repeat(spans.scales[take].astype(np.float32), sizes)
        if kind == "bm25":
            # a first-stage estimate: a slightly stale length normaliser changes little
            part = seg.weights(self.k1, self.b, self.avgdl, self._length, drift=0.02)
            return rows, _take(part, at) * scale
        if kind == "cosine":
            return rows, _take(seg.inverse_roots(self._length), at) * scale
        return rows, scale

    def _entries(
        self, rows: np.ndarray[Any, np.dtype[np.integer[Any]]]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], IntArray, FloatArray]:
        """The forward postings of ``rows`` (all flushed and live): ``(position in rows, term
        id, weighted frequency)`` of every term of every row."""
        self._flush()
        rows = np.asarray(rows, dtype=np.int64)
        seg_of = self._seg_of[rows]
        owners: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        terms: list[IntArray] = []
        tfs: list[FloatArray] = []
        for k in np.unique(seg_of).tolist():
            if k < 0:
                continue
            seg = self._segments[k]
            sel = np.flatnonzero(seg_of == k)
            pos = self._pos_of[rows[sel]]
            starts = seg.doc_indptr[pos].astype(np.int64)
            sizes = seg.doc_indptr[pos + 1].astype(np.int64) - starts
            if int(sizes.sum()) == 0:
                continue
            take = ranges(starts, sizes)
            owners.append(np.repeat(sel, sizes))
            terms.append(seg.doc_terms[take])
            tfs.append(seg.doc_tf[take])
        if not owners:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        return (
            np.concatenate(owners),
            np.concatenate(terms),
            np.concatenate(tfs).astype(np.float32),
        )

    def _dense_query(self, query: Mapping[str, float]) -> FloatArray:
        """The query weights as an array over term ids (0 for terms not in the query)."""
        ids, weights = self.query_vector(query)
        dense = np.zeros(len(self.terms), dtype=np.float32)
        dense[ids] = weights
        return dense

    def scores_at(
        self, query: Mapping[str, float], rows: np.ndarray[Any, np.dtype[np.integer[Any]]]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """BM25 of ``rows`` (live rows) for a weighted bag of terms: what :meth:`scores` gives
        them, computed from their own terms rather than from the postings."""
        out = np.zeros(len(rows))
        owner, terms, tf = self._entries(rows)
        if len(owner) == 0 or self._n_live == 0:
            return out
        dense = self._dense_query(query)
        hit = dense[terms] > 0
        owner, terms, tf = owner[hit], terms[hit], tf[hit]
        if len(owner) == 0:
            return out
        k1, b = np.float32(self.k1), np.float32(self.b)
        length = self._length[np.asarray(rows, dtype=np.int64)[owner]]
        norm = k1 * (np.float32(1.0) - b) + (k1 * b / np.float32(self.avgdl)) * length
        part = (tf * (k1 + np.float32(1.0)) / (tf + norm)).astype(np.float32)
        scale = (dense[terms].astype(np.float64) * self.idf(terms)).astype(np.float32)
        out[:] = np.bincount(owner, (scale * part).astype(np.float64), minlength=len(rows))
        return out

    def coverage_at(
        self, query: Mapping[str, float], rows: np.ndarray[Any, np.dtype[np.integer[Any]]]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """:meth:`coverage` of ``rows`` (live rows), computed from their own terms."""
        return self.coverages_at([query], rows)[0]

    def coverages_at(
        self,
        queries: Sequence[Mapping[str, float]],
        rows: np.ndarray[Any, np.dtype[np.integer[Any]]],
    ) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
        """:meth:`coverage_at` of several queries, reading the rows' terms once."""
        owner, terms, _ = self._entries(rows) if any(queries) else (None, None, None)
        out: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        for query in queries:
            if not query or owner is None or terms is None or len(owner) == 0:
                out.append(np.zeros(len(rows)))
                continue
            dense = self._dense_query(query)
            sums: np.ndarray[Any, np.dtype[np.float64]] = np.bincount(
                owner, dense[terms].astype(np.float64), minlength=len(rows)
            ).astype(np.float64)
            out.append(sums)
        return out

    def lengths(self, rows: np.ndarray[Any, np.dtype[np.integer[Any]]]) -> FloatArray:
        """Weighted lengths of ``rows``."""
        out: FloatArray = self._length[rows]
        return out

    def term_idf(self, terms: Mapping[str, float] | list[str]) -> dict[str, float]:
        """Inverse document frequency of each known term (unknown terms are left out, and so are
        terms no live row has any more, as a rebuild would not know them)."""
        self._flush()
        vocab, df = self.vocab, self._df
        known = [t for t in terms if t in vocab and vocab[t] < len(df) and df[vocab[t]] > 0]
        ids = np.array([self.vocab[t] for t in known], dtype=np.int32)
        return dict(zip(known, self.idf(ids).tolist(), strict=True))

    def self_score(self, query: Mapping[str, float]) -> float:
        """The BM25 score a document made of the query itself would get: a per-query scale."""
        self._flush()
        ids, weights = self.query_vector(query)
        if len(ids) == 0:
            return 0.0
        avgdl = max(self._total_length / max(self._n_live, 1), 1e-9)
        length = float(weights.sum())
        k1, b = self.k1, self.b
        norm = k1 * (1.0 - b + b * length / avgdl)
        idf = self.idf(ids)
        tf = weights.astype(np.float64)
        return float(math.fsum((weights * idf * tf * (k1 + 1.0) / (tf + norm)).tolist()))
