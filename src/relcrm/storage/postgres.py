"""``postgresql://``: the backend for products that outgrow one process or one machine.

It runs on `psycopg 3 <https://www.psycopg.org/psycopg3/>`_ with a ``psycopg_pool`` connection
pool; install it with the ``relcrm[postgres]`` extra. Nothing here is imported until a
``postgresql://`` (or ``postgres://``) URL is opened.

URLs are libpq connection URIs, ``postgresql://user:password@host:port/dbname?option=value``, with
five options of relcrm's own:

``schema``
    The schema that holds relcrm's tables, created (with the tables) if it is missing. Several
    talent pools can share one database, one schema each. Without it, the first schema of the
    connection's ``search_path`` is used (``public`` on a default server).
``pool_min``, ``pool_max``
    How many connections the pool keeps open at least (default 1) and opens at most (default 10).
    A thread uses one connection for its transaction and another for reads made outside it.
``pool_timeout``
    How many seconds a caller waits for a free connection before giving up with
    :class:`relcrm.BackendUnavailable` (default 30).
``migrate``
    ``true`` (the default) brings the schema to this relcrm's version on open; ``false`` changes
    nothing and refuses a schema at another version with :class:`relcrm.BackendUnavailable`,
    which says to run ``relcrm migrate URL`` (or :func:`migrate`).

Every other option is a libpq connection parameter (``sslmode``, ``connect_timeout``,
``application_name``, ``options``...), passed through unchanged; relcrm sets ``connect_timeout``
to 10 seconds and ``application_name`` to ``relcrm`` unless the URL says otherwise.

How it behaves:

* One :class:`PostgresStore` can be shared by every thread of a process; each call borrows a
  connection from the pool and returns it, and a transaction keeps one until it ends. A pooled
  connection that the server has ended (a restart, a failover, an idle timeout) is noticed on
  first use and replaced without an error. Every process opens its own store (a store inherited
  through ``os.fork()`` opens a new pool in the child and never touches the parent's connections).
* The schema and its tables are created under an advisory lock (several processes may open a new
  schema at once), and only when missing, so a role without ``CREATE`` rights can use a schema
  prepared for it.
* The schema is versioned (:data:`SCHEMA_VERSION`, kept in the ``relcrm_schema`` table), and its
  history is :data:`MIGRATIONS`. Opening brings a schema to this version (a new one from nothing),
  one step per transaction, each under the schema's transaction-level advisory lock with the
  version read again inside it, so several processes can open an old schema at once and each
  step runs exactly once. :func:`migrate` does the same on request. A schema at a newer version
  than this relcrm, or with relcrm's table names but no schema version, raises
  :class:`relcrm.BackendUnavailable`.
* Records, events and outbox rows live in three tables. JSON is stored in ``json`` columns, which
  keep the text exactly as written (key order, duplicate keys, ``\\u0000`` escapes and big
  numbers survive; ``jsonb`` would change them). Ids and other strings are ``text COLLATE "C"``,
  so they sort by code point as on every backend; PostgreSQL cannot store the character U+0000 in
  text, so U+0000 and U+0001 are written as two-character escapes that keep that order.
* Transactions run at ``READ COMMITTED``. Optimistic locking is one ``UPDATE ... WHERE version =
  %s`` (or ``INSERT ... ON CONFLICT DO NOTHING`` for a new record); no row written means
  :class:`relcrm.ConcurrencyConflict`. Readers never wait for writers and never see uncommitted
  writes.
* The event log has one global order that readers can tail: before its first append a
  transaction takes a transaction-level advisory lock on the schema's event log, held until it
  commits or rolls back, so ``seq`` order is commit order and an event with a smaller ``seq``
  never appears after a reader has seen a larger one. Transactions that append no events do not
  take the lock, and readers never do. Append events after writing records, as the CRM does: a
  transaction that waits for the lock while holding a row lock another appender needs deadlocks.
* :meth:`PostgresStore.iter_records` streams through a server-side cursor; the bulk methods
  (:func:`relcrm.storage.base.insert_many` and friends) use ``COPY``.
* Every driver error is raised as a relcrm error with the original chained: a deadlock or a
  serialization failure as :class:`relcrm.TransactionAborted` (a
  :class:`relcrm.ConcurrencyConflict`: run the command again), a connection that cannot be made
  or is lost as :class:`relcrm.BackendUnavailable`, anything else as :class:`relcrm.StorageError`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs
import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.types.json
import psycopg_pool

from relcrm.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    ConcurrencyConflict,
    NotFound,
    RelcrmError,
    StorageError,
    TransactionAborted,
)
from relcrm.storage._checks import check_limit, check_status, decode_json, dump_mapping
from relcrm.storage._migrations import (
    Migration,
    MigrationReport,
    check_history,
    migrate_option,
    require_current,
    upgrade,
)
from relcrm.storage.base import EventRecord, JSONText, OutboxRecord, OutboxStatus, Record

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "MigrationReport",
    "PostgresStore",
    "migrate",
]

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]
_Pool = psycopg_pool.ConnectionPool[_Connection]

_SCHEMES = ("postgresql", "postgres")
_DEFAULT_POOL_MIN = 1
_DEFAULT_POOL_MAX = 10
_DEFAULT_POOL_TIMEOUT = 30.0
_LIBPQ_DEFAULTS = {"connect_timeout": "10", "application_name": "relcrm"}
#: PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes).
_MAX_IDENTIFIER_BYTES = 63

# Advisory locks take two int4 keys: one of these, and a hash of the schema name, so that stores
# in different schemas of one database never wait for each other.
_SCHEMA_LOCK = 0x72656C73  # "rels": creating or checking the schema
_EVENT_LOG_LOCK = 0x72656C65  # "rele": appending to the event log

#: SQLSTATEs after which the database has rolled the transaction back to resolve a conflict.
_ABORTS = {"40001": "serialization failure", "40P01": "deadlock detected"}

_TABLES = ("records", "events", "outbox")
#: The schema as relcrm first created it (version 1), ``{s}`` standing for the quoted schema
#: name. Never change it: write a new step instead.
_VERSION_1 = (
    "CREATE TABLE IF NOT EXISTS {s}.relcrm_schema (version integer NOT NULL)",
    """
    CREATE TABLE {s}.records (
        kind text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        person_id text COLLATE "C",
        opening_id text COLLATE "C",
        data json NOT NULL,
        PRIMARY KEY (kind, id)
    )
    """,
    "CREATE INDEX records_by_person ON {s}.records (kind, person_id)",
    "CREATE INDEX records_by_opening ON {s}.records (kind, opening_id)",
    """
    CREATE TABLE {s}.events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text COLLATE "C" NOT NULL UNIQUE,
        type text COLLATE "C" NOT NULL,
        occurred_at text COLLATE "C" NOT NULL,
        person_id text COLLATE "C",
        payload json NOT NULL
    )
    """,
    "CREATE INDEX events_by_person ON {s}.events (person_id, seq)",
    """
    CREATE TABLE {s}.outbox (
        id text COLLATE "C" PRIMARY KEY,
        event_id text COLLATE "C" NOT NULL,
        notifier text COLLATE "C" NOT NULL,
        recipient json NOT NULL,
        payload json NOT NULL,
        status text COLLATE "C" NOT NULL,
        attempts bigint NOT NULL,
        next_attempt_at text COLLATE "C" NOT NULL,
        last_error text COLLATE "C"
    )
    """,
    "CREATE INDEX outbox_due ON {s}.outbox (status, next_attempt_at)",
    "CREATE INDEX outbox_by_event ON {s}.outbox (event_id)",
)

#: The history of the schema, oldest step first; see :mod:`relcrm.storage._migrations`.
MIGRATIONS: tuple[Migration, ...] = check_history(
    Migration(1, "the initial schema: records, events and outbox tables", _VERSION_1),
    Migration(
        2,
        "lookup indexes end with id, the order rows are returned in: find() by person or "
        "opening and the due outbox rows are read from the index in order, without a sort",
        # The new indexes are built first (writers wait, readers do not) and the old ones are
        # dropped last, so the exclusive lock that dropping takes is held only until the commit.
        (
            "CREATE INDEX records_by_person_2 ON {s}.records (kind, person_id, id)",
            "CREATE INDEX records_by_opening_2 ON {s}.records (kind, opening_id, id)",
            "CREATE INDEX outbox_due_2 ON {s}.outbox (status, next_attempt_at, id)",
            "DROP INDEX IF EXISTS {s}.records_by_person",
            "DROP INDEX IF EXISTS {s}.records_by_opening",
            "DROP INDEX IF EXISTS {s}.outbox_due",
            "ALTER INDEX {s}.records_by_person_2 RENAME TO records_by_person",
            "ALTER INDEX {s}.records_by_opening_2 RENAME TO records_by_opening",
            "ALTER INDEX {s}.outbox_due_2 RENAME TO outbox_due",
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


# -- URLs -------------------------------------------------------------------------------------


@attrs.frozen
class _Options:
    """What a ``postgresql://`` URL asks for: libpq parameters and relcrm's own options."""

    conninfo: str
    schema: str | None
    pool_min: int
    pool_max: int
    pool_timeout: float
    migrate: bool
    display: str


