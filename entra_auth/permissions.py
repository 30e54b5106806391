"""Authorization for Entra callers: scopes, app roles, caller kinds and tenants.

Requirements are given inline and compose with DRF's ``&``, ``|`` and ``~``::

    permission_classes = [HasScope("Payments.Read") | HasAppRole("Payments.Read.All")]

Per viewset action, ``per_action`` maps actions (or ``safe``/``unsafe`` methods) to rules;
an action it does not name is refused with an error, never silently allowed::

    permission_classes = [per_action(
        list=HasScope("Payments.Read") | HasAppRole("Payments.Read.All"),
        create=HasScope("Payments.Write") | HasAppRole("Payments.ReadWrite.All"),
    )]

A refusing requirement says what was missing: the 403's ``detail`` names it, and
``RequestContextMiddleware`` adds ``WWW-Authenticate: Bearer error="insufficient_scope",
scope="<required>"`` (RFC 6750 §3.1) and records the denial in the audit log
(docs/permissions.md).
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


# The requirements a refused request lacked, as (reason, name) pairs, kept on the Django request
# while its permissions are evaluated. A requirement that refuses adds its names; a composite
# that grants (or a negation, whatever it answers) takes back what its operands added, so what
# remains when DRF refuses the request is exactly what would have granted it.
_MISSING_ATTRIBUTE = "_entra_auth_missing"


def _missing(request: Any) -> list[tuple[str, str]]:
    django_request = getattr(request, "_request", request)
    missing = vars(django_request).get(_MISSING_ATTRIBUTE)
    if missing is None:
        missing = []
        setattr(django_request, _MISSING_ATTRIBUTE, missing)
    return missing


def _rewind(request: Any, mark: int) -> None:
    del _missing(request)[mark:]


def _refused(permission: Any, request: Any, mark: int) -> bool:
    """Let ``permission`` say what it lacked (DRF puts ``message`` in the 403's ``detail``)."""
    names = tuple(dict.fromkeys(name for _reason, name in _missing(request)[mark:]))
    if names:
        permission.message = (
            "The token lacks the scope or app role this action requires: one of "
            + ", ".join(names)
            + "."
        )
    return False


def denial(request: Any) -> tuple[str, tuple[str, ...]]:
    """Why permissions refused ``request``, and the scopes/roles that would have granted it.

    The names are those the refusing requirements declared: ``A | B`` names both sides when
    both refuse, ``A & B`` the side that refused, ``~A`` nothing. The reason is
    ``missing_scope``, ``missing_role``, ``missing_scope_or_role`` (a rule that a scope or a
    role would satisfy), or ``permission_denied`` when no name would help.
    """
    missing = _missing(request)
    reasons = {reason for reason, _name in missing}
    if len(reasons) == 1:
        reason = reasons.pop()
    else:
        reason = MISSING_SCOPE_OR_ROLE if reasons else PERMISSION_DENIED
    return reason, tuple(dict.fromkeys(name for _reason, name in missing))


def report_tenant_denial(request: Any, *, sender: Any, object_id: Any = None) -> None:
    """Send ``entra_auth.signals.tenant_denied``: the caller asked for another tenant's object.

    ``SameTenant`` and the tenant-scoped manager's ``get()`` do so themselves; call it from
    code that finds out some other way. The caller still gets a plain 404: the object's
    existence is never revealed (docs/tenancy.md).
    """
    tenant_denied.send_robust(sender=sender, request=request, object_id=object_id)


class _ObjectChecksNameNothing:
    """Object-level checks take back what they record: DRF's ``|`` re-runs ``has_permission``
    there, and the request's needs were already named at the view level."""

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        mark = len(_missing(request))
        try:
            return super().has_object_permission(request, view, obj)
        finally:
            _rewind(request, mark)


class _AllOf(_ObjectChecksNameNothing, AND):
    """DRF's ``&``, saying what the refusing side lacked."""

    def has_permission(self, request: Request, view: Any) -> bool:
        mark = len(_missing(request))
        if super().has_permission(request, view):
            return True
        return _refused(self, request, mark)


class _AnyOf(_ObjectChecksNameNothing, OR):
    """DRF's ``|``: when one side grants, what the other lacked no longer matters."""

    def has_permission(self, request: Request, view: Any) -> bool:
        mark = len(_missing(request))
        if super().has_permission(request, view):
            _rewind(request, mark)
            return True
        return _refused(self, request, mark)


class _NoneOf(_ObjectChecksNameNothing, NOT):
    """DRF's ``~``: a negation never names what would grant it."""

    def has_permission(self, request: Request, view: Any) -> bool:
        mark = len(_missing(request))
        try:
            return super().has_permission(request, view)
        finally:
            _rewind(request, mark)


class _EntraOperations:
    """``&``, ``|`` and ``~`` building the composites above; a negation admits Entra callers
    only (``~Rule`` means "an Entra caller, and not Rule"), never anonymous users.

    Python tries a right operand's reflected operator first when its type subclasses the left
    operand's, so ``IsAuthenticated & HasScope("A")`` builds these composites too.
    """

    def __and__(self, other: Any) -> Any:
        return _EntraOperandHolder(_AllOf, self, other)

    def __or__(self, other: Any) -> Any:
        return _EntraOperandHolder(_AnyOf, self, other)

    def __rand__(self, other: Any) -> Any:
        return _EntraOperandHolder(_AllOf, other, self)

    def __ror__(self, other: Any) -> Any:
        return _EntraOperandHolder(_AnyOf, other, self)

    def __invert__(self) -> Any:
        return _EntraOperandHolder(_AllOf, IsEntraCaller, _EntraSingleOperandHolder(_NoneOf, self))


class _EntraOperandHolder(_EntraOperations, OperandHolder):
    pass


class _EntraSingleOperandHolder(_EntraOperations, SingleOperandHolder):
    pass


def _entra_caller(request: Request) -> Any | None:
    """The authenticated Entra principal, or None for anyone else (fail closed)."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "scopes") or not hasattr(user, "roles"):
        return None
    return user


class _EntraRuleMeta(_EntraOperations, BasePermissionMetaclass):
    """Composition of entra_auth's permission classes (see ``_EntraOperations``)."""


class IsEntraCaller(BasePermission, metaclass=_EntraRuleMeta):
    """The caller is authenticated by an Entra access token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _entra_caller(request) is not None


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
        if caller is not None and self._granted(request, caller):
            return True
        missing = _missing(request)
        mark = len(missing)
        missing.extend((self.denial_reason, name) for name in self._order)
        return _refused(self, request, mark)


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
    """Object level: the object's ``tenant_id`` is the caller's ``tid``, else 404.

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


class _PerAction(BasePermission, metaclass=_EntraRuleMeta):
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
        mark = len(_missing(request))
        if self._rule(request, view).has_permission(request, view):
            return True
        return _refused(self, request, mark)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if _entra_caller(request) is None:
            return False
        mark = len(_missing(request))
        try:
            return self._rule(request, view).has_object_permission(request, view, obj)
        finally:
            _rewind(request, mark)


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
