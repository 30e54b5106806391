"""Authorization: HasScope, HasAppRole, caller kinds, SameTenant and per_action.

The rules are those of docs/permissions.md and docs/errors.md.

Requests go through the real stack (fake Entra tokens, ``EntraJWTAuthentication``, the
exception handler) against the test views in ``tests/permissions_views.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from entra_auth.exceptions import INTERNAL_ERROR_DETAIL
from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    IsDelegated,
    covers_action,
    per_action,
    unnamed_requirements,
)
from tests.factories import bearer
from tests.fake_entra import DROP, TENANT_A, TENANT_B

PERMISSIONS_URLCONF = "tests.permissions_urls"
pytestmark = pytest.mark.urls(PERMISSIONS_URLCONF)

REALM = "api"
UNRELATED_SCOPE = "User.Read"
# An app-only token must carry some role to be an access token at all.
UNRELATED_ROLE = "Directory.Unrelated.All"
LEAK_MARKERS = ("Traceback", "ImproperlyConfigured", "HasScope", "per_action", "ViewSet", ".py")


def insufficient_scope_challenge(missing: tuple[str, ...]) -> str:
    return f'Bearer realm="{REALM}", error="insufficient_scope", scope="{" ".join(missing)}"'


def assert_error_body(response: Any) -> dict[str, Any]:
    """A JSON body with a human-readable ``detail`` and the request id (docs/errors.md)."""
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


def assert_denied_for_missing(response: Any, missing: tuple[str, ...]) -> None:
    """403 naming, in the challenge and the detail, the scopes or roles that would grant."""
    assert response.status_code == 403, response.content
    assert response["WWW-Authenticate"] == insufficient_scope_challenge(missing)
    body = assert_error_body(response)
    assert body == {
        "detail": "The token lacks the scope or app role this action requires: one of "
        + ", ".join(missing)
        + ".",
        "request_id": response["X-Request-ID"],
    }


def assert_denied_without_blaming_a_scope(response: Any) -> None:
    """403 for a reason no scope or role would cure (caller kind, tenant, a ``~`` rule)."""
    assert response.status_code == 403, response.content
    assert "insufficient_scope" not in response.get("WWW-Authenticate", "")
    assert_error_body(response)


def assert_generic_server_error(response: Any) -> None:
    """Fail closed: 500 with a generic JSON body and nothing internal in it."""
    assert response.status_code == 500, response.content
    assert response.json() == {
        "detail": INTERNAL_ERROR_DETAIL,
        "request_id": response["X-Request-ID"],
    }
    for marker in LEAK_MARKERS:
        assert marker not in response.content.decode()


def caller_token(fake_entra: Any, kind: str, scope: str | None, role: str | None) -> str:
    """A TENANT_A token; an app-only one carrying ``scope`` has it in ``scp`` "somehow"."""
    if kind == "delegated":
        return fake_entra.token(scopes=(scope or UNRELATED_SCOPE,), roles=(role,) if role else ())
    scp = {"scp": scope} if scope else {}
    return fake_entra.token(app_only=True, roles=(role or UNRELATED_ROLE,), **scp)


# -- the action matrix ---------------------------------------------------------------------

# Each rule answers (scope, role, delegated, has_scope, has_role) with None (allowed) or the
# names a 403 must list ("()" when no scope or role would help).
Missing = tuple[str, ...] | None


def scope_or_role(
    scope: str, role: str, delegated: bool, has_scope: bool, has_role: bool
) -> Missing:
    return None if (delegated and has_scope) or has_role else (scope, role)


def scope_and_role(
    scope: str, role: str, delegated: bool, has_scope: bool, has_role: bool
) -> Missing:
    if not (delegated and has_scope):
        return (scope,)
    return None if has_role else (role,)


def role_and_app_only(
    scope: str, role: str, delegated: bool, has_scope: bool, has_role: bool
) -> Missing:
    if not has_role:
        return (role,)
    return () if delegated else None


@dataclass(frozen=True)
class ActionCase:
    """A route of ``PaymentViewSet``, the scope and role its rule names, and the rule's shape."""

    method: str
    path: str
    scope: str
    role: str
    success_status: int
    rule: Callable[[str, str, bool, bool, bool], Missing]

    def missing(self, delegated: bool, has_scope: bool, has_role: bool) -> Missing:
        return self.rule(self.scope, self.role, delegated, has_scope, has_role)


