"""What the batch build reads of text: whitespace-separated chunks, each analysed once.

Texts are split with ``str.split()`` and every distinct chunk gets an id the first time it is
seen; per id the table keeps the term ids the chunk yields in a text index and the token ids it
yields for a skills :class:`~relcrm.matching.taxonomy.Scanner`. Chunks repeat a great deal (words,
skill names), so turning a batch of texts into term and token arrays is one dictionary lookup per
chunk plus array gathers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._index import TextIndex, ranges
from ._text import analyse_chunks

__all__ = ["ChunkTable"]

#: Distinct chunks kept before the table starts over (bounds its memory on endless text).
LIMIT = 2_000_000


class _Column:
    """A growing int array: ``values[:size]`` is in use."""

    __slots__ = ("size", "values")

    def __init__(self, dtype: type[np.integer[Any]], first: tuple[int, ...] = ()) -> None:
        self.values: np.ndarray[Any, Any] = np.zeros(max(len(first), 1024), dtype=dtype)
        self.values[: len(first)] = first
        self.size = len(first)

    def extend(self, new: list[int]) -> None:
        end = self.size + len(new)
        if end > len(self.values):
            grown = np.zeros(max(end, 2 * len(self.values)), dtype=self.values.dtype)
            grown[: self.size] = self.values[: self.size]
            self.values = grown
        self.values[self.size : end] = new
        self.size = end


class ChunkTable(dict[str, int]):
    """Chunk -> id, with the term ids (in ``index``) and the token ids (of ``scanner``) of each
    id. ``""`` is never a chunk of a text: it stands for the end of one, and yields no term and
    the scanner's separator."""

    def __init__(self, index: TextIndex, scanner: Any) -> None:
        super().__init__()
        self._index = index
        self.scanner = scanner
        self._reset()

    def _reset(self) -> None:
        self.clear()
        self._term_ptr = _Column(np.int64, (0,))
        self._terms = _Column(np.int32)
        self._token_ptr = _Column(np.int64, (0,))
        self._tokens = _Column(np.int32)
        self._pending: list[tuple[list[int], tuple[int, ...]]] = []

    def __missing__(self, chunk: str) -> int:
        term_id = self._index.term_id
        terms = [term_id(t, create=True) for t in analyse_chunks((chunk,))] if chunk else []
        cid = self[chunk] = len(self)
        self._pending.append((terms, self.scanner.chunk_ids(chunk)))
        return cid

    def _store_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        terms = [t for ts, _ in pending for t in ts]
        tokens = [t for _, ts in pending for t in ts]
        base_terms, base_tokens = self._terms.size, self._tokens.size
        term_ends = np.cumsum([len(ts) for ts, _ in pending]) + base_terms
        token_ends = np.cumsum([len(ts) for _, ts in pending]) + base_tokens
        self._terms.extend(terms)
        self._tokens.extend(tokens)
        self._term_ptr.extend(term_ends.tolist())
        self._token_ptr.extend(token_ends.tolist())

    def gather(
        self, chunks: list[str]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """For ``chunks`` end to end: the term ids, how many of them each chunk has, and the
        token ids."""
        if len(self) > LIMIT:
            self._reset()
        ids = np.fromiter(map(self.__getitem__, chunks), dtype=np.int64, count=len(chunks))
        self._store_pending()
        term_ptr = self._term_ptr.values
        starts = term_ptr[ids]
        counts = term_ptr[ids + 1] - starts
        terms = self._terms.values[ranges(starts, counts)]
        token_ptr = self._token_ptr.values
        token_starts = token_ptr[ids]
        tokens = self._tokens.values[ranges(token_starts, token_ptr[ids + 1] - token_starts)]
        return terms, counts, tokens
