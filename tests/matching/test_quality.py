"""Matching quality on a subset of onet-eval/dev beats plain BM25 computed in the same run.

The full figures come from ``benchmarks/quality.py``; this keeps regressions out of CI.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
DATA = ROOT / ".." / "shared" / "data" / "onet-eval" / "dev"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_quality", ROOT / "benchmarks" / "quality.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "qrels.tsv").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"onet-eval data missing at {DATA.resolve()} (required in CI)")
        pytest.skip(f"onet-eval data not found at {DATA.resolve()}")
    return DATA


def test_engine_beats_bm25_on_onet_eval_subset(data: Path) -> None:
    quality = _benchmark()
    people, openings, qrels, _ = quality.load(data, openings_limit=60)
    assert len(openings) == 60
    bm25_ndcg, bm25_mrr = quality.score_run(quality.bm25_run(people, openings), qrels)
    run, _, _ = quality.engine_run(people, openings, depth=20)
    ndcg, mrr = quality.score_run(run, qrels)
    assert ndcg >= bm25_ndcg + 0.05, (ndcg, bm25_ndcg)
    assert mrr >= bm25_mrr, (mrr, bm25_mrr)
    assert ndcg >= 0.92
    assert mrr >= 0.97
