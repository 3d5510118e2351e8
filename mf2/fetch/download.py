"""Fetch one video (or one section of it) into a temporary folder, verify it, then rename it.

Remote URLs go through yt-dlp's Python API, never a shell; local files and file:// URLs are
copied or hard-linked. Nothing reaches its final name before ffprobe has found a video
stream and all its indexed packets inside the file, so a half-downloaded or truncated file is never taken
for a video.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from mf2.errors import InputError, UsageError, is_transient
from mf2.fetch.errors import classify
from mf2.fetch.manifest import ManifestRow, local_path
from mf2.params import FETCH, default
from mf2.sources import sha256_file
from mf2.video import probe


@dataclass(frozen=True)
class FetchConfig:
    """How videos are fetched; each setting but ``cookies`` is declared in mf2.params.FETCH."""

    max_height: int = default("max_height", FETCH)
    starts_per_minute: float = default("starts_per_minute", FETCH)  # all downloads together; 0 = no limit
    sleep_requests: float = default("sleep_requests", FETCH)  # yt-dlp: seconds between one extraction's requests
    retries: int = default("retries", FETCH)  # extra attempts for transient failures
    backoff: float = default("backoff", FETCH)  # seconds before the first retry; doubles, with jitter
    timeout: float = default("timeout", FETCH)  # socket timeout, seconds
    max_seconds: float = default("max_seconds", FETCH)  # one download's total time
    min_rate: float = default("min_rate", FETCH)  # bytes/s averaged after MIN_RATE_GRACE s; 0: off
    cookies: str | None = None  # a path to a secret: a flag only, never in a recipe or a record
    downloads: int = default("downloads", FETCH)  # in parallel
    link: bool = default("link", FETCH)  # local files: hard link (falls back to copy across file systems)

    def validate(self) -> None:
        if not 144 <= self.max_height <= 4320:
            raise UsageError(f"--max-height {self.max_height}: must be between 144 and 4320")
        if self.starts_per_minute < 0 or self.sleep_requests < 0 or self.backoff < 0:
            raise UsageError("--starts-per-minute, --sleep-requests and --backoff must be >= 0")
        if self.retries < 0 or self.retries > 20:
            raise UsageError(f"--retries {self.retries}: must be between 0 and 20")
        if self.timeout <= 0:
            raise UsageError(f"--timeout {self.timeout}: must be > 0")
        if self.max_seconds <= 0 or self.min_rate < 0:
            raise UsageError(f"--max-seconds {self.max_seconds} must be > 0 and --min-rate {self.min_rate} >= 0")
        if not 1 <= self.downloads <= 64:
            raise UsageError(f"--downloads {self.downloads}: must be between 1 and 64")
        if self.cookies is not None and not Path(self.cookies).is_file():
            raise UsageError(f"--cookies {self.cookies}: no such file")

    def key(self) -> dict:
        d = asdict(self)
        d.pop("cookies")  # a path to a secret: never recorded
        return d


class RateLimiter:
    """Spaces the starts of downloads evenly: at most ``per_minute`` starts in any minute."""

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Blocks until this start's slot; returns the slot (time.monotonic()). Consecutive
        slots are ``interval`` apart or more, whatever the load: that is what tests check."""
        if not self.interval:
            return time.monotonic()
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        return slot


class ClusterRateLimiter:
    """RateLimiter's pacing across the processes of a Dask cluster: a distributed Lock guards
    the next free start slot, kept in a distributed Variable (wall-clock seconds). Picklable:
    it travels with each task and binds to the worker's client when used."""

    def __init__(self, per_minute: float, name: str):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.name = name

    def wait(self) -> float:
        """As RateLimiter.wait; the slot is wall-clock time (time.time()), shared by the cluster."""
        if not self.interval:
            return time.time()
        from distributed import Lock, Variable

        with Lock(self.name):
            var = Variable(self.name)
            try:
                nxt = float(var.get(timeout=0.05))
            except Exception:  # not set yet: the first start
                nxt = 0.0
            now = time.time()
            slot = max(now, nxt)
            var.set(slot + self.interval)
        if slot > now:
            time.sleep(slot - now)
        return slot


