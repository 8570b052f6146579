"""relcrm.retry: run a command again after a concurrent writer won."""

from __future__ import annotations

import threading

import pytest

import relcrm
from relcrm import Actor, ActorRole

RITA = Actor(ActorRole.RECRUITER, "rita")


def test_a_conflict_is_retried_with_a_fresh_version() -> None:
    crm = relcrm.open("memory://")
    crm.add_person({"id": "per_ada", "name": "Ada"}, actor=RITA)
    seen = crm.load(relcrm.Person, "per_ada").version
    attempts: list[int] = []

    def move() -> relcrm.Person:
        # the first attempt uses a version another writer has just made stale
        version = seen if not attempts else crm.load(relcrm.Person, "per_ada").version
        attempts.append(version)
        if len(attempts) == 1:
            crm.tag("per_ada", "python", actor=RITA)
        return crm.set_availability("per_ada", "not_now", actor=RITA, expected_version=version)

    delays: list[float] = []
    person = relcrm.retry(move, sleep=delays.append, rng=lambda: 1.0)
    assert person.preferences.availability is relcrm.Availability.NOT_NOW
    assert attempts == [seen, seen + 1]
    assert delays == [0.01]  # one back-off, full jitter at its top
    crm.close()


def test_the_last_conflict_is_raised_when_attempts_run_out() -> None:
    calls = 0

    def always() -> None:
        nonlocal calls
        calls += 1
        raise relcrm.ConcurrencyConflict("person", "p", 1, 2)

    delays: list[float] = []
    with pytest.raises(relcrm.ConcurrencyConflict):
        relcrm.retry(
            always, attempts=4, base_delay=0.1, max_delay=0.25, sleep=delays.append, rng=lambda: 1.0
        )
    assert calls == 4
    assert delays == [0.1, 0.2, 0.25]  # doubling, capped


def test_other_errors_are_not_retried() -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise relcrm.NotFound("person", "nobody")

    with pytest.raises(relcrm.NotFound):
        relcrm.retry(broken, sleep=lambda _: None)
    assert calls == 1
    with pytest.raises(ValueError, match="attempts"):
        relcrm.retry(broken, attempts=0)


def test_retrying_decorates_a_function_and_threads_converge() -> None:
    crm = relcrm.open("memory://")
    crm.add_person({"id": "per_ada", "name": "Ada"}, actor=RITA)

    @relcrm.retrying(attempts=200, base_delay=0.001, max_delay=0.01)
    def append(word: str) -> None:
        current = crm.load(relcrm.Person, "per_ada")
        summary = f"{current.value.summary} {word}".strip()
        crm.update_profile(
            "per_ada", {"summary": summary}, actor=RITA, expected_version=current.version
        )

    threads = [threading.Thread(target=append, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every read-modify-write landed: none was lost to a concurrent one
    assert sorted(crm.get_person("per_ada").summary.split()) == [f"w{i}" for i in range(8)]
    assert append.__name__ == "append"
    crm.close()
