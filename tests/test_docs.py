"""What users read links only inside the repository, and every such link resolves.

A clone has no ``../shared``; a link there (or to a file that moved) is a dead end for a reader.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: markdown links and images: [text](target) / ![alt](target)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS = sorted(p for p in ROOT.rglob("*.md") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def local_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(doc):
    for target in local_links(doc):
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def test_nothing_users_read_points_at_the_shared_folder():
    readable = DOCS + sorted(ROOT.glob("kmbench/**/*.py")) + sorted(ROOT.glob("impls/**/*.py"))
    offenders = [str(p.relative_to(ROOT)) for p in readable if "../shared" in p.read_text(encoding="utf-8")]
    assert not offenders, offenders


def test_the_contract_is_in_the_repository():
    assert "docs/contract.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for heading in ("## K-Means", "### One Lloyd iteration", "### Tolerances", "## Hierarchical", "## Timing"):
        assert heading in text, heading
