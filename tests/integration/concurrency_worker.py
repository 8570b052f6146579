"""One writer process for the SQLite concurrency test (run as a script, prints one JSON line).

Each command carries a unique marker (``w<worker>-<n>``) so the parent can check that every
acknowledged command left exactly one event and every refused one left none.
"""

import json
import random
import sys
import time

import relcrm
from relcrm import Actor, ActorRole, ConcurrencyConflict, Person, Relationship


def main() -> None:
    url, worker, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    people = sys.argv[5].split(",")
    rng = random.Random(seed)
    recruiter = Actor(ActorRole.RECRUITER, f"recruiter-{worker}")
    acked: list[str] = []
    conflicts: list[str] = []
    other_errors: list[str] = []
    with relcrm.open(url, notifiers=["memory"], load_entrypoints=False) as crm:
        for n in range(count):
            marker = f"w{worker}-{n}"
            pid = rng.choice(people)
            kind = rng.choice(("touchpoint", "profile", "note"))
            try:
                if kind == "touchpoint":
                    version = crm.load(Relationship, pid).version
                    time.sleep(rng.random() * 0.002)
                    crm.log_touchpoint(
                        pid, "email", "outbound", marker, actor=recruiter, expected_version=version
                    )
                elif kind == "profile":
                    version = crm.load(Person, pid).version
                    time.sleep(rng.random() * 0.002)
                    crm.update_profile(
                        pid,
                        {"headline": marker},
                        actor=Actor(ActorRole.CANDIDATE, pid),
                        expected_version=version,
                    )
                else:
                    crm.add_note(pid, marker, actor=recruiter)
            except ConcurrencyConflict:
                conflicts.append(marker)
            except Exception as exc:  # reported, and the test fails on any
                other_errors.append(f"{marker}: {type(exc).__name__}: {exc}")
            else:
                acked.append(marker)
    print(json.dumps({"acked": acked, "conflicts": conflicts, "errors": other_errors}))


if __name__ == "__main__":
    main()
