"""Expected failures carry a one-line message; anything else is a bug and may show a traceback."""

from __future__ import annotations


class Mf2Error(Exception):
    """Base of every failure mf2 reports to the user as one line."""


class UsageError(Mf2Error):
    """The command line itself is wrong (bad flag value, missing path): exit 2, nothing started."""


class InputError(Mf2Error):
    """One input (a video, an image) cannot be used; the run records it and goes on.

    ``error_class`` is a short stable token (``not-a-video``, ``empty-file``...) that status
    tables group by, so it must not change between releases.
    """

    def __init__(self, message: str, error_class: str = "input-error") -> None:
        super().__init__(message)
        self.error_class = error_class
