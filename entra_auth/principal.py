"""The authenticated caller: a stateless principal built from validated claims (SPEC 6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tokens import client_app_id, is_app_only


class EntraPrincipal:
    """``request.user`` for an Entra access token; no database row, no query.

    Like simplejwt's ``TokenUser`` it quacks enough like a Django user for DRF, throttles and
    templates, but has no permissions of its own: authorization reads ``scopes``/``roles``.
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

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.oid: str = claims["oid"].lower()
        self.tid: str = claims["tid"].lower()
        self.sub: str | None = claims.get("sub")
        self.app_id: str | None = client_app_id(claims)
        self.scopes: frozenset[str] = frozenset((claims.get("scp") or "").split())
        self.roles: frozenset[str] = frozenset(claims.get("roles") or ())
        self.is_app_only: bool = is_app_only(claims)
        self.token_version: str = claims["ver"]
        self.name: str | None = claims.get("name")
        self.preferred_username: str | None = claims.get("preferred_username")

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
