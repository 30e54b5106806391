"""Failed admin logins: limited per client address and per username, before any password check.

Requests go through the library test settings' whole stack (``tests.settings``), with
``AdminLoginRateLimitMiddleware`` after ``AuthenticationMiddleware``. django-ratelimit's clock
is replaced by one the tests move by hand, so windows open and close deterministically.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import django_ratelimit.core
import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import caches
from django.http import HttpResponse
from django.urls import path

from entra_auth import checks
from entra_auth.audit import AuditEvent, EventType, Outcome, Reason
from entra_auth.http.admin_login import (
    ADMIN_LOGIN_RATE_LIMIT,
    AdminLoginRateLimitMiddleware,
    admin_login_path,
)

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
LIMIT = 5
RATE = f"{LIMIT}/m"
WINDOW_S = 60
ADDRESS = "198.51.100.40"
OTHER_ADDRESS = "203.0.113.77"
USERNAME = "root-operator"
PASSWORD = "correct horse battery staple"
WRONG = "wrong password"
FAILED_FORM = 200  # the admin shows its login form again with an error
LOGGED_IN = 302  # the admin redirects to the page asked for


class Clock:
    """Stands in for the ``time`` module django-ratelimit reads its windows from."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock(1_700_000_000.0)
    monkeypatch.setattr(django_ratelimit.core, "time", fixed)
    return fixed


@pytest.fixture
def limit(settings: Any, clock: Clock) -> Iterator[Any]:
    """``ENTRA_AUTH["ADMIN_LOGIN_RATE_LIMIT"] = "5/m"``, counted from empty caches."""

    def apply(**overrides: Any) -> None:
        settings.ENTRA_AUTH = {
            **settings.ENTRA_AUTH,
            "ADMIN_LOGIN_RATE_LIMIT": RATE,
            **overrides,
        }

    for cache in caches.all():
        cache.clear()
    apply()
    yield apply
    for cache in caches.all():
        cache.clear()


