"""Every fetch failure gets one class (which of them are worth retrying is mf2.errors's policy).

The classes come from yt-dlp's error messages (YouTube's wording for removed, private,
geo-blocked and bot-checked videos) and from the HTTP and socket errors underneath.
"""

from __future__ import annotations

import re

# (class, pattern) in order: the first match wins. Lower-cased message.
_RULES: list[tuple[str, str]] = [
    # a server that redirects to itself will do so again: permanent, not "network"
    ("redirect-loop", r"redirect loop|too many redirects|infinite loop"),
    ("too-slow", r"download slower than|download took longer than"),
    ("private", r"private video|this video is private"),
    (
        "removed",
        r"has been removed|account associated with this video has been terminated|"
        r"removed for violating|no longer available because|copyright claim",
    ),
    (
        "geo",
        r"not available in your country|geo[- ]?restrict|blocked it in your country|not made this video available in your",
    ),
    (
        "bot-check",
        r"sign in to confirm|confirm you.re not a bot|confirm your age|age[- ]restricted|"
        r"login required|cookies",
    ),
    (
        "unavailable",
        r"video unavailable|this video is unavailable|is not available|does not exist|"
        r"premieres in|live event will begin",
    ),
    ("http-429", r"http error 429|too many requests"),
    ("http-4xx", r"http error 4\d\d"),
    ("http-5xx", r"http error 5\d\d"),
    ("timeout", r"timed out|timeout"),
    (
        "network",
        r"downloaded \d+ bytes, expected \d+|connection (reset|refused|aborted)|incompleteread|content ?too ?short|remote end closed|"
        r"connection broken|did not get any data|unable to download|urlopen error|"
        r"name or service not known|temporary failure in name resolution|network is unreachable|"
        r"transport|ssl",
    ),
    ("unsupported", r"unsupported url|no video formats|requested format is not available"),
]


def classify(message: str) -> str:
    m = message.lower()
    for cls, pattern in _RULES:
        if re.search(pattern, m):
            return cls
    return "download-error"
