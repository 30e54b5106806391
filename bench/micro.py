"""In-process micro-benchmarks: the RSA floor, PyJWT, the validator and the DRF class.

Keys are loaded before anything is timed (no HTTP in a timed loop). "Cold" operations get a
token never seen before on every call (minted beforehand); "warm" ones repeat one token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import cycle
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.test import override_settings
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from entra_auth.authentication import EntraJWTAuthentication
from entra_auth.tokens import parse_token
from entra_auth.validation import get_validator

from .environment import BenchEnvironment
from .fixtures import AUDIENCE, CLOCK_SKEW_S, TokenMinter
from .paths import PROTECTED_PATH
from .timing import TimedOperation, batches_needed, measure_interleaved

ROUNDS = 15
BATCHES_PER_ROUND = 6
WARMUP_BATCHES = 3
COLD_BATCH = 20
WARM_BATCH = 500
RSA_BATCH = 50
PYJWT_TOKEN_POOL = 500


@dataclass
class MicroResults:
    rsa: TimedOperation
    pyjwt: TimedOperation
    validate_cold: TimedOperation
    validate_warm: TimedOperation
    authenticate_cold: TimedOperation
    authenticate_warm: TimedOperation
    # Phase 2: rate limits off, with its own PyJWT baseline.
    pyjwt_no_limits: TimedOperation
    authenticate_cold_no_limits: TimedOperation
    # HTTP requests the fake Entra served for one cold key load: one metadata+JWKS round.
    requests_per_key_round: int


def _cold_batches(
    tokens: list[str], call: Callable[[Any], object], wrap: Callable[[str], Any] = str
) -> Callable[[], None]:
    """A batch runner giving each call the next never-seen token (wrapped beforehand)."""
    supply: Iterator[Any] = iter([wrap(token) for token in tokens])

    def run_batch() -> None:
        for _ in range(COLD_BATCH):
            call(next(supply))

    return run_batch


def _repeat(call: Callable[[], object], times: int) -> Callable[[], None]:
    def run_batch() -> None:
        for _ in range(times):
            call()

    return run_batch


def bearer_request(factory: APIRequestFactory, token: str) -> Request:
    return Request(factory.get(PROTECTED_PATH, HTTP_AUTHORIZATION=f"Bearer {token}"))


def _pyjwt_operation(public_key: Any, tokens: list[str]) -> TimedOperation:
    """PyJWT with a preloaded key and the same checks: RS256, audience, exp (required)."""
    pool = cycle(tokens[:PYJWT_TOKEN_POOL])

    def decode(token: str) -> object:
        return jwt.decode(
            token,
            public_key,
            algorithms=["RS256"],
            audience=AUDIENCE,
            leeway=CLOCK_SKEW_S,
            options={"require": ["exp"]},
        )

    def run_batch() -> None:
        for _ in range(COLD_BATCH):
            decode(next(pool))

    return TimedOperation("PyJWT jwt.decode", run_batch, COLD_BATCH)


def run_micro(bench: BenchEnvironment, minter: TokenMinter) -> MicroResults:
    per_operation = batches_needed(
        rounds=ROUNDS, batches_per_round=BATCHES_PER_ROUND, warmup=WARMUP_BATCHES
    )
    cold_tokens_each = per_operation * COLD_BATCH
    tokens = minter.mint(3 * cold_tokens_each + 1)
    first, tokens = tokens[0], tokens[1:]
    validate_tokens = tokens[:cold_tokens_each]
    authenticate_tokens = tokens[cold_tokens_each : 2 * cold_tokens_each]
    no_limit_tokens = tokens[2 * cold_tokens_each :]

    # The first validation loads the keys: the one HTTP round a cold process needs.
    before = bench.fake.requests_to("all")
    validator = get_validator()
    validator.validate(first)
    requests_per_key_round = bench.fake.requests_to("all") - before

    public_key = bench.fake.signing_key.private_key.public_key()
    parsed = parse_token(first)
    pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def raw_verify() -> None:
        public_key.verify(parsed.signature, parsed.signing_input, pkcs1v15, sha256)

    factory = APIRequestFactory()
    authentication = EntraJWTAuthentication()
    warm_request = bearer_request(factory, first)
    rsa = TimedOperation("RS256 verify (cryptography)", _repeat(raw_verify, RSA_BATCH), RSA_BATCH)
    pyjwt = _pyjwt_operation(public_key, validate_tokens)
    validate_cold = TimedOperation(
        "validate, cold", _cold_batches(validate_tokens, validator.validate), COLD_BATCH
    )
    validate_warm = TimedOperation(
        "validate, warm", _repeat(lambda: validator.validate(first), WARM_BATCH), WARM_BATCH
    )
    authenticate_cold = TimedOperation(
        "authenticate, cold",
        _cold_batches(
            authenticate_tokens,
            authentication.authenticate,
            lambda token: bearer_request(factory, token),
        ),
        COLD_BATCH,
    )
    authenticate_warm = TimedOperation(
        "authenticate, warm",
        _repeat(lambda: authentication.authenticate(warm_request), WARM_BATCH),
        WARM_BATCH,
    )
    measure_interleaved(
        [rsa, pyjwt, validate_cold, validate_warm, authenticate_cold, authenticate_warm],
        rounds=ROUNDS,
        batches_per_round=BATCHES_PER_ROUND,
        warmup=WARMUP_BATCHES,
    )

    # Phase 2: the same cold path with both rate limits off, to show what the failed-
    # authentication check (a shared-cache read per never-seen token) adds.
    no_limits = {**settings.ENTRA_AUTH, "API_RATE_LIMIT": None, "AUTH_FAILURE_RATE_LIMIT": None}
    with override_settings(ENTRA_AUTH=no_limits):
        get_validator().validate(first)
        pyjwt_no_limits = _pyjwt_operation(public_key, validate_tokens)
        authenticate_cold_no_limits = TimedOperation(
            "authenticate, cold, rate limits off",
            _cold_batches(
                no_limit_tokens,
                authentication.authenticate,
                lambda token: bearer_request(factory, token),
            ),
            COLD_BATCH,
        )
        measure_interleaved(
            [pyjwt_no_limits, authenticate_cold_no_limits],
            rounds=ROUNDS,
            batches_per_round=BATCHES_PER_ROUND,
            warmup=WARMUP_BATCHES,
        )
    return MicroResults(
        rsa=rsa,
        pyjwt=pyjwt,
        validate_cold=validate_cold,
        validate_warm=validate_warm,
        authenticate_cold=authenticate_cold,
        authenticate_warm=authenticate_warm,
        pyjwt_no_limits=pyjwt_no_limits,
        authenticate_cold_no_limits=authenticate_cold_no_limits,
        requests_per_key_round=requests_per_key_round,
    )
