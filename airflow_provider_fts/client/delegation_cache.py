"""What a process knows of its delegations to FTS, shared among clients and bounded."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import hashes

from airflow_provider_fts.client.credentials import Credentials

__all__ = ["SHARED_DELEGATIONS", "DelegationCache"]


@dataclass
class _DelegationMemo:
    """What this process knows of one delegation (endpoint + credential)."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    expires: datetime | None = None
    checked_at: float | None = None

    def remember(self, expires: datetime | None) -> None:
        self.expires = expires
        self.checked_at = time.monotonic()

    def checked_within(self, seconds: float) -> bool:
        return self.checked_at is not None and time.monotonic() - self.checked_at < seconds


class DelegationCache:
    """What clients know of their delegations, shared so that concurrent first submits of
    one credential cost one delegation, and bounded: the ``size`` most recently used.

    :param size: How many endpoint + credential pairs to remember.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._memos: OrderedDict[str, _DelegationMemo] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._memos)

    def memo(self, endpoint: str, credentials: Credentials) -> _DelegationMemo:
        """The memo of this endpoint and credential (tokens get a private one: no delegation)."""
        if not credentials.chain:
            return _DelegationMemo()
        key = f"{endpoint}|{credentials.chain[0].fingerprint(hashes.SHA256()).hex()}"
        with self._lock:
            memo = self._memos.pop(key, None) or _DelegationMemo()
            self._memos[key] = memo
            while len(self._memos) > self.size:
                self._memos.popitem(last=False)
            return memo

    def clear(self) -> None:
        with self._lock:
            self._memos.clear()


#: The cache clients share unless they are given one.
SHARED_DELEGATIONS = DelegationCache()
