"""System checks for ``ENTRA_AUTH``: the exact ``entra_auth.*`` ids for each misconfiguration."""

from __future__ import annotations

import os
import secrets
import subprocess
from typing import Any

import pytest
from django.core.checks import run_checks

from tests.fake_entra import CLIENT_ID, TENANT_A, TENANT_B
from tests.subprocess_support import run_python

AUTHENTICATION_CLASS = "entra_auth.authentication.EntraJWTAuthentication"
SESSION_AUTHENTICATION = "rest_framework.authentication.SessionAuthentication"
SINGLE_TENANT = {"TENANT_ID": TENANT_A, "CLIENT_ID": CLIENT_ID}
MULTI_TENANT = {"TENANT_ID": "organizations", "CLIENT_ID": CLIENT_ID}
CHECK_TIMEOUT_S = 120


SHARED_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }
}


@pytest.fixture
def production(settings: Any) -> Any:
    """DEBUG off and a shared cache, as in production (checks never connect to it)."""
    settings.DEBUG = False
    settings.CACHES = SHARED_CACHE
    return settings


def entra_check_ids(*, deploy: bool = False) -> list[str]:
    """The ``entra_auth`` message ids, in order, that ``manage.py check`` would report."""
    if deploy:
        messages = run_checks(include_deployment_checks=True)
    else:
        messages = run_checks(tags=["security"])
    return [message.id for message in messages if message.id.startswith("entra_auth.")]


