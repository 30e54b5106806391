"""The authenticated caller: a stateless principal built from validated claims (SPEC 6)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .conf import entra_settings
from .tokens import client_app_id, is_app_only


class EntraPrincipal:
    """``request.user`` for an Entra access token; no database row, no query.

    Like simplejwt's ``TokenUser`` it quacks enough like a Django user for DRF, throttles and
    templates, but has no permissions of its own: authorization reads ``scopes``/``roles``.

    Immutable: requests presenting the same cached token share one principal
    (``principal_for``), so no request can change what another one sees.
    """

    __slots__ = (
        "app_id",
        "is_app_only",
        "name",
        "oid",
        "preferred_username",
        "roles",
        "scopes",
        "sub",
        "tid",
        "token_version",
    )

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    oid: str
    tid: str
    sub: str | None
    app_id: str | None
    scopes: frozenset[str]
    roles: frozenset[str]
    is_app_only: bool
    token_version: str
    name: str | None
    preferred_username: str | None

    def __new__(cls, claims: Mapping[str, Any]) -> EntraPrincipal:
        # Built in __new__, so that calling __init__ again cannot rewrite a shared principal.
        self = super().__new__(cls)
        init = object.__setattr__
        init(self, "oid", claims["oid"].lower())
        init(self, "tid", claims["tid"].lower())
        init(self, "sub", claims.get("sub"))
        init(self, "app_id", client_app_id(claims))
        init(self, "scopes", frozenset((claims.get("scp") or "").split()))
        init(self, "roles", frozenset(claims.get("roles") or ()))
        init(self, "is_app_only", is_app_only(claims))
        init(self, "token_version", claims["ver"])
        init(self, "name", claims.get("name"))
        init(self, "preferred_username", claims.get("preferred_username"))
        return self

    def __init__(self, claims: Mapping[str, Any]) -> None:
        """The fields are set by ``__new__``: nothing to do, and nothing to redo, here."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"EntraPrincipal is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"EntraPrincipal is immutable: cannot delete {name!r}")

    def __copy__(self) -> EntraPrincipal:
        return self  # immutable: a copy would be the same

    def __deepcopy__(self, memo: dict[int, Any]) -> EntraPrincipal:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles by its fields (``__setattr__`` refuses the default slot-by-slot restore)."""
        fields = tuple(getattr(self, name) for name in EntraPrincipal.__slots__)
        return (_restore_principal, (type(self), fields))

    @property
    def pk(self) -> str:
        """Stable per caller across tenants: ``<tid>:<oid>``."""
        return f"{self.tid}:{self.oid}"

    id = pk

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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EntraPrincipal) and (self.tid, self.oid) == (other.tid, other.oid)

    def __hash__(self) -> int:
        return hash((self.tid, self.oid))


def _restore_principal(cls: type[EntraPrincipal], fields: tuple[Any, ...]) -> EntraPrincipal:
    principal = object.__new__(cls)
    for name, value in zip(EntraPrincipal.__slots__, fields, strict=True):
        object.__setattr__(principal, name, value)
    return principal


# The principal of each recently validated claims object, keyed by its identity. The validated-
# token cache hands back the same read-only claims object for a token seen again, so a repeat
# caller costs one dictionary lookup instead of a new principal. The entry keeps its claims
# alive, so an id here can never be reused by another object while the entry exists.
_principals: OrderedDict[int, tuple[Mapping[str, Any], EntraPrincipal]] = OrderedDict()
_principals_lock = threading.Lock()


def principal_for(claims: Mapping[str, Any]) -> EntraPrincipal:
    """The principal for validated ``claims``: shared by every request with the same claims
    object, at most ``TOKEN_CACHE_MAX_ENTRIES`` remembered (the oldest goes first)."""
    entry = _principals.get(id(claims))
    if entry is not None and entry[0] is claims:
        return entry[1]
    principal = EntraPrincipal(claims)
    max_entries = entra_settings.TOKEN_CACHE_MAX_ENTRIES
    if max_entries > 0:
        with _principals_lock:
            while len(_principals) >= max_entries:
                _principals.popitem(last=False)
            _principals[id(claims)] = (claims, principal)
    return principal
