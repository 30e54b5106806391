"""Step-up: a Conditional Access authentication context (``acrs``) as a requirement, and the
401 claims challenge of Microsoft's "Claims challenges, claims requests and client
capabilities" for a token without it (docs/permissions.md#step-up-authentication-context)."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIClient

from entra_auth import permissions
from entra_auth.exceptions import auth_context_claims
from entra_auth.http.request_log import REQUEST_LOGGER_NAME
from entra_auth.models import EventType, Outcome, Reason
from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    RequiresAuthContext,
    denial,
    per_action,
    unnamed_requirements,
)
from entra_auth.principal import EntraPrincipal
from tests.audit_support import events
from tests.factories import evaluate, principal_request
from tests.fake_entra import TENANT_A, TENANT_B, FakeEntra

APPROVALS = "/api/approvals/"
ME = "/api/me/"
OID = "00000000-0000-4000-8000-0000000000a1"
# Microsoft's documented claims value for "c1": base64 of
# {"access_token":{"acrs":{"essential":true,"value":"c1"}}}.
C1_CLAIMS = "eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
STEP_UP_DETAIL = (
    "This action requires a stronger sign-in: a token issued for the authentication context "
    "c1. Sign in again as the WWW-Authenticate claims challenge asks."
)


def challenge(fake: FakeEntra, tenant: str, claims: str = C1_CLAIMS) -> str:
    return (
        f'Bearer realm="api", authorization_uri="{fake.base_url}{tenant}/oauth2/v2.0/authorize", '
        f'error="insufficient_claims", claims="{claims}"'
    )


def bearer(fake: FakeEntra, **claims: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {fake.token(**claims)}"}


def approve(client: APIClient, fake: FakeEntra, **claims: Any) -> Any:
    claims.setdefault("scopes", ("Widgets.Write",))
    return client.post(APPROVALS, {}, format="json", **bearer(fake, **claims))


def decoded_claims(header: str) -> Any:
    value = header.split('claims="', 1)[1].split('"', 1)[0]
    return json.loads(base64.b64decode(value, validate=True))


# --- over HTTP: the challenge, the stepped-up retry, the audit event -----------------------


@pytest.mark.django_db
def test_a_token_without_the_context_gets_the_claims_challenge(fake_entra, api_client):
    response = approve(api_client, fake_entra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == challenge(fake_entra, TENANT_A)
    assert decoded_claims(response["WWW-Authenticate"]) == {
        "access_token": {"acrs": {"essential": True, "value": "c1"}}
    }
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": STEP_UP_DETAIL, "request_id": response["X-Request-ID"]}
    # The headers every other answer carries are kept.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_the_claims_value_is_microsofts_for_c1():
    assert auth_context_claims("c1") == C1_CLAIMS
    assert base64.b64decode(C1_CLAIMS) == (
        b'{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    )


@pytest.mark.django_db
def test_the_stepped_up_token_is_admitted(fake_entra, api_client):
    response = approve(api_client, fake_entra, acrs=["c1"])

    assert response.status_code == 201, response.json()
    assert response.json() == {"approved": True}
    assert events(event_type=EventType.AUTHORIZATION_DENIED) == []


@pytest.mark.django_db
def test_a_token_with_another_context_only_is_challenged(fake_entra, api_client):
    response = approve(api_client, fake_entra, acrs=["c2", "c3"])

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == challenge(fake_entra, TENANT_A)


@pytest.mark.django_db
def test_the_challenge_is_audited_with_the_context(fake_entra, api_client):
    response = approve(api_client, fake_entra)

    [event] = events(event_type=EventType.AUTHORIZATION_DENIED)
    assert (event.outcome, event.reason, event.missing) == (
        Outcome.DENIED,
        Reason.MISSING_AUTH_CONTEXT,
        "c1",
    )
    assert (event.tenant_id, event.request_id) == (TENANT_A, response["X-Request-ID"])
    assert (event.method, event.path) == ("POST", APPROVALS)


def test_the_audit_reason_is_a_known_reason():
    assert permissions.MISSING_AUTH_CONTEXT == Reason.MISSING_AUTH_CONTEXT


@pytest.mark.django_db
def test_a_multi_tenant_api_sends_the_caller_to_its_own_tenant(fake_entra, api_client, configure):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])

    response = approve(api_client, fake_entra, tenant=TENANT_B)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == challenge(fake_entra, TENANT_B)


@pytest.mark.django_db
def test_a_missing_scope_is_a_403_naming_the_scope_not_a_step_up(fake_entra, api_client):
    response = approve(api_client, fake_entra, scopes=("Widgets.Read",))

    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="Widgets.Write"'
    )
    assert "insufficient_claims" not in response["WWW-Authenticate"]
    [event] = events(event_type=EventType.AUTHORIZATION_DENIED)
    assert (event.reason, event.missing) == (Reason.MISSING_SCOPE, "Widgets.Write")


@pytest.mark.django_db
def test_an_application_is_not_asked_for_a_context(fake_entra, api_client):
    granted = api_client.post(
        APPROVALS, {}, **bearer(fake_entra, app_only=True, roles=("Widgets.ReadWrite.All",))
    )
    refused = api_client.post(
        APPROVALS, {}, **bearer(fake_entra, app_only=True, roles=("Widgets.Read.All",))
    )

    assert granted.status_code == 201, granted.json()
    assert refused.status_code == 403
    assert "insufficient_claims" not in refused["WWW-Authenticate"]


@pytest.mark.django_db
def test_other_actions_and_endpoints_need_no_context(fake_entra, api_client):
    headers = bearer(fake_entra, scopes=("Widgets.Read",))

    assert api_client.get(APPROVALS, **headers).status_code == 200
    assert api_client.get(ME, **headers).status_code == 200
    assert api_client.get("/api/widgets/", **headers).status_code == 200
    assert events(event_type=EventType.AUTHORIZATION_DENIED) == []


@pytest.mark.django_db
def test_the_request_log_records_the_401_the_client_got(fake_entra, api_client, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)

    response = approve(api_client, fake_entra)

    [line] = [record for record in caplog.records if record.name == REQUEST_LOGGER_NAME]
    assert response.status_code == line.status == 401


MINIMAL_REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["entra_auth.authentication.EntraJWTAuthentication"],
}


@pytest.mark.django_db
def test_the_minimal_adoption_answers_the_same_challenge(fake_entra, settings):
    """RequestContextMiddleware alone, with DRF's own exception handler and renderers."""
    settings.MIDDLEWARE = ["entra_auth.middleware.RequestContextMiddleware"]
    settings.REST_FRAMEWORK = MINIMAL_REST_FRAMEWORK

    response = approve(APIClient(), fake_entra, HTTP_ACCEPT="text/html")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == challenge(fake_entra, TENANT_A)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": STEP_UP_DETAIL, "request_id": response["X-Request-ID"]}
    assert [event.reason for event in events(event_type=EventType.AUTHORIZATION_DENIED)] == [
        Reason.MISSING_AUTH_CONTEXT
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "acrs",
    [
        pytest.param("c1", id="a-string"),
        pytest.param({"c1": True}, id="an-object"),
        pytest.param([["c1"]], id="a-nested-list"),
        pytest.param([1, None, True], id="no-string-in-the-list"),
        pytest.param(7, id="a-number"),
        pytest.param([""], id="an-empty-string"),
    ],
)
def test_a_malformed_acrs_grants_no_context_and_never_fails(fake_entra, api_client, acrs):
    me = api_client.get(ME, **bearer(fake_entra, acrs=acrs))
    approval = approve(api_client, fake_entra, acrs=acrs)

    assert me.status_code == 200, me.json()
    assert approval.status_code == 401
    assert approval["WWW-Authenticate"] == challenge(fake_entra, TENANT_A)


