"""Every hook in :mod:`relcrm.hookspecs`, exercised through real CRMs.

Each test opens its own CRM, so it gets a fresh plugin manager holding the built-ins and only the
plugins that test registers. ``tests/test_docs.py`` checks that every hook has a test here named
``test_<hook>`` or ``test_<hook>_...``.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm import CRM, Actor, ActorRole, Candidacy, Event, Milestone, Pipeline, Stage, Transition
from relcrm.notify import Notification, NotifierFactory
from relcrm.plugins import AUTOLOAD_ENV, plugin_infos
from relcrm.storage import EventRecord, Store, StoreFactory, Transaction
from relcrm.storage.memory import MemoryStore

RITA = Actor(ActorRole.RECRUITER, "rita")
OpenCRM = Callable[..., CRM]


@pytest.fixture
def open_crm() -> Iterator[OpenCRM]:
    """``open_crm(*plugins, url=..., notifiers=...)``: a CRM with only these extra plugins, closed
    after the test. Entry points are not loaded, so installed plugins cannot interfere."""
    opened: list[CRM] = []

    def open_(*plugins: object, url: str = "memory://", **kwargs: Any) -> CRM:
        kwargs.setdefault("notifiers", [])
        crm = relcrm.open(url, plugins=plugins, load_entrypoints=False, **kwargs)
        opened.append(crm)
        return crm

    yield open_
    for crm in opened:
        crm.close()


def person_with_candidacy(crm: CRM, stage: str = "applied") -> Candidacy:
    """Add a person (owned by rita), an opening and a candidacy at ``stage``."""
    person = crm.add_person(
        {"name": "Ada", "contacts": [{"value": "ada@example.org"}], "owner_id": "rita"},
        actor=RITA,
    )
    opening = crm.add_opening({"title": "Data Engineer"}, actor=RITA)
    return crm.add_candidacy(person.id, opening.id, actor=RITA, stage=stage)


# ------------------------------------------------------------------------------------------------
# Test plugins
# ------------------------------------------------------------------------------------------------


class WrappedStore:
    """A store for a plugin's own URL scheme: a ``MemoryStore`` underneath, counting transactions.

    ``fail_on`` names an event type whose append fails, to make a command roll back half-way.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.inner = MemoryStore()
        self.transactions = 0
        self.fail_on: str | None = None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.transactions += 1
        with self.inner.transaction() as tx:
            yield FailingTransaction(tx, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FailingTransaction:
    def __init__(self, tx: Transaction, store: WrappedStore) -> None:
        self.tx = tx
        self.store = store

    def append_event(self, event: EventRecord) -> EventRecord:
        if event.type == self.store.fail_on:
            raise relcrm.StorageError(f"cannot append {event.type}: disk full")
        return self.tx.append_event(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)


class SchemePlugin:
    """Registers ``scheme`` with a factory that makes :class:`WrappedStore` s."""

    def __init__(self, name: str, scheme: str = "myscheme") -> None:
        self.__name__ = name
        self.scheme = scheme
        self.stores: list[WrappedStore] = []

    def factory(self, url: str) -> WrappedStore:
        store = WrappedStore(url)
        self.stores.append(store)
        return store

    @relcrm.hookimpl
    def relcrm_register_storage_backends(
        self, register: Callable[[str, StoreFactory], None]
    ) -> None:
        register(self.scheme, self.factory)


class CollectingNotifier:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Notification] = []

    def deliver(self, notification: Notification) -> None:
        self.sent.append(notification)


class NotifierPlugin:
    """Registers notifiers by name; remembers every instance its factories made."""

    def __init__(self, plugin_name: str, *names: str) -> None:
        self.__name__ = plugin_name
        self.names = names or ("collector",)
        self.made: list[CollectingNotifier] = []

    @relcrm.hookimpl
    def relcrm_register_notifiers(self, register: Callable[[str, NotifierFactory], None]) -> None:
        for name in self.names:

            def factory(name: str = name) -> CollectingNotifier:
                notifier = CollectingNotifier(name)
                self.made.append(notifier)
                return notifier

            register(name, factory)


