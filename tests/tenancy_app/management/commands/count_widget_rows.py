"""``manage.py count_widget_rows [--all-tenants]``: raw SQL as maintenance code would run it."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection

from entra_auth.tenancy import all_tenants_context


def raw_widget_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenancy_app_widget")
        return cursor.fetchone()[0]


class Command(BaseCommand):
    help = "Print how many widget rows raw SQL sees."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--all-tenants", action="store_true")

    def handle(self, *args: Any, all_tenants: bool, **options: Any) -> None:
        if all_tenants:
            with all_tenants_context():
                self.stdout.write(str(raw_widget_count()))
        else:
            self.stdout.write(str(raw_widget_count()))
