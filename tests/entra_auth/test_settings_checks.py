"""``manage.py check`` refuses an ``ENTRA_AUTH`` it cannot trust, and names what the project
must add: unknown keys, wrong types, the middleware, the cache."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks

from entra_auth.conf import DEFAULTS, SETTING_TYPES, default_dev_key_file
from entra_auth.dev_issuer import key_file_path
from tests.fake_entra import CLIENT_ID, TENANT_A

SINGLE_TENANT = {"TENANT_ID": TENANT_A, "CLIENT_ID": CLIENT_ID}
# Two process-local caches: "default", and "shared" for ENTRA_AUTH's CACHE_ALIAS.
DEFAULT_AND_SHARED_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}


def entra_messages() -> list[Any]:
    return [m for m in run_checks(tags=["security"]) if m.id.startswith("entra_auth.")]


def entra_ids() -> list[str]:
    return [m.id for m in entra_messages()]


def test_every_setting_has_a_type_and_every_default_passes_it():
    assert set(SETTING_TYPES) == set(DEFAULTS)
    for name, (_description, accepts) in SETTING_TYPES.items():
        assert accepts(DEFAULTS[name]), name


def test_a_misspelt_key_fails_check_with_a_suggestion(settings):
    settings.ENTRA_AUTH = {**SINGLE_TENANT, "ALLOWED_TENANT": [TENANT_A]}

    [message] = entra_messages()

    assert message.id == "entra_auth.E021"
    assert "'ALLOWED_TENANT'" in str(message.msg)
    assert str(message.hint) == "Did you mean 'ALLOWED_TENANTS'?"


def test_an_unknown_key_with_nothing_close_points_at_the_reference(settings):
    settings.ENTRA_AUTH = {**SINGLE_TENANT, "FLUX_CAPACITOR": 1}

    [message] = entra_messages()

    assert message.id == "entra_auth.E021"
    assert "docs/configuration.md" in str(message.hint)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ALLOWED_TENANTS", TENANT_A),  # a string where a list belongs: read per character
        ("ALLOW_GUESTS", "0"),
        ("CLOCK_SKEW", "300"),
        ("API_RATE_LIMIT_BATCH", 2.5),
        ("KEY_CACHE_TTL", -1),
        ("HTTP_READ_TIMEOUT", 0),
        ("AUDIENCES", [CLIENT_ID, 42]),
        ("TENANT_ID", 42),
        ("DEV_ISSUER", 1),
    ],
)
def test_a_value_of_the_wrong_type_fails_check_naming_key_and_type(settings, key, value):
    settings.ENTRA_AUTH = {**SINGLE_TENANT, key: value}

    [message] = entra_messages()

    assert message.id == "entra_auth.E022"
    assert f"ENTRA_AUTH[{key!r}] must be {SETTING_TYPES[key][0]}" in str(message.msg)
    assert str(message.hint) == f"Its default is {DEFAULTS[key]!r}."


def test_entra_auth_that_is_not_a_dict_fails_check(settings):
    settings.ENTRA_AUTH = [("TENANT_ID", TENANT_A)]

    assert entra_ids() == ["entra_auth.E023"]


def test_a_well_formed_configuration_reports_nothing(settings):
    settings.ENTRA_AUTH = SINGLE_TENANT

    assert entra_ids() == []


def test_the_middleware_is_required_even_without_tenant_models(settings):
    settings.ENTRA_AUTH = SINGLE_TENANT
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("ContextMiddleware")]

    [message] = entra_messages()

    assert message.id == "entra_auth.E020"
    assert "'entra_auth.middleware.RequestContextMiddleware'" in str(message.hint)
    assert "MIDDLEWARE" in str(message.hint)


def test_a_cache_alias_missing_from_caches_fails_check(settings):
    settings.ENTRA_AUTH = {**SINGLE_TENANT, "CACHE_ALIAS": "shared"}
    settings.RATELIMIT_USE_CACHE = "shared"

    [message] = entra_messages()

    assert message.id == "entra_auth.E024"
    assert "CACHES" in str(message.msg)


def test_django_ratelimit_counting_in_another_cache_fails_check(settings):
    settings.CACHES = DEFAULT_AND_SHARED_CACHES
    settings.ENTRA_AUTH = {**SINGLE_TENANT, "CACHE_ALIAS": "shared"}

    [message] = entra_messages()

    assert message.id == "entra_auth.E025"
    assert str(message.hint) == "Set RATELIMIT_USE_CACHE = 'shared'."

    settings.RATELIMIT_USE_CACHE = "shared"
    assert entra_ids() == []


def test_without_the_failure_limit_django_ratelimits_cache_does_not_matter(settings):
    settings.CACHES = DEFAULT_AND_SHARED_CACHES
    settings.ENTRA_AUTH = {
        **SINGLE_TENANT,
        "CACHE_ALIAS": "shared",
        "AUTH_FAILURE_RATE_LIMIT": None,
        "ADMIN_LOGIN_RATE_LIMIT": None,
    }

    assert entra_ids() == []


def test_the_admin_login_limit_needs_django_ratelimit_in_the_same_cache_too(settings):
    settings.CACHES = DEFAULT_AND_SHARED_CACHES
    settings.ENTRA_AUTH = {
        **SINGLE_TENANT,
        "CACHE_ALIAS": "shared",
        "AUTH_FAILURE_RATE_LIMIT": None,
    }
    assert "entra_auth.http.admin_login.AdminLoginRateLimitMiddleware" in settings.MIDDLEWARE

    assert entra_ids() == ["entra_auth.E025"]


def test_hints_speak_of_settings_not_of_the_samples_environment(settings):
    settings.ENTRA_AUTH = {"DEV_ISSUER": True}
    settings.DEBUG = False

    hints = " ".join(str(message.hint) for message in entra_messages())

    assert "ENTRA_AUTH['" in hints
    for environment_variable in ("ENTRA_TENANT_ID", "ENTRA_DEV_ISSUER", "REDIS_URL"):
        assert environment_variable not in hints


def test_the_development_key_defaults_to_the_users_cache_directory(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings.ENTRA_AUTH = {"DEV_ISSUER": True}

    assert key_file_path() == default_dev_key_file() == tmp_path / "entra_auth" / "dev-key.pem"


def test_without_xdg_cache_home_the_key_goes_to_dot_cache_in_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert default_dev_key_file() == tmp_path / ".cache" / "entra_auth" / "dev-key.pem"
