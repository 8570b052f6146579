"""Every candidacy command takes ``expected_version`` and refuses a stale one without writing."""

import pytest

import relcrm
from relcrm import Actor, ActorRole, Candidacy

RITA = Actor(ActorRole.RECRUITER, "rita")


@pytest.fixture
def setup() -> tuple[relcrm.CRM, str, str]:
    crm = relcrm.open("memory://", notifiers=[], load_entrypoints=False)
    person = crm.add_person({"name": "Ada"}, actor=RITA)
    opening = crm.add_opening({"title": "Analyst"}, actor=RITA)
    candidacy = crm.add_candidacy(person.id, opening.id, actor=RITA)
    return crm, person.id, candidacy.id


@pytest.mark.parametrize(
    ("command", "role"),
    [
        (lambda crm, cid, actor, v: crm.move(cid, "applied", actor=actor, expected_version=v), "r"),
        (
            lambda crm, cid, actor, v: crm.archive(
                cid, "we_declined", actor=actor, expected_version=v
            ),
            "r",
        ),
        (lambda crm, cid, actor, v: crm.withdraw(cid, actor=actor, expected_version=v), "c"),
        (
            lambda crm, cid, actor, v: crm.confirm_interest(cid, actor=actor, expected_version=v),
            "c",
        ),
    ],
)
def test_stale_version_is_refused_and_nothing_is_written(
    setup: tuple[relcrm.CRM, str, str], command: object, role: str
) -> None:
    crm, person_id, cid = setup
    actor = RITA if role == "r" else Actor(ActorRole.CANDIDATE, person_id)
    version = crm.load(Candidacy, cid).version
    events = len(crm.store.events())
    with pytest.raises(relcrm.ConcurrencyConflict) as info:
        command(crm, cid, actor, version - 1)  # type: ignore[operator]
    assert (info.value.expected, info.value.actual) == (version - 1, version)
    assert crm.load(Candidacy, cid).version == version
    assert len(crm.store.events()) == events
    command(crm, cid, actor, version)  # type: ignore[operator]
    assert crm.load(Candidacy, cid).version == version + 1


def test_a_second_candidacy_after_a_hire_says_so(setup: tuple[relcrm.CRM, str, str]) -> None:
    crm, person_id, cid = setup
    for stage in ("applied", "screening", "interview", "offer", "hired"):
        crm.move(cid, stage, actor=RITA)
    opening_id = crm.get_candidacy(cid).opening_id
    with pytest.raises(relcrm.AlreadyExists, match="was hired"):
        crm.add_candidacy(person_id, opening_id, actor=RITA)