class PipelinePlugin:
    def __init__(self, *pipelines: Pipeline) -> None:
        self.__name__ = "pipelines-under-test"
        self.pipelines = pipelines

    @relcrm.hookimpl
    def relcrm_register_pipelines(self, register: Callable[[Pipeline], None]) -> None:
        for pipeline in self.pipelines:
            register(pipeline)


class Gatekeeper:
    """Asked before every transition: refuses ``refuse`` (a transition name) with ``reason``."""

    def __init__(
        self,
        name: str,
        refuse: str | None = None,
        reason: str = "not today",
        raises: Exception | None = None,
    ) -> None:
        self.__name__ = name
        self.refuse = refuse
        self.reason = reason
        self.raises = raises
        self.asked: list[tuple[CRM, Candidacy, Transition, Actor]] = []

    @relcrm.hookimpl
    def relcrm_before_transition(
        self, crm: CRM, candidacy: Candidacy, transition: Transition, actor: Actor
    ) -> str | None:
        self.asked.append((crm, candidacy, transition, actor))
        if self.raises is not None:
            raise self.raises
        return self.reason if transition.name == self.refuse else None


class EventRecorder:
    """Records committed events, and whether each was already readable from the store."""

    def __init__(self, name: str = "recorder", fail: bool = False) -> None:
        self.__name__ = name
        self.fail = fail
        self.events: list[Event] = []
        self.in_store: list[bool] = []

    @relcrm.hookimpl
    def relcrm_event_committed(self, crm: CRM, event: Event) -> None:
        self.events.append(event)
        self.in_store.append(event.id in {e.id for e in crm.store.events()})
        if self.fail:
            raise RuntimeError(f"{self.__name__} is broken")


# ------------------------------------------------------------------------------------------------
# relcrm_register_storage_backends
# ------------------------------------------------------------------------------------------------


def test_relcrm_register_storage_backends_serves_a_new_scheme(open_crm: OpenCRM) -> None:
    plugin = SchemePlugin("my-backend")
    crm = open_crm(plugin, url="myscheme://talent")
    [store] = plugin.stores
    assert crm.store is store
    assert store.url == "myscheme://talent"
    assert isinstance(store, Store)

    person = crm.add_person({"name": "Ada"}, actor=RITA)
    assert store.transactions == 1
    assert store.inner.get("person", person.id) is not None
    assert crm.get_person(person.id) == person


def test_relcrm_register_storage_backends_scheme_is_case_insensitive(open_crm: OpenCRM) -> None:
    plugin = SchemePlugin("my-backend")
    crm = open_crm(plugin, url="MyScheme://talent")
    assert crm.store is plugin.stores[0]


def test_relcrm_register_storage_backends_unknown_scheme_lists_plugin_schemes() -> None:
    with pytest.raises(relcrm.UnknownBackend) as caught:
        relcrm.open("nosuch://x", plugins=[SchemePlugin("my-backend")], load_entrypoints=False)
    assert caught.value.scheme == "nosuch"
    assert set(caught.value.known) == {"memory", "sqlite", "postgresql", "postgres", "myscheme"}


def test_relcrm_register_storage_backends_duplicate_scheme_is_a_plugin_error() -> None:
    first, second = SchemePlugin("first-backend"), SchemePlugin("second-backend")
    with pytest.raises(relcrm.PluginError, match="'myscheme' is already registered") as caught:
        relcrm.open("myscheme://x", plugins=[first, second], load_entrypoints=False)
    message = str(caught.value)
    assert "first-backend" in message
    assert "second-backend" in message
    assert first.stores == second.stores == []  # nothing was opened