@pytest.fixture
def operator(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_superuser(USERNAME, "ops@example.com", PASSWORD)


@pytest.fixture
def password_checks() -> Iterator[list[str]]:
    """Every password Django checks from now on: ``failed`` or ``logged_in``."""
    seen: list[str] = []

    def failed(sender: Any, **kwargs: Any) -> None:
        seen.append("failed")

    def logged_in(sender: Any, **kwargs: Any) -> None:
        seen.append("logged_in")

    user_login_failed.connect(failed, dispatch_uid="test_admin_login.failed")
    user_logged_in.connect(logged_in, dispatch_uid="test_admin_login.logged_in")
    yield seen
    user_login_failed.disconnect(dispatch_uid="test_admin_login.failed")
    user_logged_in.disconnect(dispatch_uid="test_admin_login.logged_in")


def log_in(
    client: Any,
    username: str = USERNAME,
    password: str = WRONG,
    address: str = ADDRESS,
    login: str = LOGIN,
) -> Any:
    return client.post(
        f"{login}?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def fail(client: Any, times: int, **kwargs: Any) -> list[int]:
    return [log_in(client, **kwargs).status_code for _ in range(times)]


def assert_locked_out(response: Any) -> int:
    """A 429 with an honest ``Retry-After`` and no session; returns the wait in seconds."""
    assert response.status_code == 429, response.content
    wait = int(response["Retry-After"])
    assert 1 <= wait <= WINDOW_S
    assert "no-store" in response["Cache-Control"]
    assert "_auth_user_id" not in response.wsgi_request.session
    return wait


def test_after_the_limit_even_the_right_password_is_refused_unchecked(
    limit, operator, client, password_checks
):
    assert fail(client, LIMIT) == [FAILED_FORM] * LIMIT
    assert password_checks == ["failed"] * LIMIT

    assert_locked_out(log_in(client, password=PASSWORD))
    assert_locked_out(log_in(client, password=WRONG))
    # Neither password reached the authentication backend.
    assert password_checks == ["failed"] * LIMIT


def test_the_lock_lifts_when_retry_after_has_passed(limit, operator, client, clock):
    fail(client, LIMIT)
    wait = assert_locked_out(log_in(client, password=PASSWORD))

    clock.advance(wait - 1)
    assert_locked_out(log_in(client, password=PASSWORD))
    clock.advance(1)
    assert log_in(client, password=PASSWORD).status_code == LOGGED_IN


def test_a_username_is_locked_across_client_addresses(limit, operator, client, django_user_model):
    django_user_model.objects.create_superuser("colleague", "c@example.com", PASSWORD)
    addresses = [f"192.0.2.{host}" for host in range(1, LIMIT + 1)]

    assert [log_in(client, address=address).status_code for address in addresses] == [
        FAILED_FORM
    ] * LIMIT

    assert_locked_out(log_in(client, password=PASSWORD, address="192.0.2.200"))
    # Another account from those same addresses still logs in.
    assert log_in(client, "colleague", PASSWORD, address=addresses[0]).status_code == LOGGED_IN


def test_a_client_address_is_locked_across_usernames(limit, operator, client):
    guesses = [f"guess-{number}" for number in range(LIMIT)]

    assert [log_in(client, username).status_code for username in guesses] == [FAILED_FORM] * LIMIT

    assert_locked_out(log_in(client, USERNAME, PASSWORD))
    # The same account from another address is not locked: its own count is zero.
    assert log_in(client, USERNAME, PASSWORD, address=OTHER_ADDRESS).status_code == LOGGED_IN


def test_ways_of_writing_a_username_share_its_count(limit, operator, client):
    # Case, surrounding spaces and compatibility forms (full-width letters) aside: one name.
    spellings = [
        "Root-Operator",
        " root-operator",
        "ROOT-OPERATOR ",
        "\uff52oot-operator",
        USERNAME,
    ]
    addresses = [f"192.0.2.{host}" for host in range(1, LIMIT + 1)]

    for spelling, address in zip(spellings, addresses, strict=True):
        assert log_in(client, spelling, address=address).status_code == FAILED_FORM

    assert_locked_out(log_in(client, USERNAME, PASSWORD, address=OTHER_ADDRESS))


def test_an_ipv6_client_is_counted_by_its_64_prefix(limit, operator, client):
    addresses = [f"2001:db8:1:2::{host:x}" for host in range(1, LIMIT + 1)]

    for number, address in enumerate(addresses):
        assert log_in(client, f"guess-{number}", address=address).status_code == FAILED_FORM

    assert_locked_out(log_in(client, "another-guess", address="2001:db8:1:2:ffff::1"))
    assert log_in(client, "another-guess", address="2001:db8:1:3::1").status_code == FAILED_FORM


def test_successful_logins_do_not_count(limit, operator, client):
    assert fail(client, LIMIT - 1) == [FAILED_FORM] * (LIMIT - 1)
    for _ in range(2 * LIMIT):
        assert log_in(client, password=PASSWORD).status_code == LOGGED_IN
        client.logout()

    assert fail(client, 1) == [FAILED_FORM]
    assert_locked_out(log_in(client, password=PASSWORD))


def test_attempts_sent_at_once_are_counted_before_any_is_answered(limit, rf):
    pending = [
        rf.post(LOGIN, {"username": USERNAME, "password": WRONG}, REMOTE_ADDR=ADDRESS)
        for _ in range(2 * LIMIT)
    ]
    checked: list[int] = []
    answers: list[int] = []

    def login_view(request: Any) -> HttpResponse:
        checked.append(len(checked) + 1)
        # The next attempt arrives while this one's password is still being checked.
        if pending:
            answers.append(middleware(pending.pop(0)).status_code)
        return HttpResponse("the login form again", status=FAILED_FORM)

    middleware = AdminLoginRateLimitMiddleware(login_view)
    answers.append(middleware(pending.pop(0)).status_code)

    assert checked == list(range(1, LIMIT + 1))
    assert answers == [429] + [FAILED_FORM] * LIMIT


def test_a_non_staff_account_counts_as_a_failure(limit, client, django_user_model):
    django_user_model.objects.create_user("clerk", "clerk@example.com", PASSWORD)

    assert fail(client, LIMIT, username="clerk", password=PASSWORD) == [FAILED_FORM] * LIMIT

    assert_locked_out(log_in(client, "clerk", PASSWORD))


def test_other_requests_are_not_affected_by_a_lock(limit, operator, client):
    fail(client, LIMIT)
    assert_locked_out(log_in(client, password=PASSWORD))

    assert client.get(LOGIN, REMOTE_ADDR=ADDRESS).status_code == 200
    assert client.post("/api/me/", {}, REMOTE_ADDR=ADDRESS).status_code == 401
    assert client.post("/admin/logout/", REMOTE_ADDR=ADDRESS).status_code != 429
    assert log_in(client, "somebody-else", address=OTHER_ADDRESS).status_code == FAILED_FORM


def test_an_unknown_username_gets_the_same_answers_as_a_real_one(limit, operator, client):
    real = [log_in(client, USERNAME, address=ADDRESS) for _ in range(LIMIT + 1)]
    unknown = [log_in(client, "nobody-here", address=OTHER_ADDRESS) for _ in range(LIMIT + 1)]

    assert [r.status_code for r in real] == [r.status_code for r in unknown]
    assert real[-1].status_code == unknown[-1].status_code == 429
    assert real[-1].content == unknown[-1].content
    assert sorted(dict(real[-1].items())) == sorted(dict(unknown[-1].items()))


def test_the_limit_is_off_with_none(limit, operator, client):
    limit(ADMIN_LOGIN_RATE_LIMIT=None)

    assert fail(client, 3 * LIMIT) == [FAILED_FORM] * (3 * LIMIT)
    assert log_in(client, password=PASSWORD).status_code == LOGGED_IN


def test_each_refusal_is_audited_without_the_username(limit, operator, client):
    fail(client, LIMIT)
    assert_locked_out(log_in(client, password=PASSWORD, address=ADDRESS))

    event = AuditEvent.objects.get(event_type=EventType.RATE_LIMITED)
    assert (event.outcome, event.reason) == (Outcome.DENIED, Reason.ADMIN_LOGIN_RATE_LIMIT)
    assert event.reason == ADMIN_LOGIN_RATE_LIMIT
    assert (event.client_ip, event.method, event.path) == (ADDRESS, "POST", LOGIN)
    recorded = " ".join(str(value) for value in AuditEvent.objects.values().get().values())
    assert USERNAME not in recorded
    assert PASSWORD not in recorded


def test_with_the_cache_down_the_login_form_answers_by_default(
    limit, operator, client, cache_outage
):
    with cache_outage():
        assert log_in(client, password=PASSWORD).status_code == LOGGED_IN


def test_with_the_cache_down_and_fail_open_off_logins_are_refused(
    limit, operator, client, cache_outage, password_checks
):
    limit(RATE_LIMIT_FAIL_OPEN=False)

    with cache_outage():
        assert_locked_out(log_in(client, password=PASSWORD))

    assert password_checks == []


# An admin routed elsewhere, and a plain view where the admin usually is.
def _plain_view(request: Any) -> HttpResponse:
    return HttpResponse("not the admin")


@pytest.fixture
def urlconf(settings: Any, monkeypatch: pytest.MonkeyPatch):
    """``urlconf(*patterns)``: make a URLconf of ``patterns`` the project's for one test."""

    def install(*patterns: Any) -> None:
        name = "tests.entra_auth.admin_login_urls"
        module = ModuleType(name)
        module.urlpatterns = list(patterns)
        monkeypatch.setitem(sys.modules, name, module)
        settings.ROOT_URLCONF = name

    return install


def test_an_admin_routed_elsewhere_is_limited_there(limit, operator, client, urlconf):
    urlconf(path("backoffice/", admin.site.urls), path("admin/login/", _plain_view))

    assert admin_login_path() == "/backoffice/login/"
    statuses = [log_in(client, login="/backoffice/login/").status_code for _ in range(LIMIT)]
    assert statuses == [FAILED_FORM] * LIMIT
    assert_locked_out(log_in(client, password=PASSWORD, login="/backoffice/login/"))
    # The old path is no longer the admin's: nothing there is counted or refused.
    assert {log_in(client).status_code for _ in range(2 * LIMIT)} == {200}


def test_a_project_without_the_admin_is_left_alone(limit, client, urlconf):
    urlconf(path("admin/login/", _plain_view))

    assert admin_login_path() is None
    assert {log_in(client).status_code for _ in range(2 * LIMIT)} == {200}


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        pytest.param("5/minute", ["entra_auth.E017"], id="not-a-rate"),
        pytest.param("0/m", ["entra_auth.E017"], id="zero"),
        pytest.param(5, ["entra_auth.E022"], id="not-a-string"),
        pytest.param("10/5m", [], id="multiplied-unit"),
        pytest.param(None, [], id="off"),
    ],
)
def test_the_rate_is_checked_at_start_up(settings, rate, expected):
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "ADMIN_LOGIN_RATE_LIMIT": rate}

    messages = [*checks.check_settings_shape(), *checks.check_rate_limits()]

    assert [message.id for message in messages] == expected
    assert all("ADMIN_LOGIN_RATE_LIMIT" in message.msg for message in messages)
