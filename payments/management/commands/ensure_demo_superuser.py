"""``manage.py ensure_demo_superuser``: an admin login for the local demo (DEBUG only).

The password, generated or given, must pass ``AUTH_PASSWORD_VALIDATORS``; the command fails
with the validators' messages otherwise, and changes nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEMO_USERNAME = "admin"
DEMO_PASSWORD_BYTES = 12


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo superuser and print how to log into the admin. "
        "Refuses to run unless DEBUG is on: never a known login in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=DEMO_USERNAME)
        parser.add_argument(
            "--password", help="the password to set (default: a new random one on every run)"
        )
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "ensure_demo_superuser runs only with DEBUG on (DJANGO_DEBUG=1); in production "
                "use 'manage.py createsuperuser'."
            )
        generated = not options["password"]
        password = options["password"] or secrets.token_urlsafe(DEMO_PASSWORD_BYTES)
        user_model = get_user_model()
        lookup = {user_model.USERNAME_FIELD: options["username"]}
        user = user_model.objects.filter(**lookup).first() or user_model(**lookup)
        created = user.pk is None
        try:
            validate_password(password, user)
        except ValidationError as error:
            source = "The generated password" if generated else "The password given"
            raise CommandError(
                f"{source} does not pass AUTH_PASSWORD_VALIDATORS: {' '.join(error.messages)} "
                "Nothing was changed."
            ) from error
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        action = "created" if created else "password reset"
        self.stdout.write(
            f"Admin ({action}): {options['base_url'].rstrip('/')}/admin/ "
            f"user {options['username']!r}, password {password!r}. "
            "The audit log is under 'Entra ID authentication > Audit events'."
        )
