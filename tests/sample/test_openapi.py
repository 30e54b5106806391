"""The sample's OpenAPI description: valid, derived from the permission classes, in sync
with docs/openapi.yaml, and served at /api/schema/ and /api/docs/ unless switched off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from drf_spectacular.drainage import GENERATOR_STATS
from openapi_spec_validator import validate

from entra_auth.openapi import swagger_ui_policy
from tests.factories import Caller
from tests.fake_entra import TENANT_A
from tests.sample.factories import PaymentFactory
from tests.sample.openapi_file import DOCS_SCHEMA, docs_schema, generate

pytestmark = pytest.mark.django_db

A_SCOPE_OF_ANOTHER_API = "User.Read"


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def caller_for(requirement: dict[str, Any]) -> Caller:
    """A token holding exactly what one alternative of ``x-entra-requirements`` declares.

    A token needs a scope or a role to be accepted at all: an alternative asking for
    neither is met by a user's token with a scope of another API.
    """
    app_only = requirement["caller"] == "application" or (
        requirement["caller"] == "any" and requirement["roles"] and not requirement["scopes"]
    )
    scopes = tuple(requirement["scopes"])
    if not app_only and not scopes:
        scopes = (A_SCOPE_OF_ANOTHER_API,)
    claims = {"acrs": requirement["authContexts"]} if "authContexts" in requirement else {}
    return Caller(
        scopes=scopes,
        roles=tuple(requirement["roles"]),
        app_only=app_only,
        claims=claims,
    )


def test_the_schema_is_valid_openapi() -> None:
    GENERATOR_STATS.reset()
    schema = generate()
    # Nothing guessed: drf-spectacular's warnings would also fail `check --deploy`.
    assert not GENERATOR_STATS, (dict(GENERATOR_STATS._warn_cache), GENERATOR_STATS._error_cache)
    validate(schema)
    assert schema["openapi"].startswith("3.")


def test_the_security_scheme_uses_entras_endpoints_and_scope_names(settings: Any) -> None:
    settings.ENTRA_AUTH = {"TENANT_ID": "organizations", "CLIENT_ID": "abc"}
    scheme = generate()["components"]["securitySchemes"]["oauth2"]
    flows = scheme["flows"]
    base = "https://login.microsoftonline.com/organizations/oauth2/v2.0"
    assert flows["authorizationCode"]["authorizationUrl"] == f"{base}/authorize"
    assert flows["authorizationCode"]["tokenUrl"] == f"{base}/token"
    assert set(flows["authorizationCode"]["scopes"]) == {
        "api://abc/Payments.Read",
        "api://abc/Payments.Write",
    }
    assert flows["clientCredentials"]["tokenUrl"] == f"{base}/token"
    assert set(flows["clientCredentials"]["scopes"]) == {"api://abc/.default"}


def test_every_operation_declares_security_and_the_error_answers() -> None:
    schema = generate()
    for path, method, operation in operations(schema):
        assert operation["security"], (path, method)
        assert operation["x-entra-requirements"], (path, method)
        responses = operation["responses"]
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "WWW-Authenticate" in responses["403"]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
    error = schema["components"]["schemas"]["EntraError"]
    assert set(error["required"]) == {"detail", "request_id"}


def _url(path: str, payment_id: Any) -> str:
    return path.replace("{id}", str(payment_id))


def test_what_the_schema_declares_is_what_the_api_grants(
    call: Callable[..., Any], fake_entra: Any
) -> None:
    """For every operation: a token with exactly one declared alternative passes the
    permission checks; a token with none of the declared scopes and roles gets 403."""
    payment = PaymentFactory(tenant_id=TENANT_A)
    schema = generate()
    checked = 0
    for path, method, operation in operations(schema):
        url = _url(path, payment.pk)
        body = {} if method == "post" else None
        for requirement in operation["x-entra-requirements"]:
            response = call(caller_for(requirement), method, url, body)
            assert response.status_code not in (401, 403), (path, method, requirement)
            checked += 1
        if all(r["scopes"] or r["roles"] for r in operation["x-entra-requirements"]):
            for stranger in (
                Caller(scopes=(A_SCOPE_OF_ANOTHER_API,)),
                Caller(app_only=True, roles=("Other.Role",)),
            ):
                response = call(stranger, method, url, body)
                assert response.status_code == 403, (path, method, stranger)
    assert checked >= 10


def test_delegated_and_application_alternatives_are_told_apart() -> None:
    refund = generate()["paths"]["/api/payments/{id}/refund/"]["post"]
    assert refund["x-entra-requirements"] == [
        {"caller": "user", "scopes": ["Payments.Write"], "roles": ["Payments.Admin"]},
        {"caller": "application", "scopes": [], "roles": ["Payments.ReadWrite.All"]},
    ]


def test_an_authentication_context_is_declared_and_required(
    settings: Any, call: Callable[..., Any]
) -> None:
    settings.PAYMENTS_REFUND_AUTH_CONTEXT = "c1"
    refund = generate()["paths"]["/api/payments/{id}/refund/"]["post"]
    user = refund["x-entra-requirements"][0]
    assert user["authContexts"] == ["c1"]
    assert "authentication context c1" in refund["description"]
    payment = PaymentFactory(tenant_id=TENANT_A)
    url = f"/api/payments/{payment.pk}/refund/"
    assert call(caller_for(user), "post", url, {}).status_code == 400
    without = {key: value for key, value in user.items() if key != "authContexts"}
    assert call(caller_for(without), "post", url, {}).status_code == 401


def test_docs_openapi_yaml_matches_the_generated_schema() -> None:
    generated = docs_schema()
    assert DOCS_SCHEMA.read_text() == generated, (
        "docs/openapi.yaml is out of date: write it again with make openapi (docs/openapi.md)."
    )
    assert yaml.safe_load(generated)["paths"]


def test_schema_and_swagger_ui_are_served(api_client: Any) -> None:
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")
    as_json = api_client.get("/api/schema/?format=json")
    assert as_json.status_code == 200
    assert as_json.json()["paths"]
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    policy = docs["Content-Security-Policy"]
    assert policy == swagger_ui_policy()
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert "connect-src 'self' " in policy
    # API routes keep the strict policy.
    assert api_client.get("/api/payments/")["Content-Security-Policy"].startswith(
        "default-src 'none'"
    )


def test_the_sign_in_popup_returns_to_a_page_that_hands_the_code_to_swagger_ui(
    api_client: Any,
) -> None:
    # Swagger UI's redirect URI is its own folder's oauth2-redirect.html: the URI to register.
    response = api_client.get("/api/docs/oauth2-redirect.html?code=abc&state=xyz")

    assert response.status_code == 200
    page = response.content.decode()
    assert (
        '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/oauth2-redirect.js">' in page
    )
    assert "abc" not in page  # the script reads the code from the address, nothing echoes it
    assert response["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
    # The popup keeps its opener through Entra's pages; the code leaks to no other site.
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    assert api_client.get("/api/docs/")["Cross-Origin-Opener-Policy"] == (
        "same-origin-allow-popups"
    )
    # Every other route keeps Django's same-origin policy.
    assert api_client.get("/api/payments/")["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_redirect_page_answers_only_get(api_client: Any) -> None:
    response = api_client.post("/api/docs/oauth2-redirect.html?code=abc&state=xyz")

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")


def test_schema_and_swagger_ui_can_be_switched_off(api_client: Any, settings: Any) -> None:
    settings.OPENAPI_ENABLED = False
    assert api_client.get("/api/schema/").status_code == 404
    assert api_client.get("/api/docs/").status_code == 404
    assert api_client.get("/api/docs/oauth2-redirect.html").status_code == 404


@pytest.fixture
def reread_project_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``project.settings`` executed again under the environment a test sets, then restored."""
    import importlib

    import project.settings

    def reread() -> Any:
        return importlib.reload(project.settings)

    yield reread
    monkeypatch.undo()
    importlib.reload(project.settings)


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("", True), ("1", True), ("on", True), ("0", False), ("off", False), ("False", False)],
)
def test_openapi_enabled_reads_like_every_other_flag(
    monkeypatch: pytest.MonkeyPatch, reread_project_settings: Any, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("OPENAPI_ENABLED", value)

    assert reread_project_settings().OPENAPI_ENABLED is enabled


def test_a_mistyped_openapi_switch_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, reread_project_settings: Any
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("OPENAPI_ENABLED", "disabled")

    with pytest.raises(ImproperlyConfigured, match="OPENAPI_ENABLED must be 1 or 0"):
        reread_project_settings()
