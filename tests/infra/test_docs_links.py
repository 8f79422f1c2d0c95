"""Every relative link in the project's Markdown resolves.

The files: every ``*.md`` at the top level of the repository and under ``docs/`` and
``bench/`` (not ``bench/results/``, which runs write and git ignores). A link
``[text](path#anchor)`` whose path is relative must name a file or directory that exists;
when the target is Markdown and the link has an anchor, the target must have a heading
whose GitHub slug is that anchor (``[text](#anchor)`` checks the file itself). Links in
fenced code blocks and code spans are not links.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: folders whose Markdown is checked (recursively), besides the top level
DOC_FOLDERS = ("docs", "bench")
#: folders under those that hold generated output, not documentation
GENERATED = {"results"}

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: an inline link or image: [text](target) or [text](target "title")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
#: a target with a scheme (https:, mailto:) is not a file in the repository
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    files = sorted(REPO_ROOT.glob("*.md"))
    for folder in DOC_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.md")):
            parts = path.relative_to(REPO_ROOT / folder).parts[:-1]
            if not any(part in GENERATED or part.startswith(".") for part in parts):
                files.append(path)
    return files


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation other than ``-``
    and ``_`` dropped, each space a ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated heading gets ``-1``, ``-2``..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if SCHEME.match(target) or target.startswith("/"):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not resolved.exists():
                problems.append(f"{target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{target}: no heading with the anchor #{anchor}")
    return problems


def test_the_checked_files_include_the_front_page_and_the_guides():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "CHANGES.md", "docs/flask_session.md", "bench/README.md"} <= names


@pytest.mark.parametrize(
    "path", markdown_files(), ids=lambda path: path.relative_to(REPO_ROOT).as_posix()
)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_slugs_follow_github():
    assert slug("Upgrading from Flask-Session 0.8: a cutover or a rolling deploy") == (
        "upgrading-from-flask-session-08-a-cutover-or-a-rolling-deploy"
    )
    assert slug("A user's sessions") == "a-users-sessions"
    assert slug("The session extension (flask_session)") == "the-session-extension-flask_session"
    assert slug("Checking a deployment: `python -m sessionapp.loadcheck`") == (
        "checking-a-deployment-python--m-sessionapploadcheck"
    )


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path):
    (tmp_path / "target.md").write_text("# Title\n\n## A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](target.md#a-section) [gone](missing.md) [bad](target.md#nowhere)\n"
        "[self](#here)\n\n## Here\n\n```\n[in code](missing-too.md)\n```\n"
        "`[span](missing-three.md)`\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "target.md#nowhere: no heading with the anchor #nowhere",
    ]
