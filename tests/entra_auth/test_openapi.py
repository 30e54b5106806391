"""entra_auth.openapi: security requirements derived from permission classes."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from entra_auth.authentication import EntraJWTAuthentication
from entra_auth.openapi import Alternative, derive, security_requirement
from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    IsDelegated,
    RequiresAuthContext,
    SameTenant,
    per_action,
)

READ = HasScope("Things.Read", "Things.Write")
APP_READ = IsAppOnly & HasAppRole("Things.Read.All")


def alternatives(*permissions: Any, action: str = "list", method: str = "GET") -> set:
    return set(derive(list(permissions), action, method).alternatives)


def test_a_scope_list_is_one_alternative_per_scope():
    assert alternatives(READ) == {
        Alternative(scopes=frozenset({"Things.Read"}), app_only=False),
        Alternative(scopes=frozenset({"Things.Write"}), app_only=False),
    }


def test_or_adds_alternatives_and_and_combines_them():
    rule = HasScope("A") | (HasScope("B") & HasAppRole("Admin")) | APP_READ
    assert alternatives(rule) == {
        Alternative(scopes=frozenset({"A"}), app_only=False),
        Alternative(scopes=frozenset({"B"}), roles=frozenset({"Admin"}), app_only=False),
        Alternative(roles=frozenset({"Things.Read.All"}), app_only=True),
    }


def test_impossible_alternatives_are_dropped():
    # An application never holds a delegated scope.
    assert alternatives(IsAppOnly & HasScope("A")) == set()
    assert alternatives(IsDelegated & HasAppRole("R")) == {
        Alternative(roles=frozenset({"R"}), app_only=False)
    }


def test_per_action_picks_the_actions_rule_then_safe_or_unsafe():
    rules = per_action(list=READ, unsafe=APP_READ)
    assert alternatives(rules, action="list") == alternatives(READ)
    assert alternatives(rules, action="destroy", method="DELETE") == alternatives(APP_READ)
    refused = derive([per_action(list=READ)], "destroy", "DELETE")
    assert refused.alternatives == []
    assert "destroy" in refused.notes[0]


def test_a_negation_is_described_not_expressed():
    derivation = derive([HasScope("A") & ~HasScope("B")], "list", "GET")
    assert derivation.alternatives == [Alternative(scopes=frozenset({"A"}), app_only=False)]
    assert any("must not satisfy" in note and "B" in note for note in derivation.notes)


def test_authentication_contexts_come_from_auth_contexts(settings: Any):
    step_up = RequiresAuthContext.from_setting("THINGS_CONTEXT")
    settings.THINGS_CONTEXT = None
    assert alternatives(HasScope("A") & step_up) == {
        Alternative(scopes=frozenset({"A"}), app_only=False)
    }
    settings.THINGS_CONTEXT = ["c1", "c2"]
    assert alternatives(HasScope("A") & step_up) == {
        Alternative(scopes=frozenset({"A"}), app_only=False, auth_contexts=frozenset({c}))
        for c in ("c1", "c2")
    }


def test_neutral_checks_add_nothing():
    assert alternatives(IsAuthenticated, SameTenant) == {Alternative()}


@pytest.mark.parametrize(
    ("alternative", "sentence"),
    [
        (Alternative(scopes=frozenset({"A"}), app_only=False), "a user with the scope A."),
        (
            Alternative(scopes=frozenset({"B", "A"}), roles=frozenset({"Admin"}), app_only=False),
            "a user with the scopes A, B and the app role Admin.",
        ),
        (Alternative(roles=frozenset({"R"}), app_only=True), "an application with the app role R."),
        (
            Alternative(app_only=False, auth_contexts=frozenset({"c1"})),
            "a user, signed in with the authentication context c1.",
        ),
        (Alternative(), "any caller."),
    ],
)
def test_each_alternative_is_described_in_words(alternative: Alternative, sentence: str):
    from entra_auth.openapi import _sentence

    assert _sentence(alternative) == sentence


def test_security_requirements_use_entras_scope_names(settings: Any):
    settings.ENTRA_AUTH = {"TENANT_ID": "organizations", "CLIENT_ID": "cid"}
    user = Alternative(scopes=frozenset({"B", "A"}), roles=frozenset({"Admin"}), app_only=False)
    assert security_requirement(user) == {"oauth2": ["api://cid/A", "api://cid/B"]}
    app = Alternative(roles=frozenset({"R"}), app_only=True)
    assert security_requirement(app) == {"oauth2": ["api://cid/.default"]}


class ThingViewSet(viewsets.ViewSet):
    authentication_classes = [EntraJWTAuthentication]
    permission_classes = [per_action(list=READ | APP_READ, create=HasScope("Things.Write"))]
    schema = None  # replaced below: the project's DEFAULT_SCHEMA_CLASS may differ

    def list(self, request: Any) -> Response:
        return Response([])

    def create(self, request: Any) -> Response:
        return Response({})


class OtherView(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request: Any) -> Response:
        return Response({})


def _schema(settings: Any, **entra_auth: Any) -> dict[str, Any]:
    from entra_auth.openapi import EntraAutoSchema

    settings.ENTRA_AUTH = {"TENANT_ID": "tenant-1", "CLIENT_ID": "cid", **entra_auth}
    ThingViewSet.schema = EntraAutoSchema()
    OtherView.schema = EntraAutoSchema()
    patterns = [
        path("things/", ThingViewSet.as_view({"get": "list", "post": "create"})),
        path("other/", OtherView.as_view()),
    ]
    return SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)


def test_operations_get_security_and_error_answers(settings: Any):
    schema = _schema(settings)
    listing = schema["paths"]["/things/"]["get"]
    assert listing["security"] == [
        {"oauth2": ["api://cid/Things.Read"]},
        {"oauth2": ["api://cid/Things.Write"]},
        {"oauth2": ["api://cid/.default"]},
    ]
    assert {"401", "403", "429", "503"} <= set(listing["responses"])
    creating = schema["paths"]["/things/"]["post"]
    assert creating["security"] == [{"oauth2": ["api://cid/Things.Write"]}]
    scheme = schema["components"]["securitySchemes"]["oauth2"]
    base = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0"
    assert scheme["flows"]["authorizationCode"]["authorizationUrl"] == f"{base}/authorize"
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == f"{base}/token"
    # A view not authenticated by Entra gets none of it.
    other = schema["paths"]["/other/"]["get"]
    assert "security" not in other or other["security"] == [{}]
    assert "401" not in other["responses"]


def test_a_trusted_development_issuer_adds_a_bearer_scheme(settings: Any):
    settings.DEBUG = True
    schema = _schema(settings, DEV_ISSUER=True)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["developmentToken"]["type"] == "http"
    assert schemes["developmentToken"]["scheme"] == "bearer"
    assert "entra_dev_token" in schemes["developmentToken"]["description"]
    assert schemes["oauth2"]["type"] == "oauth2"
    # Any Entra-authenticated operation can be tried with a pasted development token...
    assert schema["paths"]["/things/"]["post"]["security"] == [
        {"oauth2": ["api://cid/Things.Write"]},
        {"developmentToken": []},
    ]
    assert schema["paths"]["/things/"]["get"]["security"][-1] == {"developmentToken": []}
    # ...and a view Entra does not authenticate still declares nothing.
    assert schema["paths"]["/other/"]["get"].get("security", [{}]) == [{}]


@pytest.mark.parametrize(
    "debug, entra_auth",
    [
        (True, {}),  # development issuer off
        (False, {"DEV_ISSUER": True}),  # on, but not trusted with DEBUG off
    ],
)
def test_without_a_trusted_development_issuer_there_is_no_bearer_scheme(
    settings: Any, debug: bool, entra_auth: dict[str, Any]
):
    settings.DEBUG = debug
    schema = _schema(settings, **entra_auth)
    assert set(schema["components"]["securitySchemes"]) == {"oauth2"}
    for operation in schema["paths"]["/things/"].values():
        assert all("developmentToken" not in requirement for requirement in operation["security"])


@pytest.mark.parametrize("module", ["entra_auth.openapi", "entra_auth.openapi_views"])
def test_without_drf_spectacular_the_module_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str
):
    for name in ("drf_spectacular.extensions", "drf_spectacular.views"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"drf-entra-auth\[openapi\]"):
        importlib.import_module(module)


@pytest.fixture
def openapi_routes(settings: Any) -> None:
    """The schema at /api/schema/ and Swagger UI at /api/docs/, as docs/openapi.md routes them."""
    from entra_auth.openapi_views import SchemaView, SwaggerUIView

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "drf_spectacular"]
    # The views' own answers: no middleware turning other errors into JSON.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("JsonErrorMiddleware")]
    settings.ROOT_URLCONF = type(
        "OpenApiUrls",
        (),
        {
            "urlpatterns": [
                path("api/schema/", SchemaView.as_view(), name="schema"),
                path("api/docs/", SwaggerUIView.as_view(url_name="schema")),
            ]
        },
    )


def test_swagger_ui_view_answers_with_the_policy_swagger_ui_needs(
    openapi_routes: None, client: Any
):
    """Under the API routes' strict CSP middleware, the page keeps its own policy."""
    from entra_auth.openapi import swagger_ui_policy

    page = client.get("/api/docs/")
    script = client.get("/api/docs/?script=")

    assert page.status_code == 200 and b"swagger-ui" in page.content
    assert page["Content-Security-Policy"] == swagger_ui_policy()
    assert "'unsafe-eval'" not in page["Content-Security-Policy"]
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


