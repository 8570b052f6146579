"""Schema migrations of the SQL backends (SQLite on a file, PostgreSQL in a fresh schema).

Old databases are made the way old relcrm made them: version 1 from its DDL, frozen here, and every
later earlier version by applying the steps up to it. Rows are written into them with plain SQL,
as the old code wrote them; then the current code opens or migrates them, and everything written
must read back the same through the store, at the current version, with the new indexes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import pytest
from click.testing import CliRunner

import relcrm
import relcrm.storage.sqlite as sqlite_backend
from relcrm.cli import cli
from relcrm.exceptions import BackendUnavailable
from relcrm.storage._migrations import Migration, check_history
from relcrm.storage.base import EventRecord, OutboxRecord, Record, Store

SRC = str(Path(relcrm.__file__).resolve().parents[1])

#: The index columns the latest schema has (and version 1 had without the trailing ``id``).
LATEST_INDEXES = {
    "records_by_person": ["kind", "person_id", "id"],
    "records_by_opening": ["kind", "opening_id", "id"],
    "outbox_due": ["status", "next_attempt_at", "id"],
    "events_by_person": ["person_id", "seq"],
    "outbox_by_event": ["event_id"],
}
VERSION_1_INDEXES = {
    **LATEST_INDEXES,
    "records_by_person": ["kind", "person_id"],
    "records_by_opening": ["kind", "opening_id"],
    "outbox_due": ["status", "next_attempt_at"],
}

# -- the schema as relcrm 0.1 (schema version 1) created it; never edit ---------------------------

SQLITE_VERSION_1 = (
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
    "INSERT INTO relcrm_schema (version) VALUES (1)",
)

POSTGRES_VERSION_1 = (
    "CREATE TABLE {s}.relcrm_schema (version integer NOT NULL)",
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
    "INSERT INTO {s}.relcrm_schema (version) VALUES (1)",
)

# -- what the old code stored ---------------------------------------------------------------------

RECORDS = [
    Record("person", "p1", 3, {"name": "Ada", "skills": ["python"]}, person_id="p1"),
    Record("person", "p2", 1, {"name": "Grace", "note": "Zoë ✓"}, person_id="p2"),
    Record("opening", "o1", 2, {"title": "Data Engineer"}, opening_id="o1"),
    Record("candidacy", "c1", 4, {"stage": "interview"}, person_id="p1", opening_id="o1"),
    Record("candidacy", "c2", 1, {"stage": "lead"}, person_id="p2", opening_id="o1"),
    Record("relationship", "p1", 2, {"stage": "warm"}, person_id="p1"),
]
EVENTS = [
    EventRecord("e1", "person.created", "2024-01-01T09:00:00Z", {"n": 1}, person_id="p1", seq=1),
    EventRecord("e2", "opening.created", "2024-01-01T09:01:00Z", {"big": 2**64}, seq=2),
    EventRecord("e3", "candidacy.created", "2024-01-02T10:00:00Z", {"n": 3}, person_id="p1", seq=3),
]
OUTBOX = [
    OutboxRecord(
        id="n1",
        event_id="e1",
        notifier="log",
        recipient={"role": "recruiter"},
        payload={"text": "hi"},
        status="delivered",
        attempts=1,
        next_attempt_at="2024-01-01T09:00:00Z",
    ),
    OutboxRecord(
        id="n2",
        event_id="e3",
        notifier="memory",
        recipient={"role": "candidate", "id": "p1"},
        payload={"text": "new"},
        status="pending",
        attempts=2,
        next_attempt_at="2024-01-02T10:05:00Z",
        last_error="timed out",
    ),
]


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- one old database per backend -----------------------------------------------------------------


class OldDatabase(Protocol):
    """A database that the test shapes with plain SQL, as old relcrm code would have."""

    url: str
    module: ModuleType

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders, ``{s}`` for the schema) and return its rows."""
        ...

    def create_version_1(self) -> None: ...

    def index_columns(self) -> dict[str, list[str]]: ...

    def layout(self) -> set[tuple[str, ...]]:
        """Every table, column and index, in a form that does not depend on where it lives."""
        ...

    def step_sql(self, statement: str) -> str:
        """``statement`` (``{s}.`` before table names) as this backend's steps write it."""
        ...

    def open(self, url: str | None = None) -> Store: ...

    def elsewhere(self) -> contextlib.AbstractContextManager[OldDatabase]:
        """Another database of the same kind, not created yet (removed afterwards)."""
        ...