@pytest.mark.django_db
def test_well_formed_entries_of_a_mixed_acrs_still_count(fake_entra, api_client):
    response = approve(api_client, fake_entra, acrs=[1, None, "c1"])

    assert response.status_code == 201, response.json()


def test_the_principal_holds_the_contexts_of_acrs():
    claims = {"oid": OID, "tid": TENANT_A, "ver": "2.0", "scp": "A", "azp": OID}

    assert EntraPrincipal.from_claims({**claims, "acrs": ["c1", "c2"]}).auth_contexts == {
        "c1",
        "c2",
    }
    assert EntraPrincipal.from_claims(claims).auth_contexts == frozenset()
    assert EntraPrincipal.from_claims({**claims, "acrs": "c1"}).auth_contexts == frozenset()


# --- the rule itself: composition and what it records ---------------------------------------


def request_of(*, scopes: tuple[str, ...] = ("S",), app: bool = False, **held: Any) -> Request:
    """A caller holding the scope S unless told otherwise; an app-only one holds no scope."""
    return principal_request(scopes=() if app else scopes, app=app, **held)


@pytest.mark.parametrize(
    ("rule", "caller", "expected"),
    [
        pytest.param(
            HasScope("S") & RequiresAuthContext("c1"),
            {},
            ("missing_auth_context", ("c1",)),
            id="scope-held-context-missing",
        ),
        pytest.param(
            HasScope("W") & RequiresAuthContext("c1"),
            {},
            ("missing_scope", ("W",)),
            id="scope-missing-first",
        ),
        pytest.param(
            RequiresAuthContext("c1") & HasScope("W"),
            {},
            ("missing_scope", ("W",)),
            id="scope-missing-named-whatever-the-order",
        ),
        pytest.param(
            RequiresAuthContext("c1") & HasAppRole("Admin"),
            {},
            ("missing_role", ("Admin",)),
            id="role-missing-named-not-the-context",
        ),
        pytest.param(
            (HasScope("S") & HasAppRole("Admin") & RequiresAuthContext("c1"))
            | (IsAppOnly & HasAppRole("All")),
            {"roles": ("Admin",)},
            ("missing_auth_context", ("c1",)),
            id="user-branch-lacks-only-the-context",
        ),
        pytest.param(
            HasScope("W") | RequiresAuthContext("c1"),
            {},
            ("missing_scope", ("W",)),
            id="a-scope-or-a-context-names-the-scope",
        ),
        pytest.param(
            RequiresAuthContext("c1") | RequiresAuthContext("c2"),
            {},
            ("missing_auth_context", ("c1", "c2")),
            id="either-context",
        ),
        pytest.param(
            HasAppRole("R") & RequiresAuthContext("c1"),
            {"app": True, "roles": ("R",)},
            ("permission_denied", ()),
            id="an-application-cannot-step-up",
        ),
        pytest.param(
            RequiresAuthContext("c1") & ~HasAppRole("Blocked"),
            {"roles": ("Blocked",)},
            ("permission_denied", ()),
            id="no-step-up-when-the-other-side-refuses-for-good",
        ),
        pytest.param(
            RequiresAuthContext("c1") & IsAppOnly,
            {},
            ("permission_denied", ()),
            id="no-step-up-for-a-rule-a-user-never-meets",
        ),
        pytest.param(
            ~HasAppRole("Blocked") & RequiresAuthContext("c1"),
            {},
            ("missing_auth_context", ("c1",)),
            id="beside-a-negation",
        ),
    ],
)
def test_a_refusal_names_a_context_only_when_a_step_up_would_grant(rule, caller, expected):
    request = request_of(**caller)

    granted, permission = evaluate(rule, request)

    assert not granted
    assert denial(request) == expected
    reason, names = expected
    message = getattr(permission, "message", None)
    if reason == "missing_auth_context":
        assert "stronger sign-in" in message and "scope or app role" not in message
    elif names:
        assert message.startswith("The token lacks the scope or app role")


