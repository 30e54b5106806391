"""``manage.py quickstart``: print how to get a development token and call the sample API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from entra_auth import entra_settings
from payments.demo import DEMO_TENANT_A

GUIDE = """
The sample API runs at {base} on the embedded default: SQLite, local-memory cache and the
development token issuer (development tokens are trusted because DEBUG is on).

In another terminal, from this folder:

  export TOKEN=$(DJANGO_DEBUG=1 ENTRA_DEV_ISSUER=1 .venv/bin/python manage.py entra_dev_token \\
      --tenant {tenant} --scope Payments.Read --scope Payments.Write)
  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/me/     # 200: the caller as the API sees it
  curl -si {base}/api/me/                                      # 401 with WWW-Authenticate: Bearer
{docs}
docs/sample.md has the full walk-through.
"""
DOCS = """
Or in a browser: {base}/api/docs/ lists every operation with the scopes it needs;
Authorize, paste the token (echo $TOKEN) under developmentToken, then Try it out.
"""


class Command(BaseCommand):
    help = "Print how to get a development token and call the sample API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        if not entra_settings.dev_issuer_trusted:
            self.stderr.write(
                "Development tokens are not trusted: set DJANGO_DEBUG=1 ENTRA_DEV_ISSUER=1."
            )
        base = options["base_url"].rstrip("/")
        docs = DOCS.format(base=base) if settings.OPENAPI_ENABLED else ""
        self.stdout.write(GUIDE.format(base=base, tenant=DEMO_TENANT_A, docs=docs))
