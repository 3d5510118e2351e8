"""YAML from users (recipes, training configs) read without aliases.

A YAML alias (``*name``) repeats an anchored node; nested aliases expand exponentially (a
1.5 KB "billion laughs" document grew `mf2 run` past 2.3 GB, issue 33). mf2's files have no
use for them, so a document with an alias is refused with one line naming the file and the
line, before anything is expanded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mf2.errors import UsageError


class _NoAliases(yaml.SafeLoader):
    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _AliasFound(mark.line + 1)
        return super().compose_node(parent, index)


class _AliasFound(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def load_yaml(path: str | Path, text: str) -> Any:
    """``text`` (the content of ``path``) as plain data: mappings, lists, scalars."""
    try:
        return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass
    except _AliasFound as e:
        raise UsageError(f"{path}: line {e.line}: YAML aliases (*name) are not accepted; write the value out") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', None) or type(e).__name__})") from None


def shown(value: Any, limit: int = 60) -> str:
    """A user's value for an error message, cut short: a message must stay one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