class FetchError(Exception):
    def __init__(self, message: str, error_class: str, retry_after: float | None = None):
        super().__init__(message)
        self.error_class = error_class
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


MIN_RATE_GRACE = 30.0  # seconds before --min-rate applies (connection set-up, a slow start)
MAX_RETRY_AFTER = 600.0  # a longer Retry-After is not waited for: the download is recorded as failed


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds from now: delay-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header_retry_after(exc: BaseException | None) -> float | None:
    """The Retry-After of the HTTP error under a yt-dlp error, if any."""
    seen = 0
    while exc is not None and seen < 8:
        resp = getattr(exc, "response", None)
        headers = getattr(resp, "headers", None) or getattr(exc, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            return retry_after_seconds(headers.get("Retry-After"))
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class _TooSlow(Exception):
    """Raised inside the downloading thread by its _Watchdog."""


class _Watchdog:
    """Ends a download that takes longer than ``max_seconds`` or averages under ``min_rate``
    bytes/s after ``MIN_RATE_GRACE`` s. ``--timeout`` bounds one socket read, so a server
    sending a byte every half second held a download slot forever (issue 33); a progress hook
    cannot bound it either, since yt-dlp reads whole blocks (and the generic extractor's first
    512 bytes) before calling it. So a thread watches the clock and raises ``_TooSlow`` in the
    downloading thread (``PyThreadState_SetAsyncExc``: it lands between two socket reads, each
    bounded by the timeout). Written by hand: neither yt-dlp nor urllib has a total deadline."""

    def __init__(self, cfg: FetchConfig) -> None:
        self.cfg, self.start, self.got = cfg, time.monotonic(), 0
        self.why: str | None = None
        self._tid = threading.get_ident()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="mf2-fetch-watchdog")

    def hook(self, d: dict) -> None:  # a yt-dlp progress hook: the bytes so far
        self.got = int(d.get("downloaded_bytes") or 0)

    def _verdict(self) -> str | None:
        elapsed = time.monotonic() - self.start
        if elapsed > self.cfg.max_seconds:
            return f"download took longer than {self.cfg.max_seconds:g} s (--max-seconds)"
        if self.cfg.min_rate and elapsed > MIN_RATE_GRACE and self.got / elapsed < self.cfg.min_rate:
            return (
                f"download slower than {self.cfg.min_rate:g} bytes/s after {elapsed:.0f} s "
                f"({self.got} bytes; --min-rate)"
            )
        return None

    def _watch(self) -> None:
        import ctypes

        while not self._stop.wait(0.25):
            why = self._verdict()
            if why is None:
                continue
            with self._lock:
                if not self._stop.is_set():
                    self.why = why
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._tid), ctypes.py_object(_TooSlow))
            return

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import ctypes

        with self._lock:
            self._stop.set()
            if self.why is not None:  # not delivered yet: it must not land after this block
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._tid), None)


class _Log:
    """yt-dlp logger: keep the errors, drop the chatter."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def ytdlp_params(cfg: FetchConfig, row: ManifestRow, folder: Path, log: _Log) -> dict:
    """The options for yt-dlp: best frame rate first, then resolution up to max-height, H.264/mp4."""
    h = cfg.max_height
    # yt-dlp joins outtmpl onto paths.home: the template holds the file name only and home the
    # absolute folder, so a relative --out cannot be applied twice (DATA/DATA/...).
    folder = Path(os.path.abspath(folder))
    params = {
        # Video only: blur simulation needs no audio, and a single stream needs no merge.
        "format": f"bv*[height<=?{h}]/b[height<=?{h}]/bv*/b",
        "format_sort": ["fps", f"res:{h}", "vcodec:h264", "ext:mp4"],
        "outtmpl": {"default": "video.%(ext)s"},
        "paths": {"home": str(folder), "temp": str(folder)},
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": log,
        # Retries are ours (classified, backed off); yt-dlp makes one attempt.
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "continuedl": False,
        "overwrites": True,
        "socket_timeout": cfg.timeout,
        "sleep_interval_requests": cfg.sleep_requests or None,
        "cachedir": False,
    }
    if cfg.cookies:
        params["cookiefile"] = cfg.cookies
    if row.start is not None or row.end is not None:
        from yt_dlp.utils import download_range_func

        params["download_ranges"] = download_range_func(None, [(row.start or 0.0, row.end or float("inf"))])
        params["force_keyframes_at_cuts"] = True
    return params


_WARM = False


def warm_ytdlp() -> None:
    """Load yt-dlp's extractors once per process before the first paced start: the first
    download in a process otherwise spends ~0.4 s importing them between its start slot
    and its first request, which bunches it against the next download's."""
    global _WARM
    if _WARM:
        return
    import yt_dlp

    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) as ydl:
        for ie in ydl._ies.values() if hasattr(ydl, "_ies") else ():
            ie.suitable("http://127.0.0.1/x.mp4")
        ydl.get_info_extractor("Generic")
    _WARM = True


