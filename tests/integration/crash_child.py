"""The importing process of the crash tests (run as a script; see ``test_crash_import.py``).

    python crash_child.py URL SOURCE JOURNAL BATCH_SIZE

Opens the talent pool at ``URL`` (with the ``log`` notifier, so every ``person.created`` event
gets its outbox rows), prints ``ready`` once it is about to import, then imports the JSON Resume
documents of ``SOURCE`` with :func:`relcrm.interchange.import_people`. After each batch whose
commit has returned (the ``progress`` callback), one line ``{"batch": n, "done": records}`` is
appended to ``JOURNAL`` and flushed to disk, so a batch in the journal is one the importer was
told is committed.

The last line printed says how it ended: ``{"outcome": "done", ...}`` (exit status 0), or
``{"outcome": "failed", "error": ..., "relcrm_error": ..., "message": ...}`` (exit status 3)
naming the exception that reached the caller of ``import_people``.
"""

import json
import os
import sys
import time
from typing import Any, TextIO

import relcrm
from relcrm.interchange import import_people

ACTOR = relcrm.Actor(relcrm.ActorRole.SYSTEM, "crash-test-import")
NOTIFIERS = ("log",)
FAILED = 3


class Journal:
    """Appends one durable line per committed batch."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self.batches = 0
        self.done = 0

    def __call__(self, done: int, total: int | None) -> None:
        if done <= self.done:  # nothing new was written since the last call
            return
        self.batches += 1
        self.done = done
        self.file.write(json.dumps({"batch": self.batches, "done": done}) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())


def say(message: str | dict[str, Any]) -> None:
    text = message if isinstance(message, str) else json.dumps(message)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    url, source, journal_path, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with (
        open(journal_path, "a", encoding="utf-8") as journal_file,
        relcrm.open(url, notifiers=NOTIFIERS, load_entrypoints=False, autodispatch=False) as crm,
    ):
        journal = Journal(journal_file)
        say("ready")
        started = time.perf_counter()
        try:
            report = import_people(
                crm, source, actor=ACTOR, batch_size=batch_size, progress=journal
            )
        except BaseException as exc:
            say(
                {
                    "outcome": "failed",
                    "error": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "relcrm_error": isinstance(exc, relcrm.RelcrmError),
                    "storage_error": isinstance(exc, relcrm.StorageError),
                    "message": str(exc),
                    "batches": journal.batches,
                }
            )
            return FAILED
        say(
            {
                "outcome": "done",
                "seconds": time.perf_counter() - started,
                "imported": report.imported,
                "duplicates": report.duplicates,
                "batches": journal.batches,
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
