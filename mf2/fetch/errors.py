"""Every fetch failure gets one class; only some classes are worth retrying.

The classes come from yt-dlp's error messages (YouTube's wording for removed, private,
geo-blocked and bot-checked videos) and from the HTTP and socket errors underneath.
"""

from __future__ import annotations

import re

TRANSIENT = frozenset({"http-5xx", "http-429", "network", "timeout", "too-slow"})
# Retried by a bare --retry-failed too: not the video's fault, so worth another try.
RETRY_BY_DEFAULT = TRANSIENT | {"internal-error", "disk-full"}

# (class, pattern) in order: the first match wins. Lower-cased message.
_RULES: list[tuple[str, str]] = [
    # a server that redirects to itself will do so again: permanent, not "network"
    ("redirect-loop", r"redirect loop|too many redirects|infinite loop"),
    ("too-slow", r"download slower than|download took longer than"),
    ("private", r"private video|this video is private"),
    ("removed", r"has been removed|account associated with this video has been terminated|"
                r"removed for violating|no longer available because|copyright claim"),
    ("geo", r"not available in your country|geo[- ]?restrict|blocked it in your country|not made this video available in your"),
    ("bot-check", r"sign in to confirm|confirm you.re not a bot|confirm your age|age[- ]restricted|"
                  r"login required|cookies"),
    ("unavailable", r"video unavailable|this video is unavailable|is not available|does not exist|"
                    r"premieres in|live event will begin"),
    ("http-429", r"http error 429|too many requests"),
    ("http-4xx", r"http error 4\d\d"),
    ("http-5xx", r"http error 5\d\d"),
    ("timeout", r"timed out|timeout"),
    ("network", r"downloaded \d+ bytes, expected \d+|connection (reset|refused|aborted)|incompleteread|content ?too ?short|remote end closed|"
                r"connection broken|did not get any data|unable to download|urlopen error|"
                r"name or service not known|temporary failure in name resolution|network is unreachable|"
                r"transport|ssl"),
    ("unsupported", r"unsupported url|no video formats|requested format is not available"),
]


def classify(message: str) -> str:
    m = message.lower()
    for cls, pattern in _RULES:
        if re.search(pattern, m):
            return cls
    return "download-error"


def is_transient(error_class: str | None) -> bool:
    return error_class in TRANSIENT


def retried_by_default(error_class: str | None, error: str | None = None, by_version: str | None = None) -> bool:
    """Whether every re-run redoes a recorded failure (without ``--retry-failed``): transient and mf2-side
    classes, and failures an older mf2 recorded for what this one knows to be its own bug
    (a relative --out once made every download "finish without writing a file")."""
    if error_class in RETRY_BY_DEFAULT:
        return True
    return "finished without writing a file" in (error or "")