def _ytdlp(cfg: FetchConfig, row: ManifestRow, folder: Path) -> Path:
    import yt_dlp

    log = _Log()
    params = ytdlp_params(cfg, row, folder, log)
    dog = _Watchdog(cfg)
    params["progress_hooks"] = [dog.hook]
    try:
        with dog, yt_dlp.YoutubeDL(params) as ydl:
            # A list with one URL: yt-dlp never parses it as an option, even if it starts with '-'.
            rc = ydl.download([row.url])
    except _TooSlow:
        raise FetchError(dog.why or "download too slow", "too-slow") from None
    except yt_dlp.utils.DownloadError as e:
        if dog.why is not None:  # yt-dlp wrapped the watchdog's exception
            raise FetchError(dog.why, "too-slow") from None
        inner = e.exc_info[1] if getattr(e, "exc_info", None) else None
        msg = str(e) or (log.errors[-1] if log.errors else "download failed")
        raise FetchError(_one_line(msg), classify(msg), _header_retry_after(inner)) from None
    except Exception as e:  # yt-dlp leaks socket/OS errors on some paths
        msg = f"{type(e).__name__}: {e}"
        raise FetchError(_one_line(msg), classify(msg)) from None
    if rc:
        msg = log.errors[-1] if log.errors else f"yt-dlp returned {rc}"
        raise FetchError(_one_line(msg), classify(msg))
    files = [
        p for p in folder.iterdir() if p.is_file() and p.name.startswith("video.") and not p.name.endswith(".part")
    ]
    if not files:  # yt-dlp said it succeeded: the file went elsewhere, which is mf2's fault
        raise FetchError("yt-dlp finished without writing a file", "internal-error")
    return max(files, key=lambda p: p.stat().st_size)


def _local(cfg: FetchConfig, row: ManifestRow, folder: Path, base: Path) -> Path:
    if row.kind == "sample":
        from mf2.sample import sample_video

        src = sample_video()
    else:
        src = local_path(row.url, base)
    if not src.is_file():
        raise FetchError(f"{src}: no such file", "missing-file")
    dst = folder / f"video{src.suffix.lower() or '.mp4'}"
    if row.start is not None or row.end is not None:
        # A section of a local file: re-encoded so the cut is frame-exact (stream copy cuts on keyframes).
        args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
        if row.start is not None:
            args += ["-ss", f"{row.start:.3f}"]
        if row.end is not None:
            args += ["-to", f"{row.end:.3f}"]
        dst = folder / "video.mp4"
        args += [
            "-i",
            str(src.resolve()),
            "-map",
            "0:v:0",
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-preset",
            "fast",
            "-pix_fmt",
            "yuv420p",
            str(dst.resolve()),
        ]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise FetchError(_one_line(f"ffmpeg could not cut {src}: {r.stderr.strip()[-200:]}"), "not-a-video")
        return dst
    if cfg.link:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass  # another file system: copy instead
    shutil.copyfile(src, dst)
    return dst


