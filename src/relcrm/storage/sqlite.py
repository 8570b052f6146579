"""``sqlite:///path.db``: the embedded default backend (stdlib :mod:`sqlite3` only).

URLs follow the SQLAlchemy convention: ``sqlite:///relative/path.db`` (three slashes, relative to
the working directory) and ``sqlite:////absolute/path.db`` (four). Two options are understood:
``?timeout=5`` sets how many seconds a writer waits for another writer's lock before giving up
(default 30), and ``?migrate=false`` makes opening refuse a database whose schema is not at this
relcrm's version instead of migrating it (see below). ``sqlite:///:memory:`` is refused: use
``memory://`` for a throw-away store.

How it behaves:

* Each thread gets its own connection (opened on first use, closed when the thread ends or on
  :meth:`SQLiteStore.close`), so one store object can be shared by every thread of a process, and
  several processes can open the same file.
* The database runs in WAL mode with ``synchronous=NORMAL``: readers never wait for writers and
  never see a transaction's writes before it commits.
* :meth:`SQLiteStore.transaction` starts with ``BEGIN IMMEDIATE``, so it takes the write lock up
  front (waiting up to the busy timeout) and then cannot fail half-way for lack of a lock.
* Optimistic locking is one ``UPDATE ... WHERE version = ?``; no row updated means
  :class:`relcrm.ConcurrencyConflict`.
* Bulk writes (the optional :class:`~relcrm.storage.base.BulkTransaction` capability) are one
  ``executemany`` per table inside the transaction; :meth:`SQLiteStore.existing_ids` asks for
  many ids at once, in chunks of ``IN (...)`` that stay under SQLite's parameter limit.
* Every :mod:`sqlite3` error (including "database is locked" after the timeout) is raised as
  :class:`relcrm.StorageError` with the original chained; a file that cannot be opened or is not a
  database raises :class:`relcrm.BackendUnavailable`.
* The schema is versioned (:data:`SCHEMA_VERSION`, kept in the ``relcrm_schema`` table), and its
  history is :data:`MIGRATIONS`. Opening a file brings it to this version (a new file from
  nothing), one step per transaction, each begun with ``BEGIN IMMEDIATE`` and the version read
  again under that lock, so several processes can open an old file at once and each step runs
  exactly once. :func:`migrate` does the same on request. A file at a newer version than this
  relcrm, or with relcrm's table names but no schema version, raises
  :class:`relcrm.BackendUnavailable`.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from relcrm.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    ConcurrencyConflict,
    NotFound,
    StorageError,
)
from relcrm.storage._checks import check_limit, check_status, decode_json, dump_mapping
from relcrm.storage._migrations import (
    Migration,
    MigrationReport,
    check_history,
    migrate_option,
    no_schema,
    plan,
    require_current,
    upgrade,
)
from relcrm.storage.base import EventRecord, JSONText, OutboxRecord, OutboxStatus, Record

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "MigrationReport", "SQLiteStore", "migrate"]

_DEFAULT_TIMEOUT = 30.0
#: Stay well under SQLITE_MAX_VARIABLE_NUMBER (999 on old builds) in ``IN (...)`` lists.
_MAX_PARAMETERS = 500
#: Page cache (KiB) of a connection once it writes in bulk: bulk inserts touch index pages all
#: over the file, and SQLite's default cache (2 MiB) would read most of them again for every
#: batch. It is a ceiling, filled only as pages are read.
_BULK_CACHE_KIB = 64 * 1024

_TABLES = ("records", "events", "outbox")
#: The schema as relcrm first created it (version 1). Never change it: write a new step instead.
_VERSION_1 = (
    "CREATE TABLE IF NOT EXISTS relcrm_schema (version INTEGER NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        person_id TEXT,
        opening_id TEXT,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS records_by_person ON records (kind, person_id)",
    "CREATE INDEX IF NOT EXISTS records_by_opening ON records (kind, opening_id)",
    """
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT UNIQUE NOT NULL,
        type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        person_id TEXT,
        payload TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS events_by_person ON events (person_id, seq)",
    """
    CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        notifier TEXT NOT NULL,
        recipient TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS outbox_by_event ON outbox (event_id)",
)

#: The history of the schema, oldest step first; see :mod:`relcrm.storage._migrations`.
MIGRATIONS: tuple[Migration, ...] = check_history(
    Migration(1, "the initial schema: records, events and outbox tables", _VERSION_1),
    Migration(
        2,
        "lookup indexes end with id, the order rows are returned in: find() by person or "
        "opening uses its index instead of scanning every record of the kind, and due outbox "
        "rows are read in order without a sort",
        (
            "DROP INDEX IF EXISTS records_by_person",
            "CREATE INDEX records_by_person ON records (kind, person_id, id)",
            "DROP INDEX IF EXISTS records_by_opening",
            "CREATE INDEX records_by_opening ON records (kind, opening_id, id)",
            "DROP INDEX IF EXISTS outbox_due",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id)",
        ),
    ),
)

#: The schema version this code creates and understands.
SCHEMA_VERSION = MIGRATIONS[-1].version

_RECORD_COLUMNS = "id, version, data, person_id, opening_id"
_EVENT_COLUMNS = "seq, id, type, occurred_at, person_id, payload"
_OUTBOX_COLUMNS = (
    "id, event_id, notifier, recipient, payload, status, attempts, next_attempt_at, last_error"
)


def _parse_url(url: str) -> tuple[str, float, bool]:
    """The database path, the busy timeout (seconds) and whether to migrate on open, as a
    ``sqlite:///`` URL names them."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise BackendUnavailable(
            f"not a SQLite URL: {url!r}; use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    location, _, query = url[len(prefix) :].partition("?")
    path = unquote(location)
    if not path:
        raise BackendUnavailable(f"the SQLite URL {url!r} names no database file")
    if path == ":memory:" or path.startswith("file:"):
        raise BackendUnavailable(
            f"{url!r} is not supported: an in-memory SQLite database is private to one "
            "connection, but this backend opens one connection per thread; use 'memory://' "
            "for a throw-away store"
        )
    timeout = _DEFAULT_TIMEOUT
    migrate = True
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key == "migrate":
            migrate = migrate_option(values[-1], url)
            continue
        if key != "timeout":
            raise BackendUnavailable(f"unknown option {key!r} in {url!r}; known: migrate, timeout")
        try:
            timeout = float(values[-1])
        except ValueError:
            timeout = math.nan
        if not math.isfinite(timeout) or timeout < 0:
            raise BackendUnavailable(
                f"timeout in {url!r} must be a number of seconds >= 0, not {values[-1]!r}"
            )
    return path, timeout, migrate


