"""Step-up for refunds: with ``PAYMENTS_REFUND_AUTH_CONTEXT`` set, a user's refund needs a
token issued for that Conditional Access authentication context, and a token without it gets
the 401 claims challenge (docs/sample.md#step-up-for-refunds).

Requests go through the whole stack: fake Entra tokens, ``EntraJWTAuthentication``, the
payments views, idempotency keys, ``RequestContextMiddleware`` and the audit log.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from entra_auth.audit import EventType, Outcome, Reason
from entra_auth.tenancy import all_tenants_context
from payments.models import Payment, Refund
from tests.audit_support import events
from tests.fake_entra import TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import (
    APP_WRITER,
    READER,
    REFUNDER,
    WRITER,
    Caller,
    PaymentFactory,
    refresh,
)
from tests.sample.paths import (
    DENIED_CASES,
    ENDPOINTS,
    detail_url,
    insufficient_scope,
    lacks,
    refund_url,
)
from tests.subprocess_support import run_python

pytestmark = pytest.mark.django_db

PAYMENTS = "/api/payments/"
ME = "/api/me/"
CONTEXT = "c1"
STEPPED_UP = REFUNDER.with_claims(acrs=[CONTEXT])
# base64 of {"access_token":{"acrs":{"essential":true,"value":"c1"}}}, Microsoft's example.
C1_CLAIMS = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"


@pytest.fixture
def step_up(settings: Any) -> None:
    """The deployment asks for the authentication context c1 to refund."""
    settings.PAYMENTS_REFUND_AUTH_CONTEXT = CONTEXT


def claims_challenge(fake: FakeEntra, tenant: str) -> str:
    return (
        f'Bearer realm="api", authorization_uri="{fake.base_url}{tenant}/oauth2/v2.0/authorize", '
        f'error="insufficient_claims", claims="{C1_CLAIMS}"'
    )


def refunds() -> list[Refund]:
    with all_tenants_context():
        return list(Refund.all_tenants.all())


SETTINGS_PROBE = "import project.settings as s; print(repr(s.PAYMENTS_REFUND_AUTH_CONTEXT))"
SUBPROCESS_TIMEOUT_S = 60


def project_setting(value: str | None) -> subprocess.CompletedProcess[str]:
    """The sample's settings module read in a fresh interpreter, with the variable ``value``."""
    environment = {**os.environ, "DJANGO_DEBUG": "1"}
    environment.pop("PAYMENTS_REFUND_AUTH_CONTEXT", None)
    if value is not None:
        environment["PAYMENTS_REFUND_AUTH_CONTEXT"] = value
    return run_python(["-c", SETTINGS_PROBE], env=environment, timeout=SUBPROCESS_TIMEOUT_S)


@pytest.mark.parametrize(
    ("value", "setting"),
    [(None, "None"), ("", "None"), ("c1", "'c1'"), (" c2 ", "'c2'")],
)
def test_the_environment_variable_sets_the_setting_off_by_default(value, setting):
    probe = project_setting(value)

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == setting


def test_a_malformed_environment_variable_stops_the_project_at_start_up():
    probe = project_setting('c1"')

    assert probe.returncode != 0
    assert "PAYMENTS_REFUND_AUTH_CONTEXT must be an authentication context id" in probe.stderr


def test_a_refund_with_the_context_is_made(
    step_up: None, call: Callable[..., Any], payment: Payment
) -> None:
    response = call(STEPPED_UP, "post", refund_url(payment.id), {"amount": "30.00"})

    assert response.status_code == 201, response.content
    [refund] = refunds()
    assert (refund.amount, refund.created_by_oid) == (Decimal("30.00"), STEPPED_UP.oid)
    assert events(event_type=EventType.AUTHORIZATION_DENIED) == []


def test_a_refund_without_the_context_is_a_claims_challenge_and_changes_nothing(
    step_up: None,
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    fake_entra: FakeEntra,
    payment: Payment,
) -> None:
    before = row_counts()

    response = call(REFUNDER, "post", refund_url(payment.id), {"amount": "30.00"})

    assert error_body(response, 401) == {
        "detail": "This action requires a stronger sign-in: a token issued for the "
        "authentication context c1. Sign in again as the WWW-Authenticate claims challenge asks."
    }
    assert response["WWW-Authenticate"] == claims_challenge(fake_entra, TENANT_A)
    claims = response["WWW-Authenticate"].split('claims="')[1].rstrip('"')
    assert json.loads(base64.b64decode(claims, validate=True)) == {
        "access_token": {"acrs": {"essential": True, "value": "c1"}}
    }
    assert row_counts() == before
    assert refunds() == []
    refresh(payment)
    assert (payment.refunded_amount, payment.status) == (0, "captured")


