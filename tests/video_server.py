"""A real HTTP server on 127.0.0.1 that serves video files and misbehaves on request.

Routes (NAME is a file in the served folder):
  /ok/NAME          the file, 200, Content-Length, video/mp4
  /404/NAME         404
  /flaky/NAME       500 on the first request for this path, then like /ok
  /drop/NAME        the first two requests send half the body and close the connection
  /slow/NAME        headers, then one byte every ``slow_s`` seconds (a stalled body)
  /throttle/NAME    the whole file at ``throttle_bps`` bytes/s (a long but healthy download)
  /trunc/NAME       200 with the first 60% of the file, Content-Length matching (a truncated upload)
  /r429/NAME        429 with ``Retry-After: 2`` on the first request for this path, then like /ok
  /r429date/NAME    the same with Retry-After as an HTTP-date 3 s ahead
  /loop/NAME        302 to itself (a redirect loop)
Every request is logged with its arrival time (time.monotonic()).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class VideoServer:
    def __init__(self, folder: Path, slow_s: float = 5.0, throttle_bps: int = 400_000):
        self.folder = Path(folder)
        self.slow_s, self.throttle_bps = slow_s, throttle_bps
        self.log: list[tuple[float, str, str]] = []  # (time, method, path)
        self.hits: Counter = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                with server._lock:
                    server.log.append((time.monotonic(), self.command, self.path))
                    server.hits[self.path] += 1
                    n = server.hits[self.path]
                parts = self.path.split("?")[0].strip("/").split("/", 1)
                if len(parts) != 2:
                    return self._status(404)
                route, name = parts
                f = server.folder / name
                if route == "404" or not f.is_file() or "/" in name:
                    return self._status(404)
                if route == "flaky" and n == 1:
                    return self._status(500)
                if route in ("r429", "r429date") and n == 1:
                    from email.utils import formatdate

                    after = "2" if route == "r429" else formatdate(time.time() + 3, usegmt=True)
                    return self._status(429, {"Retry-After": after})
                if route == "loop":
                    return self._status(302, {"Location": self.path})
                data = f.read_bytes()
                if route == "trunc":
                    data = data[: int(len(data) * 0.6)]
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "none")
                self.end_headers()
                if head:
                    return
                try:
                    if route == "drop" and n <= 2:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if route == "slow":
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(server.slow_s)
                        return
                    if route == "throttle":
                        step = max(1, server.throttle_bps // 20)
                        for i in range(0, len(data), step):
                            self.wfile.write(data[i : i + step])
                            self.wfile.flush()
                            time.sleep(0.05)
                        return
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

            def _status(self, code: int, headers: dict | None = None) -> None:
                body = f"status {code}\n".encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, route: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}/{name}"

    def __enter__(self) -> "VideoServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_for(self, path_part: str) -> list[float]:
        with self._lock:
            return [t for t, _, p in self.log if path_part in p]
