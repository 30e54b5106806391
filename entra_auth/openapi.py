"""OpenAPI 3 descriptions of Entra-protected APIs, with drf-spectacular.

Needs the ``openapi`` extra (``pip install 'drf-entra-auth[openapi]'``), ``"drf_spectacular"``
in ``INSTALLED_APPS`` and ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] =
"entra_auth.openapi.EntraAutoSchema"``. Importing this module registers
``EntraAuthenticationScheme``: ``EntraJWTAuthentication`` becomes an ``oauth2`` security scheme
with the authorization code flow (PKCE) for users and the client credentials flow for
applications. ``EntraAutoSchema`` derives each operation's ``security`` from the view's
permission classes and adds the 401, 403, 429 and 503 answers. See docs/openapi.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

from ._extras import missing_extra

try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.plumbing import ResolvedComponent
except ImportError as exc:  # the optional extra is not installed
    raise missing_extra(__name__, "drf-spectacular", "openapi") from exc

from rest_framework.permissions import (
    AND,
    NOT,
    OR,
    AllowAny,
    IsAuthenticated,
    OperandHolder,
    SingleOperandHolder,
)

from .authentication import EntraJWTAuthentication
from .conf import entra_settings
from .permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    IsDelegated,
    IsEntraCaller,
    RequiresAuthContext,
    SameTenant,
    _PerAction,
)

SCHEME_NAME = "oauth2"
# With the development issuer trusted: a bearer scheme for pasting an ``entra_dev_token`` token.
DEV_SCHEME_NAME = "developmentToken"
ERROR_COMPONENT = "EntraError"
DEFAULT_SCOPE = ".default"
# Permission classes that ask for nothing a token's scopes or roles could express.
_NEUTRAL = (IsAuthenticated, IsEntraCaller, SameTenant, AllowAny)
# A permission tree whose expansion exceeds this many alternatives is described in prose only.
MAX_ALTERNATIVES = 64


@dataclass(frozen=True)
class Alternative:
    """One way to be granted: all of these scopes and roles, of this kind of caller."""

    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    app_only: bool | None = None  # None: either kind of caller
    auth_contexts: frozenset[str] = frozenset()

    def combine(self, other: Alternative) -> Alternative | None:
        if None not in (self.app_only, other.app_only) and self.app_only != other.app_only:
            return None
        return Alternative(
            self.scopes | other.scopes,
            self.roles | other.roles,
            self.app_only if self.app_only is not None else other.app_only,
            self.auth_contexts | other.auth_contexts,
        )

    def possible(self) -> bool:
        # Scopes and authentication contexts come only on a user's (delegated) token.
        return not (self.app_only and (self.scopes or self.auth_contexts))

    def kind(self) -> Alternative:
        if self.scopes or self.auth_contexts:
            return Alternative(self.scopes, self.roles, False, self.auth_contexts)
        return self


@dataclass
class Derivation:
    """The alternatives (OR of ANDs) and what OpenAPI cannot say about them."""

    alternatives: list[Alternative]
    notes: list[str] = field(default_factory=list)


def _name(permission: Any) -> str:
    return getattr(permission, "__name__", None) or type(permission).__name__


def _derive(permission: Any, action: str, method: str, notes: list[str]) -> list[Alternative]:
    if isinstance(permission, OperandHolder):
        left = _derive(permission.op1_class, action, method, notes)
        right = _derive(permission.op2_class, action, method, notes)
        if issubclass(permission.operator_class, OR):
            return left + right
        if issubclass(permission.operator_class, AND):
            return _all_of(left, right)
    if isinstance(permission, SingleOperandHolder) and issubclass(permission.operator_class, NOT):
        notes.append(f"The token must not satisfy {_name(permission.op1_class)}.")
        return [Alternative()]
    if isinstance(permission, type):
        if issubclass(permission, _PerAction):
            rule = permission.rule_for(action, method)
            if rule is None:
                notes.append(f"No permission rule covers the action {action!r}: it is refused.")
                return []
            return _derive(rule, action, method, notes)
        if issubclass(permission, RequiresAuthContext):
            contexts = permission.auth_contexts()
            if not contexts:
                return [Alternative()]
            return [Alternative(auth_contexts=frozenset({c}), app_only=False) for c in contexts]
        if issubclass(permission, HasScope) and permission.required is not None:
            return [Alternative(scopes=frozenset({s}), app_only=False) for s in permission._order]
        if issubclass(permission, HasAppRole) and permission.required is not None:
            return [Alternative(roles=frozenset({r})) for r in permission._order]
        if issubclass(permission, IsAppOnly):
            return [Alternative(app_only=True)]
        if issubclass(permission, IsDelegated):
            return [Alternative(app_only=False)]
        if issubclass(permission, _NEUTRAL):
            return [Alternative()]
    notes.append(f"{_name(permission)} decides further, in ways not described here.")
    return [Alternative()]


def _all_of(left: list[Alternative], right: list[Alternative]) -> list[Alternative]:
    combined = []
    for a, b in product(left, right):
        both = a.combine(b)
        if both is not None and both.possible():
            combined.append(both)
    return combined


def derive(permission_classes: list[Any], action: str, method: str) -> Derivation:
    """The ways to be granted ``action`` (``method``) by all of ``permission_classes``."""
    notes: list[str] = []
    alternatives = [Alternative()]
    for permission in permission_classes:
        alternatives = _all_of(alternatives, _derive(permission, action, method, notes))
        if len(alternatives) > MAX_ALTERNATIVES:
            notes.append("The permission rules have too many alternatives to list.")
            return Derivation([Alternative()], list(dict.fromkeys(notes)))
    unique = list(dict.fromkeys(a.kind() for a in alternatives if a.possible()))
    return Derivation(unique, list(dict.fromkeys(notes)))


def api_scope(name: str) -> str:
    """A scope as Entra expects it requested: ``api://<client id>/<name>``."""
    client_id = entra_settings.CLIENT_ID or "<client-id>"
    return f"api://{client_id}/{name}"


