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

import contextlib
import functools
import gc
import gzip
import importlib
import io
import itertools
import json
import marshal
import multiprocessing
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

import attrs

from ..exceptions import AlreadyExists, RelcrmError, ValidationError
from ..model import Actor, Opening, Person
from ..serialization import unstructure
from ..storage._checks import encode_json
from ..storage.base import existing_ids
from .jsonresume import _fast_record, opening_from_job, person_from_resume

if TYPE_CHECKING:
    from ..crm import CRM, EncodedPerson

__all__ = [
    "ImportRejected",
    "ImportReport",
    "OnError",
    "Progress",
    "import_openings",
    "import_people",
]

T = TypeVar("T", Person, Opening)
R = TypeVar("R")
B = TypeVar("B")
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
            if line.strip():
                yield number, _parse_line(line)


def _parse_line(line: str) -> Any:
    """The document on a (non-blank) line of a ``.jsonl`` file, or why it is unreadable."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return _Unreadable(f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return _Unreadable(_TOO_DEEP)


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


def _check_options(on_error: str, batch_size: int) -> None:
    if on_error not in ("reject", "skip"):
        raise ValidationError(
            "import", [f"on_error must be 'reject' or 'skip', got {on_error!r} @ $"]
        )
    if batch_size < 1:
        raise ValidationError("import", [f"batch_size must be at least 1, got {batch_size} @ $"])


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for an import, and restore it after.

    An import holds a batch of people (and the ids it has seen) while it makes many more
    objects, so the collector would run often and walk every survivor each time, for nothing:
    what an import makes is freed by reference counting (it makes no cycles, but for the
    tracebacks of bad records, collected once the collector runs again).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@_collector_paused()
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
    _check_options(on_error, batch_size)
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
        total = _first_pass_done(report, name, started)

    batches = _Batches(crm, write, actor, report, batch_size, progress, total)
    for line, value in records():
        report.read += 1
        outcome = _convert(convert, value)
        if isinstance(outcome, str):
            report.skipped += 1
            report.errors.append((line, outcome))
            continue
        batches.add(outcome.id, outcome)
    batches.flush()
    report.seconds = time.perf_counter() - started
    return report


def _first_pass_done(report: ImportReport, name: str, started: float) -> int:
    """End the validation pass of a rejecting import: raise :class:`ImportRejected` if it found
    bad records; otherwise return how many records there are, and count reading from nought."""
    if report.errors:
        report.rejected = True
        report.seconds = time.perf_counter() - started
        raise ImportRejected(report, name)
    total = report.read
    report.read = 0
    return total


class _Batches(Generic[B]):
    """The good records of an import, written ``batch_size`` at a time by ``write`` (which
    returns how many it added and how many the store already held); a record whose id came
    earlier in the same import is counted as a duplicate and left out. ``progress`` hears of
    each batch written."""

    def __init__(
        self,
        crm: "CRM",
        write: Callable[["CRM", list[B], Actor], tuple[int, int]],
        actor: Actor,
        report: ImportReport,
        batch_size: int,
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self._crm = crm
        self._write = write
        self._actor = actor
        self._report = report
        self._batch_size = batch_size
        self._progress = progress
        self._total = total
        self._seen: set[str] = set()
        self._batch: list[B] = []

    def add(self, id: str, item: B) -> None:
        if id in self._seen:
            self._report.duplicates += 1
            return
        self._seen.add(id)
        self._batch.append(item)
        if len(self._batch) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        report = self._report
        if self._batch:
            imported, duplicates = self._write(self._crm, self._batch, self._actor)
            report.imported += imported
            report.duplicates += duplicates
            self._batch.clear()
        if self._progress is not None:
            self._progress(report.read, self._total)


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
    workers: int | Literal["auto"] = 0,
) -> ImportReport:
    """Import JSON Resume documents as people.

    ``source`` is a path (``.json``, ``.jsonl``, ``.jsonl.gz``) or an iterable of parsed
    documents. Each batch of ``batch_size`` people is one transaction
    (:meth:`~relcrm.CRM.add_encoded_people`, which writes what :meth:`~relcrm.CRM.add_people`
    writes); ``progress(done, total)`` is called after each. People whose id (derived from
    their email) is already in the store are counted in ``duplicates`` and left as they are.
    With ``on_error="reject"``, any bad record raises :class:`ImportRejected` before anything is
    written: the first pass checks and encodes every record and keeps the encoded people (in
    memory up to 64 MiB, then in a temporary file) for the second, which only writes them.

    ``workers`` is how many worker processes read, check and encode the records of a ``.jsonl``
    file while this process writes them: ``0`` (the default) for none; ``"auto"`` for one per
    CPU available (at most four) when the file has at least 16 MiB and there are two CPUs or
    more, else none (what ``relcrm import`` uses). Other sources are always read in this
    process. The outcome is the same either way. The workers are started with the ``spawn``
    method: as with any use of :mod:`multiprocessing`, a script that asks for them needs the
    ``if __name__ == "__main__":`` guard.
    """
    _check_options(on_error, batch_size)
    pool = _pool_size(source, workers)
    with _collector_paused():
        if not pool:
            name, records, total = _reader(source)
            return _import_people(
                crm,
                name,
                lambda: _encode_records(records()),
                total,
                actor=actor,
                on_error=on_error,
                batch_size=batch_size,
                progress=progress,
            )
        path = Path(cast("str | os.PathLike[str]", source))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(pool, mp_context=context, initializer=gc.disable) as executor:
            return _import_people(
                crm,
                str(path),
                lambda: _in_order(executor, _encode_block, _blocks(path), 2 * pool + 2),
                None,
                actor=actor,
                on_error=on_error,
                batch_size=batch_size,
                progress=progress,
            )


def _person(doc: Any) -> Person:
    return person_from_resume(doc, sources=(SOURCE,))


# --------------------------------------------------------------------------------------------
# Importing people: records are checked and encoded (here or by worker processes), then written
# --------------------------------------------------------------------------------------------

#: Lines of a ``.jsonl`` file a worker process handles at a time.
_BLOCK_LINES = 500
#: ``.jsonl`` files at least this big are imported with worker processes by default.
_POOL_MIN_BYTES = 16 * 2**20
_MAX_AUTO_WORKERS = 4
#: Encoded text a rejecting import keeps in memory between its passes; the rest is spilled.
_SPILL_BYTES = 64 * 2**20
_SOURCES = (SOURCE,)

#: The line number of a block's first line, and its lines.
Block = tuple[int, list[str]]
#: The outcome for one record: ``(line, message)`` for a bad one, ``(line, id, name, email,
#: text)`` for a good one (see :data:`relcrm.crm.EncodedPerson`).
Outcome = tuple[int, str] | tuple[int, str, str, str | None, str]


def _plain_text_encoder() -> Callable[[Any], str]:
    """:func:`~relcrm.storage._checks.encode_json` for the records :func:`_fast_record` makes
    (text, ``null``, booleans, lists and objects: no numbers). With the optional ``orjson``
    installed (``relcrm[fast]``) it encodes them several times faster, giving exactly the same
    text (checked here on the first 2,048 characters, which hold every one JSON escapes, and on
    a sample of the others), and anything it refuses (lone surrogates) goes to ``encode_json``,
    which reports it as before."""
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return encode_json
    dumps = orjson.dumps
    points = [*range(0x800), *range(0x800, 0x110000, 61)]
    characters = "".join(chr(c) for c in points if not 0xD800 <= c <= 0xDFFF)
    probe = {"text": characters, "n": None, "t": True, "f": False, "l": [[], {}, ["é"]], "": ""}
    try:
        if dumps(probe).decode() != encode_json(probe):
            return encode_json
    except Exception:
        return encode_json

    def encode(record: Any) -> str:
        try:
            text: str = dumps(record).decode()
        except Exception:
            return encode_json(record)
        return text

    return encode


_encode_text = functools.cache(_plain_text_encoder)


def _encode(value: Any) -> tuple[str, str, str | None, str] | str:
    """The person a parsed record makes (as :func:`_person` makes it), encoded as the store keeps
    it (``id, name, email, text``); or why the record is bad."""
    if isinstance(value, _Unreadable):
        return value.message
    if type(value) is dict:
        made = _fast_record(value, None, _SOURCES)
        if made is not None:
            return made[0], made[1], made[2], _encode_text()(made[3])
    try:
        person = _person(value)
    except ValidationError as exc:
        return "; ".join(exc.errors)
    return person.id, person.name, person.email, encode_json(unstructure(person))


def _encode_records(records: Iterator[Record]) -> Iterator[list[Outcome]]:
    """The outcomes of ``records``, a few at a time."""
    while chunk := list(itertools.islice(records, _BLOCK_LINES)):
        out: list[Outcome] = []
        for line, value in chunk:
            made = _encode(value)
            out.append((line, made) if isinstance(made, str) else (line, *made))
        yield out


def _encode_block(block: Block) -> list[Outcome]:
    """In a worker process: the outcomes of the records of a block of ``.jsonl`` lines."""
    start, lines = block
    out: list[Outcome] = []
    for number, line in enumerate(lines, start):
        if line.strip():
            made = _encode(_parse_line(line))
            out.append((number, made) if isinstance(made, str) else (number, *made))
    return out


def _pool_size(source: Source, workers: int | str) -> int:
    """How many worker processes to import ``source`` with (0: none)."""
    if workers != "auto" and not (isinstance(workers, int) and workers >= 0):
        raise ValidationError(
            "import", [f"workers must be 'auto' or a whole number from 0, got {workers!r} @ $"]
        )
    if workers == 0 or not isinstance(source, str | os.PathLike):
        return 0
    path = Path(source)
    if _inner_suffix(path) not in (".jsonl", ".ndjson") or not path.is_file():
        return 0
    if isinstance(workers, int):
        return workers
    if path.stat().st_size < _POOL_MIN_BYTES:
        return 0
    cpus = _available_cpus()
    return min(cpus, _MAX_AUTO_WORKERS) if cpus >= 2 else 0


def _available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _blocks(path: Path) -> Iterator[Block]:
    with _open_text(path) as f:
        number = 1
        while lines := list(itertools.islice(f, _BLOCK_LINES)):
            yield number, lines
            number += len(lines)


def _in_order(
    pool: ProcessPoolExecutor, fn: Callable[[Block], R], blocks: Iterator[Block], ahead: int
) -> Iterator[R]:
    """``fn`` of each block, computed by the pool with at most ``ahead`` blocks in flight, in
    the order of the blocks."""
    pending: deque[Future[R]] = deque()
    try:
        for block in blocks:
            pending.append(pool.submit(fn, block))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


class _Spill:
    """The outcomes of a rejecting import's first pass, kept for its second: in memory up to
    :data:`_SPILL_BYTES` of text, then in a temporary file (removed on :meth:`close`)."""

    def __init__(self) -> None:
        self._blocks: list[list[Outcome]] = []
        self._size = 0
        self._file: IO[bytes] | None = None

    def add(self, block: list[Outcome]) -> None:
        if self._file is not None:
            marshal.dump(block, self._file)
            return
        self._blocks.append(block)
        self._size += sum(len(outcome[-1]) for outcome in block)
        if self._size > _SPILL_BYTES:
            self._file = tempfile.TemporaryFile(prefix="relcrm-import-")  # noqa: SIM115 (closed in close())
            for kept in self._blocks:
                marshal.dump(kept, self._file)
            self._blocks = []

    def __iter__(self) -> Iterator[list[Outcome]]:
        yield from self._blocks
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            while True:
                try:
                    block: list[Outcome] = marshal.load(self._file)
                except EOFError:
                    return
                yield block

    def close(self) -> None:
        self._blocks = []
        if self._file is not None:
            self._file.close()


def _import_people(
    crm: "CRM",
    name: str,
    outcomes: Callable[[], Iterator[list[Outcome]]],
    total: int | None,
    *,
    actor: Actor,
    on_error: OnError,
    batch_size: int,
    progress: Progress | None,
) -> ImportReport:
    """What :func:`_import` does, for people encoded by ``outcomes()`` (a block of outcomes at a
    time, in the order of the records)."""
    started = time.perf_counter()
    report = ImportReport(kind="people")
    spill = _Spill()
    try:
        if on_error == "reject":
            # Validation pass: nothing is written unless every record is good. What it made is
            # kept for the writing pass.
            for block in outcomes():
                report.read += len(block)
                for outcome in block:
                    if len(outcome) == 2:
                        report.errors.append(outcome)
                if not report.errors:
                    spill.add(block)
            total = _first_pass_done(report, name, started)
            blocks: Iterable[list[Outcome]] = spill
        else:
            blocks = outcomes()

        batches = _Batches(crm, _add_encoded_new, actor, report, batch_size, progress, total)
        for block in blocks:
            for outcome in block:
                report.read += 1
                if len(outcome) == 2:
                    report.skipped += 1
                    report.errors.append(outcome)
                    continue
                _, pid, person_name, email, text = outcome
                batches.add(pid, (pid, person_name, email, _SOURCES, text))
        batches.flush()
    finally:
        spill.close()
    report.seconds = time.perf_counter() - started
    return report


def _add_encoded_new(crm: "CRM", batch: "list[EncodedPerson]", actor: Actor) -> tuple[int, int]:
    """Add the people of ``batch`` the store does not hold yet, in one transaction; count the
    others as duplicates. Which are held is one :func:`~relcrm.storage.base.existing_ids` query
    per batch. Someone added concurrently between the check and the write makes the store refuse
    the batch (:class:`~relcrm.AlreadyExists`): the batch is checked again and retried without
    them."""
    pending = batch
    while True:
        known = existing_ids(crm.store, "person", [p[0] for p in pending])
        fresh = [p for p in pending if p[0] not in known]
        if not fresh:
            return 0, len(batch)
        try:
            crm.add_encoded_people(fresh, actor=actor)
        except AlreadyExists:
            if not existing_ids(crm.store, "person", [p[0] for p in fresh]):
                raise  # not a duplicate person (e.g. a leftover relationship): a real error
            pending = fresh
            continue
        return len(fresh), len(batch) - len(fresh)


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
