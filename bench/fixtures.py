"""What the benchmarks run on: the fake Entra server's tokens, minted in bulk.

Signing costs ~0.2 ms per token, so thousands of never-seen tokens are minted by a small pool
of processes (spawned, so they never inherit the driver's threads), outside any timed loop.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult
from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.fake_entra import CLIENT_ID, TENANT_A, FakeEntra, sign

BENCH_TENANT = TENANT_A
AUDIENCE = CLIENT_ID
CLOCK_SKEW_S = 300
MINT_PROCESSES = max(1, min(2, os.cpu_count() or 1))
MINT_CHUNK = 500
MINT_AHEAD = 2 * MINT_PROCESSES
# A forged token's signature: as long as a 2048-bit RSA one, never checked (unknown kid).
FORGED_SIGNATURE_BYTES = 256

_worker_key: Any = None
_worker_kid: str = ""
_worker_template: dict[str, Any] = {}


def _init_minter(pem: bytes, kid: str, template: dict[str, Any]) -> None:
    global _worker_key, _worker_kid, _worker_template
    _worker_key = serialization.load_pem_private_key(pem, password=None)
    _worker_kid = kid
    _worker_template = template


def _mint_chunk(count: int) -> list[str]:
    """``count`` distinct tokens: a different user (``oid``/``sub``) and ``uti`` each."""
    tokens = []
    for _ in range(count):
        claims = dict(_worker_template)
        oid = str(uuid.uuid4())
        claims.update(oid=oid, sub=oid, uti=uuid.uuid4().hex)
        tokens.append(sign(claims, _worker_key, {"kid": _worker_kid}))
    return tokens


class TokenMinter:
    """A process pool minting valid v2 delegated tokens signed by the fake's current key."""

    def __init__(self, fake: FakeEntra, processes: int = MINT_PROCESSES) -> None:
        key = fake.signing_key
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Lifetime long enough for the whole run; a token minted now is valid until then.
        template = fake.claims(scopes=("Payments.Read", "Payments.Write"), lifetime_s=3 * 3600)
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(processes, _init_minter, (pem, key.kid, template))

    def __enter__(self) -> TokenMinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()

    def chunks(self, count: int, chunk: int = MINT_CHUNK) -> Iterator[list[str]]:
        """``count`` tokens, as lists of at most ``chunk``, streamed as they are minted.

        At most ``MINT_AHEAD`` chunks wait to be consumed, so a slow consumer never holds
        many tokens in memory at once.
        """
        sizes = [chunk] * (count // chunk) + ([count % chunk] if count % chunk else [])
        pending: deque[AsyncResult] = deque()
        for size in sizes:
            pending.append(self._pool.apply_async(_mint_chunk, (size,)))
            if len(pending) >= MINT_AHEAD:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def mint(self, count: int) -> list[str]:
        return [token for chunk in self.chunks(count) for token in chunk]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def random_kid_tokens(fake: FakeEntra, count: int) -> list[str]:
    """Well-formed v2 tokens for the right issuer and audience naming a random ``kid`` each.

    What a flood of forged tokens looks like: they pass every check made before the key
    lookup, so each one asks the key store for a key it does not have.
    """
    payload = _b64url(json.dumps(fake.claims(), separators=(",", ":")).encode())
    tokens = []
    for _ in range(count):
        header = {"alg": "RS256", "typ": "JWT", "kid": uuid.uuid4().hex}
        header_segment = _b64url(json.dumps(header, separators=(",", ":")).encode())
        signature = _b64url(os.urandom(FORGED_SIGNATURE_BYTES))
        tokens.append(f"{header_segment}.{payload}.{signature}")
    return tokens
