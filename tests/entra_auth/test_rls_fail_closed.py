"""On PostgreSQL, code outside any tenant context sees no tenant's rows, even with raw SQL:
in a request no token opened, in a middleware, in a management command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from entra_auth.tenancy import tenant_context
from tests.fake_entra import TENANT_A, TENANT_B
from tests.tenancy_app.management.commands.count_widget_rows import raw_widget_count
from tests.tenancy_app.models import Widget

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://"),
    pytest.mark.django_db,
]

seen_by_middleware: list[int] = []


class CountingMiddleware:
    """A project's middleware running raw SQL before and after the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        seen_by_middleware.append(raw_widget_count())
        response = self.get_response(request)
        seen_by_middleware.append(raw_widget_count())
        return response


def raw_count_view(request):
    return JsonResponse({"rows": raw_widget_count()})


urlpatterns = [path("raw-count/", raw_count_view)]


@pytest.fixture
def widgets(db) -> None:
    for tenant in (TENANT_A, TENANT_B):
        with tenant_context(tenant):
            Widget.objects.create(name=f"widget of {tenant}")


@pytest.fixture
def counting(settings):
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [
        "entra_auth.middleware.RequestContextMiddleware",
        f"{__name__}.CountingMiddleware",
    ]
    seen_by_middleware.clear()


def test_raw_sql_in_an_unauthenticated_request_and_its_middleware_sees_no_rows(
    widgets, counting, client
):
    response = client.get("/raw-count/")

    assert response.json() == {"rows": 0}
    assert seen_by_middleware == [0, 0]


def test_raw_sql_in_a_command_sees_no_rows_without_the_explicit_context(widgets):
    closed, opened = StringIO(), StringIO()

    call_command("count_widget_rows", stdout=closed)
    call_command("count_widget_rows", "--all-tenants", stdout=opened)

    assert (closed.getvalue(), opened.getvalue()) == ("0\n", "2\n")
    assert raw_widget_count() == 0  # and closed again afterwards
