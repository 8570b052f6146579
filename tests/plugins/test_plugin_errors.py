"""Misbehaving plugins surface as PluginError with a readable plugin name, never as raw errors."""

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm.plugins import AUTOLOAD_ENV, make_plugin_manager

RITA = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")


@pytest.fixture
def broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed distribution whose ``relcrm`` entry point fails to import."""
    module = f"relcrm_broken_plugin_{uuid.uuid4().hex}"
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{module}.py").write_text("import relcrm_no_such_dependency\n", encoding="utf-8")
    dist_info = site / "relcrm_broken_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: relcrm-broken-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(f"[relcrm]\nbroken = {module}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    try:
        yield module
    finally:
        sys.modules.pop(module, None)


def test_a_broken_installed_plugin_is_a_plugin_error(broken_distribution: str) -> None:
    with pytest.raises(relcrm.PluginError, match="relcrm_no_such_dependency"):
        relcrm.open("memory://", notifiers=[])
    # Turning autoload off is the way out, and it works.
    relcrm.open("memory://", notifiers=[], load_entrypoints=False).close()


class RaisingRegistration:
    @relcrm.hookimpl
    def relcrm_register_notifiers(self, register: Callable[[str, Any], None]) -> None:
        raise RuntimeError("boom while registering")


def test_an_exception_in_a_registration_hook_names_the_plugin() -> None:
    with pytest.raises(relcrm.PluginError) as info:
        relcrm.open("memory://", plugins=[RaisingRegistration()], load_entrypoints=False)
    assert info.value.plugin.endswith("RaisingRegistration")
    assert "boom while registering" in str(info.value)


class NoArgumentRegistration:
    @relcrm.hookimpl
    def relcrm_register_pipelines(self) -> None:
        self.called = True


def test_a_registration_hook_may_ignore_register() -> None:
    plugin = NoArgumentRegistration()
    relcrm.open("memory://", plugins=[plugin], load_entrypoints=False, notifiers=[]).close()
    assert plugin.called


class Vetoer:
    @relcrm.hookimpl
    def relcrm_before_transition(self) -> str:
        return "hiring freeze"


def test_object_plugins_get_readable_unique_names() -> None:
    pm = make_plugin_manager([Vetoer(), Vetoer()], load_entrypoints=False)
    names = sorted(n for n, _ in pm.list_name_plugin() if "Vetoer" in n)
    assert names == [f"{__name__}.Vetoer", f"{__name__}.Vetoer-2"]
    crm = relcrm.open("memory://", plugins=[Vetoer()], load_entrypoints=False, notifiers=[])
    person = crm.add_person({"name": "Ada"}, actor=RITA)
    opening = crm.add_opening({"title": "Analyst"}, actor=RITA)
    candidacy = crm.add_candidacy(person.id, opening.id, actor=RITA)
    with pytest.raises(relcrm.TransitionVetoed) as info:
        crm.move(candidacy.id, "applied", actor=RITA)
    assert info.value.plugin == f"{__name__}.Vetoer"
    assert "hiring freeze" in str(info.value)


def test_registering_the_same_plugin_object_twice_is_refused() -> None:
    plugin = Vetoer()
    with pytest.raises(relcrm.PluginError):
        make_plugin_manager([plugin, plugin], load_entrypoints=False)
