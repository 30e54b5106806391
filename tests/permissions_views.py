"""Test views guarded by ``entra_auth.permissions``: no database, static JSON answers.

``PaymentViewSet`` is the matrix subject; ``FallbackViewSet`` relies on ``safe``/``unsafe``;
``COMPOSED_VIEWS`` hold one composition each; the ``Misconfigured*`` views must fail closed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    IsDelegated,
    SameTenant,
    per_action,
)
from tests.fake_entra import TENANT_A, TENANT_B

# Object id -> owning tenant. The upper-case id checks that tenant ids compare case-blind.
PAYMENT_TENANTS = {
    "pay-a": TENANT_A,
    "pay-a-upper": TENANT_A.upper(),
    "pay-b": TENANT_B,
}

READ_ANY = HasScope("Payments.Read") | HasAppRole("Payments.Read.All")


class _StaticPaymentViewSet(viewsets.ViewSet):
    """list/retrieve/create/destroy and a custom ``approve``, answering static JSON."""

    def _payment(self, request: Request, pk: str) -> SimpleNamespace:
        if pk not in PAYMENT_TENANTS:
            raise NotFound()
        payment = SimpleNamespace(id=pk, tenant_id=PAYMENT_TENANTS[pk])
        self.check_object_permissions(request, payment)
        return payment

    def list(self, request: Request) -> Response:
        return Response({"results": []})

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response({"id": self._payment(request, pk).id})

    def create(self, request: Request) -> Response:
        return Response({"id": "pay-new"}, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        self._payment(request, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return Response({"id": self._payment(request, pk).id, "approved": True})


class PaymentViewSet(_StaticPaymentViewSet):
    """Each action has its own rule (see ``ACTION_RULES`` in the tests)."""

    permission_classes = [
        per_action(
            list=READ_ANY,
            retrieve=READ_ANY & SameTenant,
            create=HasScope("Payments.Write") | HasAppRole("Payments.ReadWrite.All"),
            # A user-assigned app role on a delegated token, on top of a scope.
            destroy=HasScope("Payments.Delete") & HasAppRole("Payments.Admin"),
            approve=HasAppRole("Payments.Approve.All") & IsAppOnly,
        )
    ]


class FallbackViewSet(_StaticPaymentViewSet):
    """Only ``safe``/``unsafe`` rules: every action is covered by its HTTP method."""

    permission_classes = [
        per_action(safe=HasScope("Payments.Read"), unsafe=HasScope("Payments.Write"))
    ]


class MisconfiguredRulesViewSet(_StaticPaymentViewSet):
    """``per_action`` names no rule for ``create``, ``destroy`` or ``approve``."""

    permission_classes = [per_action(list=READ_ANY, retrieve=READ_ANY & SameTenant)]


class MisconfiguredBareScopeView(APIView):
    """``HasScope`` with no scope named: nobody may pass."""

    permission_classes = [HasScope]

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


def _composed_view(name: str, rule: Any) -> type[APIView]:
    def get(self: APIView, request: Request) -> Response:
        return Response({"ok": True})

    return type(f"Composed_{name}", (APIView,), {"permission_classes": [rule], "get": get})


COMPOSITIONS: dict[str, Any] = {
    "scope-and-role": HasScope("Payments.Read") & HasAppRole("Payments.Auditor"),
    "scope-or-role": HasScope("Payments.Read") | HasAppRole("Payments.Read.All"),
    "any-of-two-scopes": HasScope("Payments.Read", "Payments.ReadWrite"),
    "any-of-two-roles": HasAppRole("Payments.Read.All", "Payments.ReadWrite.All"),
    "delegated-not-blocked": IsDelegated & ~HasAppRole("Payments.Blocked"),
    "not-blocked-and-scope": ~HasAppRole("Payments.Blocked") & HasScope("Payments.Read"),
    "not-scope": ~HasScope("Payments.Read"),
    "app-only": IsAppOnly,
    "delegated": IsDelegated,
    "delegated-scope-or-app-role": (IsDelegated & HasScope("Payments.Read"))
    | (IsAppOnly & HasAppRole("Payments.Read.All")),
}
COMPOSED_VIEWS = {name: _composed_view(name, rule) for name, rule in COMPOSITIONS.items()}