@pytest.mark.parametrize(
    ("rule", "caller"),
    [
        pytest.param(RequiresAuthContext("c1"), {"contexts": ("c1",)}, id="alone"),
        pytest.param(RequiresAuthContext("c1", "c2"), {"contexts": ("c2",)}, id="one-of-two"),
        pytest.param(
            HasScope("S") & RequiresAuthContext("c1"), {"contexts": ("c1",)}, id="with-a-scope"
        ),
        pytest.param(
            (HasScope("S") & RequiresAuthContext("c1")) | (IsAppOnly & HasAppRole("All")),
            {"app": True, "roles": ("All",)},
            id="an-application-by-its-own-branch",
        ),
        pytest.param(
            ~RequiresAuthContext("c9") & HasScope("S"),
            {"contexts": ("c1",)},
            id="negated",
        ),
    ],
)
def test_a_token_with_the_context_is_admitted(rule, caller):
    request = request_of(**caller)

    granted, _permission = evaluate(rule, request)

    assert granted
    assert denial(request) == ("permission_denied", ())


def test_per_action_asks_for_the_context_of_its_action_only():
    rule = per_action(list=HasScope("S"), create=HasScope("S") & RequiresAuthContext("c1"))
    listing = type("View", (), {"action": "list", "action_map": {"get": "list"}})()
    creating = type("View", (), {"action": "create", "action_map": {"post": "create"}})()

    listed = request_of()
    assert evaluate(rule, listed, listing)[0]
    created = request_of()
    granted, permission = evaluate(rule, created, creating)
    assert not granted
    assert denial(created) == ("missing_auth_context", ("c1",))
    assert "stronger sign-in" in permission.message


def test_the_requirement_exposes_the_contexts_it_needs():
    assert RequiresAuthContext("c1", "c2").auth_contexts() == ("c1", "c2")
    assert RequiresAuthContext("c1").required == frozenset({"c1"})


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param((), id="none"),
        pytest.param(("",), id="empty"),
        pytest.param(('c1"',), id="a-quote"),
        pytest.param(("c 1",), id="a-space"),
        pytest.param(("c" * 65,), id="too-long"),
    ],
)
def test_an_invalid_context_id_is_refused_at_import(ids):
    with pytest.raises(ImproperlyConfigured):
        RequiresAuthContext.requiring(*ids)


def test_an_unnamed_requirement_fails_closed():
    assert unnamed_requirements(RequiresAuthContext) == ["RequiresAuthContext"]
    with pytest.raises(ImproperlyConfigured):
        RequiresAuthContext & HasScope("S")
    with pytest.raises(ImproperlyConfigured):
        evaluate(RequiresAuthContext, request_of(contexts=("c1",)))


