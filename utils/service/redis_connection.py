"""How this service talks to Redis: one key prefix, and clients that fail fast, so a web request never
hangs on a Redis that is down (the caller keeps its work on local disk and hands it over later)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PREFIX = "temporal-ml"


def connect(url: str) -> redis.Redis:
    """A client with short timeouts and no client-side retries."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
    )
