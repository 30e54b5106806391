"""The documentation agrees with the repository: links resolve, settings match the code.

These tests read README.md and docs/*.md as text and compare them with ``entra_auth``'s own
sources; they need no database and nothing from the sample project.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from entra_auth.conf import DEFAULTS
from tests.subprocess_support import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DOCS_INDEX = DOCS / "index.md"
CONFIGURATION = DOCS / "configuration.md"
PACKAGE = PROJECT_ROOT / "entra_auth"
MAX_README_LINES = 260
PAGES = [README, *sorted(DOCS.glob("*.md"))]
SETTINGS_TABLE_HEADER = ["key", "type", "default", "meaning"]
EXTERNAL_SCHEMES = ("http://", "https://", "mailto:")

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# [text](target) and ![alt](target), with an optional "title" after the target.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
_DELIMITER_CELL = re.compile(r":?-{3,}:?")
_CHECK_ID = re.compile(r"entra_auth\.([EW]\d{3})")
_REGISTERED_CHECK_ID = re.compile(r"""\bid=["']entra_auth\.([EW]\d{3})["']""")
# Literals ast.literal_eval can read back, so a documented default can be compared exactly.
_LITERAL_TYPES = (type(None), bool, int, float, str, list, tuple, dict)


def _page_id(page: Path) -> str:
    return page.relative_to(PROJECT_ROOT).as_posix()


def _prose(text: str) -> str:
    """``text`` without fenced code blocks; code spans become a neutral word.

    Links and tables are markdown only outside code, and a code span may hold brackets or
    pipes that are not markdown at all.
    """
    kept = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            kept.append("")
            continue
        kept.append("" if in_fence else line)
    return _CODE_SPAN.sub("code", "\n".join(kept))


def _prose_lines_keeping_code_spans(text: str) -> list[str]:
    """Lines outside fenced code blocks, unchanged (tables keep their code spans)."""
    lines = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return lines


def _link_targets(page: Path) -> list[str]:
    prose = _prose(page.read_text(encoding="utf-8"))
    return _INLINE_LINK.findall(prose) + _REFERENCE_DEFINITION.findall(prose)


def _relative_targets(page: Path) -> list[str]:
    return [target for target in _link_targets(page) if not target.startswith(EXTERNAL_SCHEMES)]


def _heading_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda match: match.group(2), heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of ``page``, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose_lines_keeping_code_spans(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if match is None:
            continue
        slug = _heading_slug(match.group(2))
        repeat = seen.get(slug, 0)
        seen[slug] = repeat + 1
        anchors.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return frozenset(anchors)


def _split_row(line: str) -> list[str]:
    cells = _TABLE_CELL_SEPARATOR.split(line.strip().strip("|"))
    return [cell.strip() for cell in cells]


def _tables(page: Path) -> list[list[list[str]]]:
    """Each markdown table of ``page`` as its rows of cells, the delimiter row left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*_prose_lines_keeping_code_spans(page.read_text(encoding="utf-8")), ""]:
        if line.lstrip().startswith("|"):
            row = _split_row(line)
            if not all(_DELIMITER_CELL.fullmatch(cell) for cell in row):
                current.append(row)
        elif current:
            tables.append(current)
            current = []
    return tables


@cache
def _documented_settings() -> dict[str, str]:
    """The ``ENTRA_AUTH`` table of docs/configuration.md: each key and its default cell."""
    tables = [
        table
        for table in _tables(CONFIGURATION)
        if [cell.lower() for cell in table[0]] == SETTINGS_TABLE_HEADER
    ]
    assert len(tables) == 1, (
        f"docs/configuration.md needs exactly one table headed {SETTINGS_TABLE_HEADER}, "
        f"found {len(tables)}"
    )
    documented: dict[str, str] = {}
    for row in tables[0][1:]:
        assert len(row) == len(SETTINGS_TABLE_HEADER), f"malformed settings row: {row}"
        key = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", row[0])
        assert key is not None, f"the key cell {row[0]!r} must be one setting name in backticks"
        assert key.group(1) not in documented, f"{key.group(1)} is documented twice"
        documented[key.group(1)] = row[2]
    return documented


def _is_literal(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    return type(value) in _LITERAL_TYPES


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve_to_files_in_the_repository(page: Path) -> None:
    broken = []
    for target in _relative_targets(page):
        path = target.split("#", 1)[0]
        if not path:
            continue  # an anchor in the same page: see the anchor test
        if path.startswith("/"):
            broken.append(f"{target} (absolute: link relative to the page)")
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(PROJECT_ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    assert not broken, f"{_page_id(page)} has broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_anchor_links_name_a_heading_of_their_page(page: Path) -> None:
    broken = []
    for target in _relative_targets(page):
        path, _, anchor = target.partition("#")
        if not anchor:
            continue
        linked = (page.parent / path).resolve() if path else page
        if linked.suffix != ".md" or not linked.is_file():
            continue  # only markdown pages have heading anchors; missing files fail above
        if anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{_page_id(page)} links to missing headings: {broken}"


def test_every_docs_page_is_listed_in_the_readme_and_the_docs_index() -> None:
    pages = {page.name for page in DOCS.glob("*.md")} - {DOCS_INDEX.name}
    from_readme = {
        Path(target.split("#", 1)[0]).name
        for target in _relative_targets(README)
        if target.startswith("docs/")
    }
    from_index = {Path(target.split("#", 1)[0]).name for target in _relative_targets(DOCS_INDEX)}
    assert pages - from_readme == set(), "pages missing from the README's documentation index"
    assert pages - from_index == set(), "pages missing from docs/index.md"


def test_configuration_table_documents_exactly_the_entra_auth_settings() -> None:
    documented = set(_documented_settings())
    assert documented - set(DEFAULTS) == set(), "documented keys that are not settings"
    assert set(DEFAULTS) - documented == set(), "settings missing from docs/configuration.md"


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_configuration_table_gives_the_default_of_the_code(key: str) -> None:
    default = DEFAULTS[key]
    if not _is_literal(default):
        pytest.skip(f"{key}'s default {default!r} has no Python literal to compare")
    cell = _documented_settings().get(key)
    assert cell is not None, f"{key} is not in the settings table of docs/configuration.md"
    literal = re.fullmatch(r"`([^`]+)`", cell)
    assert literal is not None, f"{key}: the default cell must be a Python literal in backticks"
    documented = ast.literal_eval(literal.group(1))
    # Compared with their types: the docs must not say 5 for 5.0, nor 1 for True.
    assert (type(documented), documented) == (type(default), default)


def test_system_checks_documented_are_exactly_those_the_code_registers() -> None:
    registered = {
        check_id
        for source in PACKAGE.rglob("*.py")
        for check_id in _REGISTERED_CHECK_ID.findall(source.read_text(encoding="utf-8"))
    }
    documented = set(_CHECK_ID.findall(CONFIGURATION.read_text(encoding="utf-8")))
    assert registered - documented == set(), "check ids missing from docs/configuration.md"
    assert documented - registered == set(), "documented check ids that no check reports"


def test_readme_stays_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES
