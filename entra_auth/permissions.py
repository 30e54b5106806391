"""Authorization for Entra callers: scopes, app roles, caller kinds and tenants (SPEC 8).

Requirements are given inline and compose with DRF's ``&``, ``|`` and ``~``::

    permission_classes = [HasScope("Payments.Read") | HasAppRole("Payments.Read.All")]

Per viewset action, ``per_action`` maps actions (or ``safe``/``unsafe`` methods) to rules;
an action it does not name is refused with an error, never silently allowed::

    permission_classes = [per_action(
        list=HasScope("Payments.Read") | HasAppRole("Payments.Read.All"),
        create=HasScope("Payments.Write") | HasAppRole("Payments.ReadWrite.All"),
    )]

A denial records what was missing; the exception handler answers 403 with
``WWW-Authenticate: Bearer error="insufficient_scope", scope="<required>"`` (RFC 6750 §3.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import SAFE_METHODS, BasePermission, BasePermissionMetaclass
from rest_framework.request import Request

_DENIALS_ATTRIBUTE = "_entra_auth_missing"
SAFE_KEY = "safe"
UNSAFE_KEY = "unsafe"
DEFAULT_KEY = "default"


def missing_requirements(request: Request) -> tuple[str, ...]:
    """Scopes/roles whose absence denied this request, in the order they were checked."""
    return tuple(getattr(request, _DENIALS_ATTRIBUTE, {}))


def _record_missing(request: Request, names: Iterable[str]) -> None:
    missing = getattr(request, _DENIALS_ATTRIBUTE, None)
    if missing is None:
        missing = {}
        setattr(request, _DENIALS_ATTRIBUTE, missing)
    for name in names:
        missing[name] = None


def _entra_caller(request: Request) -> Any | None:
    """The authenticated Entra principal, or None for anyone else (fail closed)."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "scopes") or not hasattr(user, "roles"):
        return None
    return user


class _RequirementMeta(BasePermissionMetaclass):
    """``HasScope("A", "B")`` makes a class requiring A or B; ``HasScope()`` instantiates."""

    def __call__(cls, *required: str) -> Any:
        if not required:
            return super().__call__()
        return cls.requiring(*required)


class _Requirement(BasePermission, metaclass=_RequirementMeta):
    """Any one of ``required`` grants access (Microsoft.Identity.Web's ``RequiredScope`` rule)."""

    required: frozenset[str] | None = None
    _order: tuple[str, ...] = ()

    @classmethod
    def requiring(cls, *required: str) -> type[_Requirement]:
        names = tuple(required)
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise ImproperlyConfigured(f"{cls.__name__} needs one or more non-empty names.")
        label = ", ".join(repr(name) for name in names)
        return type(
            f"{cls.__name__}({label})",
            (cls,),
            {"required": frozenset(names), "_order": names, "__module__": cls.__module__},
        )

    def _granted(self, request: Request, caller: Any) -> bool:
        raise NotImplementedError

    def has_permission(self, request: Request, view: Any) -> bool:
        if self.required is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} must name what it requires, e.g. "
                f"{type(self).__name__}('Payments.Read')."
            )
        caller = _entra_caller(request)
        if caller is None:
            return False
        if self._granted(request, caller):
            return True
        _record_missing(request, self._order)
        return False


class HasScope(_Requirement):
    """A delegated (user) token whose ``scp`` holds one of the required scopes."""

    def _granted(self, request: Request, caller: Any) -> bool:
        return not caller.is_app_only and not caller.scopes.isdisjoint(self.required)


class HasAppRole(_Requirement):
    """A token whose ``roles`` holds one of the required app roles.

    Application permissions on app-only tokens; user-assigned app roles on delegated tokens.
    """

    def _granted(self, request: Request, caller: Any) -> bool:
        return not caller.roles.isdisjoint(self.required)


class IsAppOnly(BasePermission):
    """The caller is an application acting as itself (client credentials)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = _entra_caller(request)
        return caller is not None and caller.is_app_only


class IsDelegated(BasePermission):
    """The caller is an application acting for a signed-in user."""

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = _entra_caller(request)
        return caller is not None and not caller.is_app_only


class SameTenant(BasePermission):
    """Object level: the object's ``tenant_id`` is the caller's ``tid``.

    A mismatch is answered 404 by views that look objects up through the tenant-scoped
    manager; this check is the second, independent line of defence.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        return _entra_caller(request) is not None

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        caller = _entra_caller(request)
        tenant_id = getattr(obj, "tenant_id", None)
        if caller is None or tenant_id is None:
            return False
        return str(tenant_id).lower() == caller.tid


class _PerAction(BasePermission):
    """Chooses the rule for the view's action; an action with no rule is refused."""

    rules: dict[str, Any] = {}

    def _rule(self, request: Request, view: Any) -> BasePermission:
        action = getattr(view, "action", None) or request.method.lower()
        rule = self.rules.get(action)
        if rule is None:
            safe = request.method in SAFE_METHODS
            rule = self.rules.get(SAFE_KEY if safe else UNSAFE_KEY, self.rules.get(DEFAULT_KEY))
        if rule is None:
            raise ImproperlyConfigured(
                f"{type(view).__name__} declares no permission rule for action {action!r}: "
                f"add it to per_action(...) (declared: {sorted(self.rules)})."
            )
        return rule()

    def has_permission(self, request: Request, view: Any) -> bool:
        return self._rule(request, view).has_permission(request, view)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self._rule(request, view).has_object_permission(request, view, obj)


def per_action(**rules: Any) -> type[BasePermission]:
    """A permission choosing a rule by viewset action, then ``safe``/``unsafe``, then ``default``.

    Actions not covered are refused with ``ImproperlyConfigured`` (a system check reports
    them at start-up), never silently allowed.
    """
    if not rules:
        raise ImproperlyConfigured("per_action() needs at least one rule.")
    for name, rule in rules.items():
        if not callable(rule):
            raise ImproperlyConfigured(f"per_action rule {name!r} is not a permission class.")
    return type("per_action", (_PerAction,), {"rules": dict(rules), "__module__": __name__})


def covers_action(permission: Any, action: str, method: str) -> bool:
    """Whether a ``per_action`` permission has a rule for this action (for the system check)."""
    if not (isinstance(permission, type) and issubclass(permission, _PerAction)):
        return True
    rules = permission.rules
    fallback = SAFE_KEY if method.upper() in SAFE_METHODS else UNSAFE_KEY
    return action in rules or fallback in rules or DEFAULT_KEY in rules