def authority() -> str:
    """``<instance><tenant>/oauth2/v2.0``; ``organizations`` for a multi-tenant API."""
    tenant = "organizations" if entra_settings.is_multi_tenant else entra_settings.TENANT_ID
    return f"{entra_settings.instance_url}{tenant or 'organizations'}/oauth2/v2.0"


def security_requirement(alternative: Alternative) -> dict[str, list[str]]:
    """The OpenAPI security requirement requesting what ``alternative`` needs."""
    if alternative.app_only or (alternative.roles and not alternative.scopes):
        # Application permissions are granted to an app and requested with ".default".
        return {SCHEME_NAME: [api_scope(DEFAULT_SCOPE)]}
    return {SCHEME_NAME: sorted(api_scope(s) for s in alternative.scopes)}


def describe(alternative: Alternative) -> dict[str, Any]:
    """``x-entra-requirements`` entry: the claims a token needs for one alternative."""
    kind = {True: "application", False: "user", None: "any"}[alternative.app_only]
    entry: dict[str, Any] = {
        "caller": kind,
        "scopes": sorted(alternative.scopes),
        "roles": sorted(alternative.roles),
    }
    if alternative.auth_contexts:
        entry["authContexts"] = sorted(alternative.auth_contexts)
    return entry


class EntraAuthenticationScheme(OpenApiAuthenticationExtension):
    """``EntraJWTAuthentication`` as an ``oauth2`` scheme with Entra's v2.0 endpoints."""

    target_class = EntraJWTAuthentication
    match_subclasses = True

    @property
    def name(self) -> str | list[str]:  # type: ignore[override]
        """The ``oauth2`` scheme, and the development bearer scheme while it is trusted."""
        if entra_settings.dev_issuer_trusted:
            return [SCHEME_NAME, DEV_SCHEME_NAME]
        return SCHEME_NAME

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any] | list[dict[str, Any]]:
        if entra_settings.dev_issuer_trusted:
            return [self._entra_definition(), _development_definition()]
        return self._entra_definition()

    def _entra_definition(self) -> dict[str, Any]:
        base = authority()
        return {
            "type": "oauth2",
            "description": (
                "A Microsoft Entra ID access token for this API. Users sign in with the "
                "authorization code flow (PKCE); applications use client credentials and "
                f"request {api_scope(DEFAULT_SCOPE)}, which carries their application "
                "permissions (app roles)."
            ),
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": f"{base}/authorize",
                    "tokenUrl": f"{base}/token",
                    "scopes": {},
                },
                "clientCredentials": {
                    "tokenUrl": f"{base}/token",
                    "scopes": {
                        api_scope(DEFAULT_SCOPE): "The application permissions granted to the app."
                    },
                },
            },
        }

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        requirements = []
        for alternative in auto_schema.entra_derivation().alternatives:
            requirement = security_requirement(alternative)
            if requirement not in requirements:
                requirements.append(requirement)
        if requirements and entra_settings.dev_issuer_trusted:
            # The token pasted decides; the operation's description says what it must carry.
            requirements.append({DEV_SCHEME_NAME: []})
        return requirements


