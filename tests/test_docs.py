"""The user documentation: README.md stays a short guide, README, docs/*.md and
CHANGELOG.md hold no development-diary words or paths users do not have, every
relative link resolves, and the README carries the two set-up commands that
CI runs verbatim.  Reads text only (no simulation)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
USER_DOCS = [README, REPO / "CHANGELOG.md", *DOCS]

#: markdown links and images: [text](target) / ![alt](target)
LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SETUP_LINES = ("    pip install . && spbsim run",
               "    pip install '.[test]' && python -m pytest -q")


def _links(path):
    """(file part, anchor or None) of every relative link in a markdown file."""
    text = path.read_text(encoding="utf-8")
    # code blocks and inline code are not links
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK_RE.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue            # http:, mailto:, ...
        file, _, anchor = target.partition("#")
        yield file, anchor or None


def _relative_links(path):
    for file, _ in _links(path):
        if file:
            yield file


def _anchors(path):
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 205, f"README.md has {n} lines; the guide's limit is about 200 (move detail to docs/)"


def test_docs_exist():
    names = {p.name for p in DOCS}
    for name in ("model.md", "spb.md", "findings.md", "performance.md", "replay.md",
                 "fidelity.md", "results.md"):
        assert name in names, f"docs/{name} is missing"
    assert (REPO / "CHANGELOG.md").is_file()


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_diary_words_or_private_paths(path):
    text = path.read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines(), 1):
        assert "session" not in line.lower(), f"{path.name}:{lineno}: 'session': {line.strip()}"
        assert "../shared" not in line, f"{path.name}:{lineno}: '../shared': {line.strip()}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(path):
    for target in _relative_links(path):
        assert target, f"{path.name}: empty link target"
        assert (path.parent / target).exists(), f"{path.name}: link to {target!r} points nowhere"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_anchors_resolve(path):
    for file, anchor in _links(path):
        target = path.parent / file if file else path
        if anchor is None or target.suffix != ".md" or not target.exists():
            continue
        assert anchor in _anchors(target), f"{path.name}: no heading #{anchor} in {target.name}"


def test_anchor_slugs(tmp_path):
    """The slug rule on the heading shapes the docs use."""
    p = tmp_path / "a.md"
    p.write_text("# The model: what is ours\n## `fragment-then-1g`: 1 GB pages\n"
                 "## Our choices ([SIM])\n```\n# not a heading\n```\n", encoding="utf-8")
    assert _anchors(p) == {"the-model-what-is-ours", "fragment-then-1g-1-gb-pages",
                           "our-choices-sim"}


def test_link_checker_sees_links(tmp_path):
    """The checker itself: it finds links and images, ignores URLs, anchors and code."""
    doc = tmp_path / "x.md"
    doc.write_text("[a](docs/a.md) ![i](img.png#x) [u](https://e.org) [s](#sec) `[c](no.md)`\n"
                   "```\n[d](no2.md)\n```\n", encoding="utf-8")
    assert list(_relative_links(doc)) == ["docs/a.md", "img.png"]


def test_readme_has_setup_commands_verbatim():
    lines = README.read_text(encoding="utf-8").splitlines()
    for cmd in SETUP_LINES:
        assert cmd in lines, f"README.md lacks the set-up line {cmd.strip()!r}"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert SETUP_LINES[1].strip() in [line.strip() for line in ci]
