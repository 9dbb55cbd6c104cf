"""Which groups may read a document: its ``access`` list, and the corpus folder's rules that give one.

A document with no access list is public: everyone who may read the knowledge base at all reads it (anyone
when KB_READ_KEY is unset, otherwise every valid key). A document with one is read by callers in at least
one of its groups, and by the two keys that read everything (KB_API_KEY, KB_READ_KEY). kb/stores/filters.py
applies the rule; docs/access.md tells it to users.

Documents sent as JSON (the API, a .jsonl line, `kb import`) carry their own ``access``. Files in the corpus
folder get theirs from ``corpus/.kb-access``, one rule a line, the most specific folder winning::

    # folder: groups (comma-separated); "*" makes a folder public again under a restricted one
    hr: hr
    legal/contracts: legal, sales
    hr/handbook: *

A .jsonl line's own ``access`` (even ``[]``) wins over its folder's rule. A rules file that cannot be read
stops the sync (fail closed): documents never become public because a rule was mistyped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kb.errors import UnreadableDocument

ACCESS_FILE = ".kb-access"
GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,99}$"
_GROUP = re.compile(GROUP_PATTERN)
MAX_GROUPS = 50
EVERYONE = "*"


def group_problem(name: Any) -> str | None:
    """What is wrong with a group name (None when nothing is)."""
    if not isinstance(name, str) or not _GROUP.fullmatch(name):
        shown = repr(name)[:60]
        return (f"group {shown} must be 1 to 100 letters, digits or '_.:@/-', starting with a letter or digit")
    return None


def parse_access(value: Any, where: str) -> tuple[str, ...]:
    """A document's access list as kb keeps it: sorted, without repeats (UnreadableDocument when it is not one)."""
    if not isinstance(value, list):
        raise UnreadableDocument(f"{where}: access must be a list of group names, like [\"hr\"]")
    if len(value) > MAX_GROUPS:
        raise UnreadableDocument(f"{where}: access names {len(value)} groups, more than {MAX_GROUPS}")
    for name in value:
        problem = group_problem(name)
        if problem:
            raise UnreadableDocument(f"{where}: access: {problem}")
    return tuple(sorted(set(value)))


def parse_groups(text: str, where: str) -> tuple[str, ...]:
    """Groups written as "a, b" (a command line, a header, a rules file)."""
    return parse_access([part.strip() for part in text.split(",") if part.strip()], where)


def access_file_stat(corpus: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of ``corpus/.kb-access`` (None when there is none): a sync reads every file again when it
    changes, as it does a changed corpus file."""
    try:
        stat = (Path(corpus) / ACCESS_FILE).stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class FolderAccess:
    """The corpus folder's rules: a folder (its path's parts) -> groups; () for a folder made public again."""

    rules: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()

    def access_of(self, relative: str) -> tuple[str, ...]:
        """The groups that may read the document in the corpus file at ``relative`` (() : public)."""
        parts = PurePosixPath(relative).parts[:-1]
        best: tuple[int, tuple[str, ...]] = (-1, ())
        for folder, groups in self.rules:
            if len(folder) > best[0] and parts[:len(folder)] == folder:
                best = (len(folder), groups)
        return best[1]

    @classmethod
    def read(cls, corpus: Path) -> "FolderAccess":
        """The rules of ``corpus/.kb-access`` (none when there is no such file); UnreadableDocument naming the line
        when it cannot be read."""
        path = Path(corpus) / ACCESS_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise UnreadableDocument(f"{path} cannot be read ({exc.strerror}); nothing was synced") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UnreadableDocument(f"{path} is not UTF-8 text; nothing was synced") from None
        rules: dict[tuple[str, ...], tuple[str, ...]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            folder, colon, groups = line.partition(":")
            where = f"{path} line {number}"
            folder = folder.strip().strip("/")
            if not colon or not folder or not groups.strip():
                raise UnreadableDocument(f"{where}: write a rule as 'folder: group, group' (or 'folder: *'); "
                                         "nothing was synced")
            if any(part in (".", "..") or part.startswith(".") for part in PurePosixPath(folder).parts):
                raise UnreadableDocument(f"{where}: {folder!r} is not a folder of the corpus; nothing was synced")
            try:
                rules[PurePosixPath(folder).parts] = () if groups.strip() == EVERYONE else parse_groups(groups, where)
            except UnreadableDocument as exc:
                raise UnreadableDocument(f"{exc}; nothing was synced") from None
        return cls(tuple(sorted(rules.items())))
