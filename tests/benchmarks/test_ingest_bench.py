"""Smoke test of ``benchmarks/ingest.py``: it runs end to end at a tiny size and its closing JSON
line has every figure (PostgreSQL's, or the note saying why it was skipped)."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "ingest.py"


def run(*args: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    return result, done.stdout


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    result, _ = run(
        "--people",
        "400",
        "--naive-people",
        "120",
        "--index-people",
        "150",
        "--batch-size",
        "64",
        "--backends",
        "sqlite,postgresql",
    )
    return result


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_figures(figures: dict[str, Any], backend: str) -> None:
    if f"{backend}_note" in figures:
        assert backend == "postgresql", figures[f"{backend}_note"]
        assert "skipped" in figures[f"{backend}_note"]
        assert f"{backend}_people_per_s" not in figures
        return
    if backend == "postgresql" and "postgresql_error" in figures:
        pytest.skip(f"the PostgreSQL server failed during the run: {figures['postgresql_error']}")
    assert f"{backend}_error" not in figures
    for key in ("people_per_s", "naive_people_per_s", "subset_people_per_s", "speedup"):
        value = figures[f"{backend}_{key}"]
        assert isinstance(value, int | float), key
        assert math.isfinite(value), key
        assert value > 0, key
    assert figures[f"{backend}_seconds"] > 0
    assert figures[f"{backend}_us_per_person"] > 0
    assert figures[f"{backend}_index_build_s"] > 0
    # the building process's own peak: the taxonomy and the index, not the import before it
    assert 50 < figures[f"{backend}_index_peak_rss_mb"] < 4096  # MB, not KB or bytes


def test_settings_are_reported(figures: dict[str, Any]) -> None:
    assert (figures["people"], figures["batch_size"], figures["on_error"]) == (400, 64, "reject")
    assert (figures["naive_people"], figures["index_people"]) == (120, 150)
    assert figures["notifiers"] == ["log"]
    assert "add_person" in figures["naive"]


def test_without_the_shared_data_or_notifiers(tmp_path: pathlib.Path) -> None:
    result, out = run(
        "--people",
        "200",
        "--naive-people",
        "50",
        "--index-people",
        "0",
        "--backends",
        "sqlite",
        "--notifiers",
        "",
        "--on-error",
        "skip",
        "--data",
        str(tmp_path / "absent.jsonl.gz"),
        "--workdir",
        str(tmp_path / "work"),
    )
    assert "built-in vocabulary" in out
    assert result["notifiers"] == []
    assert result["sqlite_people_per_s"] > 0
    assert "sqlite_index_build_s" not in result
    assert "postgresql_people_per_s" not in result
    assert (tmp_path / "work" / "people.jsonl").stat().st_size > 0  # kept when given
