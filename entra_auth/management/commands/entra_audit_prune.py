"""``manage.py entra_audit_prune --older-than 90d [--dry-run]``: audit log retention."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from entra_auth.audit import prune

_AGE = re.compile(r"(?P<amount>[1-9][0-9]*)(?P<unit>[hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h`` or ``2w`` as a ``timedelta``; ValueError otherwise."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an age such as 90d, 12h or 2w")
    return timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})


class Command(BaseCommand):
    help = "Delete audit events older than --older-than (e.g. 90d); --dry-run only counts them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", required=True, help="age of the events to delete: 90d, 12h, 2w"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            age = parse_age(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        count = prune(age, dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} audit event(s) older than {options['older_than']}.")