def verify_video(path: Path, name: str | None = None) -> dict:
    """ffprobe finds a video stream with frames, every packet lies inside the file, and as many
    packets are there as the container's index lists (a truncated mp4 with its index at the
    front still probes, but comes up short). Demuxing reads no pixels: far cheaper than a decode. ``name``: what messages call the
    file (the manifest's url, not the temporary copy being checked)."""
    shown = name or path.name
    try:
        info = probe(path)
    except InputError as e:
        raise FetchError(_one_line(str(e).replace(str(path), shown)), "not-a-video") from None
    if info.n_frames <= 0:
        raise FetchError(f"{shown}: no video frames", "not-a-video")
    r = _ffprobe_entries(path, "packet=pos,size")
    end = 0
    for line in r.stdout.split():
        pos, _, size = line.partition(",")
        if pos.isdigit() and size.isdigit():
            end = max(end, int(pos) + int(size))
    if r.returncode != 0 or end > path.stat().st_size:
        raise FetchError(
            f"{shown}: truncated (packets reach byte {end}, the file has {path.stat().st_size})", "not-a-video"
        )
    declared = _ffprobe_entries(path, "stream=nb_frames").stdout.strip()
    if declared.isdigit() and int(declared) > info.n_frames:  # the index (mp4) promises frames the file lacks
        raise FetchError(
            f"{shown}: truncated ({info.n_frames} of the {declared} frames its index lists)", "not-a-video"
        )
    return {
        "fps": float(info.fps),
        "width": info.width,
        "height": info.height,
        "n_frames": info.n_frames,
        "duration": info.duration,
    }


def _ffprobe_entries(path: Path, entries: str) -> subprocess.CompletedProcess:
    """ffprobe's ``entries`` of the first video stream, as CSV lines."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", "csv=p=0"]
    return subprocess.run([*cmd, str(path.resolve())], capture_output=True, text=True)


def _one_line(msg: str) -> str:
    return " ".join(msg.split())[:500]


def tmp_folder(videos: Path, key: str) -> Path:
    p = videos / f".dl-{key}-{uuid.uuid4().hex[:8]}.tmp"
    p.mkdir(parents=True)
    return p


def clean_partials(videos: Path) -> int:
    """Remove what a killed run left: temporary download folders and files."""
    n = 0
    if videos.is_dir():
        for p in videos.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.endswith(".part")):
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                n += 1
    return n


def final_path(videos: Path, key: str) -> Path | None:
    for p in sorted(videos.glob(f"{key}.*")):
        if p.is_file() and p.stem == key:
            return p
    return None


def fetch_one(
    row: ManifestRow, cfg: FetchConfig, videos: Path, base: Path, limiter: RateLimiter | ClusterRateLimiter | None
) -> dict:
    """Download, verify and rename one video; returns the status fields (never raises FetchError)."""
    attempts = 0
    if row.kind == "remote":
        warm_ytdlp()
    while True:
        attempts += 1
        if limiter is not None:
            limiter.wait()
        folder = tmp_folder(videos, row.key)
        try:
            got = _ytdlp(cfg, row, folder) if row.kind == "remote" else _local(cfg, row, folder, base)
            meta = verify_video(got, row.url if row.kind != "remote" else None)
            sha = sha256_file(got)
            size = got.stat().st_size
            dst = videos / f"{row.key}{got.suffix.lower()}"
            os.replace(got, dst)
            return {
                "status": "ok",
                "error_class": None,
                "error": None,
                "attempts": attempts,
                "path": f"videos/{dst.name}",
                "bytes": size,
                "sha256": sha,
                **meta,
            }
        except FetchError as e:
            e = FetchError(str(e).replace(f"{folder}/", ""), e.error_class, e.retry_after)  # no temp paths
            wait = getattr(e, "retry_after", None)
            if is_transient(e.error_class) and attempts <= cfg.retries and (wait is None or wait <= MAX_RETRY_AFTER):
                delay = cfg.backoff * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
                time.sleep(max(min(delay, 300.0), wait or 0.0))  # the server's Retry-After, at least
                continue
            if wait is not None:
                e = FetchError(f"{e} (Retry-After: {wait:.0f} s)", e.error_class)
            return {"status": "failed", "error_class": e.error_class, "error": str(e), "attempts": attempts}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