def _record(kind: str, row: tuple[Any, ...]) -> Record:
    id, version, data, person_id, opening_id = row
    return Record(
        kind=kind,
        id=id,
        version=version,
        data=decode_json(data),
        person_id=person_id,
        opening_id=opening_id,
    )


def _record_key(row: tuple[Any, ...]) -> tuple[str, str]:
    """``(kind, id)`` of a row about to be inserted into ``records``."""
    return row[0], row[1]


def _event(row: tuple[Any, ...]) -> EventRecord:
    seq, id, type, occurred_at, person_id, payload = row
    return EventRecord(
        id=id,
        type=type,
        occurred_at=occurred_at,
        payload=decode_json(payload),
        person_id=person_id,
        seq=seq,
    )


def _outbox(row: tuple[Any, ...]) -> OutboxRecord:
    id, event_id, notifier, recipient, payload, status, attempts, next_attempt_at, error = row
    return OutboxRecord(
        id=id,
        event_id=event_id,
        notifier=notifier,
        recipient=decode_json(recipient),
        payload=decode_json(payload),
        status=cast(OutboxStatus, status),
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        last_error=error,
    )


class _ThreadState:
    """The connections one thread uses; they are closed when the thread ends."""

    __slots__ = ("__weakref__", "connection", "in_transaction", "outside")

    def __init__(self) -> None:
        self.connection: sqlite3.Connection | None = None
        #: Second connection for reads made outside the transaction this thread has open.
        self.outside: sqlite3.Connection | None = None
        self.in_transaction = False