def _redact(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password`` option)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        users, _, hosts = netloc.rpartition("@")
        user, colon, _ = users.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    query = "&".join(
        "password=***" if item.split("=", 1)[0] == "password" else item
        for item in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _int_option(url: str, key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise BackendUnavailable(
            f"{key} in {_redact(url)!r} must be a whole number >= {minimum}, not {value!r}"
        )
    return number


def _check_schema_name(url: str, name: str) -> str:
    if not name or "\x00" in name:
        raise BackendUnavailable(f"schema in {_redact(url)!r} must be a non-empty name")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_IDENTIFIER_BYTES:
        raise BackendUnavailable(
            f"schema {name!r} in {_redact(url)!r} is longer than PostgreSQL's limit of "
            f"{_MAX_IDENTIFIER_BYTES} bytes"
        )
    return name


def _parse_url(url: str) -> _Options:
    """Split a ``postgresql://`` URL into libpq parameters and relcrm's options."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise BackendUnavailable(
            f"not a PostgreSQL URL: {_redact(url)!r}; use "
            "postgresql://user@host:port/dbname?schema=NAME"
        )
    parts = urlsplit(url)
    schema: str | None = None
    pool_min, pool_max, pool_timeout = _DEFAULT_POOL_MIN, _DEFAULT_POOL_MAX, _DEFAULT_POOL_TIMEOUT
    migrate = True
    passed: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = _check_schema_name(url, value)
        elif key == "pool_min":
            pool_min = _int_option(url, key, value, 0)
        elif key == "pool_max":
            pool_max = _int_option(url, key, value, 1)
        elif key == "migrate":
            migrate = migrate_option(value, _redact(url))
        elif key == "pool_timeout":
            try:
                pool_timeout = float(value)
            except ValueError:
                pool_timeout = math.nan
            if not math.isfinite(pool_timeout) or pool_timeout <= 0:
                raise BackendUnavailable(
                    f"pool_timeout in {_redact(url)!r} must be a number of seconds > 0, "
                    f"not {value!r}"
                )
        else:
            passed.append((key, value))
    if pool_min > pool_max:
        raise BackendUnavailable(
            f"pool_min ({pool_min}) is larger than pool_max ({pool_max}) in {_redact(url)!r}"
        )
    libpq_url = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(passed, quote_via=quote), "")
    )
    try:
        params = psycopg.conninfo.conninfo_to_dict(libpq_url)
    except psycopg.Error as exc:
        raise BackendUnavailable(f"invalid PostgreSQL URL {_redact(url)!r}: {exc}") from exc
    given = {key: str(value) for key, value in params.items() if value is not None}
    conninfo = psycopg.conninfo.make_conninfo("", **{**_LIBPQ_DEFAULTS, **given})
    return _Options(
        conninfo=conninfo,
        schema=schema,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_timeout=pool_timeout,
        migrate=migrate,
        display=_redact(url),
    )


def _quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (PostgreSQL's rule: double every double quote)."""
    return '"' + name.replace('"', '""') + '"'


def _lock_key(schema: str) -> int:
    """A signed 32-bit advisory-lock key for one schema."""
    key = zlib.crc32(schema.encode("utf-8", "surrogatepass"))
    return key - (1 << 32) if key >= 1 << 31 else key


# -- text columns -----------------------------------------------------------------------------

# PostgreSQL text cannot hold U+0000. U+0000 is written as U+0001 U+0001 and U+0001 as U+0001
# U+0002: a prefix-free code made of the two smallest characters, so comparisons and ORDER BY
# under COLLATE "C" give the same answers on the escaped text as on the original.


_ESCAPED = re.compile("\x01([\x01\x02])")


def _to_db(value: str) -> str:
    if not isinstance(value, str):
        raise StorageError(
            f"PostgreSQL stores ids, kinds and the other keys as text; "
            f"{type(value).__name__} {value!r:.60} is not text"
        )
    if "\x00" in value or "\x01" in value:
        return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return value


def _to_db_or_none(value: str | None) -> str | None:
    return None if value is None else _to_db(value)


def _is_text(*values: object) -> bool:
    """Whether every value is text or ``None``. A key that is not text matches nothing (reading
    with it finds nothing, as on every backend); writing one is refused by :func:`_to_db`."""
    return all(value is None or isinstance(value, str) for value in values)


def _from_db(value: str) -> str:
    if "\x01" not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", value)


def _from_db_or_none(value: str | None) -> str | None:
    return None if value is None else _from_db(value)


def _record(kind: str, row: tuple[Any, ...]) -> Record:
    id, version, data, person_id, opening_id = row
    return Record(
        kind=kind,
        id=_from_db(id),
        version=version,
        data=data,
        person_id=_from_db_or_none(person_id),
        opening_id=_from_db_or_none(opening_id),
    )


def _event(row: tuple[Any, ...]) -> EventRecord:
    seq, id, type, occurred_at, person_id, payload = row
    return EventRecord(
        id=_from_db(id),
        type=_from_db(type),
        occurred_at=_from_db(occurred_at),
        payload=payload,
        person_id=_from_db_or_none(person_id),
        seq=seq,
    )


def _outbox(row: tuple[Any, ...]) -> OutboxRecord:
    id, event_id, notifier, recipient, payload, status, attempts, next_attempt_at, error = row
    return OutboxRecord(
        id=_from_db(id),
        event_id=_from_db(event_id),
        notifier=_from_db(notifier),
        recipient=recipient,
        payload=payload,
        status=cast(OutboxStatus, status),
        attempts=attempts,
        next_attempt_at=_from_db(next_attempt_at),
        last_error=_from_db_or_none(error),
    )


def _configure(connection: _Connection) -> None:
    """Set up a new pooled connection: parse ``json`` as ``json.loads`` does (see
    :func:`~relcrm.storage._checks.decode_json`), whatever the application configured for
    psycopg globally (another parser may lose big integers)."""
    psycopg.types.json.set_json_loads(decode_json, connection)


class _Statements:
    """The SQL for one schema, with every table name qualified."""

    def __init__(self, schema: str) -> None:
        s = _quote_identifier(schema)
        records, events, outbox = f"{s}.records", f"{s}.events", f"{s}.outbox"
        self.records, self.events, self.outbox = records, events, outbox
        self.get = f"SELECT {_RECORD_COLUMNS} FROM {records} WHERE kind = %s AND id = %s"
        self.find = f"SELECT {_RECORD_COLUMNS} FROM {records} WHERE kind = %s"
        self.scan = f"SELECT {_RECORD_COLUMNS} FROM {records} WHERE kind = %s ORDER BY id"
        self.version = f"SELECT version FROM {records} WHERE kind = %s AND id = %s"
        self.insert = (
            f"INSERT INTO {records} (kind, id, version, person_id, opening_id, data) "
            "VALUES (%s, %s, 1, %s, %s, %s) ON CONFLICT (kind, id) DO NOTHING"
        )
        self.update = (
            f"UPDATE {records} SET version = version + 1, person_id = %s, opening_id = %s, "
            "data = %s WHERE kind = %s AND id = %s AND version = %s"
        )
        self.delete = f"DELETE FROM {records} WHERE kind = %s AND id = %s AND version = %s"
        self.existing_ids = f"SELECT id FROM {records} WHERE kind = %s AND id = ANY(%s::text[])"
        self.first_stored = (
            "SELECT given.ord FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY "
            f"AS given (kind, id, ord) JOIN {records} AS stored "
            "ON stored.kind = given.kind AND stored.id = given.id ORDER BY given.ord LIMIT 1"
        )
        self.copy_records = (
            f"COPY {records} (kind, id, version, person_id, opening_id, data) FROM STDIN"
        )
        self.events_after = f"SELECT {_EVENT_COLUMNS} FROM {events} WHERE seq > %s"
        self.append_event = (
            f"INSERT INTO {events} (id, type, occurred_at, person_id, payload) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING seq"
        )
        self.copy_events = f"COPY {events} (id, type, occurred_at, person_id, payload) FROM STDIN"
        self.event_seqs = f"SELECT id, seq FROM {events} WHERE id = ANY(%s::text[])"
        self.first_logged = (
            "SELECT given.ord FROM unnest(%s::text[]) WITH ORDINALITY AS given (id, ord) "
            f"JOIN {events} AS logged ON logged.id = given.id ORDER BY given.ord LIMIT 1"
        )
        self.replace_payload = f"UPDATE {events} SET payload = %s WHERE id = %s"
        self.lock_event_log = "SELECT pg_advisory_xact_lock(%s, %s)"
        self.outbox_rows = f"SELECT {_OUTBOX_COLUMNS} FROM {outbox} WHERE true"
        self.add_outbox = (
            f"INSERT INTO {outbox} ({_OUTBOX_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
        )
        self.copy_outbox = f"COPY {outbox} ({_OUTBOX_COLUMNS}) FROM STDIN"
        self.first_queued = (
            "SELECT given.ord FROM unnest(%s::text[]) WITH ORDINALITY AS given (id, ord) "
            f"JOIN {outbox} AS queued ON queued.id = given.id ORDER BY given.ord LIMIT 1"
        )
        self.update_outbox = (
            f"UPDATE {outbox} SET status = %s, attempts = %s, next_attempt_at = %s, "
            "last_error = %s WHERE id = %s"
        )


# -- the store ---------------------------------------------------------------------------------


class PostgresStore:
    """A :class:`~relcrm.storage.Store` in one schema of a PostgreSQL database (see the module
    docs).

    ``schema`` is the schema in use; ``pool_min``, ``pool_max`` and ``pool_timeout`` are the pool
    settings from the URL, and ``migrate_on_open`` is false when the URL says ``migrate=false``.
    Usable as a context manager, which closes it on exit. It also offers the optional bulk
    capability (:class:`~relcrm.storage.base.BulkStore`, and
    :class:`~relcrm.storage.base.BulkTransaction` for its transactions).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        options = _parse_url(url)
        self._conninfo = options.conninfo
        self._display = options.display
        self.pool_min = options.pool_min
        self.pool_max = options.pool_max
        self.pool_timeout = options.pool_timeout
        self.migrate_on_open = options.migrate
        self._lock = threading.Lock()  # guards _pool, _pid, _local and _closed
        self._local = threading.local()
        self._closed = False
        self._pid = os.getpid()
        #: Pools inherited through fork: never used or closed here, only kept from being
        #: garbage-collected (closing would end the parent's sessions on the shared sockets).
        self._inherited: list[_Pool] = []
        self.schema = self._initialise_schema(options.schema)
        self._sql = _Statements(self.schema)
        self._event_log_key = _lock_key(self.schema)
        self._pool = self._new_pool()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PostgresStore {self._display!r} schema={self.schema!r} ({state})>"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        """One connection outside the pool (to create the schema, where errors must be precise)."""
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL at {self._display!r}: {exc}"
            ) from exc

    def _new_pool(self) -> _Pool:
        pool: _Pool = psycopg_pool.ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=self.pool_min,
            max_size=self.pool_max,
            timeout=self.pool_timeout,
            configure=_configure,
            name=f"relcrm-{self.schema}",
            open=False,
        )
        try:
            pool.open(wait=False)
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot open a connection pool for {self._display!r}: {exc}"
            ) from exc
        return pool

    def _current_pool(self) -> _Pool:
        """The pool of this process, raising :class:`relcrm.StorageError` once closed."""
        self._check_open()
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # After os.fork() the child must not use (or even close) the parent's
                    # connections: keep them referenced, and start a pool of its own.
                    self._inherited.append(self._pool)
                    self._local = threading.local()
                    self._pid = os.getpid()
                    self._pool = self._new_pool()
        return self._pool

    def _run(self, action: str, work: Callable[[_Connection], _T]) -> _T:
        """Run ``work`` (statements that are safe to repeat) on a pooled connection and give the
        connection back, raising relcrm errors.

        A connection that the server ended while it sat in the pool (a restart, an idle timeout,
        an administrator) fails on first use; it is dropped and ``work`` runs again on another,
        so callers never see it. The pool is not asked to test connections before handing them
        out, which would cost a round trip on every call.
        """
        pool = self._current_pool()
        for attempt in itertools.count():
            with self._errors(action):
                connection = pool.getconn()
                try:
                    return work(connection)
                except psycopg.Error:
                    if connection.broken and attempt < self.pool_max:
                        continue
                    raise
                finally:
                    pool.putconn(connection)  # a broken connection is discarded, not kept
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(self, pool: _Pool, action: str, statement: str) -> _Connection:
        """A pooled connection with a transaction begun by ``statement`` (retried on another
        connection if this one was found dead, as in :meth:`_run`). Give it back to ``pool``."""
        for attempt in itertools.count():
            with self._errors(action):
                connection = pool.getconn()
                try:
                    connection.execute(statement)
                except psycopg.Error:
                    pool.putconn(connection)
                    if connection.broken and attempt < self.pool_max:
                        continue
                    raise
                except BaseException:
                    pool.putconn(connection)
                    raise
                return connection
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self._display!r} is closed")

    def _in_transaction(self) -> bool:
        return bool(getattr(self._local, "in_transaction", False))

    def _error(
        self,
        exc: psycopg.Error,
        action: str,
        *,
        kind: str = "",
        id: str = "",
        expected: int = 0,
        error: type[StorageError] = StorageError,
    ) -> StorageError:
        """The relcrm error to raise for a psycopg error met while doing ``action``."""
        sqlstate = exc.sqlstate
        if sqlstate in _ABORTS:
            reason = exc.diag.message_primary or _ABORTS[sqlstate]
            return TransactionAborted(action, sqlstate, reason, kind=kind, id=id, expected=expected)
        if isinstance(exc, psycopg_pool.PoolClosed):
            return StorageError(f"the store {self._display!r} is closed")
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return BackendUnavailable(
                f"PostgreSQL could not {action}: no connection to {self._display!r} became free "
                f"within {self.pool_timeout:g} s (pool_max={self.pool_max}); the server may be "
                "unreachable, or raise pool_max or pool_timeout in the URL"
            )
        unavailable = (
            isinstance(exc, psycopg.OperationalError)
            if sqlstate is None
            else sqlstate.startswith(("08", "28", "3D", "57P")) or sqlstate == "53300"
        )
        if unavailable:
            error = BackendUnavailable
        where = f"schema {self.schema!r} of " if self.schema else ""
        return error(f"PostgreSQL could not {action} in {where}{self._display!r}: {exc}")

    @contextmanager
    def _errors(
        self,
        action: str,
        *,
        kind: str = "",
        id: str = "",
        expected: int = 0,
        error: type[StorageError] = StorageError,
    ) -> Iterator[None]:
        """Raise psycopg errors as relcrm errors that say what was being done."""
        try:
            yield
        except psycopg.Error as exc:
            raise self._error(
                exc, action, kind=kind, id=id, expected=expected, error=error
            ) from exc
        except UnicodeEncodeError as exc:
            raise StorageError(
                f"PostgreSQL could not {action}: text is not valid UTF-8: {exc}"
            ) from exc

    # -- schema --------------------------------------------------------------------------------

    def _initialise_schema(self, schema: str | None) -> str:
        """Check the database, then bring the schema to this relcrm's version, creating it and its
        tables if missing (see :meth:`_settle_schema`); returns the schema's name."""
        self.schema = schema or ""
        connection = self._connect()
        try:
            with self._errors("initialise the relcrm schema", error=BackendUnavailable):
                encoding = connection.execute("SHOW server_encoding").fetchone()
                if encoding is None or encoding[0].upper() not in ("UTF8", "UTF-8"):
                    raise BackendUnavailable(
                        f"the database at {self._display!r} uses the "
                        f"{encoding[0] if encoding else 'unknown'} encoding; relcrm needs a "
                        "UTF8 database"
                    )
                if schema is None:
                    row = connection.execute("SELECT current_schema()").fetchone()
                    if row is None or row[0] is None:
                        raise BackendUnavailable(
                            f"no schema of the search_path exists in {self._display!r}; "
                            "name one with ?schema=NAME"
                        )
                    schema = str(row[0])
                    self.schema = schema
                self._settle_schema(_PostgresSchema(self, connection, schema))
        finally:
            connection.close()
        return schema

    def _settle_schema(self, database: _PostgresSchema) -> None:
        """Bring the schema to this relcrm's version, or with ``migrate=false`` only check that
        it is there."""
        if not self.migrate_on_open:
            require_current(database, MIGRATIONS, url=self._display)
            return
        upgrade(database, MIGRATIONS)

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        """Begin a unit of work on one pooled connection (``READ COMMITTED``); commits on normal
        exit, rolls back whole on an exception, which is re-raised unchanged."""
        if self._in_transaction():
            raise StorageError(
                "a transaction is already open in this thread and transactions do not nest; "
                "do all the work in the outer transaction"
            )
        pool = self._current_pool()
        connection = self._begin(
            pool, "begin a transaction", "BEGIN ISOLATION LEVEL READ COMMITTED"
        )
        self._local.in_transaction = True
        try:
            tx = _PostgresTransaction(self, connection)
            try:
                yield tx
            except BaseException as exc:
                tx._finished = True
                self._rollback(connection, exc)
                raise
            else:
                tx._finished = True
                self._commit(connection)
        finally:
            self._local.in_transaction = False
            pool.putconn(connection)

    def _commit(self, connection: _Connection) -> None:
        if connection.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            # PostgreSQL answers COMMIT with a silent rollback here: say so instead.
            self._rollback(connection, None)
            raise StorageError(
                "the transaction cannot commit: one of its statements failed (the error was "
                "raised then), so PostgreSQL rolled it back and nothing was written"
            )
        try:
            connection.execute("COMMIT")
        except psycopg.Error as exc:
            if connection.broken or connection.closed:
                raise BackendUnavailable(
                    f"the connection to {self._display!r} was lost while committing, so it is "
                    f"not known whether the transaction was committed: {exc}"
                ) from exc
            self._rollback(connection, None)
            raise self._error(exc, "commit") from exc

    def _rollback(self, connection: _Connection, cause: BaseException | None) -> None:
        if connection.closed or connection.broken:
            return  # the server ends the transaction when the session goes
        try:
            if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                connection.execute("ROLLBACK")
        except psycopg.Error as exc:
            # The original error is the one worth raising; keep this one as a note. The pool
            # discards or resets the connection when it comes back.
            if cause is not None:
                cause.add_note(
                    f"relcrm: rolling back the PostgreSQL transaction also failed: {exc}"
                )

    # -- reads -------------------------------------------------------------------------------

    def get(self, kind: str, id: str) -> Record | None:
        """The committed record, or ``None``."""
        if not _is_text(kind, id):
            self._check_open()
            return None
        params = (_to_db(kind), _to_db(id))
        rows = self._run(
            f"read {kind} {id!r}", lambda c: c.execute(self._sql.get, params).fetchall()
        )
        return _record(kind, rows[0]) if rows else None

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Committed records of ``kind`` matching every given key, ordered by id."""
        if not _is_text(kind, person_id, opening_id):
            self._check_open()
            return []
        query, params = self._find_query(kind, person_id, opening_id)
        rows = self._run(f"find {kind} records", lambda c: c.execute(query, params).fetchall())
        return [_record(kind, row) for row in rows]

    def _find_query(
        self, kind: str, person_id: str | None, opening_id: str | None
    ) -> tuple[str, list[Any]]:
        query = self._sql.find
        params: list[Any] = [_to_db(kind)]
        if person_id is not None:
            query += " AND person_id = %s"
            params.append(_to_db(person_id))
        if opening_id is not None:
            query += " AND opening_id = %s"
            params.append(_to_db(opening_id))
        return query + " ORDER BY id", params

    def iter_records(self, kind: str, *, batch_size: int = 1000) -> Iterator[Record]:
        """Every committed record of ``kind`` ordered by id, streamed ``batch_size`` at a time
        through a server-side cursor. The scan reads one snapshot: records written after it
        started are not seen. It holds a pooled connection until it is exhausted or closed."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if not _is_text(kind):
            self._check_open()
            return iter(())
        return self._iter_records(kind, batch_size)

    def _iter_records(self, kind: str, batch_size: int) -> Iterator[Record]:
        action = f"read {kind} records"
        pool = self._current_pool()
        connection = self._begin(pool, action, "BEGIN READ ONLY")
        try:
            cursor = connection.cursor(name="relcrm_scan")
            try:
                with self._errors(action):
                    cursor.execute(self._sql.scan, (_to_db(kind),))

                def fetch() -> list[Any]:
                    self._check_open()
                    with self._errors(action):
                        return cursor.fetchmany(batch_size)

                batch = fetch()
                if len(batch) == batch_size:
                    # A long scan: the next batch is fetched in a helper thread (waiting on the
                    # server releases the GIL) while this one is consumed. Leaving the block
                    # waits for that fetch, so the cursor is never closed under it.
                    with ThreadPoolExecutor(1, thread_name_prefix="relcrm-scan") as ahead:
                        while len(batch) == batch_size:
                            pending = ahead.submit(fetch)
                            yield from (_record(kind, row) for row in batch)
                            batch = pending.result()
                yield from (_record(kind, row) for row in batch)
            finally:
                with contextlib.suppress(psycopg.Error):  # the rollback below ends it anyway
                    cursor.close()
            with self._errors(action):
                connection.execute("COMMIT")
        finally:
            # Abandoned half-way (or failed): end the scan so the connection goes back clean.
            self._rollback(connection, None)
            pool.putconn(connection)

    def events(
        self, *, after: int = 0, person_id: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Committed events with ``seq > after`` (optionally for one person), in ``seq`` order."""
        check_limit(limit)
        if not _is_text(person_id):
            self._check_open()
            return []
        query = self._sql.events_after
        params: list[Any] = [after]
        if person_id is not None:
            query += " AND person_id = %s"
            params.append(_to_db(person_id))
        query += " ORDER BY seq"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        rows = self._run("read events", lambda c: c.execute(query, params).fetchall())
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
        query = self._sql.outbox_rows
        params: list[Any] = []
        if status is not None:
            query += " AND status = %s"
            params.append(status)
        if due_by is not None:
            query += " AND next_attempt_at <= %s"
            params.append(_to_db(due_by))
        if event_ids is not None:
            query += " AND event_id = ANY(%s::text[])"
            params.append([_to_db(id) for id in event_ids if _is_text(id)])
        query += " ORDER BY next_attempt_at, id"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        rows = self._run("read the outbox", lambda c: c.execute(query, params).fetchall())
        return [_outbox(row) for row in rows]

    def existing_ids(self, kind: str, ids: Sequence[str]) -> set[str]:
        """The committed ids among ``ids`` for records of ``kind``, in one query."""
        wanted = [_to_db(id) for id in ids if _is_text(id)]
        if not wanted or not _is_text(kind):
            self._check_open()
            return set()
        params = (_to_db(kind), wanted)
        rows = self._run(
            f"look up {len(ids)} {kind} ids",
            lambda c: c.execute(self._sql.existing_ids, params).fetchall(),
        )
        return {_from_db(id) for (id,) in rows}

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
        if self._in_transaction():
            raise StorageError(
                "update_outbox() cannot run while this thread has a transaction open; "
                "call it after the transaction has committed"
            )
        if not _is_text(id):
            self._check_open()
            raise NotFound("outbox row", id)
        params = (status, attempts, _to_db(next_attempt_at), _to_db_or_none(last_error), _to_db(id))
        # Setting the same values twice is harmless, so the update may be retried.
        updated = self._run(
            f"update outbox row {id!r}",
            lambda c: c.execute(self._sql.update_outbox, params).rowcount,
        )
        if updated == 0:
            raise NotFound("outbox row", id)

    def close(self) -> None:
        """Close the pool: idle connections now, borrowed ones when they come back. Closing twice
        is fine."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool = self._pool if self._pid == os.getpid() else None
        if pool is not None:
            pool.close()


class _PostgresSchema:
    """One schema as the migrations see it (a :class:`~relcrm.storage._migrations.
    SchemaDatabase`), on an autocommit connection outside the pool."""

    def __init__(self, store: PostgresStore, connection: _Connection, schema: str) -> None:
        self._store = store
        self._connection = connection
        self._schema = schema
        self.name = f"schema {schema!r} of {store._display!r}"

    @contextmanager
    def locked(self) -> Iterator[None]:
        # The advisory lock serialises check-and-change between processes; being
        # transaction-level, it is released by the commit or rollback of the step.
        with self._connection.transaction():
            self._connection.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (_SCHEMA_LOCK, _lock_key(self._schema))
            )
            yield

    def version(self) -> int:
        connection = self._connection
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s::text[])",
                (self._schema, [*_TABLES, "relcrm_schema"]),
            )
        }
        if "relcrm_schema" in tables:
            s = _quote_identifier(self._schema)
            versions = [v for (v,) in connection.execute(f"SELECT version FROM {s}.relcrm_schema")]
            if versions:
                return int(max(versions))
        existing = sorted(tables & set(_TABLES))
        if existing:
            raise BackendUnavailable(
                f"{self.name} is not a relcrm schema: it already has tables named "
                f"{', '.join(existing)} but no relcrm schema version; choose another one with "
                "?schema=NAME"
            )
        return 0

    def apply(self, step: Migration) -> None:
        # Nothing is created that exists already, so a role without CREATE rights can use a
        # schema prepared for it.
        connection = self._connection
        s = _quote_identifier(self._schema)
        action = f"apply relcrm schema step {step.version} ({step.description})"
        with self._store._errors(action, error=BackendUnavailable):
            try:
                found = connection.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,)
                ).fetchone()
                if found is None:
                    connection.execute(f"CREATE SCHEMA {s}")
                for statement in step.statements:
                    connection.execute(statement.replace("{s}", s))
                bump = connection.execute(
                    f"UPDATE {s}.relcrm_schema SET version = %s", (step.version,)
                )
                if bump.rowcount == 0:
                    connection.execute(
                        f"INSERT INTO {s}.relcrm_schema (version) VALUES (%s)", (step.version,)
                    )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise BackendUnavailable(
                    f"{self.name} needs relcrm schema step {step.version} ({step.description}), "
                    f"which this role may not apply: {exc.diag.message_primary or exc}; run "
                    "'relcrm migrate URL' once as a role that owns the schema"
                ) from exc