def test_relcrm_register_storage_backends_cannot_take_a_builtin_scheme() -> None:
    with pytest.raises(relcrm.PluginError, match="'memory' is already registered"):
        relcrm.open("memory://", plugins=[SchemePlugin("x", "memory")], load_entrypoints=False)


def test_relcrm_register_storage_backends_duplicate_blames_the_later_plugin() -> None:
    with pytest.raises(relcrm.PluginError) as caught:
        relcrm.open("memory://", plugins=[SchemePlugin("late", "memory")], load_entrypoints=False)
    assert caught.value.plugin == "late"
    assert "already registered by 'relcrm.storage.memory'" in str(caught.value)


# ------------------------------------------------------------------------------------------------
# relcrm_register_notifiers
# ------------------------------------------------------------------------------------------------


def test_relcrm_register_notifiers_named_notifier_receives_notifications(
    open_crm: OpenCRM,
) -> None:
    plugin = NotifierPlugin("my-notifiers", "collector", "unused")
    crm = open_crm(plugin, notifiers=["collector"])
    [collector] = plugin.made  # only the notifier that was asked for is made
    assert crm.notifier("collector") is collector

    c = person_with_candidacy(crm, stage="lead")
    ada = Actor(ActorRole.CANDIDATE, c.person_id)
    crm.confirm_interest(c.id, actor=ada)  # the candidate acts: her recruiter is told
    crm.move(c.id, "screening", actor=RITA)  # the recruiter acts: the candidate is told

    told = [(n.recipient.role, n.recipient.id, n.event_type) for n in collector.sent]
    assert told == [
        (ActorRole.CANDIDATE, c.person_id, "person.created"),
        (ActorRole.CANDIDATE, c.person_id, "candidacy.created"),
        (ActorRole.RECRUITER, "rita", "candidacy.interest_confirmed"),
        (ActorRole.CANDIDATE, c.person_id, "candidacy.stage_changed"),
    ]
    last = collector.sent[-1]
    assert last.recipient.address == "ada@example.org"
    assert last.subject == "Recruiter moved the candidacy for Data Engineer to Under review"
    assert "stage" not in last.data  # projected for the candidate: internal stage ids removed
    assert {row.status for row in crm.outbox(None)} == {"delivered"}
    assert {row.notifier for row in crm.outbox(None)} == {"collector"}


def test_relcrm_register_notifiers_duplicate_name_is_a_plugin_error() -> None:
    plugins = [NotifierPlugin("first-notifiers"), NotifierPlugin("second-notifiers")]
    with pytest.raises(relcrm.PluginError, match="'collector' is already registered") as caught:
        relcrm.open("memory://", plugins=plugins, notifiers=[], load_entrypoints=False)
    assert "first-notifiers" in str(caught.value)
    assert "second-notifiers" in str(caught.value)


def test_relcrm_register_notifiers_cannot_take_a_builtin_name() -> None:
    plugin = NotifierPlugin("mine", "memory")
    with pytest.raises(relcrm.PluginError, match="'memory' is already registered"):
        relcrm.open("memory://", plugins=[plugin], notifiers=[], load_entrypoints=False)


def test_relcrm_register_notifiers_unknown_name_lists_registered_names() -> None:
    plugin = NotifierPlugin("mine", "collector")
    with pytest.raises(relcrm.ValidationError) as caught:
        relcrm.open("memory://", plugins=[plugin], notifiers=["sms"], load_entrypoints=False)
    [problem] = caught.value.errors
    assert problem == "unknown notifier 'sms'; registered: collector, log, memory @ $"


# ------------------------------------------------------------------------------------------------
# relcrm_register_pipelines
# ------------------------------------------------------------------------------------------------

