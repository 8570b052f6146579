"""Many writers on one store at once, on a SQLite file and on PostgreSQL.

8 processes of 4 threads each run 250 commands apiece on 50 shared people: candidates change
their availability and edit their profile (with the version read just before, some of them stale
on purpose), recruiters log touchpoints, add notes, tag people and move candidacies through
their stages. Each worker (``writers_worker.py``) reports what became of every command, and a
reader tails the event log all along. Afterwards the log, the records and the outbox must show that:

* every acknowledged command left exactly one event of its own, from one execution, and every
  refused command left nothing (no event lost, none doubled);
* every record's versions run 1..n in log order: each write is accounted for by an event, and
  each version-checked write landed on the version after the one it was checked against;
* every refusal was a :class:`relcrm.ConcurrencyConflict`, and conflicts did happen;
* the tailing reader never saw an event appear behind one it had already seen;
* the records say what the last events about them say, and every event has its outbox rows.
"""

from __future__ import annotations

import bisect
import json
import resource
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import attrs
import pytest

import relcrm
from relcrm import Actor, ActorRole, Event
from relcrm.routing import RoutingContext, route

from .writers_worker import CHECK_BACK_EPOCH, TOKEN_PREFIX, Outcome

PROCESSES = 8
THREADS = 4
COMMANDS = 250
PEOPLE = 50
TOTAL = PROCESSES * THREADS * COMMANDS
WORKER = Path(__file__).with_name("writers_worker.py")
#: Seconds the workers may take before the test gives up on them.
TIMEOUT = 600
OWNER = "owner"
#: The event types that acknowledge each kind of command (exactly one per command).
OWN_EVENTS = {
    "availability": {"relationship.availability_changed"},
    "touchpoint": {"relationship.touchpoint_logged"},
    "tag": {"person.tagged"},
    "profile": {"person.profile_updated"},
    "stage": {"candidacy.stage_changed", "candidacy.archived", "candidacy.reopened"},
    "note": {"relationship.note_added"},
}
#: What a command may log besides its own event: a candidacy leaving or rejoining the process
#: moves the relationship.
SIDE_EVENTS = {"relationship.stage_changed"}

Key = tuple[str, str]  # (kind, id) of a record


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pool.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _open(url: str) -> relcrm.CRM:
    return relcrm.open(url, notifiers=["memory"], autodispatch=False, load_entrypoints=False)


def _first(items: Iterable[object], n: int = 5) -> list[object]:
    """A few of ``items``, for assertion messages."""
    return list(items)[:n]


# -- the run -----------------------------------------------------------------------------------


def _set_up(url: str, path: Path) -> int:
    """Add the people, each with an owner and a candidacy for one opening, list them in ``path``
    for the workers, and return the last ``seq`` of the log."""
    recruiter = Actor(ActorRole.RECRUITER, "setup")
    with _open(url) as crm:
        opening = crm.add_opening({"title": "Platform engineer"}, actor=recruiter)
        people = crm.add_people(
            [
                {
                    "name": f"Person {i}",
                    "headline": "start",
                    "owner_id": OWNER,
                    "contacts": [{"value": f"person{i}@example.org"}],
                }
                for i in range(PEOPLE)
            ],
            actor=recruiter,
        )

        def candidacy(person_id: str) -> str:
            return crm.add_candidacy(person_id, opening.id, actor=recruiter, stage="applied").id

        setup = [{"person": p.id, "candidacy": candidacy(p.id)} for p in people]
        path.write_text(json.dumps(setup), encoding="utf-8")
        return crm.store.events()[-1].seq


class _Tail(threading.Thread):
    """A consumer of the event log: ``events(after=last_seen)`` in a loop, keeping the ``seq`` of
    every batch it is given, until stopped and a read begun after the stop finds nothing new."""

    def __init__(self, url: str, after: int) -> None:
        super().__init__(name="event-log-tail", daemon=True)
        self.url = url
        self.last = after
        self.batches: list[list[int]] = []
        self.reads = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with _open(self.url) as crm:
                while True:
                    stopping = self.stop.is_set()
                    batch = [e.seq for e in crm.store.events(after=self.last)]
                    self.reads += 1
                    if batch:
                        self.batches.append(batch)
                        self.last = batch[-1]
                    elif stopping:
                        return
                    else:
                        time.sleep(0.001)
        except BaseException as exc:
            self.error = exc


