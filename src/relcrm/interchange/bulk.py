"""Bulk import of JSON Resume documents into a talent pool.

:func:`import_people` and :func:`import_openings` read a file (``.json`` holding one document or
a list of them, ``.jsonl`` with one document per line, either of them gzipped as ``.gz``) or any
iterable of dicts, validate every record, and write through the CRM's commands
(:meth:`relcrm.CRM.add_people`, one transaction per batch; :meth:`relcrm.CRM.add_opening`).

``on_error="reject"`` (the default) validates the whole input before writing anything: one bad
record and nothing is written, :class:`ImportRejected` lists every bad record. ``"skip"`` writes
the good records and reports the bad ones. Either way a record is never half-written, and a record
whose deterministic id is already in the store (or earlier in the same input) is counted as a
duplicate, not an error, so running the same import twice is safe.

This module sits at the edge, next to the CLI: it reads files and drives a CRM it is given, and
imports no adapter and not :mod:`relcrm.crm` itself.
"""

import gzip
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from ..exceptions import AlreadyExists, RelcrmError, ValidationError
from ..model import Actor, Opening, Person
from ..storage.base import existing_ids
from .jsonresume import _check_person_document, opening_from_job, person_from_resume

if TYPE_CHECKING:
    from ..crm import CRM

__all__ = [
    "ImportRejected",
    "ImportReport",
    "OnError",
    "Progress",
    "import_openings",
    "import_people",
]

T = TypeVar("T", Person, Opening)
OnError = Literal["reject", "skip"]
#: ``progress(done, total)``: records handled so far, and the total when it is known.
Progress = Callable[[int, int | None], None]
Source = str | os.PathLike[str] | Iterable[Mapping[str, Any]]
#: ``write(crm, batch, actor)``: how many records it added and how many were already there.
Write = Callable[["CRM", list[T], Actor], tuple[int, int]]

#: ``sources`` entry of every person a bulk import adds.
SOURCE = "jsonresume"


@attrs.define
class ImportReport:
    """What an import did. ``errors`` holds ``(line, message)`` for every bad record: the line
    in a ``.jsonl`` file, the line where the document starts in a ``.json`` file, the 1-based
    position for an iterable."""

    kind: str
    read: int = 0
    imported: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = attrs.field(factory=list)
    seconds: float = 0.0
    rejected: bool = False

    def summary(self) -> str:
        """One line: ``"read 10, imported 8, duplicates 1, skipped 1 (bad), in 0.02 s"``."""
        verdict = " REJECTED, nothing written" if self.rejected else ""
        return (
            f"{self.kind}: read {self.read}, imported {self.imported}, duplicates "
            f"{self.duplicates}, skipped {self.skipped} (bad), errors {len(self.errors)}, in "
            f"{self.seconds:.2f} s{verdict}"
        )


class ImportRejected(RelcrmError):
    """``on_error="reject"`` found bad records, so nothing was written. ``report.errors`` lists
    them with their line numbers."""

    def __init__(self, report: ImportReport, source: str) -> None:
        self.report = report
        self.source = source
        shown = "\n".join(f"  line {line}: {msg}" for line, msg in report.errors[:20])
        more = len(report.errors) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"import of {source} rejected: {len(report.errors)} bad record(s) of {report.read}, "
            f"nothing written\n{shown}{tail}"
        )


# --------------------------------------------------------------------------------------------
# Reading records: (line, parsed document or the reason it could not be parsed)
# --------------------------------------------------------------------------------------------


class _Unreadable:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


Record = tuple[int, Any]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _inner_suffix(path: Path) -> str:
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


_TOO_DEEP = "invalid JSON: nested too deeply"


def _jsonl_records(path: Path) -> Iterator[Record]:
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _Unreadable(f"invalid JSON: {exc.msg} (column {exc.colno})")
            except RecursionError:
                yield number, _Unreadable(_TOO_DEEP)
            else:
                yield number, doc


