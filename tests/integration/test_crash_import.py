"""Crash safety of bulk import: kill the importing process, or the database server, at a random
moment, then check what the store holds and that the import resumes without duplicating anyone.

A child process (``crash_child.py``) imports 10,000 JSON Resume documents in batches and journals
each batch whose commit has returned. The parent stops it with SIGKILL (SQLite and PostgreSQL) or
stops the PostgreSQL server with an immediate shutdown, after a random delay (seeded, printed)
within the time an uninterrupted import takes on this machine. Then:

* every batch in the journal is complete in the store, and no batch is partly there;
* every person has their relationship record and exactly one ``person.created`` event;
* every event has its outbox rows, and every outbox row its event;
* SQLite's ``PRAGMA integrity_check`` says ``ok``;
* with the server stopped, the importer fails with a relcrm ``StorageError``, not a driver error;
* importing the same file again adds exactly the people missing: 10,000 people, each once.

How many times each runs is set by environment variables: ``RELCRM_CRASH_ITERATIONS`` (SIGKILL on
SQLite, default 50), ``RELCRM_CRASH_ITERATIONS_POSTGRES`` (SIGKILL on PostgreSQL, default 5),
``RELCRM_CRASH_SHUTDOWNS`` (immediate shutdowns, default 3); ``RELCRM_CRASH_SEED`` moves every
seed. ``nox -s crash`` runs many more iterations.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import relcrm
from relcrm.interchange import import_people, person_id_for_email
from relcrm.storage.base import Store, existing_ids

from ..conftest import _fresh_schema, _server_url, _unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]


def _whole_number(name: str, default: int) -> int:
    value = int(os.environ.get(name) or default)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")
    return value


PEOPLE = 10_000
BATCH_SIZE = 250
SQLITE_ITERATIONS = _whole_number("RELCRM_CRASH_ITERATIONS", 50)
POSTGRES_ITERATIONS = _whole_number("RELCRM_CRASH_ITERATIONS_POSTGRES", 5)
SHUTDOWN_ITERATIONS = _whole_number("RELCRM_CRASH_SHUTDOWNS", 3)
BASE_SEED = _whole_number("RELCRM_CRASH_SEED", 7_000)

CHILD = Path(__file__).with_name("crash_child.py")
NOTIFIERS = ("log",)  # as in crash_child.py
ACTOR = relcrm.Actor(relcrm.ActorRole.SYSTEM, "crash-test-resume")
#: Seconds the importing process may take to start, or to give up once the server is gone.
STARTUP_TIMEOUT = 120.0
FAILURE_TIMEOUT = 120.0
#: Seconds to wait for other clients of a shared server to leave before stopping it.
QUIET_TIMEOUT = 60.0
#: Seconds the restarted server may take to accept connections.
RESTART_TIMEOUT = 120.0

ROLES = ("Backend Developer", "Data Analyst", "Nurse", "Site Reliability Engineer", "Recruiter")
SKILLS = ("Python", "SQL", "Kubernetes", "Patient care", "Excel", "Go", "Sourcing", "Terraform")
PLACES = (("Leeds", "GB"), ("Berlin", "DE"), ("Lyon", "FR"), ("Toronto", "CA"), ("Nairobi", "KE"))


# --------------------------------------------------------------------------------------------
# The workload: one file of JSON Resume documents, and the person ids of each batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    path: Path
    #: The person ids of each batch, in file order (batch ``k`` of the journal is ``batches[k-1]``).
    batches: tuple[tuple[str, ...], ...]

    @property
    def ids(self) -> list[str]:
        return [pid for batch in self.batches for pid in batch]


def _resume(n: int) -> dict[str, Any]:
    city, country = PLACES[n % len(PLACES)]
    return {
        "basics": {
            "name": f"Crash Test {n}",
            "email": f"crash.test.{n}@example.org",
            "label": ROLES[n % len(ROLES)],
            "location": {"city": city, "countryCode": country},
        },
        "work": [
            {
                "name": f"Employer {n % 97}",
                "position": ROLES[n % len(ROLES)],
                "startDate": f"{2010 + n % 12}-{1 + n % 12:02d}",
                "highlights": [f"Shipped project {n}"],
            }
        ],
        "skills": [{"name": SKILLS[n % len(SKILLS)], "keywords": [SKILLS[n * 7 % len(SKILLS)]]}],
    }


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    path = tmp_path_factory.mktemp("crash") / "people.jsonl"
    documents = [_resume(n) for n in range(PEOPLE)]
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    ids = [person_id_for_email(d["basics"]["email"]) for d in documents]
    assert len(set(ids)) == PEOPLE
    batches = tuple(tuple(ids[i : i + BATCH_SIZE]) for i in range(0, PEOPLE, BATCH_SIZE))
    return Workload(path, batches)


# --------------------------------------------------------------------------------------------
# The importing process
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ending:
    """How the importing process ended: killed, ``done`` or ``failed`` (with its last line)."""

    how: str
    result: dict[str, Any]
    journaled: int


class Importer:
    """``crash_child.py`` importing ``workload`` into ``url``, journaling to ``directory``."""

    def __init__(self, url: str, workload: Workload, directory: Path) -> None:
        self.journal = directory / "journal.jsonl"
        self.stderr_path = directory / "importer.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, CHILD, url, workload.path, self.journal, str(BATCH_SIZE)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )

    def wait_ready(self) -> float:
        """Wait until the importer is about to import; the moment it said so."""
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline() if readable else ""
        if line.strip() != "ready":
            self.close()
            pytest.fail(f"the importer did not start: {line!r}\n{self.stderr()}")
        return time.monotonic()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)  # nothing happens if it has already exited

    def close(self) -> None:
        """Kill the importer if it is still running, and reap it."""
        if self.process.returncode is None:
            self.kill()
            self.process.communicate()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def finish(self, timeout: float) -> Ending:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"the importer did not end within {timeout:g} s\n{self.stderr()}")
        code = self.process.returncode
        lines = [line for line in out.splitlines() if line.strip()]
        result = json.loads(lines[-1]) if lines else {}
        if code == -signal.SIGKILL:
            how = "killed"
        elif code == 0 and result.get("outcome") == "done":
            how = "done"
        elif result.get("outcome") == "failed":
            how = "failed"
        else:
            pytest.fail(f"the importer ended with status {code}: {out!r}\n{self.stderr()}")
        return Ending(how, result, self._journaled())

    def _journaled(self) -> int:
        """How many batches the journal says committed, checking that it is well formed."""
        if not self.journal.exists():
            return 0
        entries = [json.loads(line) for line in self.journal.read_text().splitlines()]
        for number, entry in enumerate(entries, 1):
            expected = {"batch": number, "done": min(number * BATCH_SIZE, PEOPLE)}
            assert entry == expected, f"journal line {number}: {entry}"
        return len(entries)


# --------------------------------------------------------------------------------------------
# What the store holds
# --------------------------------------------------------------------------------------------


def _open(url: str) -> relcrm.CRM:
    return relcrm.open(url, notifiers=NOTIFIERS, load_entrypoints=False, autodispatch=False)


def _outbox_rows_per_event(store: Store) -> int:
    """How many outbox rows each ``person.created`` event of this workload gets (the same for
    all of them, and at least one: the candidate is told, once per notifier)."""
    counts = set(Counter(row.event_id for row in store.outbox(status=None)).values())
    assert len(counts) == 1, f"events with different numbers of outbox rows: {counts}"
    (rows,) = counts
    assert rows >= len(NOTIFIERS)
    return rows


def check_store(store: Store, workload: Workload, rows_per_event: int) -> set[int]:
    """Check that the store holds whole batches, each person with a relationship, one event and
    its outbox rows; return the numbers of the batches it holds (from 1, as in the journal)."""
    ids = workload.ids
    people = existing_ids(store, "person", ids)
    present = [sum(pid in people for pid in batch) for batch in workload.batches]
    partial = [
        f"batch {k}: {n} of {len(batch)}"
        for k, (n, batch) in enumerate(zip(present, workload.batches, strict=True), 1)
        if 0 < n < len(batch)
    ]
    assert not partial, f"partly written batches are visible: {partial}"

    relationships = existing_ids(store, "relationship", ids)
    assert relationships == people, (
        f"{len(people - relationships)} people without a relationship, "
        f"{len(relationships - people)} relationships without a person"
    )

    events = store.events()
    kinds = Counter(e.type for e in events)
    assert set(kinds) <= {"person.created"}, f"unexpected events: {kinds}"
    created = Counter(e.person_id for e in events)
    assert set(created) == people, (
        f"{len(people - set(created))} people without a person.created event, "
        f"{len(set(created) - people)} events for people not in the store"
    )
    twice = [pid for pid, n in created.items() if n > 1]
    assert not twice, f"{len(twice)} people with more than one person.created event: {twice[:5]}"

    rows = store.outbox(status=None)
    assert {row.notifier for row in rows} <= set(NOTIFIERS)
    per_event = Counter(row.event_id for row in rows)
    event_ids = {e.id for e in events}
    orphans = set(per_event) - event_ids
    assert not orphans, f"{len(orphans)} outbox rows' events are not in the log"
    short = [eid for eid in event_ids if per_event[eid] != rows_per_event]
    assert not short, (
        f"{len(short)} events without their {rows_per_event} outbox row(s), e.g. "
        f"{[(eid, per_event[eid]) for eid in short[:3]]}"
    )
    return {k for k, n in enumerate(present, 1) if n}


def check_sqlite_integrity(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        result = connection.execute("PRAGMA integrity_check").fetchall()
    assert result == [("ok",)], f"PRAGMA integrity_check: {result[:10]}"


# --------------------------------------------------------------------------------------------
# One crash and the resume after it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """An uninterrupted import on this machine."""

    seconds: float
    rows_per_event: int


@dataclass(frozen=True)
class Outcome:
    backend: str
    seed: int
    delay: float
    ending: str
    journaled: int
    committed: int


#: Every crash of this session, for the summary at the end.
OUTCOMES: list[Outcome] = []


def run_baseline(url: str, workload: Workload, directory: Path) -> Baseline:
    """Import the workload once without interruption; how long it takes sets the range of the
    kill delays, and its outbox says how many rows each event gets."""
    importer = Importer(url, workload, directory)
    importer.wait_ready()
    ending = importer.finish(timeout=600)
    assert ending.how == "done", ending.result
    assert ending.result["imported"] == PEOPLE
    assert ending.journaled == len(workload.batches)
    with _open(url) as crm:
        rows_per_event = _outbox_rows_per_event(crm.store)
        assert len(check_store(crm.store, workload, rows_per_event)) == len(workload.batches)
    seconds = float(ending.result["seconds"])
    backend = urlsplit(url).scheme
    print(f"\nuninterrupted import of {PEOPLE} people into {backend}: {seconds:.2f} s")
    return Baseline(seconds, rows_per_event)


def resume_and_check(
    url: str, workload: Workload, baseline: Baseline, ending: Ending, sqlite_file: Path | None
) -> int:
    """Check the store after a crash, import the file again and check the result; return how
    many batches the crash left committed."""
    if sqlite_file is not None:
        check_sqlite_integrity(sqlite_file)
    with _open(url) as crm:
        held = check_store(crm.store, workload, baseline.rows_per_event)
        lost = set(range(1, ending.journaled + 1)) - held
        assert not lost, f"batches in the journal but not in the store: {sorted(lost)}"
        present = len(held) * BATCH_SIZE

        report = import_people(crm, workload.path, actor=ACTOR, batch_size=BATCH_SIZE)
        assert (report.imported, report.duplicates, report.skipped) == (
            PEOPLE - present,
            present,
            0,
        ), report.summary()
        assert len(check_store(crm.store, workload, baseline.rows_per_event)) == len(
            workload.batches
        )
        assert sum(1 for _ in crm.store.iter_records("person")) == PEOPLE
        assert sum(1 for _ in crm.store.iter_records("relationship")) == PEOPLE
    if sqlite_file is not None:
        check_sqlite_integrity(sqlite_file)
    return len(held)


def record(
    backend: str, seed: int, delay: float, baseline: Baseline, ending: Ending, committed: int
) -> None:
    outcome = Outcome(backend, seed, delay, ending.how, ending.journaled, committed)
    OUTCOMES.append(outcome)
    how = ending.how
    if how == "failed":
        how = f"failed ({ending.result['error']}: {ending.result['message'][:160]})"
    print(
        f"{backend} seed={seed}: {how} after {delay:.3f} s of ~{baseline.seconds:.2f} s; "
        f"journal {ending.journaled}, store {committed} of {PEOPLE // BATCH_SIZE} batches"
    )


def sigkill_and_resume(
    backend: str,
    url: str,
    seed: int,
    workload: Workload,
    baseline: Baseline,
    directory: Path,
    sqlite_file: Path | None = None,
) -> None:
    delay = random.Random(seed).uniform(0, baseline.seconds)
    print(f"\n{backend} seed={seed}: SIGKILL {delay:.3f} s into the import")
    importer = Importer(url, workload, directory)
    ready = importer.wait_ready()
    time.sleep(max(0.0, ready + delay - time.monotonic()))
    importer.kill()
    ending = importer.finish(timeout=60)
    assert ending.how in ("killed", "done"), ending.result
    committed = resume_and_check(url, workload, baseline, ending, sqlite_file)
    record(backend, seed, delay, baseline, ending, committed)


# --------------------------------------------------------------------------------------------
# SIGKILL: SQLite
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_baseline(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    directory = tmp_path_factory.mktemp("sqlite-baseline")
    baseline = run_baseline(f"sqlite:///{directory / 'pool.db'}", workload, directory)
    shutil.rmtree(directory)
    return baseline


@pytest.mark.parametrize("iteration", range(SQLITE_ITERATIONS))
def test_sigkill_during_import_sqlite(
    iteration: int, workload: Workload, sqlite_baseline: Baseline, tmp_path: Path
) -> None:
    database = tmp_path / "pool.db"
    sigkill_and_resume(
        "sqlite",
        f"sqlite:///{database}",
        BASE_SEED + iteration,
        workload,
        sqlite_baseline,
        tmp_path,
        sqlite_file=database,
    )
    for path in tmp_path.glob("pool.db*"):  # kept only when the test fails
        path.unlink()


# --------------------------------------------------------------------------------------------
# SIGKILL: PostgreSQL
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_baseline(
    workload: Workload, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Baseline:
    schemas = _fresh_schema(postgres_server)
    try:
        return run_baseline(next(schemas), workload, tmp_path_factory.mktemp("postgres-baseline"))
    finally:
        schemas.close()  # drops the schema


@pytest.mark.parametrize("iteration", range(POSTGRES_ITERATIONS))
def test_sigkill_during_import_postgres(
    iteration: int,
    workload: Workload,
    postgres_baseline: Baseline,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    seed = BASE_SEED + 100_000 + iteration
    sigkill_and_resume("postgresql", postgres_url, seed, workload, postgres_baseline, tmp_path)


# --------------------------------------------------------------------------------------------
# Immediate shutdown of the PostgreSQL server
# --------------------------------------------------------------------------------------------


def _with_options(url: str, **options: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in options]
    return urlunsplit(parts._replace(query=urlencode([*query, *options.items()])))


@dataclass(frozen=True)
class Cluster:
    """The local PostgreSQL cluster that serves the test server, controlled with
    ``pg_ctlcluster`` (Debian's postgresql-common)."""

    version: str
    name: str
    server: str

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, *args],
            capture_output=True,
            text=True,
            timeout=RESTART_TIMEOUT,
            check=False,
        )

    def online(self) -> bool:
        listing = subprocess.run(
            ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
        ).stdout
        return any(
            line.split()[:2] == [self.version, self.name] and line.split()[3].startswith("online")
            for line in listing.splitlines()
            if line.strip()
        )

    def stop_immediately(self) -> None:
        done = self._ctl("stop", "-m", "immediate")
        assert done.returncode == 0, f"pg_ctlcluster stop: {done.stdout}{done.stderr}"

    def start(self) -> None:
        """Start the cluster if it is down, and wait until it accepts connections."""
        if not self.online():
            done = self._ctl("start")
            if done.returncode != 0 and not self.online():
                raise RuntimeError(f"pg_ctlcluster start failed: {done.stdout}{done.stderr}")
        self.wait_ready()

    def wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + RESTART_TIMEOUT
        while True:
            try:
                with psycopg.connect(_server_url(self.server), connect_timeout=2) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_quiet(self) -> None:
        """Wait (a while) until no other program is connected over TCP: the server may be
        shared with other test runs on a developer's machine. This process's own connections
        don't count, nor do Unix-socket ones, which cannot be told apart."""
        import psutil
        import psycopg

        started = time.monotonic()
        while True:
            mine = {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.laddr}
            with psycopg.connect(_server_url(self.server), connect_timeout=5) as connection:
                ports = connection.execute(
                    "SELECT client_port FROM pg_stat_activity WHERE backend_type = "
                    "'client backend' AND pid <> pg_backend_pid() AND client_port > 0"
                ).fetchall()
            others = [port for (port,) in ports if port not in mine]
            waited = time.monotonic() - started
            if not others or waited > QUIET_TIMEOUT:
                if waited >= 1:
                    left = f", {len(others)} still connected" if others else ""
                    print(f"waited {waited:.0f} s for other clients of the server to go{left}")
                return
            time.sleep(1)