@pytest.mark.parametrize(
    ("entra_auth", "debug", "expected"),
    [
        pytest.param({}, False, ["entra_auth.E002"], id="nothing-configured"),
        pytest.param(
            {"DEV_ISSUER": True},
            False,
            ["entra_auth.E001", "entra_auth.E002"],
            id="dev-issuer-with-debug-off",
        ),
        pytest.param({"DEV_ISSUER": True}, True, [], id="dev-issuer-with-debug-on"),
        pytest.param(
            {"DEV_ISSUER": True, "DEV_ISSUER_WITHOUT_DEBUG": True},
            False,
            [],
            id="dev-issuer-explicitly-trusted-without-debug",
        ),
        pytest.param({"TENANT_ID": TENANT_A}, False, ["entra_auth.E003"], id="no-client-id"),
        pytest.param(
            {"TENANT_ID": TENANT_A, "AUDIENCES": []},
            False,
            ["entra_auth.E003"],
            id="empty-audiences-and-no-client-id",
        ),
        pytest.param(MULTI_TENANT, False, ["entra_auth.E004"], id="organizations-no-tenants"),
        pytest.param(
            {**MULTI_TENANT, "TENANT_ID": "common"},
            False,
            ["entra_auth.E004"],
            id="common-no-tenants",
        ),
        pytest.param(
            {**MULTI_TENANT, "ALLOWED_TENANTS": ["*"]},
            False,
            ["entra_auth.W005"],
            id="any-tenant-opt-in",
        ),
        pytest.param(
            {**MULTI_TENANT, "ALLOWED_TENANTS": [TENANT_A, "contoso.onmicrosoft.com"]},
            False,
            ["entra_auth.E006"],
            id="tenant-domain-name-instead-of-guid",
        ),
        pytest.param(
            {**SINGLE_TENANT, "ALLOWED_TENANTS": [TENANT_B]},
            False,
            ["entra_auth.W007"],
            id="allowed-tenants-for-a-single-tenant-api",
        ),
        pytest.param(
            {**SINGLE_TENANT, "INSTANCE": "http://login.example.com/"},
            False,
            ["entra_auth.E008"],
            id="plain-http-instance",
        ),
        pytest.param(
            {**SINGLE_TENANT, "INSTANCE": "ftp://login.example.com/"},
            False,
            ["entra_auth.E008"],
            id="non-http-instance",
        ),
        pytest.param(
            {**SINGLE_TENANT, "INSTANCE": "login.microsoftonline.com"},
            False,
            ["entra_auth.E008"],
            id="instance-without-scheme",
        ),
        pytest.param(
            {**SINGLE_TENANT, "ACCEPTED_TOKEN_VERSIONS": ["2.0", "3.0"]},
            False,
            ["entra_auth.E009"],
            id="unknown-token-version",
        ),
        pytest.param(
            {**SINGLE_TENANT, "ACCEPTED_TOKEN_VERSIONS": []},
            False,
            ["entra_auth.E009"],
            id="no-token-version",
        ),
        pytest.param(
            {**SINGLE_TENANT, "CLOCK_SKEW": -1}, False, ["entra_auth.E010"], id="negative-skew"
        ),
        pytest.param(
            {**SINGLE_TENANT, "CLOCK_SKEW": 601}, False, ["entra_auth.E010"], id="skew-too-large"
        ),
        pytest.param(
            # A value of the wrong type is E022, before any range is looked at.
            {**SINGLE_TENANT, "CLOCK_SKEW": "300"},
            False,
            ["entra_auth.E022"],
            id="skew-string",
        ),
        pytest.param(
            {"TENANT_ID": TENANT_A, "AUDIENCES": [f"api://{CLIENT_ID}"], "APP_SPECIFIC_KEYS": True},
            False,
            ["entra_auth.E011"],
            id="app-specific-keys-without-client-id",
        ),
        pytest.param(
            {**SINGLE_TENANT, "API_RATE_LIMIT": "300/minute"},
            False,
            ["entra_auth.E017"],
            id="caller-rate-not-a-rate",
        ),
        pytest.param(
            {**SINGLE_TENANT, "AUTH_FAILURE_RATE_LIMIT": "0/m"},
            False,
            ["entra_auth.E017"],
            id="failure-rate-of-zero",
        ),
        pytest.param(
            {**SINGLE_TENANT, "API_RATE_LIMIT_BATCH": 0},
            False,
            ["entra_auth.E018"],
            id="batch-of-zero",
        ),
        pytest.param(
            {**SINGLE_TENANT, "API_RATE_LIMIT_BATCH": "10"},
            False,
            ["entra_auth.E022"],
            id="batch-string",
        ),
    ],
)
def test_misconfiguration_is_reported_with_its_check_id(
    settings: Any, entra_auth: dict[str, Any], debug: bool, expected: list[str]
) -> None:
    settings.DEBUG = debug
    settings.ENTRA_AUTH = entra_auth

    assert entra_check_ids() == expected


# Deployment checks may query the database (Django 6.x does).
@pytest.mark.django_db
@pytest.mark.parametrize(
    "entra_auth",
    [
        pytest.param(SINGLE_TENANT, id="single-tenant"),
        pytest.param({**MULTI_TENANT, "ALLOWED_TENANTS": [TENANT_A, TENANT_B]}, id="multi-tenant"),
        pytest.param({**SINGLE_TENANT, "AUDIENCES": ["api://payments"]}, id="explicit-audiences"),
        pytest.param({**SINGLE_TENANT, "APP_SPECIFIC_KEYS": True}, id="app-specific-keys"),
        pytest.param({**SINGLE_TENANT, "CLOCK_SKEW": 0}, id="no-skew"),
        pytest.param({**SINGLE_TENANT, "CLOCK_SKEW": 600}, id="largest-sensible-skew"),
        pytest.param({**SINGLE_TENANT, "ACCEPTED_TOKEN_VERSIONS": ["2.0"]}, id="v2-only"),
        pytest.param({**SINGLE_TENANT, "INSTANCE": "http://127.0.0.1:8080/"}, id="loopback-ipv4"),
        pytest.param({**SINGLE_TENANT, "INSTANCE": "http://localhost:8080"}, id="localhost"),
        pytest.param({**SINGLE_TENANT, "INSTANCE": "http://[::1]:8080/"}, id="loopback-ipv6"),
        pytest.param(
            {**SINGLE_TENANT, "API_RATE_LIMIT": None, "AUTH_FAILURE_RATE_LIMIT": None},
            id="rate-limits-off",
        ),
        pytest.param(
            {**SINGLE_TENANT, "API_RATE_LIMIT": "50/10s", "API_RATE_LIMIT_BATCH": 1},
            id="exact-caller-counts",
        ),
    ],
)
def test_valid_production_configuration_reports_no_entra_message(
    production: Any, entra_auth: dict[str, Any]
) -> None:
    production.ENTRA_AUTH = entra_auth

    assert entra_check_ids() == []
    assert entra_check_ids(deploy=True) == []


