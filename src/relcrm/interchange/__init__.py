"""Interchange: JSON Resume documents in and out, and bulk import into a talent pool.

* :mod:`relcrm.interchange.jsonresume`: the standard's documents as attrs classes, structured
  through the strict converter, and their mapping to :class:`~relcrm.Person` and
  :class:`~relcrm.Opening`;
* :mod:`relcrm.interchange.bulk`: :func:`import_people` and :func:`import_openings` from a file
  (``.json``, ``.jsonl``, ``.jsonl.gz``) or an iterable, with progress and per-line errors.

Not imported by ``import relcrm``: ``import relcrm.interchange``.
"""

from .bulk import ImportRejected, ImportReport, import_openings, import_people
from .jsonresume import (
    PartialDate,
    job_from_opening,
    opening_from_job,
    opening_id_for_canonical,
    person_from_resume,
    person_id_for_email,
    resume_from_person,
    structure_job,
    structure_resume,
)

__all__ = [
    "ImportRejected",
    "ImportReport",
    "PartialDate",
    "import_openings",
    "import_people",
    "job_from_opening",
    "opening_from_job",
    "opening_id_for_canonical",
    "person_from_resume",
    "person_id_for_email",
    "resume_from_person",
    "structure_job",
    "structure_resume",
]
