"""A notifier that keeps what it delivers in a list: for tests and notebooks."""

import threading

from .base import Notification

__all__ = ["MemoryNotifier"]


class MemoryNotifier:
    """Collects notifications in :attr:`sent` (in delivery order)."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self._lock = threading.Lock()

    def deliver(self, notification: Notification) -> None:
        with self._lock:
            self.sent.append(notification)

    def for_recipient(self, recipient_id: str) -> list[Notification]:
        """What one recipient has been sent so far."""
        with self._lock:
            return [n for n in self.sent if n.recipient.id == recipient_id]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()

    def __repr__(self) -> str:
        return f"<MemoryNotifier sent={len(self.sent)}>"
