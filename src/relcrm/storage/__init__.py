"""Storage: the port every backend implements, and the backends relcrm ships.

The port (:class:`Store`, :class:`Transaction` and the record types) lives in
:mod:`relcrm.storage.base`; the backends live in their own modules and are imported only when used:
:mod:`relcrm.storage.memory` (``memory://``) and :mod:`relcrm.storage.sqlite` (``sqlite:///path.db``).
:class:`relcrm.testing.StoreContract` is the test suite every backend passes.
"""

from relcrm.storage.base import (
    EventRecord,
    OutboxRecord,
    OutboxStatus,
    Record,
    Store,
    StoreFactory,
    Transaction,
)

__all__ = [
    "EventRecord",
    "OutboxRecord",
    "OutboxStatus",
    "Record",
    "Store",
    "StoreFactory",
    "Transaction",
]