def _json_records(path: Path) -> Iterator[Record]:
    """The documents of a ``.json`` file: the one it holds, or each item of its top-level list,
    with the line each starts on. A file that is not JSON is one unreadable record."""
    with _open_text(path) as f:
        text = f.read()
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        try:
            doc, end = decoder.raw_decode(text, pos)
            if text[_skip_space(text, end) :]:
                raise json.JSONDecodeError("extra data", text, _skip_space(text, end))
        except json.JSONDecodeError as exc:
            yield exc.lineno, _Unreadable(f"invalid JSON: {exc.msg} (column {exc.colno})")
            return
        except RecursionError:
            yield text.count("\n", 0, pos) + 1, _Unreadable(_TOO_DEEP)
            return
        yield text.count("\n", 0, pos) + 1, doc
        return
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        yield from _after_list(text, pos)
        return
    while True:
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, _Unreadable(f"invalid JSON: {exc.msg} (column {exc.colno})")
            return
        except RecursionError:
            yield _line(text, pos), _Unreadable(_TOO_DEEP)
            return
        yield _line(text, pos), doc
        pos = _skip_space(text, end)
        if text.startswith("]", pos):
            yield from _after_list(text, pos)
            return
        if not text.startswith(",", pos):
            yield _line(text, pos), _Unreadable("invalid JSON: expected ',' or ']' after an item")
            return
        pos = _skip_space(text, pos + 1)


