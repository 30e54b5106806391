"""The payments API's paths, and what each endpoint refuses to whom: shared by the sample's
tests of the API (``test_api``) and of step-up (``test_step_up``), which must answer the same
403s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from payments.models import Payment
from tests.sample.factories import (
    ADMIN_READER,
    ADMIN_ROLE_ONLY_USER,
    APP_READER,
    APP_WITH_ADMIN_ROLE,
    READER,
    UNRELATED_USER,
    USER_WITH_APP_ROLES,
    WRITER,
    Caller,
)

LIST = "/api/payments/"
REALM = "api"


def detail_url(payment_id: Any) -> str:
    return f"{LIST}{payment_id}/"


def refund_url(payment_id: Any) -> str:
    return f"{LIST}{payment_id}/refund/"


def insufficient_scope(missing: tuple[str, ...]) -> str:
    return f'Bearer realm="{REALM}", error="insufficient_scope", scope="{" ".join(missing)}"'


def lacks(missing: tuple[str, ...]) -> str:
    return (
        f"The token lacks the scope or app role this action requires: one of {', '.join(missing)}."
    )


# The endpoints by action: method, path for a payment, a valid body.
ENDPOINTS: dict[str, tuple[str, Callable[[Payment], str], Any]] = {
    "list": ("get", lambda p: LIST, None),
    "retrieve": ("get", lambda p: detail_url(p.id), None),
    "create": ("post", lambda p: LIST, {"amount": "1.00", "currency": "EUR"}),
    "refund": ("post", lambda p: refund_url(p.id), {"amount": "1.00"}),
}
# Denied callers and what the 403 names as missing: (id, caller, missing).
READ = ("Payments.Read", "Payments.Write")
READ_ALL = (*READ, "Payments.Read.All", "Payments.ReadWrite.All")
WRITE = ("Payments.Write",)
WRITE_ALL = ("Payments.Write", "Payments.ReadWrite.All")
DENIED: dict[tuple[str, ...], list[tuple[str, Caller, tuple[str, ...]]]] = {
    ("list", "retrieve"): [
        ("user-without-Payments-scope", UNRELATED_USER, READ),
        ("user-with-only-role-Payments.Admin", ADMIN_ROLE_ONLY_USER, READ),
        ("user-with-only-app-roles", USER_WITH_APP_ROLES, READ),
        ("app-with-only-Payments.Admin", APP_WITH_ADMIN_ROLE, READ_ALL),
    ],
    ("create",): [
        ("scope-Payments.Read", READER, WRITE),
        ("scope-Payments.Read+role-Payments.Admin", ADMIN_READER, WRITE),
        ("user-without-Payments-scope", UNRELATED_USER, WRITE),
        ("user-with-only-app-roles", USER_WITH_APP_ROLES, WRITE),
        ("app-Payments.Read.All", APP_READER, WRITE_ALL),
        ("app-with-only-Payments.Admin", APP_WITH_ADMIN_ROLE, WRITE_ALL),
    ],
    ("refund",): [
        ("scope-Payments.Write-without-role-Payments.Admin", WRITER, ("Payments.Admin",)),
        ("role-Payments.Admin-with-scope-Payments.Read", ADMIN_READER, WRITE),
        ("role-Payments.Admin-without-Payments-scope", ADMIN_ROLE_ONLY_USER, WRITE),
        ("scope-Payments.Read", READER, WRITE),
        ("user-with-only-app-roles", USER_WITH_APP_ROLES, WRITE),
        ("app-Payments.Read.All", APP_READER, WRITE_ALL),
        ("app-with-only-Payments.Admin", APP_WITH_ADMIN_ROLE, WRITE_ALL),
    ],
}
DENIED_CASES = [
    pytest.param(action, caller, missing, id=f"{action}-{name}")
    for actions, callers in DENIED.items()
    for action in actions
    for name, caller, missing in callers
]
