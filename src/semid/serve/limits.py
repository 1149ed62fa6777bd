"""Request bounds and auth as plain ASGI middleware: body size (413), slow uploads (408), API key (401),
and the rule that a non-loopback bind needs a key.

The body is read here, bounded in size and time, before the app sees it, and replayed to the app: a
10 MB body is refused after the first 1 MiB (or at once from its Content-Length), and an upload that
trickles is cut at ``body_timeout_s`` however slowly its bytes arrive (the server closes the connection
after the 408 because the body was never finished).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json

from semid.errors import ConfigError

Scope = dict
EXEMPT_PATHS = ("/health",)  # liveness probes work without the key


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a LAN address) is exposed."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve on a non-loopback address without an API key."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"refusing to serve on {host!r} without an API key: pass --api-key KEY or set SEMID_API_KEY "
            "(clients then send 'Authorization: Bearer KEY'), or bind to 127.0.0.1"
        )


async def send_json(send, status: int, detail: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Read the whole body (at most ``max_bytes``, within ``timeout_s``) before the app runs."""

    def __init__(self, app, *, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    return await send_json(send, 400, "invalid Content-Length", close=True)
                if n > self.max_bytes:
                    return await send_json(
                        send, 413, f"request body of {n} bytes exceeds the limit of {self.max_bytes}", close=True
                    )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks, size = [], 0
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                msg = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                return await send_json(send, 408, f"request body not received within {self.timeout_s:g} s",
                                       close=True)
            if msg["type"] == "http.disconnect":
                return None
            size += len(msg.get("body", b""))
            if size > self.max_bytes:
                return await send_json(send, 413, f"request body exceeds the limit of {self.max_bytes} bytes",
                                       close=True)
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class ApiKey:
    """401 unless the request carries ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (constant-time compare)."""

    def __init__(self, app, *, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or not self.key or scope["path"] in EXEMPT_PATHS:
            return await self.app(scope, receive, send)
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
            elif name == b"x-api-key":
                given = value.strip()
        if not hmac.compare_digest(given, self.key.encode()):
            return await send_json(send, 401, "missing or wrong API key (send 'Authorization: Bearer KEY')")
        return await self.app(scope, receive, send)
