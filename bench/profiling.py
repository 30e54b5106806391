"""``python -m bench --profile``: where the time goes on the cold and warm paths (cProfile).

Prints the functions with the most own time for ``authenticate(request)`` with a never-seen
token (rate limits as deployed, then off) and with a token seen before.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIRequestFactory

from entra_auth.authentication import EntraJWTAuthentication
from entra_auth.validation import get_validator

from .environment import BenchEnvironment
from .fixtures import TokenMinter
from .micro import bearer_request

COLD_CALLS = 2_000
WARM_CALLS = 50_000
TOP_FUNCTIONS = 18


def _profile(title: str, calls: list[Callable[[], Any]]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for call in calls:
        call()
    profiler.disable()
    out = io.StringIO()
    out.write(f"\n=== {title}: {len(calls)} calls ===\n")
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(TOP_FUNCTIONS)
    return out.getvalue()


def _cold_calls(
    authentication: EntraJWTAuthentication, factory: APIRequestFactory, tokens: list[str]
) -> list[Callable[[], Any]]:
    requests = [bearer_request(factory, token) for token in tokens]
    return [partial(authentication.authenticate, request) for request in requests]


def run_profiles(bench: BenchEnvironment, minter: TokenMinter) -> str:
    factory = APIRequestFactory()
    authentication = EntraJWTAuthentication()
    tokens = minter.mint(2 * COLD_CALLS + 1)
    get_validator().validate(tokens[0])  # keys loaded outside the profile
    warm = partial(authentication.authenticate, bearer_request(factory, tokens[0]))
    report = [
        _profile(
            "authenticate, cold (rate limits as deployed)",
            _cold_calls(authentication, factory, tokens[1 : COLD_CALLS + 1]),
        ),
        _profile("authenticate, warm", [warm] * WARM_CALLS),
    ]
    no_limits = {**settings.ENTRA_AUTH, "API_RATE_LIMIT": None, "AUTH_FAILURE_RATE_LIMIT": None}
    with override_settings(ENTRA_AUTH=no_limits):
        get_validator().validate(tokens[0])
        report.append(
            _profile(
                "authenticate, cold (rate limits off)",
                _cold_calls(authentication, factory, tokens[COLD_CALLS + 1 :]),
            )
        )
    return "".join(report)
