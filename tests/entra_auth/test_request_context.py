"""RequestContextMiddleware: a request id per request, and no tenant outliving its request."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.http import HttpResponse
from django.test import RequestFactory

from entra_auth.middleware import RequestContextMiddleware, current_request_id
from entra_auth.tenancy import activate_tenant, current_tenant, tenant_context
from tests.fake_entra import TENANT_A, TENANT_B


class Boom(Exception):
    pass


def handle(view):
    return RequestContextMiddleware(view)(RequestFactory().get("/"))


def test_the_tenant_a_request_enters_is_gone_when_it_ends():
    seen = {}

    def view(request):
        activate_tenant(TENANT_A)  # as authentication does
        seen["tenant"], seen["request_id"] = current_tenant(), current_request_id()
        return HttpResponse("ok")

    response = handle(view)

    assert seen == {"tenant": TENANT_A, "request_id": response["X-Request-ID"]}
    assert current_tenant() is None
    assert current_request_id() is None


def test_the_tenant_is_gone_also_when_the_view_raises():
    def view(request):
        activate_tenant(TENANT_A)
        raise Boom

    with pytest.raises(Boom):
        handle(view)

    assert current_tenant() is None
    assert current_request_id() is None


def test_a_request_starts_outside_any_tenant_and_the_outer_context_comes_back():
    seen = {}

    def view(request):
        seen["tenant"] = current_tenant()
        activate_tenant(TENANT_B)
        return HttpResponse("ok")

    with tenant_context(TENANT_A):
        handle(view)
        after = current_tenant()

    assert seen == {"tenant": None}
    assert after == TENANT_A


def test_what_django_keeps_per_context_is_reused_by_the_next_request():
    # Django keeps cache connections per context: a request run in a copied context would
    # open new ones every time (a new Redis connection per request).
    used = []

    def view(request):
        used.append(caches["default"])
        return HttpResponse("ok")

    handle(view)
    handle(view)

    assert used[0] is used[1]