@pytest.mark.parametrize(
    ("method", "url", "accept", "status"),
    [
        # drf-spectacular's own page cannot render an OPTIONS answer: it was a 500.
        ("options", "/api/docs/", "text/html", 405),
        ("post", "/api/docs/", "text/html", 405),
        ("delete", "/api/schema/", "*/*", 405),
        ("options", "/api/schema/", "*/*", 405),  # DRF would describe the view's docstring
        ("get", "/api/schema/", "text/html", 406),
        ("get", "/api/schema/?format=xml", "*/*", 404),
    ],
)
def test_schema_and_swagger_ui_refuse_in_json(
    openapi_routes: None, client: Any, method: str, url: str, accept: str, status: int
):
    response = getattr(client, method)(url, HTTP_ACCEPT=accept)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_swagger_ui_sends_the_signed_in_token_for_every_entra_scheme(settings: Any):
    """With the schema served only to callers, Swagger UI attaches their token to the schema
    request by scheme name: both names, flat, while the development issuer is trusted."""
    from drf_spectacular.settings import spectacular_settings

    from entra_auth.openapi_views import SwaggerUIView

    settings.DEBUG = True
    settings.ENTRA_AUTH = {"TENANT_ID": "tenant-1", "CLIENT_ID": "cid", "DEV_ISSUER": True}
    view = SwaggerUIView(authentication_classes=[EntraJWTAuthentication])
    serve_public = spectacular_settings.SERVE_PUBLIC
    spectacular_settings.SERVE_PUBLIC = False
    try:
        names = view._get_schema_auth_names()
    finally:
        spectacular_settings.SERVE_PUBLIC = serve_public

    assert names == ["oauth2", "developmentToken"]
