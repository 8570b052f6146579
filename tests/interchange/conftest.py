"""Where the shared JSON Resume data lives, and a fresh CRM per test."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import relcrm

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
JSONRESUME = DATA / "jsonresume"
FIXTURES = JSONRESUME / "fixtures"
ONET_DEV = DATA / "onet-eval" / "dev"
ACTOR = relcrm.Actor(relcrm.ActorRole.SYSTEM, "import")


def need(path: Path) -> Path:
    """``path``, or skip the test when the shared data is absent (fail instead under CI)."""
    if not path.exists():
        message = f"shared test data not found at {path.resolve()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[relcrm.CRM]:
    with relcrm.open(f"sqlite:///{tmp_path / 'pool.db'}", notifiers=[]) as c:
        yield c
