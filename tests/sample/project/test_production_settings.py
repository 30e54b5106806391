"""The sample's settings with DEBUG off, as production reads them from the environment."""

from __future__ import annotations

import json
import os

from tests.subprocess_support import run_python

PROBE = """
import json
from django.conf import settings
import django
django.setup()
print(json.dumps({
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": settings.SESSION_COOKIE_HTTPONLY,
    "validators": [v["NAME"].rsplit(".", 1)[-1] for v in settings.AUTH_PASSWORD_VALIDATORS],
    "admin_login_limited": any(
        m.endswith("AdminLoginRateLimitMiddleware") for m in settings.MIDDLEWARE
    ),
}))
"""


def test_production_settings_secure_the_admin_cookies_passwords_and_logins():
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
    }
    result = run_python(["-c", PROBE], env=environment, check=True, timeout=60)

    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["SESSION_COOKIE_SECURE"] and found["CSRF_COOKIE_SECURE"]
    assert found["SESSION_COOKIE_HTTPONLY"]
    assert found["validators"] == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    ]
    assert found["admin_login_limited"]
