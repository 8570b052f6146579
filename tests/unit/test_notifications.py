"""Who is told what, and how the outbox gets it to them: routing rules, retries, dead letters,
deferred dispatch, and isolation of ``relcrm_event_committed`` plugins."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

import relcrm
from relcrm import CRM, Actor, ActorRole, Candidacy, DispatchReport, Event, Visibility
from relcrm.events import EVENT_TYPES
from relcrm.notify.base import Notification, Notifier
from relcrm.notify.memory import MemoryNotifier
from relcrm.plugins import make_plugin_manager
from relcrm.routing import RoutingContext, route
from relcrm.storage.base import OutboxRecord
from relcrm.storage.memory import MemoryStore

C, R, F, S = ActorRole.CANDIDATE, ActorRole.RECRUITER, ActorRole.REFERRER, ActorRole.SYSTEM


def sent(crm: CRM) -> list[Notification]:
    notifier = crm.notifier("memory")
    assert isinstance(notifier, MemoryNotifier)
    return notifier.sent


def recipients(notifications: list[Notification]) -> list[tuple[str, str]]:
    return [(n.recipient.role.value, n.recipient.id) for n in notifications]


def clear(crm: CRM) -> None:
    notifier = crm.notifier("memory")
    assert isinstance(notifier, MemoryNotifier)
    notifier.clear()


@attrs.define
class Pool:
    """A person owned by ``rec_owner`` (also a relationship owner: ``rec_rel``), an opening owned by
    ``rec_opening`` and a candidacy in its lead stage."""

    crm: CRM
    pid: str
    oid: str
    cid: str
    me: Actor
    rec: Actor


def make_pool(crm: CRM) -> Pool:
    rec = Actor(R, "rec_worker")
    pid = crm.add_person(
        {"name": "Ada", "contacts": [{"value": "ada@example.org"}], "owner_id": "rec_owner"},
        actor=rec,
    ).id
    crm.assign_owner(pid, "rec_rel", actor=rec)
    oid = crm.add_opening({"title": "Data Engineer", "owner_id": "rec_opening"}, actor=rec).id
    cid = crm.add_candidacy(pid, oid, actor=rec).id
    clear(crm)
    return Pool(crm, pid, oid, cid, Actor(C, pid), rec)


@pytest.fixture
def pool(crm: CRM) -> Pool:
    return make_pool(crm)


# --------------------------------------------------------------------------------------------
# Routing rules through the CRM
# --------------------------------------------------------------------------------------------


def test_candidate_hears_what_a_recruiter_changed(pool: Pool) -> None:
    pool.crm.move(pool.cid, "applied", actor=pool.rec)
    out = sent(pool.crm)
    assert recipients(out) == [("candidate", pool.pid)]
    (n,) = out
    assert n.event_type == "candidacy.stage_changed"
    assert n.recipient.address == "ada@example.org"
    assert dict(n.data) == {
        "opening_id": pool.oid,
        "opening_title": "Data Engineer",
        "candidate_stage": "Application received",
    }
    assert n.subject == "Recruiter moved the candidacy for Data Engineer to Application received"
    assert n.body.startswith(n.subject)
    (event,) = [e for e in pool.crm.timeline(pool.pid) if e.id == n.event_id]
    assert n.occurred_at == event.occurred_at


@pytest.mark.parametrize(
    "action",
    [
        "set_availability",
        "grant_consent",
        "withdraw_consent",
        "update_profile",
        "confirm_interest",
        "withdraw",
    ],
)
def test_owners_hear_what_the_candidate_did_and_she_hears_nothing_back(
    pool: Pool, action: str
) -> None:
    crm, me = pool.crm, pool.me
    expected_type = {
        "set_availability": "relationship.availability_changed",
        "grant_consent": "consent.granted",
        "withdraw_consent": "consent.withdrawn",
        "update_profile": "person.profile_updated",
        "confirm_interest": "candidacy.interest_confirmed",
        "withdraw": "candidacy.withdrawn",
    }[action]
    if action == "set_availability":
        crm.set_availability(pool.pid, "not_looking", actor=me)
    elif action == "grant_consent":
        crm.grant_consent(pool.pid, "talent_pool", actor=me)
    elif action == "withdraw_consent":
        crm.withdraw_consent(pool.pid, "talent_pool", actor=me)
    elif action == "update_profile":
        crm.update_profile(pool.pid, {"headline": "Data engineer, 8 years"}, actor=me)
    elif action == "confirm_interest":
        crm.confirm_interest(pool.cid, actor=me)
    else:
        crm.withdraw(pool.cid, actor=me, note="took another job")
    out = [n for n in sent(crm) if n.event_type == expected_type]
    owners = [("recruiter", "rec_owner"), ("recruiter", "rec_rel")]
    if expected_type.startswith("candidacy."):
        owners.append(
            ("recruiter", "rec_opening")
        )  # the opening's owner hears about its candidacies
    assert sorted(recipients(out)) == sorted(owners)
    # the candidate is never told about her own actions
    assert not [n for n in sent(crm) if n.recipient.role is C]
    # recruiters see the whole event
    for n in out:
        (event,) = [e for e in crm.timeline(pool.pid) if e.id == n.event_id]
        assert dict(n.data) == dict(event.data)
        assert n.subject.startswith("The candidate ")


def test_owners_are_told_once_each(crm: CRM) -> None:
    rec = Actor(R, "rec_a")
    pid = crm.add_person({"name": "Ada", "owner_id": "rec_a"}, actor=rec).id
    crm.assign_owner(pid, "rec_a", actor=rec)  # owner of the person and twice of the relationship
    oid = crm.add_opening({"title": "X", "owner_id": "rec_a"}, actor=rec).id
    cid = crm.add_candidacy(pid, oid, actor=rec).id
    clear(crm)
    crm.confirm_interest(cid, actor=Actor(C, pid))
    assert recipients(sent(crm)) == [("recruiter", "rec_a")]


def test_recruiter_actions_are_not_echoed_to_recruiters(pool: Pool) -> None:
    pool.crm.set_availability(pool.pid, "not_now", actor=Actor(R, "rec_owner"))
    assert recipients(sent(pool.crm)) == [("candidate", pool.pid)]
    assert sent(pool.crm)[0].data["availability"] == "not_now"
    assert "previous" not in sent(pool.crm)[0].data


def test_internal_events_tell_the_candidate_nothing(pool: Pool) -> None:
    crm, rec = pool.crm, pool.rec
    rows_before = crm.outbox(None)
    events_before = len(crm.store.events())
    crm.add_note(pool.pid, "internal", actor=rec)
    crm.tag(pool.pid, "python", actor=rec)
    crm.log_touchpoint(pool.pid, "email", "outbound", "sent the JD", actor=rec)
    crm.schedule_follow_up(pool.pid, crm.now() + timedelta(days=3), actor=rec)
    crm.assign_owner(pool.pid, "rec_other", actor=rec)
    crm.add_to_pool(pool.pid, crm.create_pool("silver", actor=rec).id, actor=rec)
    assert len(crm.store.events()) > events_before  # things did happen
    assert sent(crm) == []
    assert crm.outbox(None) == rows_before  # and no notification was even queued


def test_do_not_contact_silences_the_candidate(pool: Pool) -> None:
    crm = pool.crm
    crm.set_availability(pool.pid, "do_not_contact", actor=pool.me)
    assert sorted(recipients(sent(crm))) == [("recruiter", "rec_owner"), ("recruiter", "rec_rel")]
    clear(crm)
    crm.move(pool.cid, "applied", actor=pool.rec)
    crm.archive(pool.cid, "we_declined", actor=pool.rec)
    crm.grant_consent(pool.pid, "talent_pool", actor=pool.rec)
    assert sent(crm) == []
    # and once she opens up again she hears from us
    crm.set_availability(pool.pid, "open", actor=pool.me)
    clear(crm)
    crm.move(pool.cid, "applied", actor=pool.rec)  # reopen
    assert recipients(sent(crm)) == [("candidate", pool.pid)]


def test_do_not_contact_recorded_by_a_recruiter_is_not_sent_to_her(pool: Pool) -> None:
    pool.crm.set_availability(pool.pid, "do_not_contact", actor=pool.rec)
    assert sent(pool.crm) == []


def test_referrer_hears_about_progress_of_their_referral(crm: CRM) -> None:
    rec = Actor(R, "rec_a")
    referrer = Actor(F, "emp_bob")
    oid = crm.add_opening({"title": "Data Engineer"}, actor=rec).id
    other_oid = crm.add_opening({"title": "Designer"}, actor=rec).id
    referral = crm.refer(
        {"name": "Ada", "contacts": [{"value": "ada@example.org"}]},
        referrer_id="emp_bob",
        actor=referrer,
        opening_id=oid,
        note="great colleague",
    )
    pid, cid = referral.person_id, referral.candidacy_id
    assert cid is not None
    other_cid = crm.add_candidacy(pid, other_oid, actor=rec).id  # not referred
    clear(crm)
    crm.move(cid, "applied", actor=rec)
    crm.move(other_cid, "applied", actor=rec)
    crm.add_note(pid, "internal: strong", actor=rec)
    crm.withdraw(cid, actor=Actor(C, pid), note="not for me")
    to_bob = [n for n in sent(crm) if n.recipient.role is F]
    assert [(n.recipient.id, n.event_type) for n in to_bob] == [
        ("emp_bob", "candidacy.stage_changed"),
        ("emp_bob", "candidacy.withdrawn"),
    ]
    for n in to_bob:
        assert set(n.data) == {"opening_id", "opening_title", "candidate_stage"}
        assert n.data["opening_id"] == oid
    assert to_bob[1].data["candidate_stage"] == "Closed"
    assert "not for me" not in repr(to_bob)


def test_referrer_is_not_told_about_their_own_actions(crm: CRM) -> None:
    rec = Actor(R, "rec_a")
    oid = crm.add_opening({"title": "Data Engineer"}, actor=rec).id
    crm.refer({"name": "Ada"}, referrer_id="emp_bob", actor=Actor(F, "emp_bob"), opening_id=oid)
    assert [n for n in sent(crm) if n.recipient.role is F] == []
    # a recruiter recording the referral: the referrer hears the candidacy started
    crm.refer({"name": "Grace"}, referrer_id="emp_bob", actor=rec, opening_id=oid)
    to_bob = [n for n in sent(crm) if n.recipient.role is F]
    assert [n.event_type for n in to_bob] == ["candidacy.created"]


# --------------------------------------------------------------------------------------------
# Routing as a pure function
# --------------------------------------------------------------------------------------------

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def event(
    actor: Actor, type: str = "candidacy.stage_changed", person: str | None = "per_a", **data: Any
) -> Event:
    spec = EVENT_TYPES[type]
    subjects = {"person": person} if person else {}
    return Event(
        id="evt_1",
        type=type,
        occurred_at=WHEN,
        actor=actor,
        visibility=spec.visibility,
        subjects=subjects,
        data={
            "opening_id": "opn_1",
            "opening_title": "T",
            "candidate_stage": "Offer",
            "stage": "offer",
            **data,
        },
    )


def test_route_rules() -> None:
    owners = RoutingContext(owner_ids=("rec_1", "", "rec_2", "rec_1"), referrer_id="emp_r")
    by_recruiter = route(event(Actor(R, "rec_1")), owners)
    assert [(a.role, a.id) for a, _ in by_recruiter] == [(C, "per_a"), (F, "emp_r")]
    assert dict(by_recruiter[0][1].data) == {
        "opening_id": "opn_1",
        "opening_title": "T",
        "candidate_stage": "Offer",
    }
    by_candidate = route(event(Actor(C, "per_a")), owners)
    assert [(a.role, a.id) for a, _ in by_candidate] == [(R, "rec_1"), (R, "rec_2"), (F, "emp_r")]
    assert by_candidate[0][1].data["stage"] == "offer"  # recruiters get the whole event
    by_referrer = route(event(Actor(F, "emp_r")), owners)
    assert [(a.role, a.id) for a, _ in by_referrer] == [(C, "per_a")]
    dnc = RoutingContext(do_not_contact=True, owner_ids=("rec_1",))
    assert route(event(Actor(R, "rec_1")), dnc) == []
    assert [a.id for a, _ in route(event(Actor(C, "per_a")), dnc)] == ["rec_1"]
    internal = event(Actor(R, "rec_1"), type="relationship.note_added", text="x")
    assert internal.visibility is Visibility.INTERNAL
    assert route(internal, owners) == []
    assert route(event(Actor(R, "rec_1"), person=None), owners) == []
    # a candidate acting on someone else's record is not "the candidate" of that record
    assert [(a.role, a.id) for a, _ in route(event(Actor(C, "per_other")), RoutingContext())] == [
        (C, "per_a")
    ]


# --------------------------------------------------------------------------------------------
# The outbox
# --------------------------------------------------------------------------------------------


class FlakyNotifier:
    """Fails while ``failing`` is true, then records what it delivers."""

    name = "flaky"

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0
        self.delivered: list[Notification] = []

    def deliver(self, notification: Notification) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("smtp relay down")
        self.delivered.append(notification)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def flaky_rows(crm: CRM) -> list[OutboxRecord]:
    return [r for r in crm.outbox(None) if r.notifier == "flaky"]


def test_flaky_notifier_is_a_notifier() -> None:
    assert isinstance(FlakyNotifier(), Notifier)


def test_failing_notifier_leaves_its_row_pending_and_others_deliver(
    open_crm: Callable[..., CRM], clock: Any
) -> None:
    flaky = FlakyNotifier()
    crm = open_crm(notifiers=[flaky, "memory"])
    p = make_pool(crm)
    t0 = clock.now
    flaky.calls = 0
    for row in flaky_rows(crm):  # earlier commands: their rows are pending too
        assert row.status == "pending"
    before = {r.id for r in flaky_rows(crm)}
    crm.move(p.cid, "applied", actor=p.rec)
    (row,) = [r for r in flaky_rows(crm) if r.id not in before]
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.last_error == "ConnectionError: smtp relay down"
    assert row.next_attempt_at == iso(t0 + timedelta(seconds=30))
    assert flaky.calls == 1
    # the memory notifier got its copy of the same event
    (mem,) = sent(crm)
    assert mem.event_id == row.event_id
    (mem_row,) = [
        r for r in crm.outbox(None) if r.notifier == "memory" and r.event_id == row.event_id
    ]
    assert (mem_row.status, mem_row.attempts, mem_row.last_error) == ("delivered", 1, None)


def test_dispatch_pending_retries_with_backoff_then_delivers_once(
    open_crm: Callable[..., CRM], clock: Any
) -> None:
    flaky = FlakyNotifier()
    crm = open_crm(notifiers=[flaky, "memory"])
    t0 = clock.now
    rec = Actor(R, "rec_a")
    pid = crm.add_person({"name": "Ada", "contacts": [{"value": "ada@example.org"}]}, actor=rec).id
    (row,) = flaky_rows(crm)  # person.created, for the candidate
    assert (row.status, row.attempts) == ("pending", 1)
    # not due yet: nothing happens
    assert crm.dispatch_pending(now=t0 + timedelta(seconds=10)) == DispatchReport(0, 0, 0)
    assert flaky.calls == 1
    # due, still failing: second attempt, backoff doubles from the moment of that attempt
    later = t0 + timedelta(minutes=5)
    assert crm.dispatch_pending(now=later) == DispatchReport(failed=1)
    (row,) = flaky_rows(crm)
    assert (row.status, row.attempts) == ("pending", 2)
    assert row.next_attempt_at == iso(later + timedelta(seconds=60))
    assert crm.dispatch_pending(now=later) == DispatchReport(0, 0, 0)  # backing off
    assert flaky.calls == 2
    # the notifier recovers
    flaky.failing = False
    much_later = later + timedelta(hours=1)
    assert crm.dispatch_pending(now=much_later) == DispatchReport(delivered=1)
    (row,) = flaky_rows(crm)
    assert (row.status, row.attempts) == ("delivered", 3)
    (n,) = flaky.delivered
    assert n.id == row.id  # stable id across retries, for de-duplication
    assert n.recipient.id == pid
    assert n.event_type == "person.created"
    assert crm.dispatch_pending(now=much_later + timedelta(days=1)) == DispatchReport(0, 0, 0)
    assert len(flaky.delivered) == 1
    assert len(sent(crm)) == 1  # the memory notifier was never re-sent anything


def test_rows_go_dead_after_max_attempts(clock: Any) -> None:
    flaky = FlakyNotifier()
    crm = CRM(
        MemoryStore(),
        plugin_manager=make_plugin_manager(load_entrypoints=False),
        notifiers=[flaky, "memory"],
        clock=clock,
        max_attempts=3,
    )
    try:
        rec = Actor(R, "rec_a")
        crm.add_person({"name": "Ada"}, actor=rec)
        reports = [crm.dispatch_pending(now=clock.now + timedelta(days=d)) for d in (1, 2, 3, 4)]
        assert reports == [
            DispatchReport(failed=1),
            DispatchReport(dead=1),
            DispatchReport(),
            DispatchReport(),
        ]
        (row,) = flaky_rows(crm)
        assert (row.status, row.attempts) == ("dead", 3)
        assert row.last_error == "ConnectionError: smtp relay down"
        assert flaky.calls == 3
        assert crm.outbox("dead") == [row]
        assert [r for r in crm.outbox("pending") if r.notifier == "flaky"] == []
        # a recovered notifier does not resurrect dead rows
        flaky.failing = False
        assert crm.dispatch_pending(now=clock.now + timedelta(days=30)) == DispatchReport()
        assert flaky.delivered == []
    finally:
        crm.close()


def test_autodispatch_off_delivers_nothing_until_dispatch(open_crm: Callable[..., CRM]) -> None:
    crm = open_crm(autodispatch=False)
    p = make_pool(crm)
    crm.move(p.cid, "applied", actor=p.rec)
    assert sent(crm) == []
    pending = crm.outbox("pending")
    assert len(pending) >= 2
    assert all(r.attempts == 0 for r in pending)
    report = crm.dispatch_pending()
    assert report == DispatchReport(delivered=len(pending))
    assert [n.id for n in sent(crm)] == [r.id for r in pending]
    assert crm.outbox("pending") == []
    assert crm.dispatch_pending() == DispatchReport()
    assert len(sent(crm)) == len(pending)


def test_dispatch_pending_respects_limit(open_crm: Callable[..., CRM]) -> None:
    crm = open_crm(autodispatch=False)
    make_pool(crm)
    total = len(crm.outbox("pending"))
    assert total >= 2
    assert crm.dispatch_pending(limit=1) == DispatchReport(delivered=1)
    assert len(crm.outbox("pending")) == total - 1


def test_outbox_on_sqlite_keeps_pending_rows_across_reopen(tmp_path: Any, clock: Any) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    with relcrm.open(
        url, notifiers=["memory"], load_entrypoints=False, clock=clock, autodispatch=False
    ) as crm:
        crm.add_person({"name": "Ada"}, actor=Actor(R, "rec_a"))
        assert len(crm.outbox("pending")) == 1
    with relcrm.open(url, notifiers=["memory"], load_entrypoints=False, clock=clock) as crm:
        assert crm.dispatch_pending() == DispatchReport(delivered=1)
        assert [n.event_type for n in sent(crm)] == ["person.created"]
        assert crm.outbox("pending") == []


# --------------------------------------------------------------------------------------------
# relcrm_event_committed plugins
# --------------------------------------------------------------------------------------------


class Recorder:
    __name__ = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @relcrm.hookimpl
    def relcrm_event_committed(self, crm: CRM, event: Event) -> None:
        # the change is already committed when plugins hear about it
        cid = event.subjects.get("candidacy")
        version = crm.load(Candidacy, cid).version if cid else 0
        self.seen.append((event.type, version))


class Explodes:
    def __init__(self, name: str) -> None:
        self.__name__ = name
        self.calls = 0

    @relcrm.hookimpl
    def relcrm_event_committed(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError(f"boom from {self.__name__}")


def test_failing_event_committed_plugin_is_isolated(
    open_crm: Callable[..., CRM], caplog: pytest.LogCaptureFixture
) -> None:
    first, last = Explodes("explodes_first"), Explodes("explodes_last")
    recorder = Recorder()
    crm = open_crm(plugins=[first, recorder, last])
    p = make_pool(crm)
    recorder.seen.clear()
    first.calls = last.calls = 0
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="relcrm.plugins"):
        moved = crm.move(p.cid, "applied", actor=p.rec)
    assert moved.stage == "applied"
    assert crm.get_candidacy(p.cid).stage == "applied"  # not undone
    assert recorder.seen == [("candidacy.stage_changed", 2)]
    assert (first.calls, last.calls) == (1, 1)
    failures = [r for r in caplog.records if r.name == "relcrm.plugins"]
    assert len(failures) == 2
    assert {r.levelno for r in failures} == {logging.ERROR}
    messages = "\n".join(r.getMessage() for r in failures)
    assert "explodes_first" in messages
    assert "explodes_last" in messages
    assert "candidacy.stage_changed" in messages
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)
    # notifications still went out
    assert recipients(sent(crm)) == [("candidate", p.pid)]


def test_event_committed_is_not_called_for_rolled_back_work(open_crm: Callable[..., CRM]) -> None:
    recorder = Recorder()
    crm = open_crm(plugins=[recorder])
    p = make_pool(crm)
    recorder.seen.clear()
    with pytest.raises(relcrm.InvalidTransition):
        crm.move(p.cid, "offer", actor=p.rec)
    with pytest.raises(relcrm.ConcurrencyConflict):
        crm.update_profile(p.pid, {"headline": "x"}, actor=p.rec, expected_version=99)
    assert recorder.seen == []
    crm.add_note(p.pid, "hello", actor=p.rec)
    assert recorder.seen == [("relationship.note_added", 0)]
