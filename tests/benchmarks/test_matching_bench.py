"""Smoke test of ``benchmarks/matching.py``: it runs end to end at a tiny size and its closing JSON
line has every figure, for relcrm and for each installed peer (a missing peer is skipped here,
and reported as skipped by the benchmark itself)."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "matching.py"
PEERS = {
    "bm25s": "bm25s",
    "tantivy": "tantivy",
    "sklearn": "sklearn",
    "fts5": "sqlite3",
    "rank_bm25": "rank_bm25",
}
KEYS = {"p50_ms", "p95_ms", "build_s", "rss_mb", "note"}


def _installed(name: str) -> bool:
    if name == "fts5":
        import sqlite3

        try:
            sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        except sqlite3.OperationalError:
            return False
        return True
    return importlib.util.find_spec(PEERS[name]) is not None


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    pytest.importorskip("psutil")
    pytest.importorskip("relcrm.matching")
    peers = [p for p in PEERS if _installed(p)] or ["none"]
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--profiles",
            "2000",
            "--openings",
            "10",
            "--peers",
            ",".join(peers),
            "--peer-budget-s",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    last = done.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def test_relcrm_figures(figures: dict[str, Any]) -> None:
    for key in ("p50_ms", "p95_ms", "build_s", "rss_mb"):
        assert isinstance(figures[key], float), key
        assert math.isfinite(figures[key])
    assert 0 < figures["p50_ms"] <= figures["p95_ms"]
    assert figures["build_s"] > 0
    assert figures["profiles"] == 2000
    assert figures["openings"] == 10


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_figures(figures: dict[str, Any], peer: str) -> None:
    if not _installed(peer):
        pytest.skip(f"{peer} is not installed")
    got = figures["peers"][peer]
    assert set(got) >= KEYS
    assert got["queries"] > 0
    assert 0 < got["p50_ms"] <= got["p95_ms"]
    assert got["build_s"] >= 0