def _after_list(text: str, pos: int) -> Iterator[Record]:
    rest = _skip_space(text, pos + 1)
    if rest < len(text):
        yield _line(text, rest), _Unreadable("invalid JSON: extra data after the list")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _reader(source: Source) -> tuple[str, Callable[[], Iterator[Record]], int | None]:
    """A name for the source, a function that reads its records (again, if called again) and
    the number of records when known without reading them twice."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
        suffix = _inner_suffix(path)
        if suffix == ".json":
            return str(path), lambda: _json_records(path), None
        if suffix in (".jsonl", ".ndjson"):
            return str(path), lambda: _jsonl_records(path), None
        raise ValidationError(
            "import source",
            [f"expected a .json, .jsonl or .jsonl.gz file, got {path.name!r} @ $"],
        )
    if isinstance(source, Mapping):
        items: Sequence[Any] = [source]
    else:
        items = source if isinstance(source, Sequence) else list(source)
    return "the given documents", lambda: iter(enumerate(items, 1)), len(items)


# --------------------------------------------------------------------------------------------
# Importing
# --------------------------------------------------------------------------------------------


def _convert(convert: Callable[[Any], T], value: Any) -> T | str:
    """The relcrm object for a parsed record, or the message saying why it is bad."""
    if isinstance(value, _Unreadable):
        return value.message
    try:
        return convert(value)
    except ValidationError as exc:
        return "; ".join(exc.errors)


def _problem(check: Callable[[Any], object], value: Any) -> str | None:
    """Why a parsed record is bad, or ``None`` if ``check`` accepts it."""
    if isinstance(value, _Unreadable):
        return value.message
    try:
        check(value)
    except ValidationError as exc:
        return "; ".join(exc.errors)
    return None


def _import(
    crm: "CRM",
    source: Source,
    *,
    kind: str,
    convert: Callable[[Any], T],
    check: Callable[[Any], object],
    write: Write[T],
    actor: Actor,
    on_error: OnError,
    batch_size: int,
    progress: Progress | None,
) -> ImportReport:
    if on_error not in ("reject", "skip"):
        raise ValidationError(
            "import", [f"on_error must be 'reject' or 'skip', got {on_error!r} @ $"]
        )
    if batch_size < 1:
        raise ValidationError("import", [f"batch_size must be at least 1, got {batch_size} @ $"])
    started = time.perf_counter()
    name, records, total = _reader(source)
    report = ImportReport(kind=kind)

    if on_error == "reject":
        # Validation pass: nothing is written unless every record is good.
        for line, value in records():
            report.read += 1
            problem = _problem(check, value)
            if problem is not None:
                report.errors.append((line, problem))
        if report.errors:
            report.rejected = True
            report.seconds = time.perf_counter() - started
            raise ImportRejected(report, name)
        total = report.read
        report.read = 0

    seen: set[str] = set()
    batch: list[T] = []

    def flush() -> None:
        if batch:
            imported, duplicates = write(crm, batch, actor)
            report.imported += imported
            report.duplicates += duplicates
            batch.clear()
        if progress is not None:
            progress(report.read, total)

    for line, value in records():
        report.read += 1
        outcome = _convert(convert, value)
        if isinstance(outcome, str):
            report.skipped += 1
            report.errors.append((line, outcome))
            continue
        if outcome.id in seen:
            report.duplicates += 1
            continue
        seen.add(outcome.id)
        batch.append(outcome)
        if len(batch) >= batch_size:
            flush()
    flush()
    report.seconds = time.perf_counter() - started
    return report


def _add_people_new(crm: "CRM", batch: list[Person], actor: Actor) -> tuple[int, int]:
    """Add the people of ``batch`` the store does not hold yet, in one transaction; count the
    others as duplicates. Which are held is one :func:`~relcrm.storage.base.existing_ids` query
    per batch. Someone added concurrently between the check and the write makes the store refuse
    the batch (:class:`~relcrm.AlreadyExists`): the batch is checked again and retried without
    them."""
    pending = batch
    while True:
        known = existing_ids(crm.store, "person", [p.id for p in pending])
        fresh = [p for p in pending if p.id not in known]
        if not fresh:
            return 0, len(batch)
        try:
            crm.add_people(fresh, actor=actor)
        except AlreadyExists:
            if not existing_ids(crm.store, "person", [p.id for p in fresh]):
                raise  # not a duplicate person (e.g. a leftover relationship): a real error
            pending = fresh
            continue
        return len(fresh), len(batch) - len(fresh)


def _add_openings_new(crm: "CRM", batch: list[Opening], actor: Actor) -> tuple[int, int]:
    """Add the openings of ``batch`` the store does not hold yet (one transaction each)."""
    known = existing_ids(crm.store, "opening", [o.id for o in batch])
    added = 0
    for opening in batch:
        if opening.id in known:
            continue
        try:
            crm.add_opening(opening, actor=actor)
        except AlreadyExists:
            continue
        added += 1
    return added, len(batch) - added


def import_people(
    crm: "CRM",
    source: Source,
    *,
    actor: Actor,
    on_error: OnError = "reject",
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import JSON Resume documents as people.

    ``source`` is a path (``.json``, ``.jsonl``, ``.jsonl.gz``) or an iterable of parsed
    documents. Each batch of ``batch_size`` people is one :meth:`~relcrm.CRM.add_people`
    transaction; ``progress(done, total)`` is called after each. People whose id (derived from
    their email) is already in the store are counted in ``duplicates`` and left as they are.
    With ``on_error="reject"``, any bad record raises :class:`ImportRejected` before anything is
    written.
    """

    def convert(doc: Any) -> Person:
        return person_from_resume(doc, sources=(SOURCE,))

    return _import(
        crm,
        source,
        kind="people",
        convert=convert,
        check=_check_person_document,
        write=_add_people_new,
        actor=actor,
        on_error=on_error,
        batch_size=batch_size,
        progress=progress,
    )


def import_openings(
    crm: "CRM",
    source: Source,
    *,
    actor: Actor,
    on_error: OnError = "reject",
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import JSON Resume job documents as openings; the options are those of
    :func:`import_people`. Each opening is added with :meth:`~relcrm.CRM.add_opening` (one
    transaction each); its id comes from ``meta.canonical`` when there is one, so a second
    import of the same file counts duplicates."""

    return _import(
        crm,
        source,
        kind="openings",
        convert=opening_from_job,
        check=opening_from_job,
        write=_add_openings_new,
        actor=actor,
        on_error=on_error,
        batch_size=batch_size,
        progress=progress,
    )
