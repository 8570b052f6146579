"""Notification adapters: the port (:mod:`relcrm.notify.base`) and the built-in notifiers."""

from .base import Notification, Notifier, NotifierFactory, Recipient

__all__ = ["Notification", "Notifier", "NotifierFactory", "Recipient"]
