"""relcrm_register_match_signals: plugin signals take part in every score and explanation."""

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import relcrm
from relcrm.matching import MatchBatch

RITA = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")


class Referred:
    """1 for people whose headline mentions a referral, else 0."""

    name = "referred"
    weight = 0.5

    def score(self, batch: MatchBatch) -> Any:
        return np.array([1.0 if "referred" in p.title.lower() else 0.0 for p in batch.profiles])


class ReferredPlugin:
    @relcrm.hookimpl
    def relcrm_register_match_signals(self, register: Callable[[Referred], None]) -> None:
        register(Referred())


def _pool(crm: relcrm.CRM) -> relcrm.Opening:
    crm.add_person({"name": "Ada", "headline": "Data engineer"}, actor=RITA)
    crm.add_person({"name": "Grace", "headline": "Data engineer (referred)"}, actor=RITA)
    return crm.add_opening({"title": "Data engineer"}, actor=RITA)


def test_relcrm_register_match_signals_adds_a_weighted_signal() -> None:
    crm = relcrm.open("memory://", plugins=[ReferredPlugin()], notifiers=[], load_entrypoints=False)
    opening = _pool(crm)
    results = crm.match(opening.id)
    top = results.matches[0]
    assert crm.get_person(top.person_id).name == "Grace"
    lines = {c.signal: c for c in top.explanation.contributions}
    assert lines["referred"].value == 1.0
    assert lines["referred"].contribution == pytest.approx(
        lines["referred"].weight * lines["referred"].value
    )
    assert top.score == sum(c.contribution for c in top.explanation.contributions)
    other = results.matches[1]
    assert {c.signal: c for c in other.explanation.contributions}["referred"].value == 0.0


def test_relcrm_register_match_signals_weight_can_be_overridden() -> None:
    crm = relcrm.open("memory://", plugins=[ReferredPlugin()], notifiers=[], load_entrypoints=False)
    crm.match_weights["referred"] = 0.0
    opening = _pool(crm)
    for match in crm.match(opening.id).matches:
        weights = {c.signal: c.weight for c in match.explanation.contributions}
        assert weights.get("referred", 0.0) == 0.0  # switched off: no part in any score


def test_relcrm_register_match_signals_duplicate_name_is_a_plugin_error() -> None:
    crm = relcrm.open(
        "memory://",
        plugins=[ReferredPlugin(), ReferredPlugin()],
        notifiers=[],
        load_entrypoints=False,
    )
    _pool(crm)
    with pytest.raises(relcrm.PluginError, match="referred"):
        crm.match(crm.openings()[0].id)
