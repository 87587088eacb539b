"""Real HTTP servers on free 127.0.0.1 ports for tests that fetch media: they record every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def media_server_handler(body: bytes) -> type[BaseHTTPRequestHandler]:
    """A handler class with its own `seen` list of (path, Authorization): `/redirect?to=URL` answers 302 to
    URL, `/size/N` N bytes, anything else `body`."""

    class MediaServer(BaseHTTPRequestHandler):
        seen: list[tuple[str, str | None]] = []

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.seen.append((self.path, self.headers.get("Authorization")))
            url = urlparse(self.path)
            if url.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(url.query)["to"][0])
                self.end_headers()
                return
            payload = b"x" * int(url.path.split("/")[2]) if url.path.startswith("/size/") else body
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    return MediaServer