def test_the_challenge_is_audited(
    step_up: None, call: Callable[..., Any], payment: Payment
) -> None:
    response = call(REFUNDER, "post", refund_url(payment.id), {"amount": "30.00"})

    [event] = events(event_type=EventType.AUTHORIZATION_DENIED)
    assert (event.outcome, event.reason, event.missing) == (
        Outcome.DENIED,
        Reason.MISSING_AUTH_CONTEXT,
        CONTEXT,
    )
    assert (event.tenant_id, event.subject_oid) == (TENANT_A, REFUNDER.oid)
    assert (event.request_id, event.path) == (response["X-Request-ID"], refund_url(payment.id))


def test_a_caller_of_another_tenant_is_sent_to_its_own_tenant(
    step_up: None, call: Callable[..., Any], fake_entra: FakeEntra
) -> None:
    theirs = PaymentFactory(tenant_id=TENANT_B)

    response = call(REFUNDER.in_tenant(TENANT_B), "post", refund_url(theirs.id), {"amount": "1"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == claims_challenge(fake_entra, TENANT_B)


def test_the_stepped_up_retry_with_the_same_idempotency_key_refunds_once(
    step_up: None, call: Callable[..., Any], payment: Payment
) -> None:
    path, body, key = refund_url(payment.id), {"amount": "30.00"}, "refund-step-up-1"

    challenged = call(REFUNDER, "post", path, body, Idempotency_Key=key)
    stepped_up = call(STEPPED_UP, "post", path, body, Idempotency_Key=key)
    replayed = call(STEPPED_UP, "post", path, body, Idempotency_Key=key)

    assert [challenged.status_code, stepped_up.status_code, replayed.status_code] == [
        401,
        201,
        201,
    ]
    assert replayed.json() == stepped_up.json()
    assert len(refunds()) == 1


def test_an_application_refunds_without_a_context(
    step_up: None, call: Callable[..., Any], payment: Payment
) -> None:
    """Conditional Access applies to users' sign-ins: an app-only token never carries acrs."""
    response = call(APP_WRITER, "post", refund_url(payment.id), {"amount": "30.00"})

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(("action", "caller", "missing"), DENIED_CASES)
def test_a_caller_lacking_a_scope_or_role_still_gets_the_403_naming_it(
    step_up: None,
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    payment: Payment,
    action: str,
    caller: Caller,
    missing: tuple[str, ...],
) -> None:
    """A step-up alone would not help them: no claims challenge."""
    method, path, body = ENDPOINTS[action]

    response = call(caller, method, path(payment), body)

    assert error_body(response, 403) == {"detail": lacks(missing)}
    assert response["WWW-Authenticate"] == insufficient_scope(missing)


@pytest.mark.parametrize(
    ("caller", "method", "path", "body", "status"),
    [
        pytest.param(READER, "get", lambda p: PAYMENTS, None, 200, id="list"),
        pytest.param(READER, "get", lambda p: detail_url(p.id), None, 200, id="retrieve"),
        pytest.param(
            WRITER, "post", lambda p: PAYMENTS, {"amount": "1.00", "currency": "EUR"}, 201,
            id="create",
        ),
        pytest.param(READER, "get", lambda p: ME, None, 200, id="me"),
    ],
)  # fmt: skip
def test_other_endpoints_are_unaffected(
    step_up: None,
    call: Callable[..., Any],
    payment: Payment,
    caller: Caller,
    method: str,
    path: Callable[[Payment], str],
    body: Any,
    status: int,
) -> None:
    response = call(caller, method, path(payment), body)

    assert response.status_code == status, response.content
    assert events(event_type=EventType.AUTHORIZATION_DENIED) == []


def test_without_the_setting_a_refund_needs_no_context(
    call: Callable[..., Any], payment: Payment
) -> None:
    response = call(REFUNDER, "post", refund_url(payment.id), {"amount": "30.00"})

    assert response.status_code == 201, response.content
    assert len(refunds()) == 1


def test_the_setting_is_read_when_a_request_arrives(
    settings: Any, call: Callable[..., Any], payment: Payment
) -> None:
    path = refund_url(payment.id)

    settings.PAYMENTS_REFUND_AUTH_CONTEXT = None
    before = call(REFUNDER, "post", path, {"amount": "1.00"})
    settings.PAYMENTS_REFUND_AUTH_CONTEXT = CONTEXT
    after = call(REFUNDER, "post", path, {"amount": "1.00"})
    settings.PAYMENTS_REFUND_AUTH_CONTEXT = "c2"
    other = call(STEPPED_UP, "post", path, {"amount": "1.00"})

    assert [before.status_code, after.status_code, other.status_code] == [201, 401, 401]