_R = frozenset({ActorRole.RECRUITER})
PANEL = Pipeline(
    name="panel",
    stages=(
        Stage("new", "New", Milestone.APPLIED),
        Stage("panel", "Panel interview", Milestone.INTERVIEW, "Meeting the team"),
        Stage("offer", "Offer", Milestone.OFFER),
        Stage("hired", "Hired", Milestone.HIRED),
        Stage("closed", "Closed", Milestone.ARCHIVED),
    ),
    transitions=(
        Transition("invite_to_panel", frozenset({"new"}), "panel", _R),
        Transition("make_offer", frozenset({"panel"}), "offer", _R),
        Transition("hire", frozenset({"offer"}), "hired", _R, "candidacy.hired"),
        Transition(
            "archive",
            frozenset({"new", "panel", "offer"}),
            "closed",
            _R,
            "candidacy.archived",
            requires_reason=True,
        ),
    ),
    initial="new",
)


def test_relcrm_register_pipelines_custom_pipeline_used_by_an_opening(open_crm: OpenCRM) -> None:
    crm = open_crm(PipelinePlugin(PANEL))
    assert set(crm.pipelines) == {"default", "panel"}
    person = crm.add_person({"name": "Grace"}, actor=RITA)
    opening = crm.add_opening({"title": "Compiler Engineer", "pipeline": "panel"}, actor=RITA)
    other = crm.add_opening({"title": "Analyst"}, actor=RITA)

    c = crm.add_candidacy(person.id, opening.id, actor=RITA)
    assert (c.pipeline, c.stage, c.furthest_milestone) == ("panel", "new", Milestone.APPLIED)
    with pytest.raises(relcrm.InvalidTransition, match="has no transition 'screen'"):
        crm.transition(c.id, "screen", actor=RITA)  # a default-pipeline transition

    c = crm.move(c.id, "panel", actor=RITA)
    assert c.history[-1].transition == "invite_to_panel"
    [view] = crm.candidate_view(person.id).candidacies
    assert view.stage == "Meeting the team"

    c = crm.transition(c.id, "make_offer", actor=RITA)
    c = crm.transition(c.id, "hire", actor=RITA)
    assert c.stage == "hired"
    assert [e.title for e in crm.employment(person.id)] == ["Compiler Engineer"]

    d = crm.add_candidacy(person.id, other.id, actor=RITA)  # the default pipeline still works
    assert (d.pipeline, d.stage) == ("default", "lead")


def test_relcrm_register_pipelines_duplicate_name_is_a_plugin_error() -> None:
    with pytest.raises(relcrm.PluginError, match="'panel' is already registered"):
        relcrm.open("memory://", plugins=[PipelinePlugin(PANEL, PANEL)], load_entrypoints=False)


def test_relcrm_register_pipelines_cannot_replace_the_default() -> None:
    default_again = Pipeline(
        name="default", stages=PANEL.stages, transitions=PANEL.transitions, initial="new"
    )
    plugin = PipelinePlugin(default_again)
    with pytest.raises(relcrm.PluginError, match="'default' is already registered"):
        relcrm.open("memory://", plugins=[plugin], load_entrypoints=False)


def test_relcrm_register_pipelines_unknown_pipeline_is_refused(open_crm: OpenCRM) -> None:
    crm = open_crm(PipelinePlugin(PANEL))
    with pytest.raises(relcrm.ValidationError) as caught:
        crm.add_opening({"title": "X", "pipeline": "nope"}, actor=RITA)
    assert caught.value.errors == (
        "unknown pipeline 'nope'; registered: default, panel @ $.pipeline",
    )


# ------------------------------------------------------------------------------------------------
# relcrm_before_transition
# ------------------------------------------------------------------------------------------------


def _snapshot(crm: CRM, c: Candidacy) -> tuple[object, ...]:
    stored = crm.load(Candidacy, c.id)
    return (
        stored.version,
        stored.value,
        [e.id for e in crm.store.events()],
        [row.id for row in crm.outbox(None)],
    )


