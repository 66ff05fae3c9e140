"""The documentation stays true: its code runs, its rule table is complete, its nav resolves.

Each page's ```python blocks run in order in one fresh namespace per page (a block may use names
from earlier blocks of the same page), inside a temporary working folder, with warnings as errors,
and then once more in the same folder, as a reader who runs the examples twice would.
A block whose info string says ``python notest`` is shown but not run; keep those for code that
needs something outside the test environment, such as a PostgreSQL server's URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cvalue.io import RULES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
PAGES = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
NAV_ENTRY = re.compile(r"^\s+-\s+(?:[^:\n]+:\s+)?(?P<page>\S+\.md)\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a docs page: its info string, first code line and code."""

    info: tuple[str, ...]
    line: int
    code: str

    @property
    def is_python(self) -> bool:
        return bool(self.info) and self.info[0] == "python"

    @property
    def is_tested(self) -> bool:
        return self.is_python and "notest" not in self.info


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, dedented to their fence's indentation."""
    found = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if opening is None:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        start, body = number, []
        while number < len(lines) and lines[number].strip() != fence:
            line = lines[number]
            body.append(line[indent:] if not line[:indent].strip() else line)
            number += 1
        if number == len(lines):
            pytest.fail(f"unclosed code fence opened on line {start}")
        number += 1
        found.append(Block(tuple(opening["info"].split()), start + 1, "\n".join(body) + "\n"))
    return found


def nav_pages() -> list[str]:
    """The pages named in the ``nav:`` section of mkdocs.yml (read without a YAML parser)."""
    pages, in_nav = [], False
    for line in MKDOCS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_nav = line.startswith("nav:")
            continue
        entry = NAV_ENTRY.match(line) if in_nav else None
        if entry:
            pages.append(entry["page"])
    return pages


def test_the_docs_have_pages() -> None:
    assert {"index.md", "getting-started.md", "data.md", "summaries.md", "units.md"} <= set(PAGES)


def run_page(path: Path) -> None:
    """Run the tested python blocks of a page in order, in one fresh namespace."""
    namespace: dict[str, object] = {"__name__": f"docs.{path.stem}"}
    for block in blocks(path.read_text(encoding="utf-8")):
        if block.is_tested:
            # padded so that a traceback's line numbers are the page's line numbers
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(path), "exec"), namespace)


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files the examples write (CSV, DuckDB) land in a fresh folder
    run_page(DOCS / page)
    # a reader runs the examples again in the same folder: files of the first run must not break it
    run_page(DOCS / page)


def test_notest_blocks_are_few() -> None:
    skipped = [
        (page, block.line)
        for page in PAGES
        for block in blocks((DOCS / page).read_text(encoding="utf-8"))
        if block.is_python and not block.is_tested
    ]
    assert len(skipped) <= 3, f"too many untested python blocks: {skipped}"


GENERATED = {"api.md"}  # rendered by mkdocstrings from the docstrings (their doctests run)


def test_every_page_but_the_home_page_has_tested_code() -> None:
    for page in PAGES:
        tested = [b for b in blocks((DOCS / page).read_text(encoding="utf-8")) if b.is_tested]
        assert tested or page in {"index.md", *GENERATED}, f"{page} has no tested python block"


def test_the_api_reference_renders_every_public_module() -> None:
    """Each public package of cvalue has its block in the generated reference."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: (cvalue\.[\w.]+)$", text, flags=re.MULTILINE))
    public = {"cvalue.models", "cvalue.summary", "cvalue.lifecycle", "cvalue.value",
              "cvalue.segments", "cvalue.metrics", "cvalue.evaluation", "cvalue.io",
              "cvalue.config", "cvalue.plot", "cvalue.compat.lifetimes"}  # fmt: skip
    assert public <= rendered, f"missing from docs/api.md: {sorted(public - rendered)}"


def test_every_rejection_reason_is_documented() -> None:
    text = (DOCS / "data.md").read_text(encoding="utf-8")
    flat = " ".join(text.split())
    for rule in RULES:
        assert f"`{rule.reason}`" in text, f"reason {rule.reason!r} missing from docs/data.md"
        # the table repeats the code's own words, so a changed rule shows up here
        assert f"| {rule.problem} | {rule.fix} |" in flat, f"wording of {rule.reason!r} differs"


def test_every_nav_entry_exists() -> None:
    pages = nav_pages()
    assert pages, "mkdocs.yml has no nav entries"
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"nav entries without a page: {missing}"


def test_every_page_is_in_the_nav() -> None:
    assert sorted(nav_pages()) == PAGES


def test_block_parser() -> None:
    text = "\n".join([
        "# Title",
        "```python",
        "x = 1",
        "```",
        "!!! note",
        "    ```python notest",
        "    y = x",
        "    ```",
        "```bash",
        "ls",
        "```",
    ])  # fmt: skip
    found = blocks(text)
    assert [(b.info, b.line, b.code) for b in found] == [
        (("python",), 3, "x = 1\n"),
        (("python", "notest"), 7, "y = x\n"),
        (("bash",), 10, "ls\n"),
    ]
    assert [b.is_tested for b in found] == [True, False, False]


def test_every_test_that_reliability_names_exists() -> None:
    """docs/reliability.md cites tests as evidence: each one must be a test of the suite."""
    text = (DOCS / "reliability.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text)) - {
        name for name in re.findall(r"tests/(?:models/)?(test_[a-z0-9_]+)\.py", text)
    }
    defined = {
        match
        for path in Path(__file__).parent.rglob("test_*.py")
        for match in re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.MULTILINE)
    }
    assert named, "docs/reliability.md names no test"
    assert not named - defined, f"named in docs/reliability.md but not defined: {named - defined}"
