"""The authenticated caller: a stateless principal built from validated claims.

``request.user`` is an ``EntraPrincipal``: no database row, no query (docs/tokens.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .conf import entra_settings
from .process_caches import register_process_cache
from .tokens import client_app_id, is_app_only


@dataclass(frozen=True, slots=True, repr=False)
class EntraPrincipal:
    """``request.user`` for an Entra access token, built by ``from_claims``.

    Like simplejwt's ``TokenUser`` it quacks enough like a Django user for DRF, throttles and
    templates, but has no permissions of its own: authorization reads ``scopes``/``roles``.
    Immutable, because requests presenting the same cached token share one principal
    (``principal_for``); equal for the same caller (``tid`` and ``oid``).
    """

    oid: str
    tid: str
    sub: str | None = field(default=None, compare=False)
    app_id: str | None = field(default=None, compare=False)
    scopes: frozenset[str] = field(default=frozenset(), compare=False)
    roles: frozenset[str] = field(default=frozenset(), compare=False)
    is_app_only: bool = field(default=False, compare=False)
    token_version: str = field(default="2.0", compare=False)
    name: str | None = field(default=None, compare=False)
    preferred_username: str | None = field(default=None, compare=False)
    # Conditional Access authentication contexts the sign-in satisfied (``acrs``).
    auth_contexts: frozenset[str] = field(default=frozenset(), compare=False)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> EntraPrincipal:
        """The principal of validated claims: ``scp`` becomes ``scopes``, ``roles`` ``roles``,
        ``acrs`` ``auth_contexts``, ``azp``/``appid`` ``app_id``; app-only when there is no
        ``scp`` or ``idtyp`` is app."""
        return cls(
            oid=claims["oid"].lower(),
            tid=claims["tid"].lower(),
            sub=claims.get("sub"),
            app_id=client_app_id(claims),
            scopes=frozenset((claims.get("scp") or "").split()),
            roles=frozenset(claims.get("roles") or ()),
            is_app_only=is_app_only(claims),
            token_version=claims["ver"],
            name=claims.get("name"),
            preferred_username=claims.get("preferred_username"),
            auth_contexts=_auth_contexts(claims.get("acrs")),
        )

    @property
    def pk(self) -> str:
        """Stable per caller across tenants: ``<tid>:<oid>``."""
        return f"{self.tid}:{self.oid}"

    @property
    def id(self) -> str:
        return self.pk

    @property
    def display_name(self) -> str:
        return self.name or self.preferred_username or self.oid

    def get_username(self) -> str:
        return self.preferred_username or self.oid

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False

    def __str__(self) -> str:
        return self.display_name

    def __repr__(self) -> str:
        kind = "app" if self.is_app_only else "user"
        return f"<EntraPrincipal {kind} tid={self.tid} oid={self.oid}>"


def _auth_contexts(acrs: Any) -> frozenset[str]:
    """The authentication context ids of an ``acrs`` claim, a list of strings such as
    ``["c1"]`` (docs/permissions.md#step-up-authentication-context).

    Anything else (a bare string, a number, an object) grants no context, and so do entries
    that are not non-empty strings: a malformed claim can only make step-up fail, never pass.
    """
    if not isinstance(acrs, list):
        return frozenset()
    return frozenset(value for value in acrs if isinstance(value, str) and value)


# The principal of each recently validated claims object, keyed by its identity. The validated-
# token cache hands back the same read-only claims object for a token seen again, so a repeat
# caller costs one dictionary lookup instead of a new principal. The entry keeps its claims
# alive, so an id here can never be reused by another object while the entry exists.
_principals: OrderedDict[int, tuple[Mapping[str, Any], EntraPrincipal]] = OrderedDict()
_principals_lock = threading.Lock()
register_process_cache("principals", _principals.clear)


def principal_for(claims: Mapping[str, Any]) -> EntraPrincipal:
    """The principal for validated ``claims``: shared by every request with the same claims
    object, at most ``TOKEN_CACHE_MAX_ENTRIES`` remembered (the oldest goes first)."""
    entry = _principals.get(id(claims))
    if entry is not None and entry[0] is claims:
        return entry[1]
    principal = EntraPrincipal.from_claims(claims)
    max_entries = entra_settings.TOKEN_CACHE_MAX_ENTRIES
    if max_entries > 0:
        with _principals_lock:
            while len(_principals) >= max_entries:
                _principals.popitem(last=False)
            _principals[id(claims)] = (claims, principal)
    return principal
