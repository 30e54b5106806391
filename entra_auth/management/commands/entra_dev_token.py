"""``manage.py entra_dev_token``: print an access token signed by the development issuer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from entra_auth.conf import entra_settings
from entra_auth.dev_issuer import DEV_OTHER_AUDIENCE, mint_token, parse_lifetime
from entra_auth.permissions import AUTH_CONTEXT_ID
from entra_auth.tokens import Expired, NotYetValid, WrongAudience

# How far beyond the accepted clock skew a refused token's times lie.
REFUSED_MARGIN_S = 60 * 60
# What the API answers to each token minted to be refused (401, error="invalid_token"), by
# the option's name, which is the refusal's code.
REFUSALS = {error.code: error.detail for error in (Expired, NotYetValid, WrongAudience)}


class Command(BaseCommand):
    help = (
        "Print a development access token. The API trusts it only with "
        "ENTRA_DEV_ISSUER=1 and DEBUG on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant ID (GUID) of the caller")
        parser.add_argument(
            "--scope", action="append", default=[], help="delegated scope; repeatable"
        )
        parser.add_argument("--role", action="append", default=[], help="app role; repeatable")
        parser.add_argument(
            "--acrs",
            action="append",
            default=[],
            metavar="CONTEXT",
            help="Conditional Access authentication context the sign-in satisfied, e.g. c1; "
            "repeatable",
        )
        parser.add_argument(
            "--app-only", action="store_true", help="an application (client credentials) token"
        )
        parser.add_argument(
            "--oid", help="object ID (GUID) of the caller; stable per tenant by default"
        )
        parser.add_argument("--expires", default="1h", help="lifetime, e.g. 30m, 1h (at most 1d)")
        refused = parser.add_mutually_exclusive_group()
        refused.add_argument(
            "--expired",
            action="store_true",
            help="a token that expired an hour beyond the accepted clock skew (refused)",
        )
        refused.add_argument(
            "--not-yet-valid",
            action="store_true",
            help="a token valid from an hour beyond the accepted clock skew (refused)",
        )
        refused.add_argument(
            "--wrong-audience",
            action="store_true",
            help=f"a token for another API, aud {DEV_OTHER_AUDIENCE} (refused)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("tenant", "oid"):
            if options[name] is not None:
                try:
                    uuid.UUID(options[name])
                except ValueError:
                    raise CommandError(f"--{name} must be a GUID") from None
        try:
            lifetime_s = parse_lifetime(options["expires"])
        except ValueError as exc:
            raise CommandError(f"--expires: {exc}") from None
        if options["app_only"] and options["scope"]:
            raise CommandError("app-only tokens carry roles, not scopes: drop --scope")
        if not options["scope"] and not options["role"]:
            raise CommandError("give at least one --scope or --role")
        if options["app_only"] and options["acrs"]:
            raise CommandError(
                "app-only tokens carry no authentication context (Conditional Access applies "
                "to users' sign-ins): drop --acrs"
            )
        for context in options["acrs"]:
            if not AUTH_CONTEXT_ID.fullmatch(context):
                raise CommandError(
                    "--acrs must be an authentication context id such as c1 (letters, digits, "
                    "'.', '_' or '-')"
                )
        if not entra_settings.dev_issuer_trusted:
            self.stderr.write(
                "warning: this server does not trust development tokens "
                "(set ENTRA_DEV_ISSUER=1 and DJANGO_DEBUG=1)."
            )
        now = time.time()
        beyond_skew_s = float(entra_settings.CLOCK_SKEW) + REFUSED_MARGIN_S
        if options["expired"]:
            now -= lifetime_s + beyond_skew_s
        elif options["not_yet_valid"]:
            now += beyond_skew_s
        refusal = next((name for name in REFUSALS if options[name]), None)
        if refusal is not None and entra_settings.dev_issuer_trusted:
            self.stderr.write(
                f"note: a development-issuer token made to be refused: the API answers 401, "
                f'"{REFUSALS[refusal]}"'
            )
        self.stdout.write(
            mint_token(
                tenant_id=options["tenant"],
                scopes=options["scope"],
                roles=options["role"],
                app_only=options["app_only"],
                lifetime_s=lifetime_s,
                object_id=options["oid"],
                now=now,
                auth_contexts=options["acrs"],
                audience=DEV_OTHER_AUDIENCE if options["wrong_audience"] else None,
            )
        )
