"""The notifier port: how relcrm tells people what happened.

After a command commits, the CRM hands each outbox row to the notifier it was written for. A
notifier's :meth:`Notifier.deliver` either returns (delivered) or raises (the row stays pending and
is retried later with back-off, then dead-lettered). Delivery is at least once: use
``Notification.id`` (stable across retries) to drop duplicates on the receiving side.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from ..model import ActorRole

__all__ = ["Notification", "Notifier", "NotifierFactory", "Recipient"]


@attrs.frozen
class Recipient:
    """Who is told: a role, an id in that role, and where to reach them if known."""

    role: ActorRole
    id: str
    address: str | None = None


@attrs.frozen
class Notification:
    """One message for one recipient about one event, already filtered to what they may see."""

    id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    recipient: Recipient
    subject: str
    body: str
    data: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications. ``name`` is what outbox rows refer to."""

    name: str

    def deliver(self, notification: Notification) -> None:
        """Deliver or raise; raising leaves the notification pending for retry."""


NotifierFactory = Callable[[], Notifier]
"""What ``relcrm_register_notifiers`` registers: a callable returning a new notifier."""
