"""A production deployment of the library tests' stack, for ``django check --deploy``.

``tests.settings`` (DEBUG off, HSTS, secure cookies) with real Entra ID, a shared cache and the
library's default rate limits. The environment gives what differs per deployment:
``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``, ``REDIS_URL``, ``ENTRA_TENANT_ID``,
``ENTRA_CLIENT_ID`` and ``ENTRA_DEV_ISSUER`` (``1`` turns the development issuer on).
"""

import os

from tests.settings import *  # noqa: F403

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
ENTRA_AUTH = {
    "INSTANCE": "https://login.microsoftonline.com/",
    "TENANT_ID": os.environ["ENTRA_TENANT_ID"],
    "CLIENT_ID": os.environ["ENTRA_CLIENT_ID"],
    "DEV_ISSUER": os.environ.get("ENTRA_DEV_ISSUER") == "1",
}
