"""Settings of the recommendation service: batching, request bounds and the API key, one frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass

from semid.errors import ConfigError

API_KEY_ENV = "SEMID_API_KEY"


@dataclass(frozen=True)
class ServeConfig:
    """What `semid serve` exposes as options; defaults suit one CPU process behind a reverse proxy."""

    max_batch: int = 32  # requests decoded together in one batched beam search
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others to join
    # with a value: stop waiting once no request has arrived for this long (None: wait to max_wait_ms)
    max_gap_ms: float | None = None
    # decode threads, each at one intra-op thread (semid.serve.batcher); 0 = one per core, at most 2
    decode_workers: int = 0
    max_queue: int = 1024  # requests waiting for the decoder before new ones get 503
    max_body_bytes: int = 1 << 20  # request bodies above this get 413 (1 MiB)
    body_timeout_s: float = 10.0  # a body not fully received within this gets 408 (slow uploads)
    request_timeout_s: float = 30.0  # a request not answered within this gets 503
    max_history: int = 1000  # history items accepted per request (the model reads only its window)
    max_list: int = 10000  # ids accepted in one allow / deny list or one POST /items
    max_k: int = 100  # largest k a request may ask for
    api_key: str | None = None  # required on every endpoint but /health when set
    persist: bool = True  # write live-catalog changes to <run_dir>/serve/catalog.json

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_body_bytes", "max_history", "max_list", "max_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if self.decode_workers < 0:
            raise ConfigError(f"serve.decode_workers must be >= 0 (0 = automatic), got {self.decode_workers}")
        for name in ("max_wait_ms", "body_timeout_s", "request_timeout_s"):
            v = getattr(self, name)
            if not v >= 0:  # also rejects NaN
                raise ConfigError(f"serve.{name} must be >= 0, got {v}")
        if self.max_gap_ms is not None and not self.max_gap_ms >= 0:
            raise ConfigError(f"serve.max_gap_ms must be >= 0 or None, got {self.max_gap_ms}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("serve.api_key must be at least 8 characters")


def resolve_decode_workers(config: ServeConfig, cores: int | None = None) -> int:
    """The decode worker count: ``config.decode_workers`` if set, else min(2, cores)."""
    if config.decode_workers:
        return config.decode_workers
    from semid.threads import SMALL_OP_CAP, available_cores

    return max(1, min(SMALL_OP_CAP, available_cores() if cores is None else cores))


def resolve_api_key(explicit: str | None) -> str | None:
    """``--api-key`` wins, else the SEMID_API_KEY environment variable, else None."""
    key = explicit if explicit else os.environ.get(API_KEY_ENV) or None
    return key
