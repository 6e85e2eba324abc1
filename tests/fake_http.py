"""A threaded HTTP server on 127.0.0.1 whose every request goes to one ``handle`` function: the base of the
local fakes of remote APIs (KFP, Kubernetes) that tests assert against."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# (method, path, query, content type, body) -> (status, JSON payload)
Handle = Callable[[str, str, dict, str, bytes], tuple[int, dict]]


def serve(handle: Handle) -> tuple[ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; return the server (call ``shutdown``) and its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            parsed = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = handle(
                self.command, parsed.path, parse_qs(parsed.query), self.headers.get("Content-Type", ""), body
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _reply  # noqa: N815 - the http.server API

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
