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

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import MethodNotAllowed, NotFound
from rest_framework.permissions import (
    AND,
    NOT,
    OR,
    SAFE_METHODS,
    BasePermission,
    BasePermissionMetaclass,
    OperandHolder,
    SingleOperandHolder,
)
from rest_framework.request import Request

from .signals import tenant_denied

SAFE_KEY = "safe"
UNSAFE_KEY = "unsafe"
DEFAULT_KEY = "default"
METADATA_ACTION = "metadata"
# Denial reasons, as the audit log records them.
MISSING_SCOPE = "missing_scope"
MISSING_ROLE = "missing_role"
MISSING_SCOPE_OR_ROLE = "missing_scope_or_role"
PERMISSION_DENIED = "permission_denied"


def denial(request: Request, view: Any) -> tuple[str, tuple[str, ...]]:
    """Why the request was refused, and the scopes/roles that would have granted it.

    The names come from the first denying permission's structure: ``A | B`` names both sides
    when both deny, ``A & B`` the side that denies, ``~A`` nothing. The reason is
    ``missing_scope``, ``missing_role``, ``missing_scope_or_role`` (a rule that a scope or a
    role would satisfy), or ``permission_denied`` when none would help.
    """
    missing: tuple[tuple[str, str], ...] = ()
    for permission in view.get_permissions():
        denied = _would_grant(permission, request, view)
        if denied is not None:
            missing = denied
            break
    kinds = {kind for kind, _name in missing}
    if len(kinds) == 1:
        reason = kinds.pop()
    else:
        reason = MISSING_SCOPE_OR_ROLE if kinds else PERMISSION_DENIED
    return reason, tuple(dict.fromkeys(name for _kind, name in missing))


def report_tenant_denial(request: Request, *, sender: Any, object_id: Any = None) -> None:
    """Send ``entra_auth.signals.tenant_denied``: the caller asked for another tenant's object.

    ``SameTenant`` does so itself; a view whose tenant-scoped queryset already answered 404
    calls it when ``entra_auth.tenancy.exists_in_other_tenant`` says so. The caller still gets
    a plain 404: the object's existence is never revealed.
    """
    tenant_denied.send_robust(sender=sender, request=request, object_id=object_id)


def _would_grant(
    permission: Any, request: Request, view: Any
) -> tuple[tuple[str, str], ...] | None:
    """None when ``permission`` grants; otherwise the (kind, name) pairs that would grant it."""
    if isinstance(permission, _PerAction):
        return _would_grant(permission._rule(request, view), request, view)
    if isinstance(permission, OR):
        first = _would_grant(permission.op1, request, view)
        if first is None:
            return None
        second = _would_grant(permission.op2, request, view)
        return None if second is None else first + second
    if isinstance(permission, AND):
        first = _would_grant(permission.op1, request, view)
        return first if first is not None else _would_grant(permission.op2, request, view)
    if isinstance(permission, NOT):
        return () if _would_grant(permission.op1, request, view) is None else None
    if permission.has_permission(request, view):
        return None
    if isinstance(permission, _Requirement):
        return tuple((permission.denial_reason, name) for name in permission._order)
    return ()


def _entra_caller(request: Request) -> Any | None:
    """The authenticated Entra principal, or None for anyone else (fail closed)."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "scopes") or not hasattr(user, "roles"):
        return None
    return user


class IsEntraCaller(BasePermission):
    """The caller is authenticated by an Entra access token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _entra_caller(request) is not None


class _EntraRuleMeta(BasePermissionMetaclass):
    """``~Rule`` means "an Entra caller, and not Rule": a negation never admits anonymous users."""

    def __invert__(cls) -> Any:
        return OperandHolder(AND, IsEntraCaller, SingleOperandHolder(NOT, cls))


class _RequirementMeta(_EntraRuleMeta):
    """``HasScope("A", "B")`` makes a class requiring A or B; ``HasScope()`` instantiates."""

    def __call__(cls, *required: str) -> Any:
        if not required:
            return super().__call__()
        return cls.requiring(*required)

    def _must_name_requirements(cls) -> None:
        # Behind a granting '|' an unnamed requirement would never be evaluated: refuse it now.
        if cls.required is None:
            raise ImproperlyConfigured(
                f"{cls.__name__} must name what it requires before it is composed, "
                f"e.g. {cls.__name__}('Payments.Read')."
            )

    def __and__(cls, other: Any) -> Any:
        cls._must_name_requirements()
        return super().__and__(other)

    def __or__(cls, other: Any) -> Any:
        cls._must_name_requirements()
        return super().__or__(other)

    def __rand__(cls, other: Any) -> Any:
        cls._must_name_requirements()
        return super().__rand__(other)

    def __ror__(cls, other: Any) -> Any:
        cls._must_name_requirements()
        return super().__ror__(other)

    def __invert__(cls) -> Any:
        cls._must_name_requirements()
        return super().__invert__()