def _development_definition() -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "Development only: this server trusts the development issuer. Paste a token "
            "printed by `python manage.py entra_dev_token` with the scopes or app roles the "
            "operation's description lists. Absent from the schema when the development "
            "issuer is off."
        ),
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Every error: a sentence, and the request id (X-Request-ID).",
        "properties": {
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
        },
        "required": ["detail", "request_id"],
    }


_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The Bearer challenge (RFC 6750): error, and the scope or claims needed.",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_ERRORS = {
    "401": ("The token is missing, invalid, expired, or a stronger sign-in is needed.", True),
    "403": ("The token lacks the scope or app role this operation requires.", True),
    "429": ("Too many requests from this caller.", False),
    "503": ("A dependency (Entra's signing keys, the database) is unavailable.", False),
}


class EntraAutoSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema``, with security derived from the permission classes."""

    def _entra_action(self) -> str:
        return getattr(self.view, "action", None) or self.method.lower()

    def entra_derivation(self) -> Derivation:
        cached = getattr(self, "_entra_cache", None)
        key = (self.path, self.method)
        if cached is None or cached[0] != key:
            permissions = list(getattr(self.view, "permission_classes", []))
            cached = (key, derive(permissions, self._entra_action(), self.method))
            self._entra_cache = cached
        return cached[1]

    def _uses_entra(self) -> bool:
        return any(isinstance(a, EntraJWTAuthentication) for a in self.view.get_authenticators())

    def get_auth(self) -> list[dict[str, list[str]]]:
        auths = super().get_auth()
        if self._uses_entra():
            key = (SCHEME_NAME, ResolvedComponent.SECURITY_SCHEMA)
            component = self.registry._components.get(key)
            if component is not None:
                scopes = component.schema["flows"]["authorizationCode"]["scopes"]
                for alternative in self.entra_derivation().alternatives:
                    for scope in alternative.scopes:
                        scopes.setdefault(api_scope(scope), f"Delegated permission {scope}.")
        return auths

    def get_description(self) -> str:
        description = super().get_description() or ""
        if not self._uses_entra():
            return description
        derivation = self.entra_derivation()
        lines = []
        for alternative in derivation.alternatives:
            lines.append("- " + _sentence(alternative))
        if not derivation.alternatives:
            lines.append("- No token is granted this operation.")
        lines.extend(f"- {note}" for note in derivation.notes)
        text = "**Authorization** (any one of):\n\n" + "\n".join(lines)
        return f"{description}\n\n{text}" if description else text

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not self._uses_entra():
            return operation
        operation["x-entra-requirements"] = [
            describe(a) for a in self.entra_derivation().alternatives
        ]
        component = ResolvedComponent(
            name=ERROR_COMPONENT,
            type=ResolvedComponent.SCHEMA,
            object=ERROR_COMPONENT,
            schema=_error_schema(),
        )
        self.registry.register_on_missing(component)
        responses = operation.setdefault("responses", {})
        for status, (text, challenge) in _ERRORS.items():
            responses.setdefault(
                status,
                {
                    "description": text,
                    "headers": dict(_WWW_AUTHENTICATE if challenge else _RETRY_AFTER),
                    "content": {"application/json": {"schema": component.ref}},
                },
            )
        return operation


def _named(singular: str, names: frozenset[str]) -> str:
    plural = singular + "s" if len(names) > 1 else singular
    return f"the {plural} " + ", ".join(sorted(names))


def _sentence(alternative: Alternative) -> str:
    """``a user with the scope A and the app role R.``: one alternative, in words."""
    caller = {True: "an application", False: "a user", None: "any caller"}[alternative.app_only]
    holding = []
    if alternative.scopes:
        holding.append(_named("scope", alternative.scopes))
    if alternative.roles:
        holding.append(_named("app role", alternative.roles))
    sentence = caller + (" with " + " and ".join(holding) if holding else "")
    if alternative.auth_contexts:
        sentence += ", signed in with " + _named(
            "authentication context", alternative.auth_contexts
        )
    return sentence + "."


def swagger_ui_policy() -> str:
    """The Content-Security-Policy Swagger UI needs: its own assets, and Entra's token endpoint.

    Swagger UI's page and its styles carry inline ``style`` attributes, hence
    ``'unsafe-inline'`` for styles (never for scripts).
    """
    instance = entra_settings.INSTANCE.rstrip("/")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'self' {instance}; font-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