def test_relcrm_before_transition_veto_names_the_plugin_and_writes_nothing(
    open_crm: OpenCRM,
) -> None:
    gate = Gatekeeper("no-screening", refuse="screen", reason="screening is paused")
    recorder = EventRecorder()
    crm = open_crm(gate, recorder, notifiers=["memory"])
    c = person_with_candidacy(crm)
    before = _snapshot(crm, c)
    committed = len(recorder.events)
    sent = len(crm.notifier("memory").sent)

    with pytest.raises(relcrm.TransitionVetoed) as caught:
        crm.transition(c.id, "screen", actor=RITA)
    vetoed = caught.value
    assert isinstance(vetoed, relcrm.InvalidTransition)
    assert vetoed.plugin == "no-screening"
    assert (vetoed.stage, vetoed.target, vetoed.actor) == ("applied", "screening", "recruiter:rita")
    assert vetoed.reason == "vetoed by plugin 'no-screening': screening is paused"

    assert _snapshot(crm, c) == before  # no state, no event, no outbox row
    assert len(recorder.events) == committed
    assert len(crm.notifier("memory").sent) == sent


def test_relcrm_before_transition_returning_none_allows(open_crm: OpenCRM) -> None:
    gate = Gatekeeper("only-hires-refused", refuse="hire")
    crm = open_crm(gate)
    c = person_with_candidacy(crm)

    moved = crm.transition(c.id, "screen", actor=RITA)

    assert moved.stage == "screening"
    assert crm.get_candidacy(c.id).stage == "screening"
    [(asked_crm, candidacy, transition, actor)] = gate.asked
    assert asked_crm is crm
    assert candidacy == c  # as it was before the transition
    assert (transition.name, transition.target) == ("screen", "screening")
    assert actor == RITA


def test_relcrm_before_transition_newest_plugin_is_asked_first_and_first_refusal_wins(
    open_crm: OpenCRM,
) -> None:
    older = Gatekeeper("older", refuse="screen")
    newer = Gatekeeper("newer", refuse="screen")
    crm = open_crm(older, newer)
    c = person_with_candidacy(crm)
    with pytest.raises(relcrm.TransitionVetoed) as caught:
        crm.transition(c.id, "screen", actor=RITA)
    assert caught.value.plugin == "newer"
    assert older.asked == []


def test_relcrm_before_transition_not_asked_when_the_pipeline_refuses(open_crm: OpenCRM) -> None:
    gate = Gatekeeper("watcher")
    crm = open_crm(gate)
    c = person_with_candidacy(crm)
    with pytest.raises(relcrm.InvalidTransition) as caught:
        crm.transition(c.id, "screen", actor=Actor(ActorRole.CANDIDATE, c.person_id))
    assert not isinstance(caught.value, relcrm.TransitionVetoed)
    assert gate.asked == []


def test_relcrm_before_transition_unexpected_exception_is_a_plugin_error(
    open_crm: OpenCRM,
) -> None:
    gate = Gatekeeper("buggy", raises=KeyError("hiring_team"))
    crm = open_crm(gate)
    c = person_with_candidacy(crm)
    before = _snapshot(crm, c)
    with pytest.raises(relcrm.PluginError, match="raised KeyError") as caught:
        crm.transition(c.id, "screen", actor=RITA)
    assert caught.value.plugin == "buggy"
    assert isinstance(caught.value.__cause__, KeyError)
    assert _snapshot(crm, c) == before


def test_relcrm_before_transition_relcrm_error_propagates_unchanged(open_crm: OpenCRM) -> None:
    refusal = relcrm.PermissionDenied(action="screen", actor="recruiter:rita", reason="on leave")
    crm = open_crm(Gatekeeper("policy", raises=refusal))
    c = person_with_candidacy(crm)
    before = _snapshot(crm, c)
    with pytest.raises(relcrm.PermissionDenied) as caught:
        crm.transition(c.id, "screen", actor=RITA)
    assert caught.value is refusal
    assert _snapshot(crm, c) == before