class _Requirement(BasePermission, metaclass=_RequirementMeta):
    """Any one of ``required`` grants access (Microsoft.Identity.Web's ``RequiredScope`` rule)."""

    required: frozenset[str] | None = None
    _order: tuple[str, ...] = ()
    denial_reason: str = PERMISSION_DENIED

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
        return caller is not None and self._granted(request, caller)


class HasScope(_Requirement):
    """A delegated (user) token whose ``scp`` holds one of the required scopes."""

    denial_reason = MISSING_SCOPE

    def _granted(self, request: Request, caller: Any) -> bool:
        return not caller.is_app_only and not caller.scopes.isdisjoint(self.required)


class HasAppRole(_Requirement):
    """A token whose ``roles`` holds one of the required app roles.

    Application permissions on app-only tokens; user-assigned app roles on delegated tokens.
    """

    denial_reason = MISSING_ROLE

    def _granted(self, request: Request, caller: Any) -> bool:
        return not caller.roles.isdisjoint(self.required)


class IsAppOnly(BasePermission, metaclass=_EntraRuleMeta):
    """The caller is an application acting as itself (client credentials)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = _entra_caller(request)
        return caller is not None and caller.is_app_only


class IsDelegated(BasePermission, metaclass=_EntraRuleMeta):
    """The caller is an application acting for a signed-in user."""

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = _entra_caller(request)
        return caller is not None and not caller.is_app_only


class SameTenant(BasePermission, metaclass=_EntraRuleMeta):
    """Object level: the object's ``tenant_id`` is the caller's ``tid``, else 404 (SPEC 7).

    Another tenant's object is answered as missing, so its existence is not revealed. Views
    that read through the tenant-scoped manager never get that far; this is the second,
    independent line of defence.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        return _entra_caller(request) is not None

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        caller = _entra_caller(request)
        if caller is None:
            return False
        tenant_id = getattr(obj, "tenant_id", None)
        if tenant_id is None or str(tenant_id).lower() != caller.tid:
            report_tenant_denial(request, sender=type(view), object_id=getattr(obj, "pk", None))
            raise NotFound()
        return True


class _DenyAll(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return False


class _PerAction(BasePermission):
    """Chooses the rule for the view's action; an action with no rule is refused."""

    rules: dict[str, Any] = {}

    def _rule(self, request: Request, view: Any) -> BasePermission:
        if getattr(view, "action_map", None) is not None and view.action is None:
            # A method the viewset does not route: DRF would answer 405, so do we.
            raise MethodNotAllowed(request.method)
        action = getattr(view, "action", None) or request.method.lower()
        rule = self.rules.get(action)
        if rule is None and action == METADATA_ACTION:
            # OPTIONS describes the route: whoever may GET it may ask.
            rule = self.rules.get(getattr(view, "action_map", {}).get("get", "get"))
        if rule is None:
            safe = request.method in SAFE_METHODS
            rule = self.rules.get(SAFE_KEY if safe else UNSAFE_KEY, self.rules.get(DEFAULT_KEY))
        if rule is None and action == METADATA_ACTION:
            return _DenyAll()
        if rule is None:
            raise ImproperlyConfigured(
                f"{type(view).__name__} declares no permission rule for action {action!r}: "
                f"add it to per_action(...) (declared: {sorted(self.rules)})."
            )
        return rule()

    # Every rule is about Entra callers: whatever a rule says (even "~X"), nobody else gets in.
    def has_permission(self, request: Request, view: Any) -> bool:
        if _entra_caller(request) is None:
            return False
        return self._rule(request, view).has_permission(request, view)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if _entra_caller(request) is None:
            return False
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


def unnamed_requirements(permission: Any) -> list[str]:
    """Requirement classes in a permission tree that name nothing (for the system check)."""
    if isinstance(permission, OperandHolder):
        return unnamed_requirements(permission.op1_class) + unnamed_requirements(
            permission.op2_class
        )
    if isinstance(permission, SingleOperandHolder):
        return unnamed_requirements(permission.op1_class)
    if isinstance(permission, type) and issubclass(permission, _PerAction):
        return [name for rule in permission.rules.values() for name in unnamed_requirements(rule)]
    if isinstance(permission, type) and issubclass(permission, _Requirement):
        return [] if permission.required is not None else [permission.__name__]
    return []