def migrate(url: str, *, target: int | None = None, dry_run: bool = False) -> MigrationReport:
    """Bring the schema at ``url`` to version ``target`` (by default :data:`SCHEMA_VERSION`),
    applying the missing steps of :data:`MIGRATIONS` in order, each in a transaction of its own,
    and say what was done. Safe while other processes use or migrate the schema; a second call
    does nothing.

    With ``dry_run`` nothing changes and the report lists the pending steps. A ``migrate=false``
    option in the URL does not apply here. A missing schema is created, at ``target``.
    """
    migrator = _SchemaMigrator(url, target=target, dry_run=dry_run)
    migrator.close()
    if migrator.report is None:  # pragma: no cover - set while opening
        raise AssertionError("the schema was not examined")
    return migrator.report


class _SchemaMigrator(PostgresStore):
    """Opens a URL as a store does, but migrates its schema as :func:`migrate` was asked to."""

    def __init__(self, url: str, *, target: int | None, dry_run: bool) -> None:
        self._target = target
        self._dry_run = dry_run
        self.report: MigrationReport | None = None
        super().__init__(url)

    def _settle_schema(self, database: _PostgresSchema) -> None:
        self.report = upgrade(database, MIGRATIONS, target=self._target, dry_run=self._dry_run)

    def _new_pool(self) -> _Pool:
        # Migrating needs no pooled connections: a pool that is never opened holds none.
        return psycopg_pool.ConnectionPool(self._conninfo, open=False)


