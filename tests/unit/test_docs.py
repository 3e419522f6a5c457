"""The docs hold together: every relative link in README.md and docs/ points at a
file that exists (and a heading that exists, for #anchors), and nothing in the
project points at private reference material instead of docs/upstream.md."""

import re
import subprocess

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slugs(page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in slugs(dest), f"{page.name}: {target}: no such heading"


def test_no_reference_to_private_specs():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # spelled so that this file does not match itself (nor a grep for these strings)
    pattern = re.compile(r"\.\./share[d]|/work/share[d]|shared/spec[s]|\bspec[s]/[a-z-]+\.md")
    hits = [f for f in files if (ROOT / f).is_file() and pattern.search((ROOT / f).read_text(errors="replace"))]
    assert hits == []
