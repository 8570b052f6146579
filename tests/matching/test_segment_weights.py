"""A segment's BM25 weights, computed a run of postings at a time, are those of the formula
applied to every posting at once."""

from __future__ import annotations

import numpy as np
import pytest

from relcrm.matching import _index
from relcrm.matching._index import _Segment


@pytest.mark.parametrize("run", [1, 7, 1000, 1 << 20])
def test_weights_by_runs_are_the_weights_of_all_postings_at_once(
    run: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(run)
    sizes = rng.integers(1, 20, 3000)
    rows = np.arange(len(sizes), dtype=np.int32)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    terms = np.concatenate([rng.choice(2000, s, replace=False) for s in sizes]).astype(np.int32)
    tf = rng.uniform(0.2, 8.0, len(terms)).astype(np.float32)
    length = rng.uniform(1.0, 100.0, len(sizes)).astype(np.float32)
    segment = _Segment(rows, indptr, terms, tf)
    monkeypatch.setattr(_index, "_WEIGHT_RUN", run)
    got = segment.weights(1.2, 0.75, 30.0, length)
    whole = segment.t_tf.astype(np.float32)
    norm = (1.2 * (1.0 - 0.75)) + (1.2 * 0.75 / 30.0) * length[segment.t_rows]
    expected = (whole * np.float32(2.2) / (whole + norm)).astype(np.float16)
    assert got.dtype == np.float16
    assert np.array_equal(got, expected)
    assert segment.weights(1.2, 0.75, 30.0, length) is got  # cached
