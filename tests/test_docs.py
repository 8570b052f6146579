"""The documentation is tested: its examples run, and its reference parts match the code.

* Every ```python block of ``docs/*.md`` and ``README.md`` runs, page by page, in order, in one
  namespace per page (blocks fenced as ```python no-run are shown but not run).
* Every hook in :mod:`relcrm.hookspecs` has a section in ``docs/plugins.md`` with its exact
  signature, and has its own test in ``tests/plugins/`` (a ``test_<hook>...`` function).
* The default pipeline, person-level action and event catalogue tables in ``docs/concepts.md``
  match the code.
* Every public name of :mod:`relcrm` is mentioned in the docs.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm import hookspecs
from relcrm.lifecycle import ACTION_ROLES, DEFAULT_PIPELINE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PLUGINS_PAGE = DOCS / "plugins.md"
CONCEPTS_PAGE = DOCS / "concepts.md"
HOOK_TESTS = ROOT / "tests" / "plugins"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

#: Public names that need not appear in the docs, with the reason.
UNDOCUMENTED_ALLOWED: dict[str, str] = {}

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


def _fences(lines: list[str]) -> list[tuple[int, int, str]]:
    """``(opening line index, closing line index, info string)`` of every fenced block.

    A block closes at a line of at least as many of the same fence characters and nothing else,
    so a ```` fence can show ``` blocks inside it.
    """
    fences = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        end = i + 1
        while end < len(lines) and not (
            lines[end].startswith(fence) and not lines[end].strip(fence[0]).strip()
        ):
            end += 1
        if end == len(lines):
            raise AssertionError(f"unclosed code fence opened on line {i + 1}")
        fences.append((i, end, info))
        i = end + 1
    return fences


def _blocks(text: str) -> list[tuple[str, int, str]]:
    """``(info string, first line number, code)`` of every fenced block, in order."""
    lines = text.splitlines()
    return [
        (info, start + 2, "\n".join(lines[start + 1 : end]) + "\n")
        for start, end, info in _fences(lines)
    ]


def _prose(text: str) -> list[tuple[str, bool]]:
    """Every line of ``text`` with whether it is prose (outside fenced blocks and their fences)."""
    lines = text.splitlines()
    in_code = [False] * len(lines)
    for start, end, _ in _fences(lines):
        in_code[start : end + 1] = [True] * (end + 1 - start)
    return [(line, not code) for line, code in zip(lines, in_code, strict=True)]


def _examples(text: str) -> list[tuple[int, str, str | None]]:
    """``(first line number, code, expected output)`` of every ```python block to run.

    A ```text block that directly follows (only blank lines between) is the block's expected
    standard output.
    """
    lines = text.splitlines()
    fences = _fences(lines)
    examples = []
    for n, (start, end, info) in enumerate(fences):
        if info.split() != ["python"]:
            continue
        code = "\n".join(lines[start + 1 : end]) + "\n"
        expected = None
        if n + 1 < len(fences):
            next_start, next_end, next_info = fences[n + 1]
            if next_info == "text" and not any(x.strip() for x in lines[end + 1 : next_start]):
                expected = "\n".join(lines[next_start + 1 : next_end]) + "\n"
        examples.append((start + 2, code, expected))
    return examples


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# ------------------------------------------------------------------------------------------------
# The examples run
# ------------------------------------------------------------------------------------------------


def test_fence_parser() -> None:
    text = (
        "a\n```python\nx = 1\n```\n\n"
        "````md\n```python\nnot separate\n```\n````\n"
        "```python no-run\nboom\n```\n"
    )
    assert _blocks(text) == [
        ("python", 3, "x = 1\n"),
        ("md", 7, "```python\nnot separate\n```\n"),
        ("python no-run", 12, "boom\n"),
    ]
    assert _examples(text) == [(3, "x = 1\n", None)]


def test_text_after_an_example_is_its_output() -> None:
    text = (
        "```python\nprint(1)\n```\n\n```text\n1\n```\n"
        "prose\n```python\nx\n```\nprose\n```text\n2\n```\n"
    )
    assert _examples(text) == [(2, "print(1)\n", "1\n"), (10, "x\n", None)]


def test_sections_and_tables_ignore_code() -> None:
    text = (
        "## one\n| a | b |\n|---|---|\n| `x` | y |\n\n"
        "````md\n## not a section\n```python\n| not | a table |\n```\n````\n"
        "## two\ntext\n"
    )
    assert list(_sections(text)) == ["one", "two"]
    assert _tables(text) == [[["a", "b"], ["`x`", "y"]]]


def test_python_fences_are_run_or_marked_no_run() -> None:
    """A typo in a fence (``py``, ``python3``, ``python norun``) would silently skip an example."""
    for page in PAGES:
        for info, line, _ in _blocks(page.read_text(encoding="utf-8")):
            words = info.split()
            if words and words[0].startswith("py") and words[0] not in ("python", "pycon"):
                pytest.fail(f"{_page_id(page)}:{line}: unknown fence info string {info!r}")
            if words[:1] == ["python"] and words[1:] not in ([], ["no-run"]):
                pytest.fail(f"{_page_id(page)}:{line}: unknown fence info string {info!r}")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Run the page's Python blocks in order, in one namespace, in an empty working directory."""
    monkeypatch.chdir(tmp_path)
    caplog.set_level("WARNING")
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    try:
        for line, code, expected in _examples(page.read_text(encoding="utf-8")):
            # Pad with newlines so tracebacks point at the line in the Markdown file.
            source = "\n" * (line - 1) + code
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(source, str(page), "exec"), namespace)
            if expected is not None:
                assert out.getvalue() == expected, f"{_page_id(page)}:{line}: output differs"
    finally:
        for value in list(namespace.values()):
            if isinstance(value, relcrm.CRM):
                value.close()


# ------------------------------------------------------------------------------------------------
# Hooks: documented with their exact signature, and each tested
# ------------------------------------------------------------------------------------------------


def _hook_names() -> list[str]:
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("relcrm_") and inspect.isfunction(value)
    )


def _annotation(value: Any) -> str:
    if value is inspect.Signature.empty:
        raise AssertionError("every hook argument and return value must be annotated")
    return value if isinstance(value, str) else inspect.formatannotation(value)


def hook_signature(name: str) -> str:
    """``def name(arg: Type, ...) -> Ret`` from the hookspec, annotations as written."""
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {_annotation(p.annotation)}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {_annotation(sig.return_annotation)}"


def test_hook_signature_builder() -> None:
    assert hook_signature("relcrm_event_committed") == (
        "def relcrm_event_committed(crm: CRM, event: Event) -> None"
    )
    assert hook_signature("relcrm_before_transition").endswith(") -> str | None")


def _sections(text: str) -> dict[str, str]:
    """Level-2 sections of a page (heading text -> body), ignoring headings inside code."""
    sections: dict[str, str] = {}
    heading = None
    body: list[str] = []
    for line, is_prose in _prose(text):
        if is_prose and line.startswith("## "):
            if heading is not None:
                sections[heading] = "\n".join(body)
            heading, body = line[3:].strip(), []
        else:
            body.append(line)
    if heading is not None:
        sections[heading] = "\n".join(body)
    return sections


def test_hooks_exist() -> None:
    assert _hook_names(), "relcrm.hookspecs defines no hooks?"


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    sections = _sections(PLUGINS_PAGE.read_text(encoding="utf-8"))
    assert hook in sections, f"docs/plugins.md needs a '## {hook}' section"
    code = [c for info, _, c in _blocks(sections[hook]) if info.split()[:1] == ["python"]]
    assert code, f"the '## {hook}' section needs a python code block with the signature"
    expected = hook_signature(hook)
    assert expected in code[0], (
        f"the first code block of '## {hook}' must contain the exact signature:\n    {expected}"
    )


def test_no_documented_hook_is_missing_from_the_code() -> None:
    sections = _sections(PLUGINS_PAGE.read_text(encoding="utf-8"))
    documented = {h for h in sections if h.startswith("relcrm_")}
    assert documented - set(_hook_names()) == set()


def _test_function_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_has_its_own_test(hook: str) -> None:
    names = set().union(*(_test_function_names(p) for p in sorted(HOOK_TESTS.glob("test_*.py"))))
    mine = [n for n in names if n == f"test_{hook}" or n.startswith(f"test_{hook}_")]
    assert mine, f"tests/plugins/ needs a test named test_{hook} or test_{hook}_..."


# ------------------------------------------------------------------------------------------------
# Reference tables in concepts.md match the code
# ------------------------------------------------------------------------------------------------


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table outside code blocks, as rows of cells (header first, no rule row)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line, is_prose in [*_prose(text), ("", True)]:
        stripped = line.strip()
        if is_prose and stripped.startswith("|") and stripped.endswith("|"):
            cells = [c.strip() for c in stripped[1:-1].split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _table(header: list[str]) -> list[list[str]]:
    """The rows of the concepts.md table with exactly this header."""
    found = [t[1:] for t in _tables(CONCEPTS_PAGE.read_text(encoding="utf-8")) if t[0] == header]
    assert len(found) == 1, f"docs/concepts.md needs one table with the header {header}"
    return found[0]


def _codes(cell: str) -> list[str]:
    """The inline-code items of a cell (``"`a`, `b`"`` -> ``["a", "b"]``); ``—`` is none."""
    if cell == "—":
        return []
    items = [item.strip() for item in cell.split(",")]
    assert all(re.fullmatch(r"`[^`]+`", item) for item in items), f"expected `code` items: {cell!r}"
    return [item.strip("`") for item in items]


def _words(cell: str) -> list[str]:
    return [] if cell == "—" else [item.strip() for item in cell.split(",")]


def test_concepts_stage_table_matches_the_default_pipeline() -> None:
    rows = _table(["Stage", "Label", "Milestone", "The candidate sees"])
    documented = [(_codes(s)[0], label, _codes(m)[0], shown) for s, label, m, shown in rows]
    expected = [
        (s.id, s.label, s.milestone.value, s.shown_to_candidate) for s in DEFAULT_PIPELINE.stages
    ]
    assert documented == expected


def _archive_reason(t: relcrm.Transition) -> str:
    if t.archive_reason is not None:
        return f"always `{t.archive_reason.value}`"
    return "required" if t.requires_reason else "—"


def test_concepts_transition_table_matches_the_default_pipeline() -> None:
    header = ["Transition", "From", "To", "Who may take it", "Guards", "Event", "Archive reason"]
    documented = [
        (
            _codes(name)[0],
            frozenset(_codes(sources)),
            _codes(target)[0],
            frozenset(_words(roles)),
            tuple(_codes(guards)),
            _codes(event)[0],
            reason,
        )
        for name, sources, target, roles, guards, event, reason in _table(header)
    ]
    expected = [
        (
            t.name,
            t.sources,
            t.target,
            frozenset(r.value for r in t.roles),
            t.guards,
            t.event_type,
            _archive_reason(t),
        )
        for t in DEFAULT_PIPELINE.transitions
    ]
    assert documented == expected


def test_concepts_action_table_matches_action_roles() -> None:
    documented = {
        _codes(action)[0]: frozenset(_words(roles))
        for action, roles in _table(["Action", "Who may take it"])
    }
    expected = {action: frozenset(r.value for r in roles) for action, roles in ACTION_ROLES.items()}
    assert documented == expected


def _builtin_event_types() -> dict[str, dict[str, Any]]:
    """The catalogue as ``import relcrm`` leaves it, free of what other tests registered."""
    script = (
        "import json, relcrm.events as e; print(json.dumps({n: {'visibility': t.visibility.value,"
        " 'candidate': sorted(t.candidate_fields), 'referrer': sorted(t.referrer_fields),"
        " 'description': t.description} for n, t in e.EVENT_TYPES.items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: dict[str, dict[str, Any]] = json.loads(out.stdout)
    return loaded


def test_concepts_event_catalogue_matches_the_code() -> None:
    header = ["Event", "Visibility", "The candidate sees", "A referrer sees", "Meaning"]
    documented = {
        _codes(name)[0]: {
            "visibility": visibility,
            "candidate": sorted(_codes(candidate)),
            "referrer": sorted(_codes(referrer)),
            "description": meaning,
        }
        for name, visibility, candidate, referrer, meaning in _table(header)
    }
    assert documented == _builtin_event_types()


# ------------------------------------------------------------------------------------------------
# The public API is documented
# ------------------------------------------------------------------------------------------------


def _docs_code_text() -> str:
    """Everything in code on the docs pages: fenced blocks and inline code spans."""
    parts = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        parts.extend(code for _, _, code in _blocks(text))
        parts.extend(re.findall(r"`([^`\n]+)`", text))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(relcrm.__all__))
def test_public_name_is_documented(name: str) -> None:
    if name in UNDOCUMENTED_ALLOWED:
        pytest.skip(UNDOCUMENTED_ALLOWED[name])
    pattern = rf"(?<![\w]){re.escape(name)}(?!\w)"
    assert re.search(pattern, _docs_code_text()), f"relcrm.{name} is not mentioned in docs/*.md"


def test_allowlist_is_small_and_current() -> None:
    assert len(UNDOCUMENTED_ALLOWED) <= 5
    assert set(UNDOCUMENTED_ALLOWED) <= set(relcrm.__all__)
