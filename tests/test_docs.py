"""The documentation a user navigates: a short README with the support matrix on its first screen, a MkDocs site
whose navigation lists every page, and links that lead somewhere. Fast: reads files only (``mkdocs build --strict``
in .ci/run checks the rendered site, anchors included)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"

MAX_README_LINES = 250
MATRIX_WITHIN = 60  # lines: the first screen
MATRIX_ROWS = ["ONNX Runtime", "OpenVINO", "TensorRT 10.3", "TensorRT 11", "Jetson", "C++", "Triton", "DeepStream"]
STATUSES = ("tested here", "compiled only", "untested")

#: [text](target) with a relative target; absolute URLs and in-page anchors are not files.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def _doc_pages() -> list[Path]:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, f"no Markdown pages in {DOCS}"
    return pages


def _support_matrix(lines: list[str]) -> tuple[int, list[str]]:
    """(line number of the heading, the table rows after it) of README's "Support matrix" section."""
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"#+\s+Support matrix\s*", line)), None)
    assert start is not None, "README has no 'Support matrix' heading"
    rows: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:  # the first line after the table ends it
            break
        elif line.startswith("#"):
            break
    assert len(rows) > 2, "the support matrix has no table (header, separator, rows)"
    return start, rows


def _nav_pages() -> list[str]:
    """The .md files mkdocs.yml's ``nav`` names (no YAML parser needed: nav entries are ``- Title: page.md``)."""
    text = MKDOCS.read_text(encoding="utf-8")
    match = re.search(r"^nav:\s*\n((?:[ \t]+.*\n|\s*\n)+)", text, re.M)
    assert match, "mkdocs.yml has no nav"
    pages = re.findall(r"([\w./-]+\.md)\s*$", match.group(1), re.M)
    assert pages, "mkdocs.yml's nav lists no page"
    return pages


def test_readme_is_short():
    lines = _readme_lines()
    assert 20 < len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the details belong in docs/"


def test_support_matrix_is_on_the_first_screen_and_names_every_target():
    lines = _readme_lines()
    start, rows = _support_matrix(lines)
    last = start + 1 + next(i for i, line in enumerate(lines[start + 1:]) if line == rows[-1])
    assert last < MATRIX_WITHIN, f"the support matrix ends on line {last + 1}, not within the first {MATRIX_WITHIN}"
    body = rows[2:]  # past the header and the separator
    first_cells = [row.strip("|").split("|")[0].strip() for row in body]
    missing = [name for name in MATRIX_ROWS if not any(name in cell for cell in first_cells)]
    assert not missing, f"the support matrix has no row for {missing}"
    for row in body:
        status = row.strip("|").split("|")[1].strip()
        assert status.startswith(STATUSES), f"status {status!r} is none of {STATUSES}: {row}"


def test_readme_keeps_the_install_and_test_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    for command in ('python3 -m venv .venv && . .venv/bin/activate',
                    'pip install -e ".[torch,runtime,dev]" -c constraints.txt',
                    'python -m pytest    #',
                    'python -m pytest -m "not slow"'):
        assert command in text, f"README lost the command {command!r}"


@pytest.mark.parametrize("path", [README, *sorted(DOCS.glob("*.md")), MKDOCS], ids=lambda p: p.name)
def test_the_project_speaks_about_itself_only(path):
    assert path.is_file(), path
    assert "../shared" not in path.read_text(encoding="utf-8"), f"{path.name} refers to a file outside the repository"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    assert re.search(r"^docs_dir:\s*docs\s*$", MKDOCS.read_text(encoding="utf-8"), re.M), "mkdocs.yml: docs_dir: docs"
    nav = _nav_pages()
    pages = {p.name for p in _doc_pages()}
    assert "index.md" in nav, "the site needs a home page"
    assert not pages - set(nav), f"pages missing from mkdocs.yml's nav: {sorted(pages - set(nav))}"
    assert not set(nav) - pages, f"nav entries without a page in docs/: {sorted(set(nav) - pages)}"
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def test_readme_links_into_docs_lead_to_files():
    targets = [t for t in LINK.findall(README.read_text(encoding="utf-8")) if t.startswith("docs/")]
    assert len(targets) >= len(_doc_pages()), "README's Documentation list should link every page of docs/"
    broken = [t for t in targets if not (ROOT / t.split("#")[0]).is_file()]
    assert not broken, f"README links to missing files: {broken}"
    linked = {Path(t.split("#")[0]).name for t in targets}
    unlinked = {p.name for p in _doc_pages()} - linked
    assert not unlinked, f"README's Documentation list misses {sorted(unlinked)}"


def test_links_between_pages_stay_inside_docs_and_lead_to_pages():
    checked = 0
    for page in _doc_pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://|mailto:|#", target):
                continue
            path = target.split("#")[0]
            resolved = (page.parent / path).resolve()
            assert resolved.is_relative_to(DOCS.resolve()), f"{page.name} links outside docs/: {target}"
            assert resolved.is_file(), f"{page.name} links to a missing file: {target}"
            checked += 1
    assert checked > 10, "the pages link to each other: nothing was checked"
