"""Copies of ``GET /api/payments/`` for the load test's baselines (never routed in production).

``OpenPaymentViewSet`` is the same list view with authentication and permissions off and a
fixed tenant context, so the only difference from the protected route is the auth layer.
``UnthrottledPaymentViewSet`` keeps authentication and permissions but not the caller rate
limit, to tell the cost of the two layers apart.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from entra_auth.tenancy import activate_tenant
from payments.views import PaymentViewSet

from .fixtures import BENCH_TENANT


class OpenPaymentViewSet(PaymentViewSet):
    """The payments list with no authentication, no permission check, tenant fixed."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # RequestContextMiddleware runs the request in a context of its own: this is dropped
        # when the request ends, as the tenant set by authentication is.
        activate_tenant(BENCH_TENANT)
        super().initial(request, *args, **kwargs)


class UnthrottledPaymentViewSet(PaymentViewSet):
    """The protected payments list without the per-caller rate limit."""

    throttle_classes = []
