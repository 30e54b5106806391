"""``AdminLoginRateLimitMiddleware``: failed Django admin logins limited per client and username.

Django's admin login page accepts any number of password guesses. This middleware counts, with
django-ratelimit, every POST to the admin login page that does not log someone in (a wrong
password, an unknown, inactive or non-staff account, an incomplete form), once for the client
address (the IPv4 address or the IPv6 /64, as ``TRUSTED_PROXIES`` tell it) and once for the
username typed. Once either has ``ENTRA_AUTH["ADMIN_LOGIN_RATE_LIMIT"]`` failures in the
current window, further POSTs with it are answered ``429`` with ``Retry-After`` before the
login view runs, so no password is checked while the lock lasts: not even the right
one. Attempts are counted when they arrive (successful logins are taken off afterwards), so
attempts sent at once cannot slip past the limit together. The answer depends only on the
counts, never on whether the username exists. Each refusal sends
``entra_auth.signals.rate_limited`` with the reason ``admin_login_rate_limit`` (audited).

The login page is found with ``reverse("admin:login")`` when a request needs it, so an admin
routed elsewhere is covered and a project without the admin is left alone. Counts live in
django-ratelimit's ``RATELIMIT_USE_CACHE``, which should be the cache ``CACHE_ALIAS`` names
(check ``entra_auth.E025`` insists while ``AUTH_FAILURE_RATE_LIMIT`` is on). When that cache
fails, ``RATE_LIMIT_FAIL_OPEN`` decides: let the login form answer (the default), or refuse
with ``429``. Place the middleware after ``AuthenticationMiddleware``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers

from ..conf import entra_settings
from ..signals import rate_limited
from ..throttling import bucket_usage, client_bucket, unknown_count_wait

# The reason of the rate_limited signal and of the audit log.
ADMIN_LOGIN_RATE_LIMIT = "admin_login_rate_limit"
CLIENT_GROUP = "entra_auth.admin_login.client"
USERNAME_GROUP = "entra_auth.admin_login.username"
# The field of Django's AuthenticationForm, whatever the user model's USERNAME_FIELD is.
USERNAME_FIELD = "username"
# Longer usernames are counted by their first characters (the form refuses them anyway).
MAX_USERNAME_CHARS = 256
REFUSAL_TEXT = "Too many failed login attempts. Try again later.\n"
# Set on a request while its login attempt is watched; user_logged_in marks it a success.
_ATTEMPT_ATTRIBUTE = "_entra_auth_admin_login_attempt"


class _Attempt:
    __slots__ = ("succeeded",)

    def __init__(self) -> None:
        self.succeeded = False


@receiver(user_logged_in, dispatch_uid="entra_auth.http.admin_login.user_logged_in")
def _mark_success(sender: Any, request: Any = None, **kwargs: Any) -> None:
    attempt = getattr(request, _ATTEMPT_ATTRIBUTE, None)
    if attempt is not None:
        attempt.succeeded = True


def admin_login_path() -> str | None:
    """The path of the admin's login page, or None when the admin is not installed or routed."""
    if not apps.is_installed("django.contrib.admin"):
        return None
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return None


def username_bucket(username: str) -> str:
    """Whom a username's failures are counted for: one bucket for the ways of writing it.

    Normalized as Django's ``UsernameField`` does (NFKC, surrounding spaces dropped) and
    case-folded, so that ``Admin`` and ``admin `` share the count of ``admin``.
    """
    return unicodedata.normalize("NFKC", username[:MAX_USERNAME_CHARS]).strip().casefold()


def _buckets(request: HttpRequest) -> list[tuple[str, str]]:
    buckets = [(CLIENT_GROUP, client_bucket(request))]
    username = request.POST.get(USERNAME_FIELD, "")
    if isinstance(username, str) and (bucket := username_bucket(username)):
        buckets.append((USERNAME_GROUP, bucket))
    return buckets


def _reserve(request: HttpRequest, buckets: list[tuple[str, str]], rate: str) -> int | None:
    """Count this attempt for every bucket; seconds to refuse it for, or None to let it in.

    Attempts are counted as they arrive and successful logins are counted apart: the failures
    of a window are its attempts less its successes. So attempts sent at once are counted
    before any of them is answered, and no burst gets more than the limit past the check.
    """
    waits = []
    for group, bucket in buckets:
        attempts = bucket_usage(request, f"{group}.attempts", bucket, rate, increment=True)
        if attempts is None:  # django-ratelimit turned off, or told to fail open
            continue
        if attempts["time_left"] < 0:  # django-ratelimit's mark of a failed cache operation
            if (wait := unknown_count_wait()) is not None:
                waits.append(wait)
            continue
        successes = bucket_usage(request, f"{group}.successes", bucket, rate, increment=False)
        succeeded = successes["count"] if successes and successes["time_left"] >= 0 else 0
        # The window's earlier attempts that did not log anyone in, answered or not yet.
        if attempts["count"] - 1 - succeeded >= attempts["limit"]:
            # django-ratelimit's window still holds the second it ends at: one more.
            waits.append(int(attempts["time_left"]) + 1)
    return max(waits, default=None)


def _count_success(request: HttpRequest, buckets: list[tuple[str, str]], rate: str) -> None:
    for group, bucket in buckets:
        bucket_usage(request, f"{group}.successes", bucket, rate, increment=True)


def _too_many_attempts(wait: int) -> HttpResponse:
    response = HttpResponse(REFUSAL_TEXT, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(wait)
    add_never_cache_headers(response)
    return response


class AdminLoginRateLimitMiddleware:
    """``ENTRA_AUTH["ADMIN_LOGIN_RATE_LIMIT"]`` failed admin logins per client and username.

    Only POSTs to the admin's login page are looked at; every other request passes untouched.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rate = entra_settings.ADMIN_LOGIN_RATE_LIMIT
        if not rate or request.method != "POST" or request.path != admin_login_path():
            return self.get_response(request)
        buckets = _buckets(request)
        wait = _reserve(request, buckets, rate)
        if wait is not None:
            rate_limited.send_robust(
                sender=type(self), request=request, reason=ADMIN_LOGIN_RATE_LIMIT
            )
            return _too_many_attempts(wait)
        attempt = _Attempt()
        setattr(request, _ATTEMPT_ATTRIBUTE, attempt)
        try:
            response = self.get_response(request)
        finally:
            delattr(request, _ATTEMPT_ATTRIBUTE)
        if attempt.succeeded:
            _count_success(request, buckets, rate)
        return response
