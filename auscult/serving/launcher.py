"""The model server: seldon-core's REST app (its Seldon protocol, its model-class interface, its metrics) under
our own process launcher, ``python -m auscult.serving.launcher``.

Why not ``seldon-core-microservice``: 1.17.1 binds 0.0.0.0, allows every CORS origin, turns an unknown path or
method into a 500, and serves with synchronous gunicorn workers and a 5000 s timeout, so that two clients that
open a request and stop sending hold every worker; no flag changes any of it. Here:

* each worker process runs `waitress`, which reads a request whole on its I/O thread before a worker thread
  sees it, so slow or idle clients hold a socket, never a worker; idle connections and bodies that stop
  arriving are closed after ``--channel-timeout``; bodies over ``--max-body-mb`` get 413;
* every client error is a 4xx in Seldon's error shape: unknown paths and methods (404/405), undecodable or
  too deeply nested JSON (400), as well as what the model refuses;
* bind address and CORS origins are settings (127.0.0.1 and none unless set); the ports are the ones the
  Seldon operator sets in the pod's environment (``PREDICTIVE_UNIT_HTTP_SERVICE_PORT``, ``..._METRICS_...``);
* the master process holds one listening socket per worker on the same port (the kernel spreads connections
  among them), restarts a worker that dies, and stops everything on SIGTERM; Prometheus metrics are served by
  a child of their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass

from auscult.resources import available_cpus
from auscult.serving import contract

log = logging.getLogger("auscult.serving")

# What the model class implements: the routes seldon-core also offers for routers, combiners and transformers
# answer 404 here instead of failing inside.
ROUTES = {
    "/api/v1.0/predictions": "POST",
    "/api/v0.1/predictions": "POST",
    "/predict": "POST",
    "/api/v1.0/feedback": "POST",
    "/api/v0.1/feedback": "POST",
    "/send-feedback": "POST",
    "/health/ping": "GET",
    "/health/status": "GET",
    "/api/v1.0/health/status": "GET",
    "/metadata": "GET",
    "/api/v1.0/metadata": "GET",
    "/seldon.json": "GET",
}
FEEDBACK_ROUTES = {path for path in ROUTES if "feedback" in path}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = contract.HTTP_PORT
    metrics_port: int | None = None  # None: no metrics endpoint
    workers: int = 1
    threads: int = 4  # per worker: requests waiting on the spool's fsync overlap others' compute
    cors_origins: tuple[str, ...] = ()
    max_body_mb: float = 48.0  # above the largest accepted request: a 60-s 48 kHz stereo float WAV in base64
    channel_timeout_s: float = 15.0  # a connection with nothing arriving is closed
    # A request still arriving after the grace period must have come at least this fast on average, headers
    # included: a client trickling bytes to hold a connection is cut off, a phone on a slow link is not.
    slow_grace_s: float = 10.0
    min_request_bytes_per_s: float = 8192.0
    connection_limit: int = 4000  # per worker; its file-descriptor limit is raised to match
    drain_s: float = 20.0  # how long a stopping worker may take to finish the requests it has


def _error(code: int, reason: str, message: str):
    from seldon_core.flask_utils import SeldonMicroserviceException, jsonify

    response = jsonify(SeldonMicroserviceException(message, status_code=code, reason=reason).to_dict())
    response.status_code = code
    return response


def rest_app(model: object, metrics: object, cors_origins: tuple[str, ...] = ()):
    """seldon-core's Flask app for ``model``, with its blanket CORS removed and client errors kept 4xx."""
    from flask import request
    from seldon_core.wrapper import get_rest_microservice
    from werkzeug.exceptions import HTTPException

    app = get_rest_microservice(model, metrics)
    # seldon-core applies flask-cors to every origin; allow only the configured ones, if any.
    app.after_request_funcs[None] = [
        f for f in app.after_request_funcs.get(None, []) if not f.__module__.startswith("flask_cors")
    ]
    if cors_origins:
        from flask_cors import CORS

        CORS(app, origins=list(cors_origins))

    @app.before_request
    def only_what_the_model_serves():
        method = ROUTES.get(request.path)
        if method is None:
            return _error(404, "NOT_FOUND", f"no such endpoint {request.path[:200]!r}: POST /api/v1.0/predictions")
        if request.method not in (method, "HEAD" if method == "GET" else method, "OPTIONS"):
            return _error(405, "METHOD_NOT_ALLOWED", f"{request.path} takes {method}, not {request.method[:20]}")
        return None

    @app.errorhandler(HTTPException)
    def client_error(error: HTTPException):
        return _error(error.code or 400, error.name.upper().replace(" ", "_"), error.description or error.name)

    @app.before_request
    def feedback_is_an_object():
        if request.path in FEEDBACK_ROUTES and request.is_json:
            message = request.get_json(silent=True)
            if message is not None and not isinstance(message, dict):
                return _error(400, "BAD_REQUEST", "feedback must be a JSON object with 'response' and 'truth'")
        return None

    @app.errorhandler(UnicodeDecodeError)
    def not_text(_: UnicodeDecodeError):
        return _error(400, "BAD_REQUEST", "the request holds text that is not UTF-8")

    @app.errorhandler(RecursionError)
    def too_deep(_: RecursionError):
        return _error(400, "BAD_REQUEST", "the JSON body is nested too deeply")

    @app.errorhandler(json.JSONDecodeError)
    def not_json(error: json.JSONDecodeError):
        return _error(400, "BAD_REQUEST", f"the 'json' field is not valid JSON: {error.msg} at {error.pos}")

    return app