class _SQLiteSchema:
    """One SQLite file as the migrations see it (a :class:`~relcrm.storage._migrations.
    SchemaDatabase`), on a connection in autocommit mode."""

    def __init__(self, store: SQLiteStore, connection: sqlite3.Connection) -> None:
        self._store = store
        self._connection = connection
        self.name = repr(store.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock before the version is read, so reading it and
        # applying the step that follows are one unit for every other connection.
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException as exc:
            self._store._rollback(connection, exc)
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.Error:
            self._store._rollback(connection, None)
            raise

    def version(self) -> int:
        names = {
            name
            for (name,) in self._connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?, ?)",
                (*_TABLES, "relcrm_schema"),
            )
        }
        if "relcrm_schema" in names:
            versions = [v for (v,) in self._connection.execute("SELECT version FROM relcrm_schema")]
            if versions:
                return int(max(versions))
        existing = sorted(names & set(_TABLES))
        if existing:
            raise BackendUnavailable(
                f"{self._store.path!r} is not a relcrm database: it already has tables named "
                f"{', '.join(existing)} but no relcrm schema version"
            )
        return 0

    def apply(self, step: Migration) -> None:
        connection = self._connection
        action = f"apply relcrm schema step {step.version} ({step.description})"
        with self._store._errors(action, BackendUnavailable):
            for statement in step.statements:
                connection.execute(statement)
            bump = connection.execute("UPDATE relcrm_schema SET version = ?", (step.version,))
            if bump.rowcount == 0:
                connection.execute(
                    "INSERT INTO relcrm_schema (version) VALUES (?)", (step.version,)
                )


