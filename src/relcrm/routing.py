"""Who is told about an event: the participatory routing rules, as a pure function.

* the **candidate** hears about changes to what they can see that *someone else* made (never
  their own actions, never internal events, and nothing at all once they said "do not contact");
* the **owning recruiters** (the person's owner, the relationship's owners and the opening's
  owner) hear about changes the *candidate* made;
* a **referrer** hears about the progress of the people they referred, in the few fields meant
  for referrers;
* the **owner of an opening** hears what someone else did with the opening itself (for example a
  rediscovery run).

Each recipient receives the event as projected for their role (:func:`relcrm.events.project_event`).
"""

from collections.abc import Iterable

import attrs

from .events import Event, Visibility, project_event
from .model import Actor, ActorRole

__all__ = ["RoutingContext", "route"]


@attrs.frozen
class RoutingContext:
    """What routing needs to know besides the event."""

    candidate_address: str | None = None
    do_not_contact: bool = False
    owner_ids: tuple[str, ...] = ()
    referrer_id: str | None = None
    opening_owner_id: str | None = None


def route(event: Event, context: RoutingContext) -> list[tuple[Actor, Event]]:
    """The recipients of ``event`` with what each may see of it, in a stable order."""
    out: list[tuple[Actor, Event]] = []
    person_id = event.person_id
    actor = event.actor
    if person_id is None:
        # Events about an opening alone: its owner hears what someone else did with it.
        owner = context.opening_owner_id
        if owner and not (actor.role is ActorRole.RECRUITER and actor.id == owner):
            out.append((Actor(ActorRole.RECRUITER, owner), event))
        return out
    by_candidate = actor.role is ActorRole.CANDIDATE and actor.id == person_id
    if event.visibility is Visibility.CANDIDATE and not by_candidate and not context.do_not_contact:
        viewer = Actor(ActorRole.CANDIDATE, person_id)
        shown = project_event(event, viewer)
        if shown is not None:
            out.append((viewer, shown))
    if by_candidate:
        for owner in _unique(context.owner_ids):
            out.append((Actor(ActorRole.RECRUITER, owner), event))
    referrer = context.referrer_id
    if referrer is not None and not (actor.role is ActorRole.REFERRER and actor.id == referrer):
        viewer = Actor(ActorRole.REFERRER, referrer)
        shown = project_event(event, viewer, referred_by=referrer)
        if shown is not None:
            out.append((viewer, shown))
    return out


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))
