"""No tracked file cites a path outside the repository, so a clone can read every citation.

Issue 9 found 43 citations in 29 files of documents that lived beside the repository (the shared
design notes, the Kraken notes, seed files): someone who clones the project could not read them.
These tests read what `git ls-files` lists, so they need a git checkout and skip without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Patterns built from pieces, so this file does not match them itself.
_OUTSIDE = re.compile(
    "|".join(
        (
            re.escape("../" + "shared"),
            re.escape("/" + "work/"),
            # The repository has no top-level folder of either name: such a path is outside it.
            r"(?<![\w/.-])" + "shared" + "/",
            r"(?<![\w/.-])" + "seeds" + "/",
            r"(?<![\w/.-])(?:DESIGN|STYLE)\.md\b",
        )
    )
)
# `kraken/<name>.md` is a Kraken note; bare it is docs-relative, so only files in docs/ may use it.
_KRAKEN_NOTE = re.compile(r"(?<![\w.-])((?:[\w.-]+/)*)kraken/([\w-]+\.md)\b")
# `docs/<path>.md` cited anywhere (docstrings, comments, prose) must be a tracked file.
_DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w/.-]*[\w-]\.md\b")
# Inline links and images, `[text](target "title")`, and reference definitions, `[id]: target`.
_INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.MULTILINE | re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    try:
        top = subprocess.run(
            [git, "-C", str(ROOT), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    if Path(top).resolve() != ROOT:
        pytest.skip(f"the git checkout is {top}, not the project at {ROOT}")
    listed = subprocess.run(
        [git, "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    return _tracked_files()


def _text(name: str) -> str | None:
    """The file's text, or None for a binary or a tracked file deleted from the work tree."""
    path = ROOT / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def test_no_tracked_file_names_a_path_outside_the_repository(tracked: list[str]) -> None:
    found: list[str] = []
    cited: dict[str, set[str]] = {}
    for name in tracked:
        text = _text(name)
        if text is None:
            continue
        found += [
            f"{name}:{_line_of(text, m.start())}: {m.group(0)!r}" for m in _OUTSIDE.finditer(text)
        ]
        in_docs = PurePosixPath(name).parts[0] == "docs"
        for m in _KRAKEN_NOTE.finditer(text):
            where = f"{name}:{_line_of(text, m.start())}"
            if m.group(1) == "docs/" or (m.group(1) == "" and in_docs):
                cited.setdefault(f"docs/kraken/{m.group(2)}", set()).add(where)
            else:
                found.append(f"{where}: {m.group(0)} is not under docs/")
        for m in _DOCS_PATH.finditer(text):
            cited.setdefault(m.group(0), set()).add(f"{name}:{_line_of(text, m.start())}")
    assert "docs/kraken/rest.md" in cited, "no Kraken note cited: the patterns are broken"
    why = _unreachable(set(cited), set(tracked))
    found += [f"{where}: {path} {why[path]}" for path in why for where in sorted(cited[path])]
    assert found == [], "citations of paths outside the repository:\n" + "\n".join(found)


def _links(text: str) -> list[tuple[int, str]]:
    """Each link target with its offset, code fences blanked out (a fence is not a link)."""
    text = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [(m.start(1), m.group(1)) for m in _INLINE_LINK.finditer(text)] + [
        (m.start(1), m.group(1)) for m in _REFERENCE_LINK.finditer(text)
    ]


def _unreachable(paths: set[str], tracked: set[str]) -> dict[str, str]:
    """Why a clone would lack each of these paths (relative to the root); absent if it has it.

    A path tracked, or a directory of tracked files, is reachable. So is a file not yet added
    (another change in progress), unless git ignores it: then it never reaches a clone.
    """
    tracked_dirs = {str(parent) for name in tracked for parent in PurePosixPath(name).parents}
    why = {p: "does not exist" for p in paths - tracked - tracked_dirs if not (ROOT / p).exists()}
    untracked = sorted(paths - tracked - tracked_dirs - why.keys())
    if untracked:
        git = shutil.which("git")
        assert git is not None
        done = subprocess.run(
            [git, "-C", str(ROOT), "check-ignore", "--stdin"],
            input="\n".join(untracked), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr  # 1: git ignores none of them
        why |= dict.fromkeys(done.stdout.split(), "is ignored by git")
    return why


def test_every_relative_markdown_link_resolves_in_the_repository(tracked: list[str]) -> None:
    markdown = [name for name in tracked if name.endswith(".md")]
    assert "README.md" in markdown, "the README is not tracked: wrong checkout?"
    broken: list[str] = []
    cited: dict[str, list[str]] = {}
    for name in markdown:
        text = _text(name)
        if text is None:
            continue
        for offset, target in _links(text):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if not path or _SCHEME.match(path):
                continue  # an anchor in the same file, or http(s)/mailto: not a repository path
            where = f"{name}:{_line_of(text, offset)}: {target}"
            resolved = (ROOT / PurePosixPath(name).parent / path).resolve()
            if path.startswith("/") or not resolved.is_relative_to(ROOT):
                broken.append(f"{where} leaves the repository")
            else:
                cited.setdefault(resolved.relative_to(ROOT).as_posix(), []).append(where)
    assert cited, "no relative link found: the link pattern is broken"
    why = _unreachable(set(cited), set(tracked))
    broken += [f"{where} -> {path} {why[path]}" for path in why for where in cited[path]]
    assert broken == [], "Markdown links that a clone cannot follow:\n" + "\n".join(broken)