def _local_cluster(server: str) -> Cluster | None:
    """The cluster of ``pg_lsclusters`` that listens on the test server's port, when the test
    server is on this machine and this user may control it."""
    parts = urlsplit(server)
    if parts.hostname not in (None, "", "localhost", "127.0.0.1", "::1"):
        return None
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        return None
    import pwd

    port = str(parts.port or 5432)
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[2] == port:
            owner = fields[4]
            if os.geteuid() not in (0, pwd.getpwnam(owner).pw_uid):
                return None
            return Cluster(fields[0], fields[1], server)
    return None


@pytest.fixture(scope="module")
def cluster(postgres_server: str) -> Iterator[Cluster]:
    """The test server's cluster; skips (fails under ``CI=true``) when it cannot be stopped and
    started from here. Whatever happens, the cluster is running again afterwards."""
    found = _local_cluster(postgres_server)
    if found is None:
        _unavailable(
            "stopping the PostgreSQL server needs a local cluster that pg_lsclusters lists on the "
            "test server's port, and pg_ctlcluster run as root or as the cluster's owner"
        )
    try:
        yield found
    finally:
        found.start()


@pytest.mark.parametrize("iteration", range(SHUTDOWN_ITERATIONS))
def test_immediate_shutdown_during_import_postgres(
    iteration: int,
    workload: Workload,
    postgres_baseline: Baseline,
    postgres_url: str,
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    seed = BASE_SEED + 200_000 + iteration
    # Early enough that the import is still running when the server goes.
    delay = random.Random(seed).uniform(0, 0.8 * postgres_baseline.seconds)
    print(f"\npostgresql seed={seed}: immediate shutdown {delay:.3f} s into the import")
    cluster.wait_quiet()
    # Give up soon once the server is gone, rather than after the default 30 s.
    url = _with_options(postgres_url, connect_timeout="3", pool_timeout="3")
    importer = Importer(url, workload, tmp_path)
    ready = importer.wait_ready()
    time.sleep(max(0.0, ready + delay - time.monotonic()))
    try:
        cluster.stop_immediately()
        stopped = time.monotonic()
        ending = importer.finish(timeout=FAILURE_TIMEOUT)
        ended = time.monotonic()
    finally:
        importer.close()
        cluster.start()
    print(
        f"the importer ended {ended - stopped:.1f} s after the shutdown; the server accepted "
        f"connections again {time.monotonic() - ended:.1f} s later"
    )
    if ending.how == "failed":
        result = ending.result
        failure = f"{result['error']}: {result['message']}"
        assert result["relcrm_error"], f"not a relcrm error: {failure}"
        assert result["storage_error"], f"not a relcrm StorageError: {failure}"
    else:
        assert ending.how == "done", ending.result  # the import finished before the shutdown
    committed = resume_and_check(postgres_url, workload, postgres_baseline, ending, None)
    record("postgresql (shutdown)", seed, delay, postgres_baseline, ending, committed)


# --------------------------------------------------------------------------------------------
# Where the crashes landed
# --------------------------------------------------------------------------------------------


def test_crashes_landed_during_the_import() -> None:
    """The checks above are only worth something if the crashes hit imports in progress: most of
    them must have left the import unfinished, at various points."""
    by_backend: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in OUTCOMES:
        by_backend[outcome.backend].append(outcome)
    if not by_backend:
        pytest.skip("no crash test ran in this session")
    total = PEOPLE // BATCH_SIZE
    for backend, outcomes in sorted(by_backend.items()):
        committed = sorted(o.committed for o in outcomes)
        unfinished = [o for o in outcomes if o.committed < total]
        in_flight = sum(o.committed - o.journaled for o in outcomes)
        print(
            f"\n{backend}: {len(outcomes)} crashes; batches committed per crash "
            f"{committed[0]}..{committed[-1]} (median {committed[len(committed) // 2]}) of "
            f"{total}; {len(unfinished)} left the import unfinished, "
            f"{sum(c == 0 for c in committed)} before the first commit; "
            f"{in_flight} committed batches were not yet journaled"
        )
        if len(outcomes) >= 10:
            assert len(unfinished) >= len(outcomes) // 2, f"{backend}: {committed}"
            assert len(set(committed)) >= 3, f"{backend}: {committed}"