# ------------------------------------------------------------------------------------------------
# relcrm_event_committed
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_relcrm_event_committed_receives_each_event_once_after_commit(
    open_crm: OpenCRM, tmp_path: Path, backend: str
) -> None:
    recorder = EventRecorder()
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'talent.db'}"
    crm = open_crm(recorder, url=url)

    c = person_with_candidacy(crm)
    crm.transition(c.id, "screen", actor=RITA)
    crm.archive(c.id, "we_declined", actor=RITA, note="internal note")

    logged = crm.store.events()
    assert [e.type for e in logged] == [
        "person.created",
        "opening.created",
        "candidacy.created",
        "relationship.stage_changed",
        "candidacy.stage_changed",
        "candidacy.archived",
        "relationship.stage_changed",
    ]
    assert [e.id for e in recorder.events] == [e.id for e in logged]  # each once, in order
    assert all(recorder.in_store)  # already committed when the hook ran
    archived = next(e for e in recorder.events if e.type == "candidacy.archived")
    assert archived.data["archive_note"] == "internal note"  # the full, internal event


def test_relcrm_event_committed_not_called_for_rolled_back_work(open_crm: OpenCRM) -> None:
    recorder = EventRecorder()
    backend = SchemePlugin("flaky-backend")
    crm = open_crm(recorder, backend, url="myscheme://flaky")
    [store] = backend.stores
    person = crm.add_person({"name": "Ada"}, actor=RITA)
    opening = crm.add_opening({"title": "Data Engineer"}, actor=RITA)
    seen = [e.id for e in recorder.events]

    # The command appends candidacy.created, then fails appending its second event.
    store.fail_on = "relationship.stage_changed"
    with pytest.raises(relcrm.StorageError, match="disk full"):
        crm.add_candidacy(person.id, opening.id, actor=RITA)
    assert crm.candidacies(person_id=person.id) == []
    assert [e.id for e in crm.store.events()] == seen

    # A stale write is refused before anything is written.
    store.fail_on = None
    version = crm.load(relcrm.Person, person.id).version
    crm.update_profile(person.id, {"headline": "One"}, actor=RITA, expected_version=version)
    after_update = [e.id for e in recorder.events]
    with pytest.raises(relcrm.ConcurrencyConflict):
        crm.update_profile(person.id, {"headline": "Two"}, actor=RITA, expected_version=version)

    assert [e.id for e in recorder.events] == after_update
    assert [e.id for e in recorder.events] == [e.id for e in crm.store.events()]
    assert "candidacy.created" not in {e.type for e in recorder.events}


@pytest.mark.parametrize("failing_first", [True, False], ids=["failing-first", "failing-last"])
def test_relcrm_event_committed_failing_plugin_does_not_stop_others_and_the_change_stays(
    open_crm: OpenCRM, caplog: pytest.LogCaptureFixture, failing_first: bool
) -> None:
    broken = EventRecorder("broken", fail=True)
    healthy = EventRecorder("healthy")
    # The plugin registered last is called first.
    plugins = (healthy, broken) if failing_first else (broken, healthy)
    crm = open_crm(*plugins, notifiers=["memory"])

    with caplog.at_level(logging.ERROR, logger="relcrm.plugins"):
        person = crm.add_person(
            {"name": "Ada", "contacts": [{"value": "ada@example.org"}]}, actor=RITA
        )

    assert crm.get_person(person.id) == person  # the change stays
    assert [e.type for e in healthy.events] == ["person.created"]
    assert [e.type for e in broken.events] == ["person.created"]
    [record] = [r for r in caplog.records if r.name == "relcrm.plugins"]
    assert "'broken'" in record.getMessage()
    assert record.exc_info is not None
    assert [n.event_type for n in crm.notifier("memory").sent] == ["person.created"]


