"""Instrumentation points of the core: hooks that do nothing until something subscribes.

The core calls these at the few places worth measuring; ``entra_auth.metrics`` (the
``metrics`` extra) subscribes Prometheus counters to them. The core imports nothing optional
for it, and a hook without receivers costs one plain function call::

    from entra_auth import observe

    observe.token_cache.connect(lambda hit: ...)

Arguments are small fixed words (``hit``, ``"metadata"``, ``"ok"``, ``"unknown_kid"``), never
a token, a claim or a URL. Receivers run inline, on the request's thread: keep them quick. A
receiver that raises is logged on ``entra_auth.observe`` and the caller goes on.

For the authentication outcome and the rate-limit refusals, subscribe to the Django signals of
``entra_auth.signals`` instead: they already carry the reason codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("entra_auth.observe")

__all__ = [
    "FETCH_ERROR",
    "FETCH_OK",
    "Hook",
    "audit_write_failed",
    "authentication_unavailable",
    "key_fetched",
    "key_refresh",
    "timed_key_fetch",
    "token_cache",
]


def _nothing(*args: Any) -> None:
    return None


class Hook:
    """A named instrumentation point: ``hook.send(*args)`` calls every connected receiver.

    ``send`` is rebound on each (dis)connect: with no receivers it is a function that returns
    at once, so an unobserved hook costs one plain call.
    """

    __slots__ = ("_receivers", "name", "send")

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: tuple[Callable[..., Any], ...] = ()
        self.send: Callable[..., None] = _nothing

    def connect(self, receiver: Callable[..., Any]) -> None:
        """Subscribe ``receiver``; connecting the same one twice keeps one."""
        if receiver not in self._receivers:
            self._rebind((*self._receivers, receiver))

    def disconnect(self, receiver: Callable[..., Any]) -> None:
        self._rebind(tuple(r for r in self._receivers if r != receiver))

    @property
    def receivers(self) -> tuple[Callable[..., Any], ...]:
        return self._receivers

    def _rebind(self, receivers: tuple[Callable[..., Any], ...]) -> None:
        # A tuple, replaced whole: a send in progress on another thread keeps the old one.
        self._receivers = receivers
        if not receivers:
            self.send = _nothing
            return
        name = self.name

        def send(*args: Any) -> None:
            for receiver in receivers:
                try:
                    receiver(*args)
                except Exception:  # instrumentation never breaks the instrumented code
                    logger.exception("receiver of %s failed", name)

        self.send = send

    def __repr__(self) -> str:
        return f"<Hook {self.name} ({len(self._receivers)} receivers)>"


# The validated-token cache was looked up: ``hit`` is True when the token was found there
# (no cryptography), False when it is validated now (entra_auth.validation).
token_cache = Hook("token_cache")

# One metadata or JWKS request ended: ``kind`` (``"metadata"`` or ``"jwks"``), ``result``
# (``"ok"`` or ``KeyFetchError.result``: ``"http_error"``, ``"timeout"``, ``"network_error"``,
# ``"invalid"``, ``"refused_url"``) and its duration in seconds (entra_auth.keys).
key_fetched = Hook("key_fetched")

# A process starts fetching metadata and keys: ``trigger`` is ``"cold_start"`` (no keys
# anywhere yet), ``"scheduled"`` (older than KEY_CACHE_TTL) or ``"unknown_kid"`` (a token
# named a key not in the set) (entra_auth.keys).
key_refresh = Hook("key_refresh")

# A token could not be judged for want of signing keys (answered 503) (entra_auth.authentication).
authentication_unavailable = Hook("authentication_unavailable")

# A write to the audit log failed: ``operation`` is ``"insert"`` (a row) or ``"count"`` (the
# coalesced counts of a flush); entra_auth.audit logs it and says whether it is retried.
audit_write_failed = Hook("audit_write_failed")

FETCH_OK = "ok"
FETCH_ERROR = "error"


@contextmanager
def timed_key_fetch(kind: str) -> Iterator[None]:
    """Report the block as one ``key_fetched`` of ``kind``: ``"ok"`` unless it raises, else
    the exception's ``result`` (``"error"`` when it has none). Exceptions propagate."""
    if not key_fetched.receivers:
        yield
        return
    started = time.perf_counter()
    result = FETCH_ERROR
    try:
        yield
        result = FETCH_OK
    except Exception as exc:
        result = getattr(exc, "result", FETCH_ERROR)
        raise
    finally:
        key_fetched.send(kind, result, time.perf_counter() - started)
