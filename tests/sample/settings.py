"""Settings of the sample service's tests: the project's, with DEBUG off and Entra pointed at
the fake server. Run with ``pytest --ds=tests.sample.settings tests/sample``.

The fake server's address is known only at run time: the ``fake_entra`` fixture sets
``ENTRA_AUTH["INSTANCE"]`` (a ``setting_changed`` reload).
"""

import os

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
)
os.environ.setdefault("DJANGO_DEBUG", "0")

from project.settings import *  # noqa: F403

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Refunds need no step-up unless a test asks for one (tests/sample/payments/test_step_up.py),
# whatever the environment running the tests says.
PAYMENTS_REFUND_AUTH_CONTEXT = None
ENTRA_AUTH = {
    "INSTANCE": "http://127.0.0.1:9/",
    "TENANT_ID": "6b1f0a52-1c1d-4d2e-9a43-0a1a2b3c4d5e",
    "CLIENT_ID": "3c5a7e9b-1d2f-4a6b-8c0d-e1f2a3b4c5d6",
    "API_RATE_LIMIT": None,
    "AUTH_FAILURE_RATE_LIMIT": None,
}
# Tests run without `collectstatic`: WhiteNoise looks static files up per request instead of
# indexing STATIC_ROOT at start-up (tests/sample/project/test_static_files.py collects them).
WHITENOISE_AUTOREFRESH = True