def test_relcrm_event_committed_may_run_a_command(open_crm: OpenCRM) -> None:
    class AutoTagger:
        __name__ = "auto-tagger"

        @relcrm.hookimpl
        def relcrm_event_committed(self, crm: CRM, event: Event) -> None:
            if event.type == "person.created":
                crm.tag(event.subjects["person"], "new", actor=Actor(ActorRole.SYSTEM, "tagger"))

    crm = open_crm(AutoTagger())
    person = crm.add_person({"name": "Ada"}, actor=RITA)
    assert crm.get_person(person.id).tags == ("new",)
    assert [e.type for e in crm.timeline(person.id)] == ["person.created", "person.tagged"]


# ------------------------------------------------------------------------------------------------
# Checking and loading plugins
# ------------------------------------------------------------------------------------------------


def test_misspelled_hook_is_a_plugin_error() -> None:
    class Typo:
        __name__ = "typo-plugin"

        @relcrm.hookimpl
        def relcrm_evnt_committed(self, crm: CRM, event: Event) -> None: ...

    with pytest.raises(relcrm.PluginError, match="unknown hook 'relcrm_evnt_committed'") as caught:
        relcrm.open("memory://", plugins=[Typo()], load_entrypoints=False)
    assert caught.value.plugin == "typo-plugin"


def test_unknown_hook_argument_is_a_plugin_error() -> None:
    class WrongArgument:
        @relcrm.hookimpl
        def relcrm_event_committed(self, evnt: Event) -> None: ...

    with pytest.raises(relcrm.PluginError, match="evnt"):
        relcrm.open("memory://", plugins=[WrongArgument()], load_entrypoints=False)


def test_plugins_are_per_crm(open_crm: OpenCRM) -> None:
    recorder = EventRecorder()
    with_plugin = open_crm(recorder)
    without = open_crm()
    without.add_person({"name": "Grace"}, actor=RITA)
    assert recorder.events == []
    with_plugin.add_person({"name": "Ada"}, actor=RITA)
    assert [e.type for e in recorder.events] == ["person.created"]


@pytest.fixture
def tiny_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed distribution with a ``relcrm`` entry point: a dist-info directory and a module
    on ``sys.path``. Its plugin registers the storage scheme ``tiny``. Yields the module name."""
    module = f"relcrm_tiny_plugin_{uuid.uuid4().hex}"
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{module}.py").write_text(
        textwrap.dedent(
            """
            import relcrm
            from relcrm.storage.memory import MemoryStore


            @relcrm.hookimpl
            def relcrm_register_storage_backends(register):
                register("tiny", lambda url: MemoryStore())
            """
        ),
        encoding="utf-8",
    )
    dist_info = site / "relcrm_tiny_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: relcrm-tiny-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(f"[relcrm]\ntiny = {module}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    try:
        yield module
    finally:
        sys.modules.pop(module, None)


def test_entry_point_plugins_load_by_default(
    tiny_distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    with relcrm.open("tiny://", notifiers=[]) as crm:
        assert tiny_distribution in sys.modules
        [info] = [i for i in plugin_infos(crm.plugin_manager) if i.name == "tiny"]
        assert info.hooks == ["relcrm_register_storage_backends"]
        assert info.dist == "relcrm-tiny-plugin 1.0"
        crm.add_person({"name": "Ada"}, actor=RITA)


def test_entry_point_autoload_disabled_by_the_environment(
    tiny_distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    with pytest.raises(relcrm.UnknownBackend):
        relcrm.open("tiny://", notifiers=[])
    assert tiny_distribution not in sys.modules  # not even imported

    with relcrm.open("tiny://", notifiers=[], load_entrypoints=True) as crm:  # explicit wins
        assert "tiny" in {i.name for i in plugin_infos(crm.plugin_manager)}


def test_entry_point_autoload_disabled_by_argument(
    tiny_distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    with pytest.raises(relcrm.UnknownBackend):
        relcrm.open("tiny://", notifiers=[], load_entrypoints=False)
    assert tiny_distribution not in sys.modules