class OldSQLite:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.module = sqlite_backend

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
            return connection.execute(statement.replace("{s}.", ""), params).fetchall()

    def create_version_1(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("BEGIN IMMEDIATE")
            for statement in SQLITE_VERSION_1:
                connection.execute(statement)
            connection.execute("COMMIT")

    def index_columns(self) -> dict[str, list[str]]:
        names = [n for (n,) in self.run("SELECT name FROM sqlite_master WHERE type = 'index'")]
        return {
            name: [column for (_, _, column) in self.run(f"PRAGMA index_info({name})")]
            for name in names
            if not name.startswith("sqlite_autoindex")
        }

    def layout(self) -> set[tuple[str, ...]]:
        return {
            (kind, name, " ".join(sql.split()))
            for kind, name, sql in self.run("SELECT type, name, sql FROM sqlite_master")
            if sql is not None
        }

    def step_sql(self, statement: str) -> str:
        return statement.replace("{s}.", "")

    def open(self, url: str | None = None) -> Store:
        return sqlite_backend.SQLiteStore(url or self.url)

    @contextlib.contextmanager
    def elsewhere(self) -> Iterator[OldDatabase]:
        yield OldSQLite(self.path.with_name(f"other-{uuid.uuid4().hex[:8]}.db"))


def _server(url: str) -> str:
    """``url`` without relcrm's own options, as libpq understands it."""
    own = {"schema", "pool_min", "pool_max", "pool_timeout", "migrate"}
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in own]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


