"""A project that adopts entra_auth with the least it needs gets every refusal answered and
audited: the authentication class, one ENTRA_AUTH dict and RequestContextMiddleware, with
DRF's own exception handler and none of the optional HTTP hardening."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from entra_auth.models import AuditEvent, EventType, Reason
from entra_auth.tenancy import tenant_context
from tests.audit_support import events
from tests.factories import bearer
from tests.fake_entra import TENANT_A, TENANT_B
from tests.tenancy_app.models import Widget

pytestmark = pytest.mark.django_db

MINIMAL_MIDDLEWARE = ["entra_auth.middleware.RequestContextMiddleware"]
MINIMAL_REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["entra_auth.authentication.EntraJWTAuthentication"],
}
WIDGETS = "/api/widgets/"


@pytest.fixture
def minimal(settings: Any, configure: Any) -> APIClient:
    """The minimal adoption of a multi-tenant API serving tenants A and B."""
    settings.MIDDLEWARE = MINIMAL_MIDDLEWARE
    settings.REST_FRAMEWORK = MINIMAL_REST_FRAMEWORK
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    # Built after the settings change, so that it loads the minimal middleware.
    return APIClient()


def test_no_token_is_a_401_with_a_bare_bearer_challenge(minimal):
    response = minimal.get(WIDGETS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response["X-Request-ID"]
    assert events(event_type=EventType.AUTHENTICATION_FAILED) == []


def test_a_refused_token_is_a_401_naming_invalid_token_and_is_audited(minimal, fake_entra):
    response = minimal.get(WIDGETS, **bearer(fake_entra.token(audience="api://someone-else")))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')
    [event] = events(event_type=EventType.AUTHENTICATION_FAILED)
    assert (event.reason, event.request_id) == (Reason.WRONG_AUDIENCE, response["X-Request-ID"])


def test_a_missing_scope_is_a_403_naming_it_and_is_audited(minimal, fake_entra):
    token = fake_entra.token(tenant=TENANT_A, scopes=("Other.Scope",))

    response = minimal.get(WIDGETS, **bearer(token))

    assert response.status_code == 403
    # A user's token: the app-only branch refuses on IsAppOnly, so only the scopes would help.
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="Widgets.Read Widgets.Write"'
    )
    assert "Widgets.Read, Widgets.Write" in response.json()["detail"]
    [event] = events(event_type=EventType.AUTHORIZATION_DENIED)
    assert (event.reason, event.missing) == ("missing_scope", "Widgets.Read Widgets.Write")
    assert (event.tenant_id, event.request_id) == (TENANT_A, response["X-Request-ID"])


def test_another_tenants_row_is_a_plain_404_recorded_as_a_tenant_denial(minimal, fake_entra):
    with tenant_context(TENANT_B):
        theirs = Widget.objects.create(name="theirs")
    token = fake_entra.token(tenant=TENANT_A, scopes=("Widgets.Read",))

    response = minimal.get(f"{WIDGETS}{theirs.pk}/", **bearer(token))
    missing = minimal.get(f"{WIDGETS}{theirs.pk + 1000}/", **bearer(token))

    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json()
    [event] = events(event_type=EventType.TENANT_DENIED)
    assert (event.reason, event.object_id) == (Reason.OTHER_TENANT, str(theirs.pk))
    assert (event.tenant_id, event.request_id) == (TENANT_A, response["X-Request-ID"])


def test_own_rows_are_served_and_nothing_is_recorded(minimal, fake_entra):
    with tenant_context(TENANT_A):
        ours = Widget.objects.create(name="ours")
    token = fake_entra.token(tenant=TENANT_A, scopes=("Widgets.Read",))

    response = minimal.get(f"{WIDGETS}{ours.pk}/", **bearer(token))

    assert response.status_code == 200
    assert response.json()["name"] == "ours"
    assert not AuditEvent.objects.exists()


def test_no_signing_keys_is_a_503_with_retry_after(minimal, fake_entra):
    fake_entra.state.down = True

    response = minimal.get(WIDGETS, **bearer(fake_entra.token(tenant=TENANT_A)))

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "WWW-Authenticate" not in response


def test_a_403_a_view_answers_itself_is_not_an_authorization_denial(minimal, fake_entra, settings):
    settings.ROOT_URLCONF = "tests.entra_auth.minimal_urls"
    token = fake_entra.token(tenant=TENANT_A, scopes=("Widgets.Read",))

    response = minimal.get("/forbidden-by-the-view/", **bearer(token))

    assert response.status_code == 403
    assert "WWW-Authenticate" not in response
    assert events(event_type=EventType.AUTHORIZATION_DENIED) == []
