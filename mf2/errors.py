"""Expected failures carry a one-line message; anything else is a bug and may show a traceback."""

from __future__ import annotations

import errno
import os
import random
import stat
import tempfile
import time
from pathlib import Path


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


# OS failures that are the environment's, not mf2's: each gets one line and what to do.
_OS_HINTS = {
    errno.EROFS: "the file system is read-only; choose another --out",
    errno.ENOSPC: "no space left on the device; free some space and re-run (finished work is kept)",
    errno.EDQUOT: "disk quota exceeded; free some space and re-run (finished work is kept)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a folder, a file was expected",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the path is too long",
    errno.EMFILE: "too many open files (raise ulimit -n)",
}


# -- Failure classes: one vocabulary and one retry policy for simulate, run, fetch and the CLI --
# A failed input is recorded with a short, stable class (status tables group by it). Whether a
# re-run redoes it without --retry-failed depends only on the class, decided here.
OS_CLASSES = {
    errno.ENOSPC: "disk-full",
    errno.EDQUOT: "disk-full",
    errno.EROFS: "read-only",
    errno.EACCES: "permission-denied",
    errno.EPERM: "permission-denied",
}
# The machine's state, no input's fault: it stops every video alike, so the CLI stops the run.
ENVIRONMENT = frozenset(OS_CLASSES.values())
# May pass when tried again soon: fetch retries these within the run, with back-off.
TRANSIENT = frozenset({"http-5xx", "http-429", "network", "timeout", "too-slow"})
# mf2's own fault (a bug, a worker that died): not the input's.
MF2_SIDE = frozenset({"internal-error", "worker-lost"})
FILTERED = "filtered"  # a video filter turned the input away; the filters may change by the next run
RETRIED_BY_DEFAULT = TRANSIENT | MF2_SIDE | ENVIRONMENT | {FILTERED}


def failure_class(e: BaseException) -> str | None:
    """The class of an expected failure (an input's, or the machine's); None for a bug."""
    if isinstance(e, InputError):
        return e.error_class
    if isinstance(e, OSError) and e.errno in OS_CLASSES:
        return OS_CLASSES[e.errno]
    return None


def is_transient(error_class: str | None) -> bool:
    return error_class in TRANSIENT


def retried_by_default(error_class: str | None, error: str | None = None) -> bool:
    """Whether every re-run redoes a recorded failure (without ``--retry-failed``): transient,
    environment and mf2-side classes and filtered inputs; an input's own fault is kept while the
    input is unchanged. Also failures an older mf2 recorded for what this one knows to be its
    own bug (a relative ``fetch --out`` once made every download "finish without writing a file")."""
    if error_class in RETRIED_BY_DEFAULT:
        return True
    return "finished without writing a file" in (error or "")


def os_error_reason(e: OSError) -> str:
    return _OS_HINTS.get(e.errno or -1) or (e.strerror or str(e))


def os_error_line(e: OSError) -> str:
    """One line naming the path and what to do, for an OSError that reached the CLI."""
    what = os_error_reason(e)
    return f"{e.filename}: {what}" if e.filename is not None else what


def check_writable_dir(path: Path, option: str = "--out") -> Path:
    """Make ``path`` (absolute) and prove a file can be created in it, before any work starts:
    a read-only or full disk must fail now, not after the first video has been processed."""
    p = Path(path).expanduser().absolute()
    try:
        is_dir = stat.S_ISDIR(p.stat().st_mode)  # one stat: another check may remove the folder meanwhile
    except (FileNotFoundError, NotADirectoryError):
        is_dir = True  # not there (yet): made below
    if not is_dir:
        raise UsageError(f"{option} {path}: exists and is not a folder")
    attempts = 20
    for attempt in range(attempts):
        created = [d for d in (p, *p.parents) if not d.exists()]  # removed again: a check leaves no trace
        try:
            p.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".mf2-write-check-", suffix=".tmp", dir=p)
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)
                os.unlink(name)
            return p
        except (FileNotFoundError, FileExistsError) as e:
            # Another process checking the same new folder (DDP ranks, two runs into one
            # dataset) removed it between our mkdir and our write: check again. (A file in
            # the folder's place is caught above, before the loop.)
            if attempt == attempts - 1:
                raise UsageError(f"{option} {path}: cannot write here ({os_error_reason(e)})") from None
            time.sleep(random.uniform(0, 0.01))
        except OSError as e:
            raise UsageError(f"{option} {path}: cannot write here ({os_error_reason(e)})") from None
        finally:
            for d in created:
                try:
                    d.rmdir()
                except OSError:
                    break
    return p


def warn(line: str) -> None:
    """One line on stderr for something the user should change but that did not stop the run
    (a deprecated name)."""
    import sys

    print(f"mf2: warning: {line}", file=sys.stderr)
