"""The hooks relcrm calls, for plugin authors.

Implement them with :data:`relcrm.hookimpl` in a module or class and register it with
``relcrm.open(url, plugins=[...])`` or through the ``relcrm`` entry-point group. Each hook's
docstring says when it is called and how the results of several plugins combine.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .crm import CRM
    from .events import Event
    from .lifecycle import Pipeline, Transition
    from .matching import MatchSignal
    from .matching.taxonomy import SkillTaxonomy
    from .model import Actor, Candidacy
    from .notify.base import NotifierFactory
    from .storage.base import StoreFactory

__all__ = [
    "hookimpl",
    "hookspec",
    "relcrm_before_transition",
    "relcrm_event_committed",
    "relcrm_register_match_signals",
    "relcrm_register_notifiers",
    "relcrm_register_pipelines",
    "relcrm_register_skill_taxonomies",
    "relcrm_register_storage_backends",
]

PROJECT_NAME = "relcrm"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def relcrm_register_storage_backends(register: "Callable[[str, StoreFactory], None]") -> None:
    """Register storage backends by URL scheme.

    Call ``register(scheme, factory)`` once per scheme; ``factory(url)`` returns a
    :class:`relcrm.storage.Store`. Called for every plugin when a CRM is opened; registering a
    scheme that another plugin already registered raises :class:`relcrm.PluginError`.

    .. versionadded:: 0.1
    """


@hookspec
def relcrm_register_notifiers(register: "Callable[[str, NotifierFactory], None]") -> None:
    """Register notifiers by name.

    Call ``register(name, factory)``; ``factory()`` returns a :class:`relcrm.notify.Notifier`.
    Users pick notifiers by name in ``relcrm.open(url, notifiers=[...])``. Called for every plugin;
    a duplicate name raises :class:`relcrm.PluginError`.

    .. versionadded:: 0.1
    """


@hookspec
def relcrm_register_pipelines(register: "Callable[[Pipeline], None]") -> None:
    """Register candidacy pipelines.

    Call ``register(pipeline)`` with a :class:`relcrm.lifecycle.Pipeline`; openings choose one by
    ``Opening.pipeline``. Called for every plugin; a duplicate pipeline name raises
    :class:`relcrm.PluginError` (the built-in ``default`` pipeline included).

    .. versionadded:: 0.1
    """


@hookspec
def relcrm_before_transition(
    crm: "CRM", candidacy: "Candidacy", transition: "Transition", actor: "Actor"
) -> str | None:
    """Veto a candidacy transition before it is written.

    Return ``None`` to allow it or a reason string to refuse it; the first refusal raises
    :class:`relcrm.TransitionVetoed` naming the plugin and nothing is written. Every plugin is
    asked, the most recently registered first, until one refuses. Raising a
    :class:`relcrm.RelcrmError` refuses too; any other exception is wrapped in
    :class:`relcrm.PluginError`.

    .. versionadded:: 0.1
    """


@hookspec
def relcrm_event_committed(crm: "CRM", event: "Event") -> None:
    """Called once per event after its transaction committed (never for rolled-back work).

    Every plugin is called, each in isolation: an exception is logged (logger ``relcrm.plugins``)
    and neither stops the other plugins nor undoes the committed change. Return values are
    ignored. Do not start a new command on ``crm`` from here if it could loop.

    .. versionadded:: 0.1
    """


@hookspec
def relcrm_register_skill_taxonomies(register: "Callable[[SkillTaxonomy], None]") -> None:
    """Register skills taxonomies: the vocabularies that normalise skills and find them in text.

    Call ``register(taxonomy)`` with a :class:`relcrm.matching.taxonomy.SkillTaxonomy`; build it
    lazily (``SkillTaxonomy.lazy``) so that registering reads nothing. Called for every plugin when
    :func:`relcrm.matching.taxonomy.taxonomy_for` first asks for a CRM's taxonomy. A duplicate
    taxonomy name raises :class:`relcrm.PluginError`. Taxonomies named in another's ``replaces``
    are dropped (the built-in one is ``esco``); the rest are merged in registration order, a later
    taxonomy winning the aliases and ids it shares with an earlier one.

    .. versionadded:: 0.2
    """


@hookspec
def relcrm_register_match_signals(register: "Callable[[MatchSignal], None]") -> None:
    """Register match signals: scorers that add a weighted line to every match explanation.

    Call ``register(signal)`` with a :class:`relcrm.matching.MatchSignal` (a ``name`` and a
    ``score(batch)`` returning one value in [0, 1] per candidate, or ``None`` when it does not
    apply). Called for every plugin when a CRM first matches; a signal is weighted by its
    ``weight`` attribute unless ``CRM.match_weights`` names it. A duplicate signal name (the
    built-in ones included) raises :class:`relcrm.PluginError`.

    .. versionadded:: 0.2
    """