def with_authentication_classes(settings: Any, classes: list[str]) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": classes,
    }


def test_entra_authentication_not_first_is_a_warning(settings: Any) -> None:
    settings.ENTRA_AUTH = SINGLE_TENANT
    with_authentication_classes(settings, [SESSION_AUTHENTICATION, AUTHENTICATION_CLASS])

    assert entra_check_ids() == ["entra_auth.W012"]


@pytest.mark.parametrize(
    "classes",
    [
        pytest.param([AUTHENTICATION_CLASS, SESSION_AUTHENTICATION], id="entra-first"),
        pytest.param([SESSION_AUTHENTICATION], id="entra-not-used"),
    ],
)
def test_entra_authentication_first_or_absent_is_not_reported(
    settings: Any, classes: list[str]
) -> None:
    settings.ENTRA_AUTH = SINGLE_TENANT
    with_authentication_classes(settings, classes)

    assert entra_check_ids() == []


# Deployment checks may query the database (Django 6.x does).
@pytest.mark.django_db
def test_dev_issuer_trusted_without_debug_is_a_deployment_error(production: Any) -> None:
    production.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_WITHOUT_DEBUG": True}

    assert entra_check_ids() == []
    assert entra_check_ids(deploy=True) == ["entra_auth.E013"]


# Deployment checks may query the database (Django 6.x does).
@pytest.mark.django_db
def test_dev_issuer_with_debug_on_is_not_a_deployment_error(settings: Any) -> None:
    settings.DEBUG = True
    settings.CACHES = SHARED_CACHE
    settings.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_WITHOUT_DEBUG": True}

    assert entra_check_ids(deploy=True) == []


# -- manage.py check --deploy in a production-like environment ------------------------------


def production_environment(**extra: str) -> dict[str, str]:
    """The process environment minus any Django/Entra settings, plus a production config
    (``tests.deploy_settings``: the library tests' stack, nothing of the sample)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "ENTRA_", "API_"))
        and name not in {"DATABASE_URL", "REDIS_URL"}
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "tests.deploy_settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "ENTRA_TENANT_ID": TENANT_A,
        "ENTRA_CLIENT_ID": CLIENT_ID,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        **extra,
    }


def manage_py_check_deploy(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python(
        ["-m", "django", "check", "--deploy"], env=environment, timeout=CHECK_TIMEOUT_S
    )


# Deployment checks may query the database (Django 6.x does).
@pytest.mark.django_db
def test_rate_limits_on_a_process_local_cache_are_a_deployment_warning(production: Any) -> None:
    production.ENTRA_AUTH = SINGLE_TENANT
    production.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    assert entra_check_ids(deploy=True) == ["entra_auth.W016"]


def test_check_deploy_of_a_production_configuration_reports_no_entra_message() -> None:
    result = manage_py_check_deploy(production_environment())

    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "entra_auth." not in output, output
    assert result.returncode == 0, output


def test_check_deploy_with_the_dev_issuer_and_debug_off_fails_with_e001() -> None:
    result = manage_py_check_deploy(production_environment(ENTRA_DEV_ISSUER="1"))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "entra_auth.E001" in output, output
    assert "Traceback" not in output, output
