"""``relcrm_register_skill_taxonomies``: plugins add or replace skills vocabularies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import relcrm
from relcrm import CRM
from relcrm.matching.taxonomy import Skill, SkillTaxonomy, esco_taxonomy, taxonomy_for

OpenCRM = Callable[..., CRM]


@pytest.fixture
def open_crm() -> Iterator[OpenCRM]:
    opened: list[CRM] = []

    def open_(*plugins: object) -> CRM:
        crm = relcrm.open("memory://", plugins=plugins, notifiers=[], load_entrypoints=False)
        opened.append(crm)
        return crm

    yield open_
    for crm in opened:
        crm.close()


class Vocabulary:
    """A plugin registering one small taxonomy."""

    def __init__(self, name: str, skills: list[Skill], **kwargs: Any) -> None:
        self.__name__ = f"vocabulary-{name}"
        self.taxonomy = SkillTaxonomy.from_skills(name, skills, **kwargs)

    @relcrm.hookimpl
    def relcrm_register_skill_taxonomies(self, register: Callable[[SkillTaxonomy], None]) -> None:
        register(self.taxonomy)


HOSPITAL = [
    Skill("h:triage", "emergency triage", aliases=("triage", "ed triage"), technology=True),
    Skill("h:epic", "Epic EHR", synonyms=("epic systems",), technology=True),
]


def test_relcrm_register_skill_taxonomies_builtin_is_esco(open_crm: OpenCRM) -> None:
    crm = open_crm()
    tax = taxonomy_for(crm.plugin_manager)
    assert tax is esco_taxonomy()
    assert taxonomy_for(crm.plugin_manager) is tax  # cached per plugin manager
    found = tax.normalise("k8s")
    assert found is not None
    assert found.label == "Kubernetes"


def test_relcrm_register_skill_taxonomies_adds_a_vocabulary(open_crm: OpenCRM) -> None:
    crm = open_crm(Vocabulary("hospital", HOSPITAL))
    tax = taxonomy_for(crm.plugin_manager)
    assert not tax.loaded  # registering reads nothing
    assert tax.normalise("Triage").id == "h:triage"  # type: ignore[union-attr]
    assert tax.normalise("Epic Systems").id == "h:epic"  # type: ignore[union-attr]
    assert tax.normalise("PostgreSQL").label == "PostgreSQL"  # type: ignore[union-attr]
    text = "Nurse with ED triage experience, charting in Epic Systems and Excel."
    assert [m.id for m in tax.extract(text)] == [
        "h:triage",
        "h:epic",
        "esco:1973c966-f236-40c9-b2d4-5d71a89019be",
    ]


def test_relcrm_register_skill_taxonomies_later_wins_an_alias(open_crm: OpenCRM) -> None:
    ours = Vocabulary("ours", [Skill("o:k8s", "Our Kubernetes", synonyms=("k8s",))])
    tax = taxonomy_for(open_crm(ours).plugin_manager)
    assert tax.normalise("k8s").id == "o:k8s"  # type: ignore[union-attr]
    assert tax.normalise("kubernetes").id == "relcrm:kubernetes"  # type: ignore[union-attr]


def test_relcrm_register_skill_taxonomies_replaces_esco(open_crm: OpenCRM) -> None:
    only = Vocabulary("hospital", HOSPITAL, replaces=["esco"])
    tax = taxonomy_for(open_crm(only).plugin_manager)
    assert tax is only.taxonomy
    assert tax.normalise("PostgreSQL") is None
    assert tax.normalise("triage").id == "h:triage"  # type: ignore[union-attr]


def test_relcrm_register_skill_taxonomies_duplicate_name_is_an_error(open_crm: OpenCRM) -> None:
    crm = open_crm(Vocabulary("esco", HOSPITAL))
    with pytest.raises(relcrm.PluginError, match="'esco' is already registered"):
        taxonomy_for(crm.plugin_manager)


def test_relcrm_register_skill_taxonomies_rejects_other_objects(open_crm: OpenCRM) -> None:
    class Wrong:
        __name__ = "wrong"

        @relcrm.hookimpl
        def relcrm_register_skill_taxonomies(self, register: Callable[[Any], None]) -> None:
            register({"k8s": "Kubernetes"})

    crm = open_crm(Wrong())
    with pytest.raises(relcrm.PluginError, match="expected a SkillTaxonomy") as info:
        taxonomy_for(crm.plugin_manager)
    assert info.value.plugin == "wrong"