ACTIONS = {
    "list": ActionCase(
        "get", "/payments/", "Payments.Read", "Payments.Read.All", 200, scope_or_role
    ),
    "retrieve": ActionCase(
        "get", "/payments/pay-a/", "Payments.Read", "Payments.Read.All", 200, scope_or_role
    ),
    "create": ActionCase(
        "post", "/payments/", "Payments.Write", "Payments.ReadWrite.All", 201, scope_or_role
    ),
    "destroy": ActionCase(
        "delete", "/payments/pay-a/", "Payments.Delete", "Payments.Admin", 204, scope_and_role
    ),
    "approve": ActionCase(
        "post",
        "/payments/pay-a/approve/",
        "Payments.Approve",
        "Payments.Approve.All",
        200,
        role_and_app_only,
    ),
}


def _matrix(allowed: bool) -> list[Any]:
    params = []
    for action, kind, has_scope, has_role in product(
        ACTIONS, ("delegated", "app-only"), (True, False), (True, False)
    ):
        missing = ACTIONS[action].missing(kind == "delegated", has_scope, has_role)
        if (missing is None) != allowed:
            continue
        case_id = "-".join(
            (
                action,
                kind,
                "scope" if has_scope else "no_scope",
                "role" if has_role else "no_role",
            )
        )
        params.append(pytest.param(action, kind, has_scope, has_role, missing, id=case_id))
    return params


def request_action(fake_entra: Any, api_client: Any, action: str, kind: str, **has: bool) -> Any:
    case = ACTIONS[action]
    token = caller_token(
        fake_entra,
        kind,
        scope=case.scope if has["scope"] else None,
        role=case.role if has["role"] else None,
    )
    return getattr(api_client, case.method)(case.path, format="json", **bearer(token))


@pytest.mark.parametrize(("action", "kind", "has_scope", "has_role", "missing"), _matrix(True))
def test_caller_holding_what_the_action_requires_is_allowed(
    fake_entra, api_client, action, kind, has_scope, has_role, missing
):
    response = request_action(fake_entra, api_client, action, kind, scope=has_scope, role=has_role)

    assert response.status_code == ACTIONS[action].success_status, response.content


@pytest.mark.parametrize(("action", "kind", "has_scope", "has_role", "missing"), _matrix(False))
def test_caller_lacking_what_the_action_requires_gets_403_naming_the_alternatives(
    fake_entra, api_client, action, kind, has_scope, has_role, missing
):
    response = request_action(fake_entra, api_client, action, kind, scope=has_scope, role=has_role)

    if missing:
        assert_denied_for_missing(response, missing)
    else:
        assert_denied_without_blaming_a_scope(response)


