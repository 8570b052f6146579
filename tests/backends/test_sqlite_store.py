"""``sqlite:///`` passes the storage contract on a real file, plus SQLite-specific behaviour:
URLs, pragmas, schema creation, locking, several threads and several processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relcrm.exceptions import (
    BackendUnavailable,
    NotFound,
    RelcrmError,
    StorageError,
)
from relcrm.storage.base import EventRecord, OutboxRecord, Record, Store
from relcrm.storage.sqlite import SCHEMA_VERSION, SQLiteStore
from relcrm.testing import StoreContract, increment_counter


def url_for(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "talent.db"


@pytest.fixture
def sqlite(db_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(url_for(db_path))
    yield store
    store.close()


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, db_path: Path) -> Iterator[Store]:
        store = SQLiteStore(url_for(db_path))
        yield store
        store.close()


def raw(path: Path) -> sqlite3.Connection:
    """An independent connection to the file, as another program would open it."""
    return sqlite3.connect(path, isolation_level=None, timeout=5)


# -- URLs -------------------------------------------------------------------------------------


def test_absolute_path(db_path: Path) -> None:
    assert url_for(db_path).startswith("sqlite:////")
    with SQLiteStore(url_for(db_path)) as store:
        assert store.path == str(db_path)
        assert store.url == url_for(db_path)
    assert db_path.exists()


def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("sqlite:///sub%20dir.db") as store:
        assert store.path == "sub dir.db"
    assert (tmp_path / "sub dir.db").exists()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file::memory:?cache=shared"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(BackendUnavailable, match="memory://"):
        SQLiteStore(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/talent.db", "not a SQLite URL"),
        ("postgresql://localhost/db", "not a SQLite URL"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///x.db?timeout=soon", "timeout"),
        ("sqlite:///x.db?timeout=-1", "timeout"),
        ("sqlite:///x.db?timeout=nan", "timeout"),
        ("sqlite:///x.db?journal=off", "unknown option 'journal'"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        SQLiteStore(url)


# -- connection settings ------------------------------------------------------------------------


def test_pragmas_are_set(sqlite: SQLiteStore, db_path: Path) -> None:
    expected = {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30_000, "foreign_keys": 1}
    assert sqlite.pragmas() == expected
    # every thread's own connection is set up the same way
    seen: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: seen.append(sqlite.pragmas()))
    thread.start()
    thread.join(10)
    assert seen == [expected]
    # WAL is a property of the file: another program sees it too
    other = raw(db_path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_timeout_from_url(db_path: Path) -> None:
    with SQLiteStore(url_for(db_path, "?timeout=5")) as store:
        assert store.timeout == 5.0
        assert store.pragmas()["busy_timeout"] == 5000


# -- schema -------------------------------------------------------------------------------------


def test_schema(sqlite: SQLiteStore, db_path: Path) -> None:
    other = raw(db_path)
    try:
        names = {
            name
            for (name,) in other.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
            )
        }
        assert {"relcrm_schema", "records", "events", "outbox"} <= names
        assert {
            "records_by_person",
            "records_by_opening",
            "events_by_person",
            "outbox_due",
        } <= names
        assert other.execute("SELECT version FROM relcrm_schema").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        other.close()


def test_reopening_keeps_data_and_schema(db_path: Path) -> None:
    with SQLiteStore(url_for(db_path)) as store, store.transaction() as tx:
        tx.put("person", "p1", {"name": "Ada"}, expected_version=0)
        first = tx.append_event(EventRecord("e1", "person.added", "2024-01-01T00:00:00Z", {}))
    with SQLiteStore(url_for(db_path)) as store:
        stored = store.get("person", "p1")
        assert stored is not None
        assert stored.data == {"name": "Ada"}
        with store.transaction() as tx:
            second = tx.append_event(EventRecord("e2", "person.added", "2024-01-01T00:00:00Z", {}))
        assert second.seq > first.seq
    other = raw(db_path)
    try:
        assert other.execute("SELECT count(*) FROM relcrm_schema").fetchone() == (1,)
    finally:
        other.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    SQLiteStore(url_for(db_path)).close()
    other = raw(db_path)
    other.execute("UPDATE relcrm_schema SET version = ?", (SCHEMA_VERSION + 1,))
    other.close()
    with pytest.raises(StorageError, match="newer"):
        SQLiteStore(url_for(db_path))


def test_foreign_database_is_refused(db_path: Path) -> None:
    other = raw(db_path)
    other.execute("CREATE TABLE records (whatever TEXT)")
    other.close()
    with pytest.raises(BackendUnavailable, match="not a relcrm database"):
        SQLiteStore(url_for(db_path))


def test_corrupt_file_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"this is a CV in plain text, not a database\n" * 200)
    with pytest.raises(BackendUnavailable) as caught:
        SQLiteStore(url_for(db_path))
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert str(db_path) in str(caught.value)


def test_unopenable_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable):
        SQLiteStore(url_for(tmp_path / "missing" / "dir" / "talent.db"))
    with pytest.raises(BackendUnavailable):
        SQLiteStore(url_for(tmp_path))  # a directory


# -- stored form ----------------------------------------------------------------------------------


def test_json_is_stored_compact_and_verbatim(sqlite: SQLiteStore, db_path: Path) -> None:
    data = {"name": "Zoë", "note": "'; DROP TABLE records; --", "nul": "a\x00b", "n": [1, 2]}
    with sqlite.transaction() as tx:
        tx.put("person", "p'1", data, expected_version=0, person_id="p\x001")
    other = raw(db_path)
    try:
        row = other.execute("SELECT kind, id, version, person_id, data FROM records").fetchone()
    finally:
        other.close()
    assert row[:4] == ("person", "p'1", 1, "p\x001")
    assert row[4] == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert "Zoë" in row[4]


def test_lone_surrogates_are_a_storage_error(sqlite: SQLiteStore) -> None:
    with pytest.raises(StorageError), sqlite.transaction() as tx:
        tx.put("person", "p1", {"name": "\ud800"}, expected_version=0)
    with pytest.raises(StorageError), sqlite.transaction() as tx:
        tx.put("person", "\udfff", {}, expected_version=0)
    assert sqlite.find("person") == []


def test_iter_records_uses_keyset_pagination(sqlite: SQLiteStore) -> None:
    """Deleting records already seen must not make the scan skip unseen ones (as OFFSET would)."""
    ids = [f"p{n:02}" for n in range(10)]
    with sqlite.transaction() as tx:
        for id in ids:
            tx.put("person", id, {}, expected_version=0)
    scan = sqlite.iter_records("person", batch_size=2)
    seen = [next(scan).id, next(scan).id]
    with sqlite.transaction() as tx:
        tx.delete("person", "p00", expected_version=1)
        tx.delete("person", "p01", expected_version=1)
    seen.extend(record.id for record in scan)
    assert seen == ids


# -- errors and locking -----------------------------------------------------------------------


def test_locked_database_is_a_storage_error(db_path: Path) -> None:
    with SQLiteStore(url_for(db_path, "?timeout=0.2")) as store:
        with store.transaction() as tx:
            tx.add_outbox(OutboxRecord("n1", "e1", "log", {}, {}))
        other = raw(db_path)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked") as caught, store.transaction():
                pass
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert "0.2 s" in str(caught.value)
            with pytest.raises(StorageError, match="locked"):
                store.update_outbox(
                    "n1", status="delivered", attempts=1, next_attempt_at="", last_error=None
                )
            # readers are not blocked by the writer (WAL)
            assert [row.id for row in store.outbox()] == ["n1"]
        finally:
            other.execute("ROLLBACK")
            other.close()
        with store.transaction() as tx:  # usable again once the lock is gone
            tx.put("person", "p1", {}, expected_version=0)


def test_readers_do_not_see_another_connections_uncommitted_writes(
    sqlite: SQLiteStore, db_path: Path
) -> None:
    other = raw(db_path)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO records (kind, id, version, data) VALUES ('person', 'p1', 1, '{}')"
        )
        assert sqlite.get("person", "p1") is None
        other.execute("COMMIT")
        assert sqlite.get("person", "p1") is not None
    finally:
        other.close()


def test_sqlite_errors_never_escape_raw(sqlite: SQLiteStore, db_path: Path) -> None:
    other = raw(db_path)
    other.execute("DROP TABLE events")
    other.close()
    with pytest.raises(StorageError) as caught:
        sqlite.events()
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(StorageError), sqlite.transaction() as tx:
        tx.append_event(EventRecord("e1", "t", "2024-01-01T00:00:00Z", {}))
    assert sqlite.find("person") == []  # the rest still works


def test_duplicate_ids_are_relcrm_errors(sqlite: SQLiteStore) -> None:
    with sqlite.transaction() as tx:
        tx.append_event(EventRecord("e1", "t", "2024-01-01T00:00:00Z", {}))
    with pytest.raises(RelcrmError, match="e1") as caught, sqlite.transaction() as tx:
        tx.append_event(EventRecord("e1", "t", "2024-01-01T00:00:00Z", {}))
    assert not isinstance(caught.value.__cause__, sqlite3.Error) or caught.value.__cause__
    with pytest.raises(NotFound):
        sqlite.update_outbox("nope", status="dead", attempts=1, next_attempt_at="", last_error=None)


def test_nested_transaction_and_update_outbox_inside_one(sqlite: SQLiteStore) -> None:
    with sqlite.transaction():
        with pytest.raises(StorageError, match="do not nest"):
            sqlite.transaction().__enter__()
        with pytest.raises(StorageError, match="after the transaction"):
            sqlite.update_outbox(
                "n1", status="dead", attempts=1, next_attempt_at="", last_error=None
            )


# -- threads and connections ------------------------------------------------------------------


def test_each_thread_has_its_own_connection_closed_when_it_ends(sqlite: SQLiteStore) -> None:
    # SQLite keeps a closed connection's file descriptor until the process's other connections to
    # the file close too (POSIX locks are per process), so count the store's own connections.
    sqlite.get("person", "p1")
    assert len(sqlite._connections) == 1
    inside = threading.Barrier(6)
    release = threading.Event()

    def work(n: int) -> None:
        with sqlite.transaction() as tx:
            tx.put("person", f"p{n}", {}, expected_version=0)
        inside.wait(10)
        release.wait(10)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert len(sqlite._connections) == 6
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(sqlite._connections) == 1
    assert len(sqlite.find("person")) == 5


def test_close_closes_every_threads_connection(db_path: Path) -> None:
    store = SQLiteStore(url_for(db_path))
    ready = threading.Barrier(4)
    closed = threading.Event()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        with store.transaction() as tx:
            tx.put("person", f"p{n}", {}, expected_version=0)
        ready.wait(10)
        closed.wait(10)
        try:
            store.get("person", "p0")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    ready.wait(10)
    wal = Path(f"{db_path}-wal")
    assert wal.exists()
    store.close()  # while the threads (and their connections) are still alive
    # SQLite removes the WAL file when the last connection to the database closes
    assert not wal.exists()
    closed.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 3
    assert all(isinstance(exc, StorageError) for exc in errors)


# -- several processes --------------------------------------------------------------------------


def _run_processes(count: int, url: str, times: int) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(count)
    processes = [
        context.Process(target=increment_counter, args=(SQLiteStore, url, times, start))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * count


def test_processes_initialise_a_new_file_at_once(tmp_path: Path) -> None:
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        _run_processes(4, url_for(path), 1)
        with SQLiteStore(url_for(path)) as store:
            assert store.get("counter", "c") == Record("counter", "c", 4, {"count": 4})
        other = raw(path)
        try:
            assert other.execute("SELECT version FROM relcrm_schema").fetchall() == [
                (SCHEMA_VERSION,)
            ]
        finally:
            other.close()


def test_processes_never_lose_an_update(db_path: Path) -> None:
    _run_processes(3, url_for(db_path), 25)
    with SQLiteStore(url_for(db_path)) as store:
        assert store.get("counter", "c") == Record("counter", "c", 75, {"count": 75})


def test_increment_counter_in_this_process(db_path: Path) -> None:
    assert increment_counter(SQLiteStore, url_for(db_path), 3) == 0
    with SQLiteStore(url_for(db_path)) as store:
        assert store.get("counter", "c") == Record("counter", "c", 3, {"count": 3})


# --------------------------------------------------------------------------------------------
# Bulk writes
# --------------------------------------------------------------------------------------------


def _event(id: str) -> EventRecord:
    return EventRecord(id, "bulk.tested", "2024-05-01T12:00:00+00:00", {"id": id}, "p1")


def test_a_refused_bulk_write_leaves_the_transaction_as_it_was(sqlite: SQLiteStore) -> None:
    """More than the fallbacks promise: a refused batch takes back what it inserted, so a caller
    that catches the error inside the transaction commits only what came before."""
    from relcrm.exceptions import AlreadyExists

    with sqlite.transaction() as tx:
        tx.put("person", "p1", {"v": 1}, expected_version=0)
        tx.append_event(_event("e1"))
        tx.add_outbox(OutboxRecord("n1", "e1", "log", {}, {}))
        with pytest.raises(AlreadyExists) as record:
            tx.insert_many([Record("person", f"p{n}", 1, {}) for n in (2, 3, 1, 4)])
        assert record.value.id == "p1"
        with pytest.raises(AlreadyExists) as event:
            tx.append_events([_event("e2"), _event("e3"), _event("e2")])
        assert event.value.id == "e2"
        with pytest.raises(AlreadyExists) as row:
            tx.add_outbox_many([OutboxRecord(f"n{n}", "e1", "log", {}, {}) for n in (2, 1)])
        assert row.value.id == "n1"
        assert tx.get("person", "p2") is None
        after = tx.append_events([_event("e4")])
    assert [r.id for r in sqlite.find("person")] == ["p1"]
    assert [e.id for e in sqlite.events()] == ["e1", "e4"]
    assert after[0].seq > sqlite.events()[0].seq
    assert [r.id for r in sqlite.outbox()] == ["n1"]


def test_bulk_writes_return_what_the_log_holds(sqlite: SQLiteStore) -> None:
    with sqlite.transaction() as tx:
        tx.append_event(_event("e0"))
    with sqlite.transaction() as tx:
        appended = tx.append_events([_event(f"e{n}") for n in range(1, 700)])
    assert appended == sqlite.events(after=1)
    assert [e.seq for e in appended] == list(range(2, 701))


def test_a_bulk_writer_gets_a_larger_page_cache(sqlite: SQLiteStore) -> None:
    def cache_size() -> int:
        with sqlite.transaction() as tx:
            size = tx._connection.execute("PRAGMA cache_size").fetchone()[0]
        return int(size)

    assert cache_size() == -2000  # SQLite's default
    with sqlite.transaction() as tx:
        tx.insert_many([Record("person", "p1", 1, {})])
    assert cache_size() == -64 * 1024
    sqlite.close()


def test_existing_ids_stays_under_the_parameter_limit(sqlite: SQLiteStore) -> None:
    ids = [f"p{n:05}" for n in range(3000)]
    with sqlite.transaction() as tx:
        tx.insert_many([Record("person", id, 1, {}) for id in ids[::3]])
    statements: list[str] = []
    connection = sqlite._connection(sqlite._thread_state())
    connection.set_trace_callback(statements.append)
    try:
        assert sqlite.existing_ids("person", ids + ids) == set(ids[::3])
    finally:
        connection.set_trace_callback(None)
    assert len(statements) == 7  # 3,000 distinct ids, 499 a query
    assert all(s.count("?") <= 500 for s in statements)
