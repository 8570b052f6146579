"""One writer process of the concurrent-writers test (run as a script).

    python writers_worker.py URL SETUP_JSON PROCESS THREADS COMMANDS SEED

opens its own store at ``URL``, prints ``ready``, waits for a line on stdin, then runs ``THREADS``
threads of ``COMMANDS`` commands each on the shared people and candidacies listed in
``SETUP_JSON``, and prints one JSON line: the outcome of every command (:class:`Outcome`).

Every command carries a unique number, its *token*, where the event log shows it: recruiters act
as ``recruiter:cmd-<token>``, a profile update sets the headline to ``cmd-<token>``, and an
availability change asks to be checked back on :func:`check_back_on` ``(token)``. The parent
finds each command's events by that token (see ``test_concurrent_writers.py``).
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypedDict

import relcrm
from relcrm import (
    Actor,
    ActorRole,
    Availability,
    Candidacy,
    ConcurrencyConflict,
    Person,
    Relationship,
    retry,
)

#: The kinds of command, and how often each is picked.
COMMAND_MIX: dict[str, int] = {
    "availability": 2,  # the candidate says "not now, check back on <date>"
    "touchpoint": 3,  # a recruiter logs a contact (expected_version: the relationship's)
    "tag": 2,  # a recruiter tags the person
    "profile": 3,  # the candidate edits the headline (expected_version: the person's)
    "stage": 2,  # a recruiter moves the candidacy on (expected_version: the candidacy's)
    "note": 1,  # a recruiter adds an internal note (a new record; nothing to check)
}
#: Share of profile updates sent with a version that is stale on purpose.
STALE_SHARE = 0.15
#: Attempts for the commands that read what they depend on themselves (all but profile updates).
ATTEMPTS = 3
#: Where the check-back dates that carry availability tokens start.
CHECK_BACK_EPOCH = date(2031, 1, 1)
#: The stage each candidacy moves to next: round and round, so it never closes for good.
NEXT_STAGE = {"applied": "screening", "screening": "archived", "archived": "applied"}
#: How a token starts where it is written as text.
TOKEN_PREFIX = "cmd-"
TAGS = ("silver medalist", "python", "remote", "boomerang", "referral")
CHANNELS = ("email", "phone", "meeting", "social")


def check_back_on(token: int) -> date:
    """The check-back date that carries ``token`` in an availability change."""
    return CHECK_BACK_EPOCH + timedelta(days=token)


def token_name(token: int) -> str:
    """How ``token`` is written in actor ids and headlines."""
    return f"{TOKEN_PREFIX}{token}"


class Outcome(TypedDict):
    """What happened to one command."""

    token: int
    kind: str
    #: Sent with an ``expected_version`` below the one just read.
    stale: bool
    #: ``None`` when acknowledged, else ``module.QualName`` of the exception raised.
    error: str | None
    #: The exception was a :class:`relcrm.ConcurrencyConflict` (or a subclass).
    conflict: bool
    message: str
    #: Conflicts met by attempts that were then retried.
    retried: int
    #: ``[kind, id]`` of the aggregate checked with ``expected_version``, and that version (of
    #: the last attempt); ``None`` when the command sent none.
    checked: list[str] | None
    expected: int | None


class _Writer:
    """One thread's commands."""

    def __init__(
        self, crm: relcrm.CRM, setup: list[dict[str, str]], first_token: int, seed: int
    ) -> None:
        self.crm = crm
        self.setup = setup
        self.first_token = first_token
        self.rng = random.Random(seed)
        self.outcomes: list[Outcome] = []
        self._retried = 0
        self._checked: list[str] | None = None
        self._expected: int | None = None

    def run(self, count: int, start: threading.Barrier) -> None:
        kinds, weights = list(COMMAND_MIX), list(COMMAND_MIX.values())
        start.wait()
        for n in range(count):
            token = self.first_token + n
            kind = self.rng.choices(kinds, weights)[0]
            self.outcomes.append(self._one(token, kind))

    def _one(self, token: int, kind: str) -> Outcome:
        target = self.rng.choice(self.setup)
        stale = kind == "profile" and self.rng.random() < STALE_SHARE
        self._retried, self._checked, self._expected = 0, None, None
        error: str | None = None
        conflict = False
        message = ""
        try:
            if kind == "profile":
                self._profile(token, target["person"], stale)
            else:
                command = getattr(self, f"_{kind}")
                retry(lambda: self._counted(lambda: command(token, target)), attempts=ATTEMPTS)
        except ConcurrencyConflict as exc:
            error, conflict, message = _qualname(exc), True, str(exc)
        except Exception as exc:  # recorded: the test fails on any error but a conflict
            error, message = _qualname(exc), str(exc)
        return Outcome(
            token=token,
            kind=kind,
            stale=stale,
            error=error,
            conflict=conflict,
            message=message,
            retried=self._retried,
            checked=self._checked,
            expected=self._expected,
        )

    def _counted(self, attempt: Callable[[], None]) -> None:
        try:
            attempt()
        except ConcurrencyConflict:
            self._retried += 1
            raise

    def _check(self, kind: str, id: str, version: int) -> int:
        self._checked, self._expected = [kind, id], version
        return version

    @staticmethod
    def _recruiter(token: int) -> Actor:
        return Actor(ActorRole.RECRUITER, token_name(token))

    def _availability(self, token: int, target: dict[str, str]) -> None:
        person_id = target["person"]
        self.crm.set_availability(
            person_id,
            Availability.NOT_NOW,
            check_back_on=check_back_on(token),
            actor=Actor(ActorRole.CANDIDATE, person_id),
        )

    def _touchpoint(self, token: int, target: dict[str, str]) -> None:
        person_id = target["person"]
        version = self.crm.load(Relationship, person_id).version
        self.crm.log_touchpoint(
            person_id,
            self.rng.choice(CHANNELS),
            self.rng.choice(("inbound", "outbound")),
            token_name(token),
            actor=self._recruiter(token),
            expected_version=self._check("relationship", person_id, version),
        )

    def _tag(self, token: int, target: dict[str, str]) -> None:
        self.crm.tag(target["person"], self.rng.choice(TAGS), actor=self._recruiter(token))

    def _note(self, token: int, target: dict[str, str]) -> None:
        self.crm.add_note(target["person"], token_name(token), actor=self._recruiter(token))

    def _profile(self, token: int, person_id: str, stale: bool) -> None:
        version = self.crm.load(Person, person_id).version - (1 if stale else 0)
        self.crm.update_profile(
            person_id,
            {"headline": token_name(token)},
            actor=Actor(ActorRole.CANDIDATE, person_id),
            expected_version=self._check("person", person_id, version),
        )

    def _stage(self, token: int, target: dict[str, str]) -> None:
        candidacy_id = target["candidacy"]
        current = self.crm.load(Candidacy, candidacy_id)
        version = self._check("candidacy", candidacy_id, current.version)
        to_stage = NEXT_STAGE[current.value.stage]
        actor = self._recruiter(token)
        if to_stage == "archived":
            self.crm.archive(
                candidacy_id,
                "we_declined",
                actor=actor,
                note=token_name(token),
                expected_version=version,
            )
        else:
            self.crm.move(candidacy_id, to_stage, actor=actor, expected_version=version)


def _qualname(exc: BaseException) -> str:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


def main(argv: list[str]) -> None:
    url, setup_path = argv[0], argv[1]
    process, threads, count, seed = (int(a) for a in argv[2:6])
    with open(setup_path, encoding="utf-8") as f:
        setup: list[dict[str, str]] = json.load(f)
    start = threading.Barrier(threads)
    with relcrm.open(url, notifiers=["memory"], autodispatch=False, load_entrypoints=False) as crm:
        writers = [
            _Writer(crm, setup, (process * threads + t) * count, seed * 1000 + t)
            for t in range(threads)
        ]
        running = [
            threading.Thread(target=w.run, args=(count, start), name=f"writer-{process}-{t}")
            for t, w in enumerate(writers)
        ]
        print("ready", flush=True)
        sys.stdin.readline()
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
    report: dict[str, Any] = {"outcomes": [o for w in writers for o in w.outcomes]}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
