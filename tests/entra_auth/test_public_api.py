"""The public API: every name resolves, the core needs no optional package, and names that
moved keep working at their old paths with a deprecation warning."""

from __future__ import annotations

import importlib

import pytest

import entra_auth
from tests.subprocess_support import run_python

SUBPROCESS_TIMEOUT_S = 120

# Settings with nothing optional installed, so that an import of django-csp, redis,
# prometheus-client or drf-spectacular could only come from entra_auth's core itself.
CORE_IMPORT_PROBE = """
import sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework",
                    "entra_auth"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ENTRA_AUTH={"TENANT_ID": "6b1f0a52-1c1d-4d2e-9a43-0a1a2b3c4d5e", "CLIENT_ID": "x"},
)
django.setup()
import entra_auth.audit, entra_auth.authentication, entra_auth.checks, entra_auth.exceptions
import entra_auth.middleware, entra_auth.permissions, entra_auth.tenancy, entra_auth.throttling
import entra_auth.keys, entra_auth.observe, entra_auth.validation
optional_packages = {"csp", "redis", "prometheus_client", "drf_spectacular"}
optional = sorted(name for name in sys.modules if name.split(".")[0] in optional_packages)
print(",".join(optional))
"""


def test_every_public_name_resolves():
    for name in entra_auth.__all__:
        assert getattr(entra_auth, name) is not None, name
    assert entra_auth.__version__


def test_importing_the_core_imports_no_optional_package():
    result = run_python(["-c", CORE_IMPORT_PROBE], timeout=SUBPROCESS_TIMEOUT_S)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("old_module", "name", "new_module"),
    [
        ("entra_auth.middleware", "JsonErrorMiddleware", "entra_auth.http.errors"),
        ("entra_auth.middleware", "ContentSecurityPolicyMiddleware", "entra_auth.http.csp"),
        ("entra_auth.logging", "RequestLogMiddleware", "entra_auth.http.request_log"),
        ("entra_auth.health", "live", "entra_auth.http.health"),
        ("entra_auth.health", "ready", "entra_auth.http.health"),
        ("entra_auth.parsers", "BoundedJSONParser", "entra_auth.http.parsers"),
        ("entra_auth", "JsonErrorMiddleware", "entra_auth.http.errors"),
    ],
)
def test_a_moved_name_still_works_at_its_old_path_with_a_warning(old_module, name, new_module):
    with pytest.warns(DeprecationWarning, match=f"moved to {new_module}.{name}"):
        old = getattr(importlib.import_module(old_module), name)

    assert old is getattr(importlib.import_module(new_module), name)


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError):
        importlib.import_module("entra_auth.middleware").NoSuchMiddleware  # noqa: B018