class OldPostgres:
    def __init__(self, url: str) -> None:
        import relcrm.storage.postgres as postgres_backend

        self.url = url
        self.module = postgres_backend
        self.schema = dict(parse_qsl(urlsplit(url).query))["schema"]

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        quoted = '"' + self.schema.replace('"', '""') + '"'
        text = statement.replace("?", "%s").replace("{s}", quoted)
        with psycopg.connect(_server(self.url), autocommit=True) as connection:
            cursor = connection.execute(text.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def create_version_1(self) -> None:
        import psycopg

        quoted = '"' + self.schema.replace('"', '""') + '"'
        with (
            psycopg.connect(_server(self.url), autocommit=True) as connection,
            connection.transaction(),
        ):
            for statement in POSTGRES_VERSION_1:
                connection.execute(statement.replace("{s}", quoted).encode())

    def index_columns(self) -> dict[str, list[str]]:
        rows = self.run(
            "SELECT i.relname, a.attname FROM pg_index AS x "
            "JOIN pg_class AS i ON i.oid = x.indexrelid "
            "JOIN pg_namespace AS n ON n.oid = i.relnamespace "
            "JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k (attnum, ord) ON true "
            "JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum "
            "WHERE n.nspname = ? AND NOT x.indisprimary AND NOT x.indisunique "
            "ORDER BY i.relname, k.ord",
            (self.schema,),
        )
        columns: dict[str, list[str]] = {}
        for index, column in rows:
            columns.setdefault(index, []).append(column)
        return columns

    def layout(self) -> set[tuple[str, ...]]:
        columns = self.run(
            "SELECT table_name, column_name, data_type, coalesce(collation_name, ''), "
            "is_nullable, is_identity FROM information_schema.columns WHERE table_schema = ?",
            (self.schema,),
        )
        indexes = self.run(
            "SELECT indexname, replace(indexdef, ?, 'SCHEMA') FROM pg_indexes WHERE schemaname = ?",
            (f"{self.schema}.", self.schema),
        )
        return {("column", *row) for row in columns} | {("index", *row) for row in indexes}

    def step_sql(self, statement: str) -> str:
        return statement

    def open(self, url: str | None = None) -> Store:
        store: Store = self.module.PostgresStore(url or self.url)
        return store

    @contextlib.contextmanager
    def elsewhere(self) -> Iterator[OldDatabase]:
        import psycopg

        schema = f"relcrm_test_other_{uuid.uuid4().hex[:8]}"
        try:
            yield OldPostgres(_with_schema(self.url, schema))
        finally:
            with psycopg.connect(_server(self.url), autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def old(request: pytest.FixtureRequest, tmp_path: Path) -> OldDatabase:
    """A database of each SQL backend, still empty (the PostgreSQL one skips without a server,
    except under CI=true)."""
    if request.param == "sqlite":
        return OldSQLite(tmp_path / "talent.db")
    return OldPostgres(request.getfixturevalue("postgres_url"))


def write_old_rows(db: OldDatabase) -> None:
    """Records, events and outbox rows, written with the columns of schema version 1."""
    for r in RECORDS:
        db.run(
            "INSERT INTO {s}.records (kind, id, version, person_id, opening_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (r.kind, r.id, r.version, r.person_id, r.opening_id, dump(r.data)),
        )
    for e in EVENTS:
        db.run(
            "INSERT INTO {s}.events (id, type, occurred_at, person_id, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (e.id, e.type, e.occurred_at, e.person_id, dump(e.payload)),
        )
    for o in OUTBOX:
        db.run(
            "INSERT INTO {s}.outbox (id, event_id, notifier, recipient, payload, status, "
            "attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                o.id,
                o.event_id,
                o.notifier,
                dump(o.recipient),
                dump(o.payload),
                o.status,
                o.attempts,
                o.next_attempt_at,
                o.last_error,
            ),
        )


def make_old(db: OldDatabase, version: int) -> None:
    """Bring the empty ``db`` to schema ``version`` the way relcrm did, with the old rows in it."""
    if version == 1:
        db.create_version_1()
    else:
        report = db.module.migrate(db.url, target=version)
        assert (report.from_version, report.to_version) == (0, version)
    write_old_rows(db)
    assert stored_version(db) == version


def stored_version(db: OldDatabase) -> int:
    [(version,)] = db.run("SELECT version FROM {s}.relcrm_schema")
    return int(version)


def assert_old_rows_intact(store: Store) -> None:
    for record in RECORDS:
        assert store.get(record.kind, record.id) == record
    assert [r.id for r in store.find("candidacy", person_id="p1")] == ["c1"]
    assert [r.id for r in store.find("candidacy", opening_id="o1")] == ["c1", "c2"]
    assert [r.id for r in store.find("candidacy", person_id="p2", opening_id="o1")] == ["c2"]
    assert store.find("person") == [r for r in RECORDS if r.kind == "person"]
    assert store.events() == EVENTS
    assert store.events(person_id="p1") == [EVENTS[0], EVENTS[2]]
    assert store.outbox(status=None) == OUTBOX
    assert store.outbox(due_by="2024-12-31T00:00:00Z", limit=1) == [OUTBOX[1]]


def assert_still_writable(store: Store) -> None:
    with store.transaction() as tx:
        updated = tx.put("person", "p1", {"name": "Ada L."}, expected_version=3, person_id="p1")
        appended = tx.append_event(EventRecord("e4", "person.updated", "2024-02-01T00:00:00Z", {}))
    assert updated.version == 4
    assert appended.seq > EVENTS[-1].seq


EARLIER_VERSIONS = range(1, sqlite_backend.SCHEMA_VERSION)


def test_the_backends_are_at_the_same_version() -> None:
    assert sqlite_backend.SCHEMA_VERSION >= 2  # so that there are old databases to test
    try:
        import relcrm.storage.postgres as postgres_backend
    except ImportError:  # CI must run this; elsewhere the driver is optional
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("the PostgreSQL backend needs relcrm[postgres]")
    assert postgres_backend.SCHEMA_VERSION == sqlite_backend.SCHEMA_VERSION
    assert [m.version for m in postgres_backend.MIGRATIONS] == [
        m.version for m in sqlite_backend.MIGRATIONS
    ]


# -- upgrading old databases ----------------------------------------------------------------------


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
def test_opening_an_old_database_migrates_it(old: OldDatabase, version: int) -> None:
    make_old(old, version)
    if version == 1:
        assert old.index_columns() == VERSION_1_INDEXES
    with old.open() as store:
        assert_old_rows_intact(store)
        assert_still_writable(store)
    assert stored_version(old) == old.module.SCHEMA_VERSION
    assert old.index_columns() == LATEST_INDEXES
    assert old.run("SELECT count(*) FROM {s}.relcrm_schema") == [(1,)]


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
def test_migrate_brings_an_old_database_up_once(old: OldDatabase, version: int) -> None:
    make_old(old, version)
    latest = old.module.SCHEMA_VERSION
    report = old.module.migrate(old.url)
    assert (report.from_version, report.to_version, report.dry_run) == (version, latest, False)
    assert [step.version for step in report.steps] == list(range(version + 1, latest + 1))
    assert report.steps == old.module.MIGRATIONS[version:]
    assert stored_version(old) == latest
    assert old.index_columns() == LATEST_INDEXES
    again = old.module.migrate(old.url)
    assert (again.from_version, again.to_version, again.steps) == (latest, latest, ())
    with old.open() as store:
        assert_old_rows_intact(store)


def test_a_migrated_database_has_the_layout_of_a_new_one(old: OldDatabase) -> None:
    make_old(old, 1)
    old.module.migrate(old.url)
    with old.elsewhere() as fresh:
        fresh.open().close()
        assert old.layout() == fresh.layout()


def test_version_1_is_the_schema_relcrm_first_created(old: OldDatabase) -> None:
    old.create_version_1()
    with old.elsewhere() as other:
        report = other.module.migrate(other.url, target=1)
        assert [step.version for step in report.steps] == [1]
        assert other.layout() == old.layout()
        assert other.index_columns() == VERSION_1_INDEXES


def test_a_dry_run_changes_nothing(old: OldDatabase) -> None:
    make_old(old, 1)
    before = old.layout()
    report = old.module.migrate(old.url, dry_run=True)
    assert (report.from_version, report.to_version, report.dry_run) == (
        1,
        old.module.SCHEMA_VERSION,
        True,
    )
    assert report.steps == old.module.MIGRATIONS[1:]
    assert stored_version(old) == 1
    assert old.layout() == before


def test_a_step_that_fails_leaves_the_version_before_it(
    old: OldDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old(old, 1)
    latest = old.module.SCHEMA_VERSION
    broken = Migration(
        latest + 1,
        "a step that fails half-way",
        (
            old.step_sql("CREATE TABLE {s}.half_done (x integer)"),
            old.step_sql("INSERT INTO {s}.no_such_table VALUES (1)"),
        ),
    )
    monkeypatch.setattr(old.module, "MIGRATIONS", (*old.module.MIGRATIONS, broken))
    with pytest.raises(BackendUnavailable, match=f"step {latest + 1} \\(a step that fails"):
        old.open()
    # The steps before it were applied and committed; the failed one left nothing behind.
    assert stored_version(old) == latest
    assert old.index_columns() == LATEST_INDEXES
    assert "half_done" not in repr(old.layout())
    monkeypatch.undo()
    with old.open() as store:
        assert_old_rows_intact(store)


# -- refusals -------------------------------------------------------------------------------------


def test_a_newer_database_is_refused(old: OldDatabase) -> None:
    old.open().close()
    latest = old.module.SCHEMA_VERSION
    old.run("UPDATE {s}.relcrm_schema SET version = ?", (latest + 3,))
    expected = f"schema version {latest + 3}, newer than version {latest}"
    for url in (old.url, f"{old.url}{'&' if '?' in old.url else '?'}migrate=false"):
        with pytest.raises(BackendUnavailable, match=expected):
            old.open(url)
    with pytest.raises(BackendUnavailable, match=expected):
        old.module.migrate(old.url)
    with pytest.raises(BackendUnavailable, match=expected):
        old.module.migrate(old.url, dry_run=True)
    assert stored_version(old) == latest + 3


def test_an_unrelated_database_is_refused_by_migrate_too(old: OldDatabase) -> None:
    old.run("CREATE TABLE {s}.events (whatever text)")
    for attempt in (old.open, lambda: old.module.migrate(old.url)):
        with pytest.raises(BackendUnavailable, match="not a relcrm"):
            attempt()
    assert old.run("SELECT count(*) FROM {s}.events") == [(0,)]


def with_migrate_false(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}migrate=false"


def test_migrate_false_refuses_an_old_database_and_changes_nothing(old: OldDatabase) -> None:
    make_old(old, 1)
    latest = old.module.SCHEMA_VERSION
    with pytest.raises(BackendUnavailable) as caught:
        old.open(with_migrate_false(old.url))
    message = str(caught.value)
    assert f"version 1, older than version {latest}" in message
    assert "relcrm migrate" in message
    assert "migrate=false" in message
    assert old.module.MIGRATIONS[1].description in message
    assert stored_version(old) == 1
    assert old.index_columns() == VERSION_1_INDEXES
    # relcrm.open passes the URL on, so the option works there too; migrate() ignores it.
    with pytest.raises(BackendUnavailable, match="relcrm migrate"):
        relcrm.open(with_migrate_false(old.url), load_entrypoints=False)
    report = old.module.migrate(with_migrate_false(old.url))
    assert report.to_version == latest
    with relcrm.open(with_migrate_false(old.url), load_entrypoints=False) as crm:
        assert crm.store.get("person", "p2") == RECORDS[1]


def test_migrate_false_refuses_to_create_a_schema(old: OldDatabase) -> None:
    with pytest.raises(BackendUnavailable, match=r"no relcrm schema yet.*relcrm migrate"):
        old.open(with_migrate_false(old.url))
    if isinstance(old, OldSQLite):
        assert not old.path.exists()
        old.run("CREATE TABLE unrelated (x integer)")  # a file, but no relcrm schema in it
        with pytest.raises(BackendUnavailable, match=r"no relcrm schema yet.*relcrm migrate"):
            old.open(with_migrate_false(old.url))
    old.module.migrate(old.url)
    old.open(with_migrate_false(old.url)).close()


@pytest.mark.parametrize("value", ["", "no", "maybe"])
def test_migrate_option_must_be_true_or_false(old: OldDatabase, value: str) -> None:
    url = f"{old.url}{'&' if '?' in old.url else '?'}migrate={value}"
    with pytest.raises(BackendUnavailable, match=r"migrate .* must be true or false"):
        old.open(url)


def test_bad_targets_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'talent.db'}"
    for target in (0, sqlite_backend.SCHEMA_VERSION + 1):
        with pytest.raises(ValueError, match="target must be a schema version"):
            sqlite_backend.migrate(url, target=target)


def test_a_target_below_the_version_changes_nothing(old: OldDatabase) -> None:
    old.module.migrate(old.url)
    report = old.module.migrate(old.url, target=1)
    latest = old.module.SCHEMA_VERSION
    assert (report.from_version, report.to_version, report.steps) == (latest, latest, ())


def test_the_history_is_numbered_in_order() -> None:
    step = Migration(1, "one", ())
    assert check_history(step) == (step,)
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        check_history(step, attrs.evolve(step, version=3))
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        check_history(attrs.evolve(step, version=2))


# -- what version 2 is for ------------------------------------------------------------------------


def test_sqlite_finds_by_person_and_reads_the_outbox_through_the_new_indexes(
    tmp_path: Path,
) -> None:
    db = OldSQLite(tmp_path / "talent.db")
    make_old(db, 1)
    db.module.migrate(db.url)
    plans = {
        "find": "SELECT id FROM records WHERE kind = ? AND person_id = ? ORDER BY id",
        "find_opening": "SELECT id FROM records WHERE kind = ? AND opening_id = ? ORDER BY id",
        "due": "SELECT id FROM outbox WHERE status = ? AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, id LIMIT 10",
    }
    found = {
        name: " / ".join(row[-1] for row in db.run(f"EXPLAIN QUERY PLAN {query}", ("a", "b")))
        for name, query in plans.items()
    }
    assert "records_by_person" in found["find"], found
    assert "records_by_opening" in found["find_opening"], found
    assert "outbox_due" in found["due"], found
    assert not any("TEMP B-TREE" in plan for plan in found.values()), found


# -- several processes at once --------------------------------------------------------------------

#: Each process opens (or migrates) the database after the start signal, with every step also
#: writing a row that names the process into ``applied_steps``, in the step's transaction. Each
#: process pauses a little before taking the lock, and holds it a while after reading the version,
#: so that the processes' checks and steps interleave.
CHILD = r"""
import contextlib, json, os, random, sys, time
from relcrm.storage._migrations import Migration

backend_name, url, mode, ready, go = sys.argv[1:6]
if backend_name == "sqlite":
    import relcrm.storage.sqlite as backend
    opener, schema_class = backend.SQLiteStore, backend._SQLiteSchema
    table = "applied_steps"
else:
    import relcrm.storage.postgres as backend
    opener, schema_class = backend.PostgresStore, backend._PostgresSchema
    table = "{s}.applied_steps"
read_version, take_lock = schema_class.version, schema_class.locked


def slow_version(self):
    found = read_version(self)
    time.sleep(0.02)
    return found


@contextlib.contextmanager
def late_lock(self):
    time.sleep(random.uniform(0, 0.03))
    with take_lock(self):
        yield


schema_class.version, schema_class.locked = slow_version, late_lock
pid = os.getpid()
backend.MIGRATIONS = tuple(
    Migration(
        step.version,
        step.description,
        (*step.statements, f"INSERT INTO {table} (version, pid) VALUES ({step.version}, {pid})"),
    )
    for step in backend.MIGRATIONS
)
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.001)
if mode == "open":
    opener(url).close()
    print(json.dumps({"mode": mode, "to_version": backend.SCHEMA_VERSION}))
else:
    report = backend.migrate(url)
    print(json.dumps({"mode": mode, "to_version": report.to_version}))
"""


def run_at_once(backend_name: str, url: str, count: int, folder: Path) -> list[dict[str, Any]]:
    """Start ``count`` processes, half opening a store and half calling ``migrate()``, release
    them together, and return what each printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    go = folder / "go"
    processes = []
    for n in range(count):
        mode = "open" if n % 2 else "migrate"
        ready = folder / f"ready-{n}"
        args = [backend_name, url, mode, str(ready), str(go)]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((folder / f"ready-{n}").exists() for n in range(count)):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.01)
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert "Traceback" not in err, err
        results.append(json.loads(out))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("start", [0, 1], ids=["new", "version-1"])
def test_processes_migrating_at_once_apply_each_step_exactly_once(
    old: OldDatabase, start: int, tmp_path: Path
) -> None:
    if start:
        make_old(old, start)
    old.run("CREATE TABLE {s}.applied_steps (version integer NOT NULL, pid integer NOT NULL)")
    backend_name = "sqlite" if isinstance(old, OldSQLite) else "postgresql"
    latest = old.module.SCHEMA_VERSION
    folder = tmp_path / "signals"
    folder.mkdir()
    results = run_at_once(backend_name, old.url, 6, folder)
    assert [r["to_version"] for r in results] == [latest] * 6
    applied = old.run("SELECT version, pid FROM {s}.applied_steps ORDER BY version")
    assert [version for version, _ in applied] == list(range(start + 1, latest + 1)), applied
    assert stored_version(old) == latest
    assert old.index_columns() == LATEST_INDEXES
    if start:
        with old.open() as store:
            assert_old_rows_intact(store)


# -- the command ----------------------------------------------------------------------------------


def cli_run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_cli_migrate_applies_the_pending_steps_once(old: OldDatabase) -> None:
    make_old(old, 1)
    latest = old.module.SCHEMA_VERSION
    step = old.module.MIGRATIONS[1]
    dry = cli_run("migrate", old.url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"schema version 1 -> {latest}" in dry.stdout
    assert f"pending step 2: {step.description}" in dry.stdout
    assert "Nothing was changed" in dry.stdout
    assert stored_version(old) == 1

    done = cli_run("migrate", old.url)
    assert done.exit_code == 0, done.output
    assert f"schema version 1 -> {latest}" in done.stdout
    assert f"applied step 2: {step.description}" in done.stdout
    assert stored_version(old) == latest
    assert old.index_columns() == LATEST_INDEXES

    again = cli_run("migrate", old.url)
    assert again.exit_code == 0, again.output
    assert f"schema version {latest}, up to date; nothing to do" in again.stdout
    with old.open() as store:
        assert_old_rows_intact(store)


def test_cli_migrate_takes_a_path_and_creates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    dry = cli_run("migrate", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "schema version 0 (no relcrm schema) -> " in dry.stdout
    assert "pending step 1: " in dry.stdout
    assert not path.exists()
    done = cli_run("migrate", str(path))
    assert done.exit_code == 0, done.output
    assert "applied step 1: " in done.stdout
    assert stored_version(OldSQLite(path)) == sqlite_backend.SCHEMA_VERSION


def test_cli_migrate_errors_are_one_line(tmp_path: Path) -> None:
    db = OldSQLite(tmp_path / "talent.db")
    db.open().close()
    db.run("UPDATE relcrm_schema SET version = 99")
    newer = cli_run("migrate", db.url)
    assert newer.exit_code == 1
    assert newer.stderr.startswith("relcrm: error: ")
    assert len(newer.stderr.splitlines()) == 1, newer.stderr
    assert f"version 99, newer than version {sqlite_backend.SCHEMA_VERSION}" in newer.stderr
    for url, fragment in (
        ("memory://", "no schema to migrate"),
        ("tenant://acme", "knows the sqlite and postgresql backends"),
    ):
        result = cli_run("migrate", url)
        assert result.exit_code == 1
        assert fragment in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_cli_migrate_as_a_real_command(tmp_path: Path) -> None:
    db = OldSQLite(tmp_path / "talent.db")
    make_old(db, 1)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "relcrm.cli", "migrate", db.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"-> {sqlite_backend.SCHEMA_VERSION}" in done.stdout
    assert stored_version(db) == sqlite_backend.SCHEMA_VERSION


def test_a_file_that_cannot_be_created_is_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="cannot open"):
        sqlite_backend.migrate(f"sqlite:///{tmp_path / 'missing' / 'talent.db'}")
