"""Service metrics in the Prometheus text format (no client library) and a JSON-lines access log.

``/metrics`` exposes: semid_requests_total{route,status}, semid_request_seconds (histogram by route),
semid_batch_size (histogram of requests per decoded batch), semid_catalog_version / semid_catalog_items.
Routes are the endpoint templates (``/items/{id}``), never raw paths, so label cardinality stays bounded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict

ACCESS_LOG = logging.getLogger("semid.serve.access")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
ROUTES = ("/health", "/recommend", "/items", "/metrics")


def route_of(path: str) -> str:
    if path in ROUTES:
        return path
    if path.startswith("/items/"):
        return "/items/{id}"
    return "other"


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics: le buckets, _sum, _count)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.sum += v
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts, strict=True)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        lab = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{lab} {self.sum:.6f}", f"{name}_count{lab} {self.n}"]
        return out


class Metrics:
    """Thread-safe counters; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch = Histogram(BATCH_BUCKETS)
        self.gauges: dict[str, float] = {}

    def record_request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def record_batch(self, size: int) -> None:
        with self._lock:
            self.batch.observe(size)

    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value

    def render(self) -> str:
        with self._lock:
            out = ["# HELP semid_requests_total HTTP requests by route and status.",
                   "# TYPE semid_requests_total counter"]
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'semid_requests_total{{route="{route}",status="{status}"}} {n}')
            out += ["# HELP semid_request_seconds Request latency.", "# TYPE semid_request_seconds histogram"]
            for route, h in sorted(self.latency.items()):
                out += h.lines("semid_request_seconds", f'route="{route}"')
            out += ["# HELP semid_batch_size Requests decoded together per batch.",
                    "# TYPE semid_batch_size histogram"]
            out += self.batch.lines("semid_batch_size")
            for name, v in sorted(self.gauges.items()):
                out += [f"# TYPE {name} gauge", f"{name} {v:g}"]
        return "\n".join(out) + "\n"


class AccessLog:
    """ASGI middleware: one JSON line per request on logger ``semid.serve.access`` + the request metrics.

    Fields: method, route, status, ms, bytes_out, client. No query string, body or raw path is logged, so
    a log line is bounded whatever the request holds.
    """

    def __init__(self, app, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status, size = 500, 0

        async def wrapped(msg):
            nonlocal status, size
            if msg["type"] == "http.response.start":
                status = msg["status"]
            elif msg["type"] == "http.response.body":
                size += len(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            dt = time.perf_counter() - t0
            route = route_of(scope["path"])
            self.metrics.record_request(route, status, dt)
            if ACCESS_LOG.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("", 0)
                ACCESS_LOG.info(json.dumps({"ts": round(time.time(), 3), "method": scope["method"],
                                            "route": route, "status": status, "ms": round(dt * 1e3, 2),
                                            "bytes_out": size, "client": client[0]}))