class _PostgresTransaction:
    """One ``BEGIN`` ... ``COMMIT`` on a pooled connection."""

    #: Stores the text of :class:`~relcrm.storage.base.JSONText` data as it is (see
    #: :func:`relcrm.storage.base.insert_many`).
    takes_json_text = True

    def __init__(self, store: PostgresStore, connection: _Connection) -> None:
        self._store = store
        self._sql = store._sql
        self._connection = connection
        self._finished = False
        self._holds_event_log = False

    def _active(self) -> _Connection:
        if self._finished:
            raise StorageError("this transaction has already finished; begin a new one")
        self._store._check_open()
        return self._connection

    def _version(self, kind: str, id: str) -> int | None:
        row = self._connection.execute(self._sql.version, (_to_db(kind), _to_db(id))).fetchone()
        return None if row is None else int(row[0])

    def _lock_event_log(self, connection: _Connection) -> None:
        """Take the event log's advisory lock (once; held until commit or rollback), so that
        ``seq`` order is commit order."""
        if not self._holds_event_log:
            connection.execute(
                self._sql.lock_event_log, (_EVENT_LOG_LOCK, self._store._event_log_key)
            )
            self._holds_event_log = True

    # -- records -------------------------------------------------------------------------------

    def get(self, kind: str, id: str) -> Record | None:
        """The record, seeing this transaction's own writes, or ``None``."""
        connection = self._active()
        if not _is_text(kind, id):
            return None
        with self._store._errors(f"read {kind} {id!r}"):
            row = connection.execute(self._sql.get, (_to_db(kind), _to_db(id))).fetchone()
        return None if row is None else _record(kind, row)

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Records of ``kind`` matching every given key (with this transaction's writes), by id."""
        connection = self._active()
        if not _is_text(kind, person_id, opening_id):
            return []
        query, params = self._store._find_query(kind, person_id, opening_id)
        with self._store._errors(f"find {kind} records"):
            rows = connection.execute(query, params).fetchall()
        return [_record(kind, row) for row in rows]

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
        key = (_to_db(kind), _to_db(id))
        lookups = (_to_db_or_none(person_id), _to_db_or_none(opening_id))
        with self._store._errors(
            f"write {kind} {id!r}", kind=kind, id=id, expected=expected_version
        ):
            if expected_version == 0:
                cursor = connection.execute(self._sql.insert, (*key, *lookups, text))
            else:
                cursor = connection.execute(
                    self._sql.update, (*lookups, text, *key, expected_version)
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
        with self._store._errors(
            f"delete {kind} {id!r}", kind=kind, id=id, expected=expected_version
        ):
            cursor = connection.execute(
                self._sql.delete, (_to_db(kind), _to_db(id), expected_version)
            )
            if cursor.rowcount != 1:
                actual = self._version(kind, id)
                raise ConcurrencyConflict(kind, id, expected_version, actual)

    def insert_many(self, records: Sequence[Record]) -> None:
        """Insert new records (at version 1) with one ``COPY``. If any ``(kind, id)`` is already
        stored or given twice, raise :class:`relcrm.AlreadyExists` naming the first one."""
        connection = self._active()
        if not records:
            return
        rows = [
            (
                _to_db(record.kind),
                _to_db(record.id),
                1,
                _to_db_or_none(record.person_id),
                _to_db_or_none(record.opening_id),
                dump_mapping(f"data of {record.kind} {record.id!r}", record.data),
            )
            for record in records
        ]
        kinds = [row[0] for row in rows]
        ids = [row[1] for row in rows]
        action = f"insert {len(records)} records"
        with self._store._errors(action):
            self._copy_unique(
                connection,
                self._sql.copy_records,
                rows,
                keys=list(zip(kinds, ids, strict=True)),
                first_taken=lambda upto: self._first_index(
                    self._sql.first_stored, (kinds[:upto], ids[:upto])
                ),
                refusal=lambda i: AlreadyExists(records[i].kind, records[i].id),
                action=action,
            )

    def _first_index(self, statement: str, params: tuple[Any, ...]) -> int | None:
        """The 0-based position that a ``... WITH ORDINALITY ... LIMIT 1`` query returns."""
        found = self._connection.execute(statement, params).fetchone()
        return None if found is None else int(found[0]) - 1

    def _copy_unique(
        self,
        connection: _Connection,
        statement: str,
        rows: Sequence[tuple[Any, ...]],
        *,
        keys: Sequence[Any],
        first_taken: Callable[[int], int | None],
        refusal: Callable[[int], RelcrmError],
        action: str,
    ) -> None:
        """``COPY`` rows in; raise ``refusal(index)`` for the first whose unique key is repeated
        in ``rows`` or already taken (``first_taken(n)`` finds that among the first ``n``), as
        inserting them one at a time would."""
        twice = _first_repeat(keys)
        if twice is not None:
            taken = first_taken(twice)
            raise refusal(twice if taken is None else taken)
        if not self._copy(connection, statement, rows):
            taken = first_taken(len(rows))
            if taken is None:
                raise _vanished(action)
            raise refusal(taken)

    def _copy(
        self, connection: _Connection, statement: str, rows: Sequence[tuple[Any, ...]]
    ) -> bool:
        """``COPY`` rows in under a savepoint; ``False`` (with nothing written, and the transaction
        still usable) when a unique key is taken."""
        connection.execute("SAVEPOINT relcrm_copy")
        try:
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            connection.execute("ROLLBACK TO SAVEPOINT relcrm_copy")
            connection.execute("RELEASE SAVEPOINT relcrm_copy")
            return False
        connection.execute("RELEASE SAVEPOINT relcrm_copy")
        return True

    # -- events --------------------------------------------------------------------------------

    def append_event(self, event: EventRecord) -> EventRecord:
        """Append to the log; returns the event with its ``seq``. A duplicate id is an error."""
        connection = self._active()
        payload = dump_mapping(f"payload of event {event.id!r}", event.payload)
        with self._store._errors(f"append event {event.id!r}", kind="event", id=event.id):
            self._lock_event_log(connection)
            row = connection.execute(
                self._sql.append_event,
                (
                    _to_db(event.id),
                    _to_db(event.type),
                    _to_db(event.occurred_at),
                    _to_db_or_none(event.person_id),
                    payload,
                ),
            ).fetchone()
        if row is None:
            raise AlreadyExists("event", event.id, "event ids are unique in the log")
        return EventRecord(
            id=event.id,
            type=event.type,
            occurred_at=event.occurred_at,
            payload=decode_json(payload),
            person_id=event.person_id,
            seq=int(row[0]),
        )

    def append_events(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Append events in the given order with one ``COPY``; returns them with their ``seq``.
        A logged or repeated id raises :class:`relcrm.AlreadyExists` naming the first one."""
        connection = self._active()
        if not events:
            return []
        payloads = [dump_mapping(f"payload of event {e.id!r}", e.payload) for e in events]
        rows = [
            (
                _to_db(event.id),
                _to_db(event.type),
                _to_db(event.occurred_at),
                _to_db_or_none(event.person_id),
                payload,
            )
            for event, payload in zip(events, payloads, strict=True)
        ]
        ids = [row[0] for row in rows]
        action = f"append {len(events)} events"
        with self._store._errors(action):
            self._lock_event_log(connection)
            self._copy_unique(
                connection,
                self._sql.copy_events,
                rows,
                keys=ids,
                first_taken=lambda upto: self._first_index(self._sql.first_logged, (ids[:upto],)),
                refusal=lambda i: AlreadyExists(
                    "event", events[i].id, "event ids are unique in the log"
                ),
                action=action,
            )
            seqs: dict[str, int] = dict(connection.execute(self._sql.event_seqs, (ids,)).fetchall())
        return [
            EventRecord(
                id=event.id,
                type=event.type,
                occurred_at=event.occurred_at,
                payload=JSONText(payload),
                person_id=event.person_id,
                seq=int(seqs[id]),
            )
            for event, payload, id in zip(events, payloads, ids, strict=True)
        ]

    def replace_event_payload(self, event_id: str, payload: Mapping[str, Any]) -> None:
        """Rewrite one logged event's payload (erasure); :class:`relcrm.NotFound` if unknown."""
        connection = self._active()
        text = dump_mapping(f"payload of event {event_id!r}", payload)
        with self._store._errors(f"replace the payload of event {event_id!r}"):
            cursor = connection.execute(self._sql.replace_payload, (text, _to_db(event_id)))
        if cursor.rowcount != 1:
            raise NotFound("event", event_id)

    # -- outbox --------------------------------------------------------------------------------

    def _outbox_row(self, row: OutboxRecord) -> tuple[Any, ...]:
        check_status(row.status)
        return (
            _to_db(row.id),
            _to_db(row.event_id),
            _to_db(row.notifier),
            dump_mapping(f"recipient of outbox row {row.id!r}", row.recipient),
            dump_mapping(f"payload of outbox row {row.id!r}", row.payload),
            row.status,
            row.attempts,
            _to_db(row.next_attempt_at),
            _to_db_or_none(row.last_error),
        )

    def add_outbox(self, row: OutboxRecord) -> None:
        """Queue a notification for delivery after commit. A duplicate id is an error."""
        connection = self._active()
        values = self._outbox_row(row)
        with self._store._errors(f"add outbox row {row.id!r}"):
            cursor = connection.execute(self._sql.add_outbox, values)
        if cursor.rowcount != 1:
            raise AlreadyExists("outbox row", row.id, "outbox ids are unique")

    def add_outbox_many(self, rows: Sequence[OutboxRecord]) -> None:
        """Queue many notifications with one ``COPY``. A queued or repeated id raises
        :class:`relcrm.AlreadyExists` naming the first one."""
        connection = self._active()
        if not rows:
            return
        values = [self._outbox_row(row) for row in rows]
        action = f"add {len(rows)} outbox rows"
        with self._store._errors(action):
            ids = [value[0] for value in values]
            self._copy_unique(
                connection,
                self._sql.copy_outbox,
                values,
                keys=ids,
                first_taken=lambda upto: self._first_index(self._sql.first_queued, (ids[:upto],)),
                refusal=lambda i: AlreadyExists("outbox row", rows[i].id, "outbox ids are unique"),
                action=action,
            )


def _first_repeat(keys: Iterable[Any]) -> int | None:
    """The index of the first key equal to an earlier one, or ``None``."""
    seen: set[Any] = set()
    for index, key in enumerate(keys):
        if key in seen:
            return index
        seen.add(key)
    return None


def _vanished(action: str) -> StorageError:
    return StorageError(
        f"PostgreSQL could not {action}: a unique key was taken by a concurrent transaction "
        "that has since removed it again; try again"
    )