# --- from_setting: the contexts a deployment chooses, read per request ----------------------

SETTING = "STEP_UP_TEST_CONTEXT"
FROM_SETTING = RequiresAuthContext.from_setting(SETTING)


def test_from_setting_reads_the_setting_on_every_request(settings):
    settings.STEP_UP_TEST_CONTEXT = "c1"
    refused = request_of(contexts=("c2",))
    assert not evaluate(HasScope("S") & FROM_SETTING, refused)[0]
    assert denial(refused) == ("missing_auth_context", ("c1",))

    settings.STEP_UP_TEST_CONTEXT = ["c2", "c3"]
    assert evaluate(HasScope("S") & FROM_SETTING, request_of(contexts=("c2",)))[0]
    assert FROM_SETTING.auth_contexts() == ("c2", "c3")


@pytest.mark.parametrize("value", [None, "", []])
def test_from_setting_with_the_setting_empty_adds_no_requirement(settings, value):
    settings.STEP_UP_TEST_CONTEXT = value
    request = request_of()

    assert evaluate(HasScope("S") & FROM_SETTING, request)[0]
    assert not evaluate(HasScope("W") & FROM_SETTING, request_of())[0]
    assert FROM_SETTING.auth_contexts() == ()


def test_from_setting_with_the_setting_absent_adds_no_requirement(settings):
    del settings.STEP_UP_TEST_CONTEXT

    assert evaluate(HasScope("S") & FROM_SETTING, request_of())[0]


def test_from_setting_never_admits_a_caller_without_an_entra_token(settings):
    settings.STEP_UP_TEST_CONTEXT = None
    request = Request(RequestFactory().get("/"))

    assert not evaluate(FROM_SETTING, request)[0]


@pytest.mark.parametrize("value", ["c 1", 7, ["c1", 2], {"c1"}])
def test_from_setting_with_a_malformed_setting_fails_closed(settings, value):
    settings.STEP_UP_TEST_CONTEXT = value

    with pytest.raises(ImproperlyConfigured):
        evaluate(FROM_SETTING, request_of(contexts=("c1",)))


def test_from_setting_composes_with_and_only():
    """Empty, it grants every Entra caller: ``X | B`` and ``~X`` would mean anyone or no one."""
    with pytest.raises(ImproperlyConfigured):
        FROM_SETTING | HasScope("S")
    with pytest.raises(ImproperlyConfigured):
        HasScope("S") | FROM_SETTING
    with pytest.raises(ImproperlyConfigured):
        (HasScope("S") & HasScope("T")) | FROM_SETTING
    with pytest.raises(ImproperlyConfigured):
        ~FROM_SETTING  # noqa: B018
    assert unnamed_requirements(HasScope("S") & FROM_SETTING) == []


def test_the_system_check_finds_no_unnamed_requirement_in_named_rules():
    rule = per_action(create=HasScope("S") & RequiresAuthContext("c1"), update=FROM_SETTING)

    assert unnamed_requirements(rule) == []


# --- entra_dev_token --acrs: a development token carrying the context -----------------------


def dev_token(*args: str) -> str:
    stdout = io.StringIO()
    call_command("entra_dev_token", "--tenant", TENANT_B, *args, stdout=stdout)
    return stdout.getvalue().strip()


@pytest.mark.django_db
def test_dev_token_carries_each_acrs_given(dev_issuer, api_client):
    token = dev_token("--scope", "Widgets.Write", "--acrs", "c1", "--acrs", "c2")

    assert jwt.decode(token, options={"verify_signature": False})["acrs"] == ["c1", "c2"]
    response = api_client.post(APPROVALS, {}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_dev_token_without_acrs_is_challenged_to_the_callers_tenant(dev_issuer, api_client):
    token = dev_token("--scope", "Widgets.Write")

    response = api_client.post(APPROVALS, {}, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert "acrs" not in jwt.decode(token, options={"verify_signature": False})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", authorization_uri="https://login.microsoftonline.com/'
        f'{TENANT_B}/oauth2/v2.0/authorize", error="insufficient_claims", claims="{C1_CLAIMS}"'
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--app-only", "--role", "Widgets.ReadWrite.All", "--acrs", "c1"], id="app"),
        pytest.param(["--scope", "Widgets.Write", "--acrs", "c 1"], id="a-space"),
        pytest.param(["--scope", "Widgets.Write", "--acrs", ""], id="empty"),
        pytest.param(["--scope", "Widgets.Write", "--acrs", 'c1"'], id="a-quote"),
    ],
)
def test_dev_token_refuses_an_acrs_entra_would_never_issue(dev_issuer, args):
    with pytest.raises(CommandError):
        dev_token(*args)
