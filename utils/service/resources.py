"""A small, thread-safe cache for expensive objects shared across requests (encoders, loaded nets)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ResourceCache:
    """Objects keyed by whatever determines their content (path + mtime, version); least recently used
    entries are dropped past `max_items`, so a changed key never serves a stale object."""

    def __init__(self, max_items: int = 16):
        self.max_items = max_items
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get_or_create(self, key: Hashable, factory: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one build per key, even when many threads ask at once
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = factory()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
                self._key_locks.pop(key, None)
            return value
