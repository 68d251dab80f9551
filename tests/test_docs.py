"""The repository explains itself: every document the code, the tests and the docs point at is in
the repository, and every section they cite exists (docs/style.md, rule 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract.md"
SOURCES = [
    path
    for pattern in ("*.py", "*.md", "*.yaml", "*.toml", "Makefile")
    for path in ROOT.rglob(pattern)
    if not any(part.startswith(".") or part in {"build", "node_modules"} for part in path.parts)
    and "egg-info" not in str(path)
]
# Documents that live outside this repository and must never be cited from it.
OUTSIDE = re.compile(r"(?<![\w/.])(SPEC\.md|STYLE\.md|SUPABASE\.md|CLIENT\.md)")


def contract_sections() -> tuple[set[str], set[str]]:
    text = CONTRACT.read_text()
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, re.M))
    rows = set(re.findall(r"^\| ([A-G]-\d+) \|", text, re.M))
    return headings, rows


def citations(text: str) -> list[str]:
    """``§N`` and ``§12 X-n`` citations that follow ``docs/contract.md`` on the same line (or the
    next one, where a docstring wraps)."""
    found = []
    for match in re.finditer(r"docs/contract\.md([^\n\"]*(?:\n[^\n\"]*)?)", text):
        tail = re.split(r"\)|\"\"\"", match.group(1))[0]
        found += [f"§{n}" for n in re.findall(r"§(\d+(?:\.\d+)?)", tail)]
        if "§12" in tail:
            for family, low, high in re.findall(r"\b([A-G])-(\d+)(?:\.\.(\d+))?", tail):
                found += [f"{family}-{n}" for n in range(int(low), int(high or low) + 1)]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_citation_resolves_inside_the_repository(path: Path) -> None:
    text = path.read_text(errors="replace")
    headings, rows = contract_sections()
    for cited in citations(text):
        assert cited.lstrip("§") in (headings if cited.startswith("§") else rows), cited
    assert not OUTSIDE.findall(text), "cites a document that is not in the repository"
    for name in re.findall(r"docs/([a-z_-]+\.md)", text):
        assert (ROOT / "docs" / name).exists(), name


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_links_between_documents_resolve(page: Path) -> None:
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if not link.startswith(("http://", "https://", "mailto:")):
            assert (page.parent / link).resolve().exists(), link


def test_the_checker_finds_a_broken_citation() -> None:
    headings, _ = contract_sections()
    assert "99" not in headings
    broken = "see docs/contract" + '.md §99 for this"'  # split, so this file cites nothing
    assert citations(broken) == ["§99"]