@attrs.frozen
class _Run:
    outcomes: list[Outcome]
    #: From the start signal until the last worker exited.
    seconds: float
    #: CPU time the workers used.
    cpu_seconds: float


def _run_workers(url: str, setup: Path, logs: Path) -> _Run:
    """Start the workers, give them the start signal together once all are ready, and collect
    every command's outcome."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for p in range(PROCESSES):
        args = [url, str(setup), str(p), str(THREADS), str(COMMANDS), str(1000 + p)]
        with (logs / f"worker-{p}.log").open("w", encoding="utf-8") as stderr:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), *args],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                )
            )
    try:
        for p, proc in enumerate(procs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line != "ready\n":
                proc.wait(timeout=TIMEOUT)
                log = (logs / f"worker-{p}.log").read_text(encoding="utf-8")
                pytest.fail(f"worker {p} did not start: {line!r}\n{log}")
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes: list[Outcome] = []
        for p, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=TIMEOUT)
            log = (logs / f"worker-{p}.log").read_text(encoding="utf-8")
            assert proc.returncode == 0, f"worker {p} failed:\n{log}"
            outcomes.extend(json.loads(out.strip().splitlines()[-1])["outcomes"])
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return _Run(outcomes, seconds, cpu)


# -- reading the log ---------------------------------------------------------------------------


def _token(event: Event) -> int | None:
    """The number of the worker command that logged ``event`` (``None``: no worker's)."""
    if event.actor.role is ActorRole.RECRUITER and event.actor.id.startswith(TOKEN_PREFIX):
        return int(event.actor.id.removeprefix(TOKEN_PREFIX))
    if event.type == "person.profile_updated":
        headline = str(event.data["changes"].get("headline", ""))
        if headline.startswith(TOKEN_PREFIX):
            return int(headline.removeprefix(TOKEN_PREFIX))
    if event.type == "relationship.availability_changed" and event.data["check_back_on"]:
        return (date.fromisoformat(str(event.data["check_back_on"])) - CHECK_BACK_EPOCH).days
    return None


def _writes(event: Event) -> list[Key]:
    """The records that the command which logged ``event`` wrote on that event's account.

    This mirrors what the CRM's commands write for the events of this test; should that change,
    the stored versions stop matching the replayed ones and the test says which record."""
    person = event.person_id or ""
    subjects = event.subjects
    # A candidate acting for themselves is contact they started: the relationship is touched.
    inbound = [("relationship", person)] if event.actor.role is ActorRole.CANDIDATE else []
    match event.type:
        case "opening.created":
            return [("opening", subjects["opening"])]
        case "person.created":
            return [("person", person), ("relationship", person)]
        case "person.tagged" | "person.profile_updated" | "relationship.availability_changed":
            return [("person", person), *inbound]
        case "relationship.touchpoint_logged":
            return [("touchpoint", subjects["touchpoint"]), ("relationship", person)]
        case "relationship.stage_changed":
            return [("relationship", person)]
        case "relationship.note_added":
            return [("note", subjects["note"])]
        case kind if kind.startswith("candidacy."):
            return [("candidacy", subjects["candidacy"])]
    raise AssertionError(f"the test does not know what {event.type!r} writes")


@attrs.frozen
class _Replay:
    """The versions of every record as the event log tells them: its n-th write is version n."""

    final: dict[Key, int]
    #: ``(event id, record) -> version`` that the command logging the event wrote.
    written: dict[tuple[str, Key], int]


def _replay(events: Iterable[Event]) -> _Replay:
    final: dict[Key, int] = defaultdict(int)
    written: dict[tuple[str, Key], int] = {}
    for event in events:
        for key in _writes(event):
            final[key] += 1
            written[event.id, key] = final[key]
    return _Replay(dict(final), written)


def _tail_problems(batches: Sequence[Sequence[int]], final: Sequence[int]) -> list[str]:
    """Each read after which what the reader had seen differs from the final log up to the
    largest ``seq`` it had seen: an event that appeared behind the reader, which it never gets
    (``final`` is sorted)."""
    problems: list[str] = []
    seen: set[int] = set()
    top = 0
    for n, batch in enumerate(batches):
        if list(batch) != sorted(set(batch)) or batch[0] <= top:
            problems.append(f"read {n} returned {batch[:5]}... after seq {top}")
        seen.update(batch)
        top = max(top, *batch)
        behind = bisect.bisect_right(final, top)
        if len(seen) != behind:
            missed = sorted(set(final[:behind]) - seen)
            problems.append(f"read {n} saw seq {top}; {missed[:10]} appeared behind it later")
            seen.update(missed)  # report each missed event once
    if set(final) - seen:
        problems.append(f"never seen: {sorted(set(final) - seen)[:10]}")
    return problems


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_double_nothing(url: str, tmp_path: Path) -> None:
    backend = url.split(":", 1)[0]
    clock = time.perf_counter()
    setup_path = tmp_path / "setup.json"
    setup_seq = _set_up(url, setup_path)
    setup_seconds = time.perf_counter() - clock

    tail = _Tail(url, setup_seq)
    tail.start()
    try:
        run = _run_workers(url, setup_path, tmp_path)
    finally:
        tail.stop.set()
        tail.join(timeout=60)
    assert tail.error is None, repr(tail.error)
    assert not tail.is_alive()

    clock = time.perf_counter()
    with _open(url) as crm:
        records = crm.store.events()
        log = [relcrm.structure(r.payload, Event) for r in records]
        seq_of = {r.id: r.seq for r in records}
        replay = _replay(log)
        stored = {
            (kind, r.id): r.version
            for kind in {kind for kind, _ in replay.final}
            for r in crm.store.iter_records(kind)
        }
        people = {p.id: p for p in crm.people()}
        relationships = {pid: crm.relationship(pid) for pid in people}
        touchpoints = {pid: len(crm.touchpoints(pid)) for pid in people}
        notes = {pid: len(crm.notes(pid)) for pid in people}
        candidacies = {c.id: c for c in crm.candidacies()}
        outbox = Counter(row.event_id for row in crm.store.outbox(status=None))

    # Every command reported once; every refusal a conflict; conflicts did happen.
    outcomes = run.outcomes
    assert sorted(o["token"] for o in outcomes) == list(range(TOTAL))
    errors = [o for o in outcomes if o["error"] is not None and not o["conflict"]]
    assert errors == [], f"{len(errors)} refusals that are not conflicts: {_first(errors)}"
    acked = [o for o in outcomes if o["error"] is None]
    refused = [o for o in outcomes if o["error"] is not None]
    stale = [o for o in outcomes if o["stale"]]
    assert stale, "no stale profile update was sent"
    assert all(o["conflict"] for o in stale), _first(o for o in stale if not o["conflict"])
    raced = [o for o in refused if not o["stale"]]
    retried = sum(o["retried"] for o in outcomes)
    assert raced, "no command lost a race to a concurrent writer: the test proved nothing"
    assert retried, "no retried attempt met a conflict"

    # Every event after the setup belongs to one command, and every command to its events.
    worker_events = [e for e in log if seq_of[e.id] > setup_seq]
    assert all(_token(e) is None for e in log if seq_of[e.id] <= setup_seq)
    by_token = {o["token"]: o for o in outcomes}
    untagged = [e for e in worker_events if _token(e) not in by_token]
    assert untagged == [], f"events that no command logged: {_first(untagged)}"
    events_of: dict[int | None, list[Event]] = defaultdict(list)
    for event in worker_events:
        events_of[_token(event)].append(event)
    own_events = {
        o["token"]: [e for e in events_of[o["token"]] if e.type in OWN_EVENTS[o["kind"]]]
        for o in acked
    }
    lost = [o for o in acked if not own_events[o["token"]]]
    duplicated = [o for o in acked if len(own_events[o["token"]]) > 1]
    rerun = [o for o in acked if len({e.correlation_id for e in events_of[o["token"]]}) > 1]
    stray = [
        e
        for o in acked
        for e in events_of[o["token"]]
        if e.type not in OWN_EVENTS[o["kind"]] | SIDE_EVENTS
    ]
    logged_anyway = [o for o in refused if events_of.get(o["token"])]
    assert lost == [], f"{len(lost)} acknowledged commands left no event: {_first(lost)}"
    assert duplicated == [], f"{len(duplicated)} commands logged twice: {_first(duplicated)}"
    assert rerun == [], f"{len(rerun)} commands ran more than once: {_first(rerun)}"
    assert stray == [], f"unexpected events: {_first(stray)}"
    assert logged_anyway == [], f"{len(logged_anyway)} refused but logged: {_first(logged_anyway)}"
    committed = sum(len(events) for events in own_events.values())
    assert committed == len(acked)

    # Versions run 1..n in log order: the log accounts for every write of every record, and
    # each version-checked write landed right after the version it was checked against.
    assert stored == replay.final, _first(
        (key, stored.get(key), replay.final.get(key))
        for key in stored.keys() | replay.final.keys()
        if stored.get(key) != replay.final.get(key)
    )
    misplaced = []
    for o in acked:
        if o["checked"] is None or o["expected"] is None:
            continue
        checked: Key = (o["checked"][0], o["checked"][1])
        (own,) = own_events[o["token"]]
        if replay.written.get((own.id, checked)) != o["expected"] + 1:
            misplaced.append((o, replay.written.get((own.id, checked))))
    assert misplaced == [], f"{len(misplaced)} writes on the wrong version: {_first(misplaced)}"

    # The records say what the last events about them say.
    last: dict[tuple[str, str], Event] = {}
    count: Counter[tuple[str, str]] = Counter()
    for event in log:
        subject = event.subjects.get("candidacy") or event.person_id or ""
        last[event.type, subject] = event
        count[event.type, subject] += 1
    for pid, person in people.items():
        said = last.get(("relationship.availability_changed", pid))
        if said is not None:
            assert person.preferences.availability.value == said.data["availability"]
            assert str(person.preferences.check_back_on) == said.data["check_back_on"]
        profile = last.get(("person.profile_updated", pid))
        assert person.headline == (profile.data["changes"]["headline"] if profile else "start")
        tagged = last.get(("person.tagged", pid))
        assert list(person.tags) == (tagged.data["tags"] if tagged else [])
        rel = relationships[pid]
        logged = count["relationship.touchpoint_logged", pid]
        assert rel.touchpoint_count == logged == touchpoints[pid]
        assert notes[pid] == count["relationship.note_added", pid]
        assert rel.stage.value == last["relationship.stage_changed", pid].data["to_stage"]
    moves: dict[str, list[Event]] = defaultdict(list)
    for event in log:
        if "candidacy" in event.subjects:
            moves[event.subjects["candidacy"]].append(event)
    for cid, candidacy in candidacies.items():
        assert candidacy.stage == moves[cid][-1].data["stage"]
        assert len(candidacy.history) == len(moves[cid])

    # Every event has the outbox rows its routing asks for: written with it, or not at all.
    wrong_rows = []
    for event in worker_events:
        person = people[event.person_id or ""]
        context = RoutingContext(candidate_address=person.email, owner_ids=(OWNER,))
        if outbox[event.id] != len(route(event, context)):
            wrong_rows.append((event.type, str(event.actor), outbox[event.id]))
    assert wrong_rows == [], f"events with the wrong outbox rows: {_first(wrong_rows)}"
    assert set(outbox) <= set(seq_of), "outbox rows of events that are not in the log"
    assert outbox, "no outbox rows were written"

    # The tailing reader never saw an event appear behind one it had seen.
    final = sorted(seq for seq in seq_of.values() if seq > setup_seq)
    behind = _tail_problems(tail.batches, final)
    assert behind == [], f"{len(behind)} reads had events appear behind them: {behind[:5]}"
    check_seconds = time.perf_counter() - clock

    kinds = Counter(o["kind"] for o in outcomes)
    raised = Counter(o["error"] for o in refused)
    refused_kinds = Counter(o["kind"] for o in raced)
    print(
        f"\n{backend}: {PROCESSES} processes x {THREADS} threads x {COMMANDS} commands on "
        f"{PEOPLE} people; mix {dict(sorted(kinds.items()))}"
        f"\n  acknowledged={len(acked)} refused={len(refused)} (conflicts: stale on purpose="
        f"{len(stale)}, lost a race={len(raced)} {dict(sorted(refused_kinds.items()))}; "
        f"{dict(raised)}), conflicts retried={retried}"
        f"\n  events={committed} (+{len(worker_events) - committed} relationship stage changes) "
        f"lost={len(lost)} duplicated={len(duplicated)} refused-but-logged={len(logged_anyway)}"
        f"\n  records={len(stored)} version gaps=0, outbox rows="
        f"{sum(outbox[e.id] for e in worker_events)}; tailing reader: {tail.reads} reads, "
        f"{len(tail.batches)} with new events, 0 appeared behind it"
        f"\n  seconds: setup {setup_seconds:.1f}, writers {run.seconds:.1f} "
        f"({TOTAL / run.seconds:.0f} commands/s, worker CPU {run.cpu_seconds:.1f}), "
        f"checks {check_seconds:.1f}"
    )
