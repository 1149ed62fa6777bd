"""Running the service under uvicorn, with a header timeout uvicorn itself lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for a request whose
headers never finish (slow-loris). The protocol classes here arm a timer when a connection opens and after
every response, cancelled as soon as a request's headers are complete; when it fires while the client is
still sending headers, the connection is closed. Slow *bodies* are cut by ``limits.BodyLimit`` (408).

Two HTTP parsers, one behaviour: httptools (C, llhttp) when it is installed, as ``semid[serve]`` installs
it, else h11 (pure Python). httptools took the HTTP path of a ``/recommend`` from 0.64 to 0.39-0.46 ms of
server CPU per request (decoding stubbed out; benchmarks/RESULTS.md), which on a 2-core host is throughput.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from semid.serve.settings import ServeConfig


def header_timeout_protocol(seconds: float, parser: str = "auto") -> type:
    """A uvicorn protocol class that closes connections whose request headers take over ``seconds``;
    ``parser``: "httptools", "h11" or "auto" (httptools if importable)."""
    if parser == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            parser = "h11"
        else:
            parser = "httptools"
    if parser == "httptools":
        return _httptools_protocol(seconds)
    if parser != "h11":
        raise ValueError(f"parser must be 'httptools', 'h11' or 'auto', got {parser!r}")
    return _h11_protocol(seconds)


class _HeaderTimer:
    """Mixin for a uvicorn protocol: a timer armed when a connection opens and after each response; when it
    fires while the client is still sending a request line + headers (``_in_headers``), the connection closes."""

    header_timeout: float
    _header_timer: asyncio.TimerHandle | None = None

    def _in_headers(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._in_headers() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def _httptools_protocol(seconds: float) -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderTimeoutHttpTools(_HeaderTimer, HttpToolsProtocol):
        header_timeout = seconds
        _awaiting_headers = True  # from a connection's start / a response's end to the next request's headers

        def _in_headers(self) -> bool:
            return self._awaiting_headers

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False  # the body has its own limit
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # a queued request already has its headers
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._awaiting_headers = True
                self._arm()

    return HeaderTimeoutHttpTools


def _h11_protocol(seconds: float) -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11(_HeaderTimer, H11Protocol):
        header_timeout = seconds

        def _in_headers(self) -> bool:
            return self.conn.their_state is h11.IDLE  # no complete request line + headers yet

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._in_headers():
                self._disarm()  # headers complete: the body has its own limit

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._in_headers():
                self._arm()

    return HeaderTimeoutH11


def freeze_startup_heap() -> int:
    """Move every object alive now into the garbage collector's permanent generation; returns how many.

    A restored run plus torch / transformers / FastAPI is ~400k tracked objects. Request traffic allocates
    enough to trigger full (generation-2) collections every few seconds, and each one walks that whole
    startup heap with the GIL held: a pause of hundreds of milliseconds that every request in flight waits
    out, i.e. the service's p99. Frozen objects are still freed by reference counting; only cycles among
    them are never collected, which is what a model held for the process's lifetime needs anyway.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def serve_forever(app, *, host: str, port: int, config: ServeConfig, max_connections: int = 256,
                  access_log: bool = True) -> None:
    """uvicorn on ``host:port``: header timeout = ``config.body_timeout_s``, our JSON access log, bounded
    connections (beyond ``max_connections`` uvicorn answers 503); the startup heap frozen out of the GC's
    full collections (``freeze_startup_heap``)."""
    import uvicorn

    if access_log:
        logger = logging.getLogger("semid.serve.access")
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO)
    logging.getLogger("semid.serve").info("froze %d startup objects out of the GC's full collections",
                                          freeze_startup_heap())
    protocol = header_timeout_protocol(config.body_timeout_s)
    logging.getLogger("semid.serve").info("HTTP parser: %s", protocol.__name__)
    uvicorn.run(app, host=host, port=port, access_log=False, timeout_keep_alive=5,
                limit_concurrency=max_connections, http=protocol)
