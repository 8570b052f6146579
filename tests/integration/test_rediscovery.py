"""Relevance: people the organisation already knows resurface for new openings, by segment."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import relcrm
from relcrm import Actor, ActorRole

RITA = Actor(ActorRole.RECRUITER, "rita")
PROFILE = {
    "headline": "Data Engineer",
    "summary": "Builds streaming data pipelines with Spark and Airflow; models data in SQL.",
    "skills": ["python", "spark", "airflow", "sql"],
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def crm_and_clock(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[relcrm.CRM, Clock]]:
    clock = Clock()
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'pool.db'}"
    crm = relcrm.open(url, notifiers=["memory"], load_entrypoints=False, clock=clock)
    yield crm, clock
    crm.close()


def _finalist(crm: relcrm.CRM, name: str, opening_id: str, reason: str) -> str:
    person = crm.add_person({"name": name, **PROFILE}, actor=RITA)
    c = crm.add_candidacy(person.id, opening_id, actor=RITA)
    for stage in ("applied", "screening", "interview"):
        crm.move(c.id, stage, actor=RITA)
    crm.archive(c.id, reason, actor=RITA)
    return person.id


def test_hired_elsewhere_finalist_is_rediscovered_first(
    crm_and_clock: tuple[relcrm.CRM, Clock],
) -> None:
    crm, clock = crm_and_clock
    old = crm.add_opening(
        {
            "title": "Senior Data Engineer",
            "required_skills": ["python", "spark"],
            "owner_id": "rita",
        },
        actor=RITA,
    )
    not_eligible = _finalist(crm, "Noor Eligible", old.id, "not_eligible")
    finalist = _finalist(crm, "Farah Finalist", old.id, "hired_elsewhere")
    dnc = crm.add_person({"name": "Dana Nocontact", **PROFILE}, actor=RITA).id
    crm.set_availability(dnc, "do_not_contact", actor=Actor(ActorRole.CANDIDATE, dnc))
    prospect = crm.add_person(
        {"name": "Pat Prospect", "headline": "Analytics Engineer", "skills": ["sql", "python"]},
        actor=RITA,
    ).id
    for i in range(30):  # a pool around them
        crm.add_person(
            {"name": f"Other {i}", "headline": ["Nurse", "Welder", "Chef"][i % 3], "skills": []},
            actor=RITA,
        )

    clock.now += timedelta(days=365)
    new = crm.add_opening(
        {
            "title": "Data Engineer",
            "description": "Streaming pipelines on Spark and Airflow.",
            "required_skills": ["python", "spark", "airflow"],
            "owner_id": "rita",
        },
        actor=Actor(ActorRole.RECRUITER, "sam"),
    )
    found = crm.rediscover(new.id, actor=Actor(ActorRole.SYSTEM, "rediscovery"))

    silver = [m.person_id for m in found.segments["silver_medalist"]]
    assert silver[:2] == [finalist, not_eligible]  # hired elsewhere ranks above not eligible
    everyone = [m.person_id for ms in found.segments.values() for m in ms]
    assert dnc not in everyone
    assert found.filtered.get("do_not_contact") == 1
    top = max((m for ms in found.segments.values() for m in ms), key=lambda m: m.score)
    assert top.person_id == finalist
    assert top.score == sum(c.contribution for c in top.explanation.contributions)
    assert prospect in [m.person_id for m in found.segments["prospect"]]
    # The opening's owner hears about the run.
    sent = crm.notifier("memory").sent
    assert [n.event_type for n in sent if n.recipient.id == "rita"][-1] == "opening.rediscovered"


def test_changes_are_matchable_at_once_and_suggestions_respect_consent(
    crm_and_clock: tuple[relcrm.CRM, Clock],
) -> None:
    crm, _ = crm_and_clock
    keen = crm.add_person(
        {"name": "Kim Keen", **PROFILE, "preferences": {"hear_about_openings": True}}, actor=RITA
    ).id
    shy = crm.add_person(
        {"name": "Sol Shy", **PROFILE, "preferences": {"hear_about_openings": True}}, actor=RITA
    ).id
    crm.grant_consent(keen, "job_alerts", actor=Actor(ActorRole.CANDIDATE, keen))
    opening = crm.add_opening({"title": "Data Engineer", "owner_id": "rita"}, actor=RITA)
    assert {m.person_id for m in crm.match(opening.id).matches} == {keen, shy}  # index built

    late = crm.add_person({"name": "Lee Late", **PROFILE}, actor=RITA).id
    assert late in {m.person_id for m in crm.match(opening.id).matches}  # no rebuild needed
    crm.set_availability(late, "not_looking", actor=Actor(ActorRole.CANDIDATE, late))
    results = crm.match(opening.id)
    assert late not in {m.person_id for m in results.matches}
    assert results.filtered.get("not_looking") == 1

    found = crm.rediscover(opening.id, actor=RITA)
    assert found.suggested_to == (keen,)
    told = [n for n in crm.notifier("memory").sent if n.event_type == "person.opening_suggested"]
    assert [(n.recipient.id, n.data) for n in told] == [
        (keen, {"opening_id": opening.id, "opening_title": "Data Engineer"})
    ]
    [event] = [e for e in crm.timeline(keen, "candidate") if e.type == "person.opening_suggested"]
    assert event.data == {"opening_id": opening.id, "opening_title": "Data Engineer"}


def test_openings_for_a_person_uses_the_same_signals(
    crm_and_clock: tuple[relcrm.CRM, Clock],
) -> None:
    crm, _ = crm_and_clock
    person = crm.add_person({"name": "Ada", **PROFILE}, actor=RITA).id
    crm.add_opening({"title": "Head Chef", "description": "Runs a kitchen."}, actor=RITA)
    fit = crm.add_opening({"title": "Data Engineer", "required_skills": ["spark"]}, actor=RITA)
    results = crm.openings_for(person)
    assert results.matches[0].role_id == fit.id
    closed = crm.set_opening_status(fit.id, "closed", actor=RITA)
    assert closed.id not in [m.role_id for m in crm.openings_for(person).matches]


def test_a_failed_index_update_never_fails_the_committed_command(
    crm_and_clock: tuple[relcrm.CRM, Clock],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    crm, _ = crm_and_clock
    opening = crm.add_opening({"title": "Data Engineer"}, actor=RITA)
    crm.add_person({"name": "Ada", **PROFILE}, actor=RITA)
    assert len(crm.match(opening.id).matches) == 1  # the index exists now

    def broken(self: object, events: object) -> None:
        raise RuntimeError("index update failed")

    monkeypatch.setattr(type(crm.talent_index()), "refresh", broken)
    grace = crm.add_person({"name": "Grace", **PROFILE}, actor=RITA)  # returns normally
    assert crm.get_person(grace.id).name == "Grace"
    assert "match index" in caplog.text
    monkeypatch.undo()
    assert {m.person_id for m in crm.match(opening.id).matches} >= {grace.id}  # rebuilt