def _listen(host: str, port: int, share: bool = False) -> socket.socket:
    """A listening socket; ``share``: one of several on the same port (SO_REUSEPORT), among which the kernel spreads
    new connections, so that each worker has its own and no worker takes every keep-alive connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _serve(app: object, sock: socket.socket, settings: Settings, threads: int) -> None:
    import waitress
    from waitress.channel import HTTPChannel

    class Channel(HTTPChannel):
        """Knows when the request it is reading began and how many bytes of it have arrived."""

        started: float | None = None
        arrived = 0

        def received(self, data: bytes) -> bool:
            if self.request is None and data:
                self.started, self.arrived = time.time(), 0
            self.arrived += len(data)
            return super().received(data)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, settings.connection_limit + 256)), hard))
    server = waitress.create_server(
        app,
        sockets=[sock],
        threads=threads,
        channel_timeout=settings.channel_timeout_s,
        cleanup_interval=1,
        max_request_body_size=int(settings.max_body_mb * 2**20),
        connection_limit=settings.connection_limit,
        ident="auscult",
        recv_bytes=2**16,  # requests carry audio: read it in fewer, larger pieces
        asyncore_use_poll=True,  # select() stops at 1024 descriptors
        expose_tracebacks=False,
    )
    server.channel_class = Channel
    idle_only = server.maintenance
    stop_asked: list[float] = []

    def drain(*_: object) -> None:
        """SIGTERM: accept nothing more (connections still queued wait on the socket for the next worker), finish
        the requests already taken, then exit."""
        server.accepting = False
        stop_asked.append(time.time())

    def maintenance(now: float) -> None:
        """Answer 408 to a request that stopped arriving or trickles in; let waitress close idle connections; end
        a drain."""
        for channel in list(server.active_channels.values()):
            started = getattr(channel, "started", None)
            if channel.request is None or started is None:
                continue
            if now - channel.last_activity > settings.channel_timeout_s:
                _time_out(channel, f"the request stopped arriving ({channel.arrived} bytes came)")
            elif now - started > settings.slow_grace_s:
                rate = channel.arrived / (now - started)
                if rate < settings.min_request_bytes_per_s:
                    _time_out(channel, f"the request arrives too slowly ({rate:.0f} bytes/s)")
        idle_only(now)
        if stop_asked:
            busy = [c for c in server.active_channels.values() if _busy(c, now, settings.channel_timeout_s)]
            if not busy or now - stop_asked[0] > settings.drain_s:
                raise SystemExit(0)

    server.maintenance = maintenance
    signal.signal(signal.SIGTERM, drain)
    server.run()


class _Metrics:
    """seldon-core's shared metrics as a model worker updates them: a metric that cannot be counted is logged,
    and never fails the request it belongs to (the master replaces a dead metrics manager)."""

    def __init__(self, shared: object):
        self.shared = shared

    def update(self, custom_metrics: list, method: str) -> None:
        # seldon-core calls this on every request, custom metrics or none; with none there is nothing to count,
        # and skipping it saves the round trips to the manager process (a large share of a request's cost).
        if custom_metrics:
            self._guarded(self.shared.update, custom_metrics, method)

    def update_reward(self, *args: object, **kwargs: object) -> None:
        self._guarded(self.shared.update_reward, *args, **kwargs)

    @staticmethod
    def _guarded(call, *args: object, **kwargs: object) -> None:
        try:
            call(*args, **kwargs)
        except (OSError, EOFError) as error:
            log.error("metrics not updated: %s", error)


def _busy(channel, now: float, timeout_s: float) -> bool:
    """Whether a draining worker must wait for this connection: a request on it is being read, run or answered,
    or it was accepted and its first request has not arrived yet (closing it would reset the client)."""
    waiting_first = channel.arrived == 0 and now - channel.creation_time < timeout_s
    return bool(channel.requests or channel.request or channel.total_outbufs_len or waiting_first)


def _time_out(channel, why: str) -> None:
    """Answer 408 on a connection whose request will not complete, then close it once that is sent."""
    body = json.dumps({"status": {"code": -1, "info": why, "reason": "REQUEST_TIMEOUT", "status": 1}}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    channel.request = None
    try:
        channel.write_soon(head.encode() + body)
    except Exception:  # noqa: BLE001 - the client is gone already
        channel.will_close = True
        return
    channel.close_when_flushed = True
    channel.last_activity = time.time()


def _model_worker(sock: socket.socket, settings: Settings, metrics: object, ready: int) -> None:
    """One model worker: load the model, say so on the ``ready`` pipe, serve until SIGTERM."""
    from auscult.serving.seldon import AuscultModel

    model = AuscultModel()
    model.load()
    app = rest_app(model, _Metrics(metrics), settings.cors_origins)
    os.write(ready, b"r")
    try:
        _serve(app, sock, settings, settings.threads)
    finally:
        model.close()  # uploads what it can; the rest stays spooled for the next worker


def _metrics_worker(sock: socket.socket, settings: Settings, metrics: object, ready: int) -> None:
    """Prometheus metrics of all model workers (seldon-core's shared SeldonMetrics), on their own port."""
    from seldon_core.wrapper import get_metrics_microservice

    app = get_metrics_microservice(metrics)
    os.write(ready, b"r")
    _serve(app, sock, settings, 1)


class Master:
    """Forks the workers, restarts one that dies after it was ready, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # One slot per child: its kind, its own listening socket (kept here, so that connections queued on it wait
        # for a replacement when the child dies) and its body. The master itself stays single-threaded, so that
        # forking a replacement never copies a lock another thread held.
        first = _listen(settings.host, settings.port, share=True)
        port = first.getsockname()[1]
        self.slots = [("model", first, _model_worker)] + [
            ("model", _listen(settings.host, port, share=True), _model_worker) for _ in range(settings.workers - 1)
        ]
        if settings.metrics_port:
            self.slots.append(("metrics", _listen(settings.host, settings.metrics_port), _metrics_worker))
        self.workers: dict[int, int] = {}  # pid -> read end of its readiness pipe
        self.slot: dict[int, int] = {}  # pid -> its slot
        self.ready: set[int] = set()
        self.retiring: set[int] = set()  # asked to stop so that a fresh one replaces them
        self.stopping = False
        self.failed = False
        from seldon_core.metrics import SeldonMetrics

        self.metrics = SeldonMetrics()

    def spawn(self, slot: int) -> None:
        role, sock, body = self.slots[slot]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds the server loop
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the master, which stops the children
            code = 0
            try:
                body(sock, self.settings, self.metrics, write)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 0
            except BaseException:
                log.exception("%s worker %d failed", role, os.getpid())
                code = 1
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        os.close(write)
        self.workers[pid] = read
        self.slot[pid] = slot

    def _poll_ready(self) -> None:
        for pid, read in list(self.workers.items()):
            if pid in self.ready:
                continue
            os.set_blocking(read, False)
            try:
                if os.read(read, 1):
                    self.ready.add(pid)
            except BlockingIOError:
                pass

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        for slot in range(len(self.slots)):
            self.spawn(slot)
        log.warning(
            "auscult server on http://%s:%d: %d workers x %d threads",
            self.settings.host,
            self.settings.port,
            self.settings.workers,
            self.settings.threads,
        )
        while self.workers:
            self._poll_ready()
            self._check_metrics_manager()
            exited = [(pid, status) for pid, status in map(self._reap, list(self.workers)) if pid]
            if not exited:
                time.sleep(0.2)
            for pid, status in exited:
                was_ready = pid in self.ready
                self.ready.discard(pid)
                os.close(self.workers.pop(pid))
                slot = self.slot.pop(pid)
                role = self.slots[slot][0]
                if self.stopping:
                    continue
                if pid in self.retiring:
                    self.retiring.discard(pid)
                    log.warning("%s worker %d replaced", role, pid)
                    self.spawn(slot)
                    continue
                if not was_ready:  # it could not load the model: another try would fail the same way
                    log.error("a %s worker exited before it was ready (status %d): stopping", role, status)
                    self._stop()
                    self.failed = True
                    continue
                log.error("%s worker %d died (status %d): starting another", role, pid, status)
                self.spawn(slot)
        return 1 if self.failed else 0

    def _check_metrics_manager(self) -> None:
        """seldon-core's metrics live in a manager process that every worker calls on each request: when it is
        gone, every prediction fails. Start a new one and replace the workers, one generation at a time."""
        if self.stopping or self.metrics._manager._process.is_alive():
            return
        log.error("the metrics manager process died: starting another and restarting the workers")
        from seldon_core.metrics import SeldonMetrics

        self.metrics = SeldonMetrics()
        for pid in list(self.workers):
            self.retiring.add(pid)
            os.kill(pid, signal.SIGTERM)  # each exits gracefully and is replaced with the new manager

    @staticmethod
    def _reap(pid: int) -> tuple[int, int]:
        try:
            return os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already gone
            return pid, 0

    def _stop(self, *_: object) -> None:
        self.stopping = True
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def settings_from(argv: list[str] | None = None) -> Settings:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=f"python -m {contract.SERVER_MODULE}", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default=env.get(contract.ENV_HOST, Settings.host), help="bind address")
    parser.add_argument("--port", type=int, default=int(env.get(contract.ENV_HTTP_PORT, Settings.port)))
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env[contract.ENV_METRICS_PORT]) if env.get(contract.ENV_METRICS_PORT) else None,
        help="Prometheus metrics port (default: none, or the operator's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env.get(contract.ENV_WORKERS, 0)) or min(4, available_cpus()),
        help="worker processes (default: one per CPU, at most 4: the model is CPU-bound)",
    )
    parser.add_argument("--threads", type=int, default=Settings.threads, help="request threads per worker")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[o.strip() for o in env.get(contract.ENV_CORS_ORIGINS, "").split(",") if o.strip()],
        help="an origin browsers may call from (repeatable; default: none)",
    )
    parser.add_argument("--max-body-mb", type=float, default=Settings.max_body_mb)
    parser.add_argument("--channel-timeout", type=float, default=Settings.channel_timeout_s, help="seconds")
    args = parser.parse_args(argv)
    return Settings(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        workers=max(1, args.workers),
        threads=max(1, args.threads),
        cors_origins=tuple(args.cors_origin),
        max_body_mb=args.max_body_mb,
        channel_timeout_s=args.channel_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under any burst
    return Master(settings_from(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