@pytest.mark.parametrize("action", ACTIONS)
def test_request_without_token_gets_401_bearer_challenge(fake_entra, api_client, action):
    case = ACTIONS[action]

    response = getattr(api_client, case.method)(case.path, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == f'Bearer realm="{REALM}"'
    assert_error_body(response)


# -- compositions and caller kinds ---------------------------------------------------------

DELEGATED_READ = {"scopes": ("Payments.Read",)}
DELEGATED_OTHER = {"scopes": (UNRELATED_SCOPE,)}
APP_READ_ALL = {"app_only": True, "roles": ("Payments.Read.All",)}
APP_OTHER = {"app_only": True, "roles": (UNRELATED_ROLE,)}
# Delegated-looking (it has scp) but ``idtyp: app``: Entra's marker of an app-only token.
IDTYP_APP_WITH_SCP = {"scopes": ("Payments.Read",), "idtyp": "app"}
APP_WITH_SCP = {"app_only": True, "roles": (UNRELATED_ROLE,), "scp": "Payments.Read"}
# v1 app-only tokens carry no ``idtyp`` unless it is configured: no ``scp`` is enough.
V1_APP_WITHOUT_IDTYP = {"version": "1.0", "app_only": True, "roles": ("R",), "idtyp": DROP}

ALLOWED = None
NO_SCOPE_HELPS = ()


@pytest.mark.parametrize(
    ("composition", "claims", "missing"),
    [
        pytest.param(
            "scope-and-role",
            {"scopes": ("Payments.Read",), "roles": ("Payments.Auditor",)},
            ALLOWED,
            id="and-both-held",
        ),
        pytest.param(
            "scope-and-role", DELEGATED_READ, ("Payments.Auditor",), id="and-role-missing"
        ),
        pytest.param(
            "scope-and-role",
            {"scopes": (UNRELATED_SCOPE,), "roles": ("Payments.Auditor",)},
            ("Payments.Read",),
            id="and-scope-missing",
        ),
        pytest.param("scope-or-role", DELEGATED_READ, ALLOWED, id="or-delegated-scope"),
        pytest.param("scope-or-role", APP_READ_ALL, ALLOWED, id="or-application-permission"),
        pytest.param(
            "scope-or-role",
            {"scopes": (UNRELATED_SCOPE,), "roles": ("Payments.Read.All",)},
            ALLOWED,
            id="or-user-assigned-app-role",
        ),
        pytest.param(
            "scope-or-role",
            DELEGATED_OTHER,
            ("Payments.Read", "Payments.Read.All"),
            id="or-delegated-neither",
        ),
        pytest.param(
            "scope-or-role",
            APP_OTHER,
            ("Payments.Read", "Payments.Read.All"),
            id="or-app-neither",
        ),
        pytest.param("any-of-two-scopes", DELEGATED_READ, ALLOWED, id="scopes-first"),
        pytest.param(
            "any-of-two-scopes", {"scopes": ("Payments.ReadWrite",)}, ALLOWED, id="scopes-second"
        ),
        pytest.param(
            "any-of-two-scopes",
            DELEGATED_OTHER,
            ("Payments.Read", "Payments.ReadWrite"),
            id="scopes-none",
        ),
        pytest.param(
            "any-of-two-roles",
            {"app_only": True, "roles": ("Payments.ReadWrite.All",)},
            ALLOWED,
            id="roles-second",
        ),
        pytest.param(
            "any-of-two-roles",
            APP_OTHER,
            ("Payments.Read.All", "Payments.ReadWrite.All"),
            id="roles-none",
        ),
        pytest.param("delegated-not-blocked", DELEGATED_OTHER, ALLOWED, id="not-role-absent"),
        pytest.param(
            "delegated-not-blocked",
            {"scopes": (UNRELATED_SCOPE,), "roles": ("Payments.Blocked",)},
            NO_SCOPE_HELPS,
            id="not-role-held",
        ),
        pytest.param("delegated-not-blocked", APP_OTHER, NO_SCOPE_HELPS, id="not-app-caller"),
        pytest.param("not-scope", DELEGATED_OTHER, ALLOWED, id="not-scope-absent"),
        pytest.param("not-scope", DELEGATED_READ, NO_SCOPE_HELPS, id="not-scope-held"),
        pytest.param("not-scope", APP_WITH_SCP, ALLOWED, id="not-scope-app-with-scp"),
        pytest.param(
            "not-blocked-and-scope",
            DELEGATED_OTHER,
            ("Payments.Read",),
            id="not-then-and-names-only-the-scope",
        ),
        pytest.param(
            "delegated-scope-or-app-role", DELEGATED_READ, ALLOWED, id="kinds-delegated-scope"
        ),
        pytest.param("delegated-scope-or-app-role", APP_READ_ALL, ALLOWED, id="kinds-app-role"),
        pytest.param(
            "delegated-scope-or-app-role",
            {"scopes": (UNRELATED_SCOPE,), "roles": ("Payments.Read.All",)},
            ("Payments.Read",),
            id="kinds-delegated-with-app-role-only",
        ),
        pytest.param(
            "delegated-scope-or-app-role",
            APP_WITH_SCP,
            ("Payments.Read.All",),
            id="kinds-app-with-scp-only",
        ),
    ],
)
def test_composed_rules_follow_and_or_not(fake_entra, api_client, composition, claims, missing):
    response = api_client.get(f"/composed/{composition}/", **bearer(fake_entra.token(**claims)))

    if missing is ALLOWED:
        assert response.status_code == 200, response.content
    elif missing == NO_SCOPE_HELPS:
        assert_denied_without_blaming_a_scope(response)
    else:
        assert_denied_for_missing(response, missing)


@pytest.mark.parametrize(
    ("composition", "claims", "allowed"),
    [
        pytest.param("app-only", APP_OTHER, True, id="app-only-client-credentials"),
        pytest.param("app-only", IDTYP_APP_WITH_SCP, True, id="app-only-idtyp-app"),
        pytest.param("app-only", V1_APP_WITHOUT_IDTYP, True, id="app-only-v1-without-idtyp"),
        pytest.param("app-only", DELEGATED_READ, False, id="app-only-refuses-delegated"),
        pytest.param("delegated", DELEGATED_READ, True, id="delegated-user"),
        pytest.param("delegated", APP_OTHER, False, id="delegated-refuses-app"),
        pytest.param("delegated", IDTYP_APP_WITH_SCP, False, id="delegated-refuses-idtyp-app"),
    ],
)
def test_caller_kind_rules_tell_app_only_from_delegated(
    fake_entra, api_client, composition, claims, allowed
):
    response = api_client.get(f"/composed/{composition}/", **bearer(fake_entra.token(**claims)))

    if allowed:
        assert response.status_code == 200, response.content
    else:
        assert_denied_without_blaming_a_scope(response)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(APP_WITH_SCP, id="app-only-token-with-scp"),
        pytest.param(IDTYP_APP_WITH_SCP, id="idtyp-app-token-with-scp"),
    ],
)
def test_has_scope_refuses_app_only_tokens_even_when_they_carry_scp(fake_entra, api_client, claims):
    response = api_client.get("/composed/any-of-two-scopes/", **bearer(fake_entra.token(**claims)))

    assert_denied_for_missing(response, ("Payments.Read", "Payments.ReadWrite"))


