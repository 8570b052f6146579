"""``memory://`` passes the storage contract, plus what only the in-process store promises."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from relcrm.exceptions import BackendUnavailable, StorageError
from relcrm.storage.base import OutboxRecord, Store
from relcrm.storage.memory import MemoryStore
from relcrm.testing import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = MemoryStore()
        yield store
        store.close()


def test_default_url() -> None:
    with MemoryStore() as store:
        assert store.url == "memory://"
        assert "memory://" in repr(store)


def test_refuses_other_schemes() -> None:
    with pytest.raises(BackendUnavailable, match="memory://"):
        MemoryStore("sqlite:///x.db")


def test_nested_transaction_message() -> None:
    with (
        MemoryStore() as store,
        store.transaction(),
        pytest.raises(StorageError, match="do not nest"),
    ):
        store.transaction().__enter__()


def test_update_outbox_refused_inside_a_transaction() -> None:
    with MemoryStore() as store:
        with store.transaction() as tx:
            tx.add_outbox(OutboxRecord("n1", "e1", "log", {}, {}))
        with store.transaction(), pytest.raises(StorageError, match="after the transaction"):
            store.update_outbox(
                "n1", status="delivered", attempts=1, next_attempt_at="", last_error=None
            )
        [row] = store.outbox()
        assert row.status == "pending"


def test_writers_take_turns() -> None:
    """A second transaction waits until the first one has finished."""
    store = MemoryStore()
    order: list[str] = []
    first_inside = threading.Event()

    def second() -> None:
        first_inside.wait(5)
        with store.transaction() as tx:
            order.append("second starts")
            tx.put("person", "p2", {}, expected_version=0)

    thread = threading.Thread(target=second)
    thread.start()
    with store.transaction() as tx:
        first_inside.set()
        time.sleep(0.2)
        order.append("first ends")
        tx.put("person", "p1", {}, expected_version=0)
    thread.join(5)
    assert order == ["first ends", "second starts"]
    assert [r.id for r in store.find("person")] == ["p1", "p2"]


def test_readers_run_while_writers_commit() -> None:
    store = MemoryStore()
    stop = threading.Event()
    problems: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                records = store.find("person")
                ids = [r.id for r in records]
                assert ids == sorted(ids)
                assert all(r.version == 1 for r in records)
                store.events(person_id="p")
            except BaseException as exc:
                problems.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for n in range(300):
        with store.transaction() as tx:
            tx.put("person", f"p{n:03}", {}, expected_version=0)
    stop.set()
    for reader in readers:
        reader.join(5)
    assert problems == []
    assert len(store.find("person")) == 300


def test_lone_surrogates_are_refused_like_a_database_would() -> None:
    with MemoryStore() as store:
        with pytest.raises(StorageError, match="JSON-compatible"), store.transaction() as tx:
            tx.put("person", "p1", {"name": "\ud800"}, expected_version=0)
        with pytest.raises(StorageError, match="UTF-8"), store.transaction() as tx:
            tx.put("person", "\udfff", {}, expected_version=0)
        assert store.find("person") == []


def test_import_relcrm_does_not_import_testing_or_pytest() -> None:
    code = (
        "import sys, relcrm\n"
        "loaded = sorted(m for m in ('relcrm.testing', 'pytest', 'relcrm.storage.sqlite')"
        " if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_a_refused_bulk_write_stages_nothing() -> None:
    """More than the fallbacks promise: a refused batch stages none of its rows, so a caller that
    catches the error inside the transaction commits only what came before."""
    from relcrm.exceptions import AlreadyExists
    from relcrm.storage.base import EventRecord, Record

    def event(id: str) -> EventRecord:
        return EventRecord(id, "bulk.tested", "2024-05-01T12:00:00+00:00", {}, "p1")

    with MemoryStore() as store:
        with store.transaction() as tx:
            tx.put("person", "p1", {"v": 1}, expected_version=0)
            with pytest.raises(AlreadyExists):
                tx.insert_many([Record("person", f"p{n}", 1, {}) for n in (2, 3, 1)])
            with pytest.raises(AlreadyExists):
                tx.append_events([event("e1"), event("e1")])
            with pytest.raises(AlreadyExists):
                tx.add_outbox_many([OutboxRecord(f"n{n}", "e1", "log", {}, {}) for n in (1, 1)])
            appended = tx.append_events([event("e2")])
        assert [r.id for r in store.find("person")] == ["p1"]
        assert [(e.id, e.seq) for e in store.events()] == [("e2", appended[0].seq)]
        assert store.outbox() == []
