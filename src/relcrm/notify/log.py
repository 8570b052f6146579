"""A notifier that writes one log line per notification to the ``relcrm.notify`` logger."""

import logging

from .base import Notification

__all__ = ["LogNotifier"]


class LogNotifier:
    """Logs ``to=<role>:<id> <subject>`` at INFO level."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("relcrm.notify")

    def deliver(self, notification: Notification) -> None:
        r = notification.recipient
        self.logger.info(
            "to=%s:%s event=%s %s",
            r.role.value,
            r.id,
            notification.event_type,
            notification.subject,
        )