# -- SameTenant ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller_tenant", "payment", "expected_status"),
    [
        pytest.param(TENANT_A, "pay-a", 200, id="a-reads-a"),
        pytest.param(TENANT_A, "pay-a-upper", 200, id="a-reads-a-upper-case-tenant-id"),
        pytest.param(TENANT_B, "pay-b", 200, id="b-reads-b"),
        pytest.param(TENANT_A, "pay-b", 404, id="a-reads-b"),
        pytest.param(TENANT_B, "pay-a", 404, id="b-reads-a"),
        pytest.param(TENANT_A, "pay-missing", 404, id="a-reads-nothing"),
    ],
)
@pytest.mark.parametrize(
    "claims",
    [pytest.param(DELEGATED_READ, id="delegated"), pytest.param(APP_READ_ALL, id="app-only")],
)
def test_same_tenant_allows_only_the_callers_own_tenants_objects(
    fake_entra, configure, api_client, claims, caller_tenant, payment, expected_status
):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    token = fake_entra.token(tenant=caller_tenant, **claims)

    response = api_client.get(f"/payments/{payment}/", **bearer(token))

    assert response.status_code == expected_status, response.content
    if expected_status == 404:
        # Another tenant's object reads exactly like a missing one: existence is not revealed.
        assert response.json()["detail"] == "Not found."
        assert "WWW-Authenticate" not in response


# -- misconfigured views fail closed -------------------------------------------------------

FULLY_PRIVILEGED_CALLERS = [
    pytest.param(
        {
            "scopes": ("Payments.Read", "Payments.Write", "Payments.Delete", "Payments.Approve"),
            "roles": ("Payments.Admin", "Payments.ReadWrite.All", "Payments.Approve.All"),
        },
        id="delegated",
    ),
    pytest.param(
        {
            "app_only": True,
            "roles": ("Payments.Read.All", "Payments.ReadWrite.All", "Payments.Approve.All"),
        },
        id="app-only",
    ),
]


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("claims", FULLY_PRIVILEGED_CALLERS)
def test_bare_has_scope_fails_closed_with_a_generic_500(
    fake_entra, api_client, settings, caplog, claims, debug
):
    settings.DEBUG = debug

    with caplog.at_level(logging.ERROR, logger="entra_auth.errors"):
        response = api_client.get(
            "/misconfigured/bare-scope/", **bearer(fake_entra.token(**claims))
        )

    assert_generic_server_error(response)
    # The developer learns what to fix from the log, not the client from the response.
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert any(
        isinstance(error, ImproperlyConfigured) and "HasScope('Payments.Read')" in str(error)
        for error in logged
    )


