"""``EntraJWTAuthentication``: the DRF authentication class for Entra access tokens.

The class parses the ``Authorization`` header strictly, hands the token to the pure core
(``entra_auth.tokens`` through ``entra_auth.validation``), builds the stateless principal and
maps failures to RFC 6750 answers. Each step is a method a subclass may override, as in
simplejwt: ``get_header`` → ``get_raw_token`` → ``get_validated_token`` → ``get_user``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from . import observe
from .conf import entra_settings
from .context import activate_tenant
from .exceptions import (
    AuthenticationUnavailable,
    InvalidBearerRequest,
    InvalidBearerToken,
    www_authenticate,
)
from .keys import KeysUnavailable
from .principal import EntraPrincipal, principal_for
from .signals import authentication_failed, authentication_succeeded
from .throttling import (
    count_failed_authentication,
    refuse_if_caller_over_limit,
    refuse_if_failing_too_often,
)
from .tokens import TokenError
from .validation import get_validator

AUTH_SCHEME = "bearer"
# RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_FAILURE_ATTRIBUTE = "_entra_auth_failure"
_ONE_BEARER_CREDENTIAL = "Expected 'Authorization: Bearer <token>' with a single token."


class EntraJWTAuthentication(BaseAuthentication):
    """Authenticates ``Authorization: Bearer <Entra access token>`` (RFC 6750; docs/tokens.md)."""

    def authenticate(self, request: Request) -> tuple[Any, Mapping[str, Any]] | None:
        raw_token: str | None = None
        try:
            header = self.get_header(request)
            if header is None:
                return None
            raw_token = self.get_raw_token(header)
            if raw_token is None:
                return None
            # Only a token not validated before meets the failure limit: a token found in
            # the validated-token cache passed it already, and is never locked out.
            claims = self.get_validated_token(
                raw_token, on_cache_miss=lambda: refuse_if_failing_too_often(request)
            )
        except InvalidBearerRequest as exc:
            failure = exc
        except TokenError as exc:
            if raw_token is not None and not _B64TOKEN.fullmatch(raw_token):
                # Not even RFC 6750 b64token syntax: the header is malformed.
                failure = InvalidBearerRequest(_ONE_BEARER_CREDENTIAL)
            else:
                failure = InvalidBearerToken(exc.detail)
                failure.reason = exc.code
        except KeysUnavailable:
            observe.authentication_unavailable.send()
            raise AuthenticationUnavailable() from None
        else:
            user, claims = self._authenticated(claims)
            authentication_succeeded.send_robust(sender=type(self), request=request, user=user)
            # Before authorization: refused calls count against the caller's limit too.
            refuse_if_caller_over_limit(request, user)
            return user, claims
        setattr(request, _FAILURE_ATTRIBUTE, failure)
        count_failed_authentication(request)
        # The reason code only (invalid_request for a malformed header): never the token.
        reason = getattr(failure, "reason", failure.rfc6750_error)
        authentication_failed.send_robust(sender=type(self), request=request, reason=reason)
        raise failure

    def _authenticated(self, claims: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
        user = self.get_user(claims)
        # The request now belongs to the caller's tenant (RequestContextMiddleware
        # drops the context when the request ends).
        activate_tenant(claims["tid"])
        return user, claims

    def get_header(self, request: Request) -> str | None:
        """The raw ``Authorization`` header, refused when oversized (before any parsing)."""
        # DRF's Request forwards META to the Django request through __getattr__: go direct.
        header = getattr(request, "_request", request).META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        if len(header) > entra_settings.MAX_AUTHORIZATION_HEADER_BYTES:
            raise InvalidBearerRequest("The Authorization header is too large.")
        return header

    def get_raw_token(self, header: str) -> str | None:
        """The token of exactly one ``Bearer`` credential; None for other schemes."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != AUTH_SCHEME:
            if "," in header and AUTH_SCHEME in header.lower():
                raise InvalidBearerRequest("Send exactly one Authorization header.")
            return None
        if "," in rest:
            raise InvalidBearerRequest("Send exactly one Authorization header with one token.")
        if not rest or " " in rest:
            raise InvalidBearerRequest(_ONE_BEARER_CREDENTIAL)
        return rest

    def get_validated_token(
        self, raw_token: str, on_cache_miss: Callable[[], None] | None = None
    ) -> Mapping[str, Any]:
        """Validated claims; raises ``TokenError`` or ``KeysUnavailable``.

        ``raw_token`` is checked against RFC 6750 syntax only once refused (every token the
        built-in validator accepts is base64url JWS): an override with a parser of its own
        must refuse what it cannot parse.

        ``on_cache_miss`` runs before a token not validated before is checked (the failed-
        authentication limit refuses there, so known good tokens are never locked out).
        """
        return get_validator().validate(raw_token, on_cache_miss=on_cache_miss)

    def get_user(self, claims: Mapping[str, Any]) -> EntraPrincipal:
        """The caller for validated claims; a token seen again gets the same (immutable)
        principal back. An override must not write to the database or the cache per request."""
        return principal_for(claims)

    def authenticate_header(self, request: Request) -> str:
        """RFC 6750 §3: the challenge, with the error code when a token was refused."""
        failure = getattr(request, _FAILURE_ATTRIBUTE, None)
        if failure is None:
            return www_authenticate(entra_settings.REALM)
        return www_authenticate(entra_settings.REALM, failure.rfc6750_error, str(failure.detail))