class _Checkpointer:
    """Checkpoints a database's WAL in a background thread, on its own connection, when asked.

    Connections that write in bulk hand their checkpoints to it (their automatic checkpoint is
    turned off), so that copying a batch's pages into the database file and syncing it overlaps
    with whatever the writer does before its next transaction (an import reading and encoding
    the next batch) instead of lengthening every commit; the next transaction waits for it. A
    checkpoint is ``PASSIVE``: it copies what it can without waiting for, or blocking, any reader
    or writer; one that cannot finish (or fails) is simply done again on the next request.
    Checkpoints are always safe in SQLite: a crash at any moment leaves the database and its WAL
    consistent.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._wake = threading.Event()
        self._idle = threading.Event()  # set while no checkpoint is asked for or running
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"relcrm-sqlite-checkpoint {path}", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        self._idle.clear()
        self._wake.set()

    def wait(self) -> None:
        """Wait until the checkpoint asked for last is done. A bulk writer waits before it
        begins its next transaction, so that the WAL, copied entirely, starts over instead of
        growing for as long as the import lasts (SQLite restarts it only then)."""
        while not self._idle.wait(0.1):
            if not self._thread.is_alive():  # it could not open the database: nothing to wait for
                return

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if not self._wake.is_set():
                    self._idle.set()
        finally:
            self._idle.set()
            connection.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()


class SQLiteStore:
    """A :class:`~relcrm.storage.Store` on one SQLite file (see the module docs).

    ``path`` is the database file and ``timeout`` the busy timeout in seconds;
    ``migrate_on_open`` is false when the URL says ``migrate=false``. Usable as a context manager,
    which closes it on exit.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, self.timeout, self.migrate_on_open = _parse_url(url)
        self._lock = threading.RLock()  # guards _connections, _closed and _pid
        self._connections: dict[int, sqlite3.Connection] = {}
        self._bulk_connections: set[int] = set()  # ids of connections set up for bulk writes
        self._checkpointer: _Checkpointer | None = None  # checkpoints for the bulk connections
        self._local = threading.local()
        self._pid = os.getpid()
        self._closed = False
        if not self.migrate_on_open and not os.path.exists(self.path):
            self._closed = True
            raise no_schema(repr(self.path), MIGRATIONS, url=url)  # and connecting would make one
        try:
            self._initialise_schema(self._connection(self._thread_state()))
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SQLiteStore {self.url!r} ({state})>"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------------

    def _thread_state(self) -> _ThreadState:
        if self._pid != os.getpid():
            self._forget_parent_connections()
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            state = _ThreadState()
            self._local.state = state
        return state

    def _forget_parent_connections(self) -> None:
        # After os.fork() the child must not use (or even close) the parent's connections.
        with self._lock:
            if self._pid != os.getpid():
                self._connections = {}
                self._bulk_connections = set()
                self._checkpointer = None  # its thread is the parent's
                self._local = threading.local()
                self._pid = os.getpid()

    def _connection(self, state: _ThreadState) -> sqlite3.Connection:
        """This thread's connection (for transactions and writes)."""
        self._check_open()
        if state.connection is None:
            state.connection = self._open(state)
        return state.connection

    def _reader(self) -> sqlite3.Connection:
        """A connection that sees only committed data, even while this thread has a transaction."""
        state = self._thread_state()
        if not state.in_transaction:
            return self._connection(state)
        self._check_open()
        if state.outside is None:
            state.outside = self._open(state)
        return state.outside

    def _open(self, owner: _ThreadState) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {round(self.timeout * 1000)}")
            self._enable_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            connection.close()
            raise BackendUnavailable(
                f"cannot use {self.path!r} as a SQLite database: {exc}"
            ) from exc
        with self._lock:
            if self._closed:
                connection.close()
                raise StorageError(f"the store {self.url!r} is closed")
            self._connections[id(connection)] = connection
        weakref.finalize(owner, self._release, connection)
        return connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL fails at once with "database is locked" (without calling
        # the busy handler) while another process is switching it or creating the schema, so
        # retry with a growing pause until the busy timeout has passed.
        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.25)
            else:
                return

    def _release(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            mine = self._connections.pop(id(connection), None) is connection
            if mine:
                self._bulk_connections.discard(id(connection))
        if mine:
            connection.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self.url!r} is closed")

    @contextmanager
    def _errors(self, action: str, error: type[StorageError] = StorageError) -> Iterator[None]:
        """Raise :mod:`sqlite3` errors as relcrm errors that say what was being done."""
        try:
            yield
        except sqlite3.Error as exc:
            hint = ""
            if "locked" in str(exc) or "busy" in str(exc):
                hint = (
                    f" (another connection held the write lock longer than the busy timeout of "
                    f"{self.timeout:g} s; raise it with ?timeout= in the URL)"
                )
            raise error(f"SQLite could not {action} in {self.path!r}: {exc}{hint}") from exc
        except UnicodeEncodeError as exc:
            raise StorageError(
                f"SQLite could not {action}: text is not valid UTF-8: {exc}"
            ) from exc

    def _initialise_schema(self, connection: sqlite3.Connection) -> None:
        with self._errors("initialise the relcrm schema", BackendUnavailable):
            self._settle_schema(_SQLiteSchema(self, connection))

    def _settle_schema(self, database: _SQLiteSchema) -> None:
        """Bring the schema to this relcrm's version, or with ``migrate=false`` only check that
        it is there."""
        if not self.migrate_on_open:
            require_current(database, MIGRATIONS, url=self.url)
            return
        upgrade(database, MIGRATIONS)

    def _grow_cache(self, connection: sqlite3.Connection) -> None:
        """Set ``connection`` up as a bulk writer (once): a bigger page cache, and its checkpoints
        done by the store's :class:`_Checkpointer` after each of its commits."""
        if id(connection) not in self._bulk_connections:
            with self._lock:
                if self._checkpointer is None and not self._closed:
                    self._checkpointer = _Checkpointer(self.path, self.timeout)
            with self._errors("set the connection up for bulk writes"):
                connection.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
                connection.execute("PRAGMA wal_autocheckpoint = 0")
            self._bulk_connections.add(id(connection))

    def pragmas(self) -> dict[str, Any]:
        """The settings of this thread's connection as SQLite reports them (for diagnostics):
        ``journal_mode``, ``synchronous``, ``busy_timeout`` (ms) and ``foreign_keys``."""
        connection = self._connection(self._thread_state())
        with self._errors("read pragmas"):
            return {
                name: connection.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTransaction]:
        """Begin a unit of work (``BEGIN IMMEDIATE``); commits on normal exit, rolls back whole on
        an exception, which is re-raised unchanged."""
        state = self._thread_state()
        if state.in_transaction:
            raise StorageError(
                "a transaction is already open in this thread and transactions do not nest; "
                "do all the work in the outer transaction"
            )
        connection = self._connection(state)
        if id(connection) in self._bulk_connections:
            checkpointer = self._checkpointer
            if checkpointer is not None:
                checkpointer.wait()
        with self._errors("begin a transaction"):
            connection.execute("BEGIN IMMEDIATE")
        state.in_transaction = True
        tx = _SQLiteTransaction(self, connection)
        try:
            yield tx
        except BaseException as exc:
            tx._finished = True
            self._rollback(connection, exc)
            raise
        else:
            tx._finished = True
            with self._errors("commit"):
                try:
                    connection.execute("COMMIT")
                except sqlite3.Error:
                    self._rollback(connection, None)
                    raise
            if id(connection) in self._bulk_connections:
                checkpointer = self._checkpointer
                if checkpointer is not None:
                    checkpointer.request()
        finally:
            state.in_transaction = False

    def _rollback(self, connection: sqlite3.Connection, cause: BaseException | None) -> None:
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The original error is the one worth raising; keep this one as a note.
            if cause is not None:
                cause.add_note(f"relcrm: rolling back the SQLite transaction also failed: {exc}")

    # -- reads -------------------------------------------------------------------------------

    def get(self, kind: str, id: str) -> Record | None:
        """The committed record, or ``None``."""
        connection = self._reader()
        with self._errors(f"read {kind} {id!r}"):
            row = connection.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE kind = ? AND id = ?", (kind, id)
            ).fetchone()
        return None if row is None else _record(kind, row)

    def existing_ids(self, kind: str, ids: Sequence[str]) -> set[str]:
        """The committed ids among ``ids`` for records of ``kind``."""
        wanted = list(dict.fromkeys(ids))
        connection = self._reader()
        found: set[str] = set()
        step = _MAX_PARAMETERS - 1  # one parameter is the kind
        with self._errors(f"look up {kind} ids"):
            for start in range(0, len(wanted), step):
                chunk = wanted[start : start + step]
                marks = ", ".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT id FROM records WHERE kind = ? AND id IN ({marks})", [kind, *chunk]
                )
                found.update(id for (id,) in rows)
        return found

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Committed records of ``kind`` matching every given key, ordered by id."""
        return self._find(self._reader(), kind, person_id, opening_id)

    def _find(
        self,
        connection: sqlite3.Connection,
        kind: str,
        person_id: str | None,
        opening_id: str | None,
    ) -> list[Record]:
        sql = f"SELECT {_RECORD_COLUMNS} FROM records WHERE kind = ?"
        params: list[Any] = [kind]
        if person_id is not None:
            sql += " AND person_id = ?"
            params.append(person_id)
        if opening_id is not None:
            sql += " AND opening_id = ?"
            params.append(opening_id)
        with self._errors(f"find {kind} records"):
            rows = connection.execute(sql + " ORDER BY id", params).fetchall()
        return [_record(kind, row) for row in rows]

    def iter_records(self, kind: str, *, batch_size: int = 1000) -> Iterator[Record]:
        """Every committed record of ``kind`` ordered by id, fetched ``batch_size`` at a time by
        keyset pagination (records written meanwhile may or may not be seen)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        return self._iter_records(kind, batch_size)

    def _iter_records(self, kind: str, batch_size: int) -> Iterator[Record]:
        sql = f"SELECT {_RECORD_COLUMNS} FROM records WHERE kind = ?"
        with self._errors(f"read {kind} records"):
            rows = self._reader().execute(f"{sql} ORDER BY id LIMIT ?", (kind, batch_size))
            batch = rows.fetchall()
        while batch:
            for row in batch:
                yield _record(kind, row)
            if len(batch) < batch_size:
                return
            last = batch[-1][0]
            with self._errors(f"read {kind} records"):
                rows = self._reader().execute(
                    f"{sql} AND id > ? ORDER BY id LIMIT ?", (kind, last, batch_size)
                )
                batch = rows.fetchall()

    def events(
        self, *, after: int = 0, person_id: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Committed events with ``seq > after`` (optionally for one person), in ``seq`` order."""
        check_limit(limit)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ?"
        params: list[Any] = [after]
        if person_id is not None:
            sql += " AND person_id = ?"
            params.append(person_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        connection = self._reader()
        with self._errors("read events"):
            rows = connection.execute(sql, params).fetchall()
        return [_event(row) for row in rows]

    def outbox(
        self,
        *,
        status: OutboxStatus | None = "pending",
        due_by: str | None = None,
        event_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRecord]:
        """Outbox rows with that status (``None``: any), due at or before ``due_by``, for those
        events; ordered by ``(next_attempt_at, id)``."""
        check_limit(limit)
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE 1 = 1"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if due_by is not None:
            sql += " AND next_attempt_at <= ?"
            params.append(due_by)
        order = " ORDER BY next_attempt_at, id"
        connection = self._reader()
        with self._errors("read the outbox"):
            if event_ids is None:
                if limit is not None:
                    order += " LIMIT ?"
                    params.append(limit)
                rows = connection.execute(sql + order, params).fetchall()
            else:
                ids = list(dict.fromkeys(event_ids))
                rows = []
                for start in range(0, len(ids), _MAX_PARAMETERS):
                    chunk = ids[start : start + _MAX_PARAMETERS]
                    marks = ", ".join("?" * len(chunk))
                    query = f"{sql} AND event_id IN ({marks}){order}"
                    rows.extend(connection.execute(query, [*params, *chunk]).fetchall())
                rows.sort(key=lambda row: (row[7], row[0]))  # (next_attempt_at, id)
                rows = rows[:limit]
        return [_outbox(row) for row in rows]

    # -- writes outside transactions -----------------------------------------------------------

    def update_outbox(
        self,
        id: str,
        *,
        status: OutboxStatus,
        attempts: int,
        next_attempt_at: str,
        last_error: str | None,
    ) -> None:
        """Record the result of a delivery attempt; :class:`relcrm.NotFound` for an unknown row."""
        check_status(status)
        state = self._thread_state()
        if state.in_transaction:
            raise StorageError(
                "update_outbox() cannot run while this thread has a transaction open; "
                "call it after the transaction has committed"
            )
        connection = self._connection(state)
        with self._errors(f"update outbox row {id!r}"):
            cursor = connection.execute(
                "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ? "
                "WHERE id = ?",
                (status, attempts, next_attempt_at, last_error, id),
            )
        if cursor.rowcount == 0:
            raise NotFound("outbox row", id)

    def close(self) -> None:
        """Close every connection this store opened, in every thread. Closing twice is fine."""
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
            self._bulk_connections.clear()
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None and self._pid == os.getpid():
            checkpointer.stop()
        for connection in connections:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                connection.close()


def migrate(url: str, *, target: int | None = None, dry_run: bool = False) -> MigrationReport:
    """Bring the SQLite database at ``url`` to schema version ``target`` (by default
    :data:`SCHEMA_VERSION`), applying the missing steps of :data:`MIGRATIONS` in order, each in a
    transaction of its own, and say what was done. Safe while other processes use or migrate the
    file; a second call does nothing.

    With ``dry_run`` nothing changes and the report lists the pending steps. A ``migrate=false``
    option in the URL does not apply here. A file that does not exist is created, at ``target``
    (in a dry run it is left uncreated, and every step up to ``target`` is reported pending).
    """
    path = _parse_url(url)[0]
    if dry_run and not os.path.exists(path):
        return plan(repr(path), MIGRATIONS, 0, target)
    migrator = _SchemaMigrator(url, target=target, dry_run=dry_run)
    migrator.close()
    if migrator.report is None:  # pragma: no cover - set while opening
        raise AssertionError("the schema was not examined")
    return migrator.report


class _SchemaMigrator(SQLiteStore):
    """Opens a file as a store does, but migrates it as :func:`migrate` was asked to."""

    def __init__(self, url: str, *, target: int | None, dry_run: bool) -> None:
        self._target = target
        self._dry_run = dry_run
        self.report: MigrationReport | None = None
        super().__init__(url)

    def _settle_schema(self, database: _SQLiteSchema) -> None:
        self.report = upgrade(database, MIGRATIONS, target=self._target, dry_run=self._dry_run)


class _SQLiteTransaction:
    """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the thread's connection."""

    #: Stores the text of :class:`~relcrm.storage.base.JSONText` data as it is (see
    #: :func:`relcrm.storage.base.insert_many`).
    takes_json_text = True

    def __init__(self, store: SQLiteStore, connection: sqlite3.Connection) -> None:
        self._store = store
        self._connection = connection
        self._finished = False

    def _active(self) -> sqlite3.Connection:
        if self._finished:
            raise StorageError("this transaction has already finished; begin a new one")
        self._store._check_open()
        return self._connection

    def _version(self, kind: str, id: str) -> int | None:
        row = self._connection.execute(
            "SELECT version FROM records WHERE kind = ? AND id = ?", (kind, id)
        ).fetchone()
        return None if row is None else int(row[0])

    def get(self, kind: str, id: str) -> Record | None:
        """The record, seeing this transaction's own writes, or ``None``."""
        connection = self._active()
        with self._store._errors(f"read {kind} {id!r}"):
            row = connection.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE kind = ? AND id = ?", (kind, id)
            ).fetchone()
        return None if row is None else _record(kind, row)

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Records of ``kind`` matching every given key (with this transaction's writes), by id."""
        return self._store._find(self._active(), kind, person_id, opening_id)

    def put(
        self,
        kind: str,
        id: str,
        data: Mapping[str, Any],
        *,
        expected_version: int,
        person_id: str | None = None,
        opening_id: str | None = None,
    ) -> Record:
        """Write a record whose current version is ``expected_version`` (0: must not exist yet)."""
        connection = self._active()
        text = dump_mapping(f"data of {kind} {id!r}", data)
        with self._store._errors(f"write {kind} {id!r}"):
            if expected_version == 0:
                cursor = connection.execute(
                    "INSERT INTO records (kind, id, version, person_id, opening_id, data) "
                    "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (kind, id) DO NOTHING",
                    (kind, id, person_id, opening_id, text),
                )
            else:
                cursor = connection.execute(
                    "UPDATE records SET version = version + 1, person_id = ?, opening_id = ?, "
                    "data = ? WHERE kind = ? AND id = ? AND version = ?",
                    (person_id, opening_id, text, kind, id, expected_version),
                )
            if cursor.rowcount != 1:
                actual = self._version(kind, id)
                raise ConcurrencyConflict(kind, id, expected_version, actual)
        return Record(
            kind=kind,
            id=id,
            version=expected_version + 1,
            data=decode_json(text),
            person_id=person_id,
            opening_id=opening_id,
        )

    def delete(self, kind: str, id: str, *, expected_version: int) -> None:
        """Remove a record at ``expected_version``; else :class:`relcrm.ConcurrencyConflict`."""
        connection = self._active()
        with self._store._errors(f"delete {kind} {id!r}"):
            cursor = connection.execute(
                "DELETE FROM records WHERE kind = ? AND id = ? AND version = ?",
                (kind, id, expected_version),
            )
            if cursor.rowcount != 1:
                actual = self._version(kind, id)
                raise ConcurrencyConflict(kind, id, expected_version, actual)

    def append_event(self, event: EventRecord) -> EventRecord:
        """Append to the log; returns the event with its ``seq``. A duplicate id is an error."""
        connection = self._active()
        payload = dump_mapping(f"payload of event {event.id!r}", event.payload)
        with self._store._errors(f"append event {event.id!r}"):
            cursor = connection.execute(
                "INSERT INTO events (id, type, occurred_at, person_id, payload) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (event.id, event.type, event.occurred_at, event.person_id, payload),
            )
        if cursor.rowcount != 1 or cursor.lastrowid is None:
            raise AlreadyExists("event", event.id, "event ids are unique in the log")
        return EventRecord(
            id=event.id,
            type=event.type,
            occurred_at=event.occurred_at,
            payload=decode_json(payload),
            person_id=event.person_id,
            seq=cursor.lastrowid,
        )

    def add_outbox(self, row: OutboxRecord) -> None:
        """Queue a notification for delivery after commit. A duplicate id is an error."""
        connection = self._active()
        check_status(row.status)
        recipient = dump_mapping(f"recipient of outbox row {row.id!r}", row.recipient)
        payload = dump_mapping(f"payload of outbox row {row.id!r}", row.payload)
        with self._store._errors(f"add outbox row {row.id!r}"):
            cursor = connection.execute(
                f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (
                    row.id,
                    row.event_id,
                    row.notifier,
                    recipient,
                    payload,
                    row.status,
                    row.attempts,
                    row.next_attempt_at,
                    row.last_error,
                ),
            )
        if cursor.rowcount != 1:
            raise AlreadyExists("outbox row", row.id, "outbox ids are unique")

    def replace_event_payload(self, event_id: str, payload: Mapping[str, Any]) -> None:
        """Rewrite one logged event's payload (erasure); :class:`relcrm.NotFound` if unknown."""
        connection = self._active()
        text = dump_mapping(f"payload of event {event_id!r}", payload)
        with self._store._errors(f"replace the payload of event {event_id!r}"):
            cursor = connection.execute(
                "UPDATE events SET payload = ? WHERE id = ?", (text, event_id)
            )
        if cursor.rowcount != 1:
            raise NotFound("event", event_id)

    # -- bulk (optional capability of the port) ---------------------------------------------------
    #
    # Each method is one ``executemany`` with ``ON CONFLICT DO NOTHING``. When fewer rows went in
    # than were given, a key was taken: the rows this call inserted (those above the largest rowid
    # the table had before it) are deleted again, and the first offending row in the order given
    # is named. The caller rolls the transaction back in any case.

    def insert_many(self, records: Sequence[Record]) -> None:
        """Insert new records at version 1. If a ``(kind, id)`` is already stored or given twice,
        raise :class:`relcrm.AlreadyExists` naming the first such record."""
        connection = self._active()
        self._store._grow_cache(connection)
        rows = [
            (
                rec.kind,
                rec.id,
                rec.person_id,
                rec.opening_id,
                dump_mapping(f"data of {rec.kind} {rec.id!r}", rec.data),
            )
            for rec in records
        ]
        if not rows:
            return
        # Key order walks the primary-key index once instead of jumping around in it.
        rows.sort(key=_record_key)
        with self._store._errors(f"insert {len(rows)} records"):
            before = self._last_rowid("records")
            cursor = connection.executemany(
                "INSERT INTO records (kind, id, version, person_id, opening_id, data) "
                "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (kind, id) DO NOTHING",
                rows,
            )
            if cursor.rowcount == len(rows):
                return
            connection.execute("DELETE FROM records WHERE rowid > ?", (before,))
            seen: set[tuple[str, str]] = set()
            for rec in records:
                key = (rec.kind, rec.id)
                if key in seen or self._version(rec.kind, rec.id) is not None:
                    raise AlreadyExists(rec.kind, rec.id)
                seen.add(key)
        raise StorageError(f"SQLite inserted {cursor.rowcount} of {len(rows)} records")

    def append_events(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Append events in the given order; returns them with their ``seq``. An id already in
        the log or given twice raises :class:`relcrm.AlreadyExists`."""
        connection = self._active()
        rows = [
            (
                event.id,
                event.type,
                event.occurred_at,
                event.person_id,
                dump_mapping(f"payload of event {event.id!r}", event.payload),
            )
            for event in events
        ]
        if not rows:
            return []
        with self._store._errors(f"append {len(rows)} events"):
            (before,) = connection.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            cursor = connection.executemany(
                "INSERT INTO events (id, type, occurred_at, person_id, payload) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                rows,
            )
            if cursor.rowcount != len(rows):
                connection.execute("DELETE FROM events WHERE seq > ?", (before,))
                seen: set[str] = set()
                for event in events:
                    taken = connection.execute(
                        "SELECT 1 FROM events WHERE id = ?", (event.id,)
                    ).fetchone()
                    if event.id in seen or taken is not None:
                        raise AlreadyExists("event", event.id, "event ids are unique in the log")
                    seen.add(event.id)
                raise StorageError(f"SQLite appended {cursor.rowcount} of {len(rows)} events")
            (last,) = connection.execute("SELECT last_insert_rowid()").fetchone()
            if last - before == len(rows):
                seqs: Sequence[int] = range(before + 1, last + 1)
            else:  # numbers skipped (a refused batch took some back): read them back
                seqs = [
                    seq
                    for (seq,) in connection.execute(
                        "SELECT seq FROM events WHERE seq > ? ORDER BY seq", (before,)
                    )
                ]
        return [
            EventRecord(
                id=id,
                type=type,
                occurred_at=occurred_at,
                payload=JSONText(payload),
                person_id=person_id,
                seq=seq,
            )
            for (id, type, occurred_at, person_id, payload), seq in zip(rows, seqs, strict=True)
        ]

    def add_outbox_many(self, rows: Sequence[OutboxRecord]) -> None:
        """Queue many notifications; an id already queued or given twice raises
        :class:`relcrm.AlreadyExists`."""
        connection = self._active()
        values = []
        for row in rows:
            check_status(row.status)
            values.append(
                (
                    row.id,
                    row.event_id,
                    row.notifier,
                    dump_mapping(f"recipient of outbox row {row.id!r}", row.recipient),
                    dump_mapping(f"payload of outbox row {row.id!r}", row.payload),
                    row.status,
                    row.attempts,
                    row.next_attempt_at,
                    row.last_error,
                )
            )
        if not values:
            return
        with self._store._errors(f"add {len(values)} outbox rows"):
            before = self._last_rowid("outbox")
            cursor = connection.executemany(
                f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                values,
            )
            if cursor.rowcount == len(values):
                return
            connection.execute("DELETE FROM outbox WHERE rowid > ?", (before,))
            seen: set[str] = set()
            for row in rows:
                taken = connection.execute("SELECT 1 FROM outbox WHERE id = ?", (row.id,))
                if row.id in seen or taken.fetchone() is not None:
                    raise AlreadyExists("outbox row", row.id, "outbox ids are unique")
                seen.add(row.id)
        raise StorageError(f"SQLite added {cursor.rowcount} of {len(values)} outbox rows")

    def _last_rowid(self, table: str) -> int:
        """The largest rowid in ``table`` (0 when empty); rows inserted later get larger ones."""
        (last,) = self._connection.execute(
            f"SELECT coalesce(max(rowid), 0) FROM {table}"
        ).fetchone()
        return int(last)
