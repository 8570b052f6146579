"""Several processes writing to one SQLite file: nothing lost, nothing doubled, conflicts typed."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import relcrm
from relcrm import Actor, ActorRole, Person, Relationship

WORKERS = 4
COMMANDS = 200
PEOPLE = 10
WORKER = Path(__file__).with_name("concurrency_worker.py")


def _marker(event: relcrm.Event) -> str | None:
    data = event.data
    if event.type == "relationship.touchpoint_logged":
        return str(data["summary"])
    if event.type == "relationship.note_added":
        return str(data["text"])
    if event.type == "person.profile_updated":
        return str(data["changes"]["headline"])
    return None


@pytest.mark.slow
def test_four_processes_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    recruiter = Actor(ActorRole.RECRUITER, "setup")
    with relcrm.open(url, notifiers=[], load_entrypoints=False) as crm:
        ids = [
            crm.add_person({"name": f"Person {i}", "headline": "start"}, actor=recruiter).id
            for i in range(PEOPLE)
        ]
        events_before = len(crm.store.events())

    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(w), str(COMMANDS), str(1000 + w), ",".join(ids)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    acked = [m for r in results for m in r["acked"]]
    conflicts = [m for r in results for m in r["conflicts"]]
    errors = [e for r in results for e in r["errors"]]
    assert errors == []  # every refusal was a ConcurrencyConflict
    assert len(acked) + len(conflicts) == WORKERS * COMMANDS

    with relcrm.open(url, notifiers=[], load_entrypoints=False) as crm:
        records = crm.store.events()
        seqs = [r.seq for r in records]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        assert len({r.id for r in records}) == len(records)
        events = [relcrm.structure(r.payload, relcrm.Event) for r in records[events_before:]]
        markers = Counter(m for m in map(_marker, events) if m is not None)
        # Every acknowledged command left exactly one event; refused ones left none.
        assert set(markers) == set(acked)
        assert all(n == 1 for n in markers.values())
        assert not set(conflicts) & set(markers)
        # Aggregates agree with the log.
        for pid in ids:
            rel = crm.load(Relationship, pid)
            assert rel.value.touchpoint_count == len(crm.touchpoints(pid))
            person = crm.load(Person, pid)
            profile_events = [
                e for e in events if e.type == "person.profile_updated" and e.person_id == pid
            ]
            assert person.version == 1 + len(profile_events)
    print(
        f"\nsqlite concurrency: {WORKERS} processes x {COMMANDS} commands on {PEOPLE} people: "
        f"acknowledged={len(acked)} conflicts={len(conflicts)} events={sum(markers.values())} "
        f"lost=0 duplicated=0"
    )