@pytest.mark.parametrize("claims", FULLY_PRIVILEGED_CALLERS)
def test_bare_has_scope_behind_a_granting_or_never_allows(fake_entra, claims):
    try:
        rule = IsAppOnly | HasScope
    except ImproperlyConfigured:
        return  # Refused at declaration: the strongest way to fail closed.
    view = type(
        "BareScopeOrAppOnly",
        (APIView,),
        {"permission_classes": [rule], "get": lambda self, request: Response({"ok": True})},
    ).as_view()
    request = APIRequestFactory().get("/", **bearer(fake_entra.token(**claims)))

    response = view(request)

    assert response.status_code != 200, "a bare HasScope let the request through"


@pytest.mark.parametrize(
    ("action", "method", "path"),
    [
        pytest.param("create", "post", "/misconfigured-rules/", id="create"),
        pytest.param("destroy", "delete", "/misconfigured-rules/pay-a/", id="destroy"),
        pytest.param("approve", "post", "/misconfigured-rules/pay-a/approve/", id="approve"),
    ],
)
@pytest.mark.parametrize("claims", FULLY_PRIVILEGED_CALLERS)
def test_action_missing_from_per_action_is_never_allowed(
    fake_entra, api_client, caplog, claims, action, method, path
):
    with caplog.at_level(logging.ERROR, logger="entra_auth.errors"):
        response = getattr(api_client, method)(
            path, format="json", **bearer(fake_entra.token(**claims))
        )

    assert_generic_server_error(response)
    logged = [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert any(
        "MisconfiguredRulesViewSet" in message and repr(action) in message for message in logged
    )


def test_declared_actions_of_a_partly_declared_view_still_work(fake_entra, api_client):
    response = api_client.get("/misconfigured-rules/", **bearer(fake_entra.token(**DELEGATED_READ)))

    assert response.status_code == 200


def test_check_reports_each_routed_action_per_action_does_not_cover(settings):
    settings.ROOT_URLCONF = PERMISSIONS_URLCONF

    messages = [m for m in run_checks() if m.id == "entra_auth.E014"]

    assert [(m.obj.__name__, m.msg) for m in messages] == [
        (
            "MisconfiguredRulesViewSet",
            f"MisconfiguredRulesViewSet (route {route!r}) has no permission rule for action "
            f"{action!r}: such requests would be refused.",
        )
        for route, action in [
            ("^misconfigured-rules/$", "create"),
            ("^misconfigured-rules/(?P<pk>[^/.]+)/$", "destroy"),
            ("^misconfigured-rules/(?P<pk>[^/.]+)/approve/$", "approve"),
        ]
    ]
    assert all(m.hint for m in messages)


def test_check_reports_requirements_that_name_nothing(settings):
    settings.ROOT_URLCONF = PERMISSIONS_URLCONF

    messages = [m for m in run_checks() if m.id == "entra_auth.E015"]

    assert [(m.obj.__name__, m.msg) for m in messages] == [
        (
            "MisconfiguredBareScopeView",
            "MisconfiguredBareScopeView (route 'misconfigured/bare-scope/') uses HasScope "
            "without naming what it requires: its requests fail.",
        )
    ]


def test_unnamed_requirement_nested_behind_a_composition_is_found():
    rule = (IsAppOnly | IsDelegated) | per_action(list=HasScope("A"), create=HasAppRole)

    assert unnamed_requirements(rule) == ["HasAppRole"]
    assert unnamed_requirements(~(HasScope("A") & HasAppRole("B"))) == []


def test_options_on_a_route_whose_rules_name_no_read_is_refused_not_a_server_error(
    fake_entra, api_client, settings
):
    # Given a POST-only action whose per_action names no GET, safe or default rule...
    settings.ROOT_URLCONF = PERMISSIONS_URLCONF
    token = fake_entra.token(scopes=("Payments.Read", "Payments.Write"), roles=("Payments.Admin",))

    # ...OPTIONS on it (DRF's "metadata" action) is refused, never a 500.
    response = api_client.options("/payments/pay-a/approve/", **bearer(token))

    assert response.status_code == 403, response.content


@pytest.mark.parametrize(
    "claims",
    [pytest.param(None, id="anonymous"), pytest.param(DELEGATED_READ, id="delegated-read")],
)
def test_options_on_a_viewset_the_check_accepts_is_not_a_server_error(
    fake_entra, api_client, settings, claims
):
    # Given a viewset that names a rule for each routed action (E014 has nothing to say)...
    settings.ROOT_URLCONF = PERMISSIONS_URLCONF
    assert not [
        m for m in run_checks() if m.id == "entra_auth.E014" and m.obj.__name__ == "PaymentViewSet"
    ]
    headers = bearer(fake_entra.token(**claims)) if claims else {}

    # ...when a client sends OPTIONS (DRF's "metadata" action)...
    response = api_client.options("/payments/", **headers)

    # ...then it is answered like any request, not with a server error.
    assert response.status_code in (200, 401, 403), response.content


@pytest.mark.parametrize(
    ("declaration", "names"),
    [
        pytest.param(factory, names, id=f"{factory.__name__}-{label}")
        for factory in (HasScope, HasAppRole)
        for label, names in [
            ("empty", ("",)),
            ("blank", ("   ",)),
            ("one-of-two-empty", ("Payments.Read", "")),
            ("none", (None,)),
            ("not-a-string", (42,)),
        ]
    ],
)
def test_requirement_with_empty_or_blank_names_is_refused_at_declaration(declaration, names):
    with pytest.raises(ImproperlyConfigured, match=declaration.__name__):
        declaration(*names)


@pytest.mark.parametrize(
    "rules",
    [pytest.param({}, id="no-rules"), pytest.param({"list": "Payments.Read"}, id="not-a-class")],
)
def test_per_action_refuses_declarations_without_permission_classes(rules):
    with pytest.raises(ImproperlyConfigured):
        per_action(**rules)


# -- per_action fallbacks ------------------------------------------------------------------


def chosen_rule(name: str) -> type[BasePermission]:
    """A rule that grants and notes on the request that it was the one consulted."""

    class Chosen(BasePermission):
        def has_permission(self, request: Any, view: Any) -> bool:
            request.consulted.append(name)
            return True

        def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
            request.consulted.append(name)
            return True

    return Chosen


# An authenticated Entra caller holding nothing: per_action only ever lets Entra callers in.
ENTRA_CALLER = SimpleNamespace(
    is_authenticated=True, scopes=frozenset(), roles=frozenset(), is_app_only=False, tid="t"
)


ALL_FALLBACKS = ("list", "safe", "unsafe", "default")


@pytest.mark.parametrize(
    ("declared", "action", "method", "expected"),
    [
        pytest.param(ALL_FALLBACKS, "list", "GET", "list", id="named-action-wins"),
        pytest.param(("create", "safe"), "create", "POST", "create", id="named-unsafe-action"),
        pytest.param(ALL_FALLBACKS, "retrieve", "GET", "safe", id="get-falls-back-to-safe"),
        pytest.param(ALL_FALLBACKS, "retrieve", "HEAD", "safe", id="head-is-safe"),
        pytest.param(ALL_FALLBACKS, "metadata", "OPTIONS", "safe", id="options-is-safe"),
        pytest.param(ALL_FALLBACKS, "create", "POST", "unsafe", id="post-is-unsafe"),
        pytest.param(ALL_FALLBACKS, "update", "PUT", "unsafe", id="put-is-unsafe"),
        pytest.param(ALL_FALLBACKS, "partial_update", "PATCH", "unsafe", id="patch-is-unsafe"),
        pytest.param(ALL_FALLBACKS, "destroy", "DELETE", "unsafe", id="delete-is-unsafe"),
        pytest.param(("unsafe", "default"), "list", "GET", "default", id="safe-absent-default"),
        pytest.param(("safe", "default"), "approve", "POST", "default", id="unsafe-absent-default"),
        pytest.param(("get", "default"), None, "GET", "get", id="plain-view-uses-method-name"),
    ],
)
def test_per_action_chooses_action_then_safe_or_unsafe_then_default(
    declared, action, method, expected
):
    permission = per_action(**{name: chosen_rule(name) for name in declared})()
    request = SimpleNamespace(method=method, consulted=[], user=ENTRA_CALLER)
    view = SimpleNamespace(action=action)

    assert permission.has_permission(request, view)
    assert permission.has_object_permission(request, view, object())
    assert request.consulted == [expected, expected]


@pytest.mark.parametrize(
    ("declared", "action", "method"),
    [
        pytest.param(("list",), "create", "POST", id="other-action"),
        pytest.param(("safe",), "create", "POST", id="safe-does-not-cover-unsafe"),
        pytest.param(("unsafe",), "list", "GET", id="unsafe-does-not-cover-safe"),
    ],
)
@pytest.mark.parametrize("level", ["has_permission", "has_object_permission"])
def test_per_action_refuses_an_uncovered_action(declared, action, method, level):
    permission = per_action(**{name: chosen_rule(name) for name in declared})()
    request = SimpleNamespace(method=method, consulted=[], user=ENTRA_CALLER)
    view = SimpleNamespace(action=action)
    arguments = (request, view) if level == "has_permission" else (request, view, object())

    with pytest.raises(ImproperlyConfigured, match=repr(action)):
        getattr(permission, level)(*arguments)
    assert request.consulted == []


@pytest.mark.parametrize(
    ("declared", "action", "method", "covered"),
    [
        pytest.param(("list",), "list", "get", True, id="named"),
        pytest.param(("safe",), "retrieve", "get", True, id="safe"),
        pytest.param(("unsafe",), "approve", "post", True, id="unsafe"),
        pytest.param(("default",), "destroy", "delete", True, id="default"),
        pytest.param(("list",), "create", "post", False, id="uncovered"),
        pytest.param(("safe",), "destroy", "delete", False, id="safe-only"),
        pytest.param(("unsafe",), "list", "get", False, id="unsafe-only"),
    ],
)
def test_covers_action_agrees_with_the_runtime_choice(declared, action, method, covered):
    permission = per_action(**{name: chosen_rule(name) for name in declared})

    assert covers_action(permission, action, method) is covered


def test_covers_action_ignores_permissions_that_are_not_per_action():
    assert covers_action(HasScope("Payments.Read"), "anything", "post")


def test_a_negated_rule_never_admits_anonymous_callers():
    view = SimpleNamespace(action="list")
    anonymous = SimpleNamespace(method="GET", user=None)

    for rule in (~HasAppRole("Payments.Blocked"), ~IsAppOnly, ~IsDelegated):
        assert not rule().has_permission(anonymous, view)
        assert not per_action(list=rule)().has_permission(anonymous, view)
    assert (~HasAppRole("Payments.Blocked"))().has_permission(
        SimpleNamespace(method="GET", user=ENTRA_CALLER), view
    )


# -- per_action fallbacks through a real viewset --------------------------------------------


WRITE = {"scopes": ("Payments.Write",)}


@pytest.mark.parametrize(
    ("method", "path", "claims", "expected_status"),
    [
        pytest.param("get", "/fallback/", DELEGATED_READ, 200, id="list-is-safe"),
        pytest.param("get", "/fallback/pay-a/", DELEGATED_READ, 200, id="retrieve-is-safe"),
        pytest.param("post", "/fallback/", WRITE, 201, id="create-is-unsafe"),
        pytest.param("delete", "/fallback/pay-a/", WRITE, 204, id="destroy-is-unsafe"),
        pytest.param("post", "/fallback/pay-a/approve/", WRITE, 200, id="approve-is-unsafe"),
    ],
)
def test_safe_and_unsafe_rules_cover_every_action_of_a_viewset(
    fake_entra, api_client, method, path, claims, expected_status
):
    response = getattr(api_client, method)(
        path, format="json", **bearer(fake_entra.token(**claims))
    )

    assert response.status_code == expected_status, response.content


@pytest.mark.parametrize(
    ("method", "path", "claims", "missing"),
    [
        pytest.param("post", "/fallback/", DELEGATED_READ, ("Payments.Write",), id="create"),
        pytest.param(
            "post", "/fallback/pay-a/approve/", DELEGATED_READ, ("Payments.Write",), id="approve"
        ),
        pytest.param("get", "/fallback/pay-a/", WRITE, ("Payments.Read",), id="retrieve"),
    ],
)
def test_safe_and_unsafe_rules_name_the_scope_of_the_methods_kind(
    fake_entra, api_client, method, path, claims, missing
):
    response = getattr(api_client, method)(
        path, format="json", **bearer(fake_entra.token(**claims))
    )

    assert_denied_for_missing(response, missing)
