"""Authorization headers for Label Studio: legacy tokens as `Token`, personal access tokens exchanged
for short-lived `Bearer` access tokens."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

ACCESS_TOKEN_LIFETIME_S = 240  # Label Studio's access tokens live 5 minutes; refresh a minute early


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and all(token.split("."))


@dataclass
class LabelStudioCredentials:
    """Where Label Studio is and how to authenticate to it. The key is never logged or repr'd."""

    url: str
    api_key: str = field(repr=False)
    timeout_s: float = 10.0
    _bearer: str = field(default="", repr=False)
    _bearer_expires: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    @property
    def usable(self) -> bool:
        return bool(self.url and self.api_key)

    def headers(self) -> dict[str, str]:
        if not self.api_key:
            return {}
        if not looks_like_jwt(self.api_key):
            return {"Authorization": f"Token {self.api_key}"}
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _access_token(self) -> str:
        with self._lock:
            if self._bearer and time.monotonic() < self._bearer_expires:
                return self._bearer
            try:
                response = requests.post(
                    f"{self.url}/api/token/refresh/",
                    json={"refresh": self.api_key},
                    timeout=self.timeout_s,
                )
                response.raise_for_status()
                self._bearer = response.json()["access"]
            except (requests.RequestException, KeyError, ValueError):
                # Not a refresh token after all (e.g. an access token handed over by /setup): use it as is.
                self._bearer = self.api_key
            self._bearer_expires = time.monotonic() + ACCESS_TOKEN_LIFETIME_S
            return self._bearer
