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
(docs/permissions.md). When all that is missing is a Conditional Access authentication context
(``RequiresAuthContext``), the middleware answers Microsoft's claims challenge instead: 401,
``error="insufficient_claims"`` (docs/permissions.md#step-up-authentication-context).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
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
MISSING_AUTH_CONTEXT = "missing_auth_context"
# An authentication context id as Entra issues them ("c1" to "c99"), and nothing a header or a
# log line could trip over.
AUTH_CONTEXT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


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


def _split(missing: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """Scopes and roles (as recorded), and the authentication context ids, apart."""
    grants = [entry for entry in missing if entry[0] != MISSING_AUTH_CONTEXT]
    contexts = tuple(dict.fromkeys(n for r, n in missing if r == MISSING_AUTH_CONTEXT))
    return grants, contexts


def _only_auth_contexts(missing: list[tuple[str, str]]) -> bool:
    return bool(missing) and all(reason == MISSING_AUTH_CONTEXT for reason, _name in missing)


def _refused(permission: Any, request: Any, mark: int) -> bool:
    """Let ``permission`` say what it lacked (DRF puts ``message`` in the 403's ``detail``).

    Scopes and roles come first: while one is missing, a stronger sign-in alone would not help.
    """
    grants, contexts = _split(_missing(request)[mark:])
    names = tuple(dict.fromkeys(name for _reason, name in grants))
    if names:
        permission.message = (
            "The token lacks the scope or app role this action requires: one of "
            + ", ".join(names)
            + "."
        )
    elif contexts:
        permission.message = auth_context_detail(contexts)
    return False


def auth_context_detail(contexts: tuple[str, ...]) -> str:
    """The sentence saying that a stronger sign-in (an authentication context) is needed."""
    return (
        "This action requires a stronger sign-in: a token issued for the authentication "
        "context " + " or ".join(contexts) + ". Sign in again as the WWW-Authenticate "
        "claims challenge asks."
    )


def denial(request: Any) -> tuple[str, tuple[str, ...]]:
    """Why permissions refused ``request``, and the scopes/roles that would have granted it.

    The names are those the refusing requirements declared: ``A | B`` names both sides when
    both refuse, ``A & B`` the side that refused, ``~A`` nothing. The reason is
    ``missing_scope``, ``missing_role``, ``missing_scope_or_role`` (a rule that a scope or a
    role would satisfy), or ``permission_denied`` when no name would help.

    Authentication contexts count only when nothing else is missing: the reason is then
    ``missing_auth_context`` and the names are the context ids (a step-up would grant). While a
    scope or role is missing too, only the scopes and roles are named.
    """
    missing, contexts = _split(_missing(request))
    if not missing and contexts:
        return MISSING_AUTH_CONTEXT, contexts
    reasons = {reason for reason, _name in missing}
    if len(reasons) == 1:
        reason = reasons.pop()
    else:
        reason = MISSING_SCOPE_OR_ROLE if reasons else PERMISSION_DENIED
    return reason, tuple(dict.fromkeys(name for _reason, name in missing))


def report_tenant_denial(
    request: Any, *, sender: Any, object_id: Any = None, object_type: str | None = None
) -> None:
    """Send ``entra_auth.signals.tenant_denied``: the caller asked for another tenant's object.

    ``SameTenant`` and the tenant-scoped manager's ``get()`` do so themselves; call it from
    code that finds out some other way. The caller still gets a plain 404: the object's
    existence is never revealed (docs/tenancy.md). ``object_type`` is the object's model label
    (``"payments.payment"``); by default, ``sender``'s when it is a model.
    """
    if object_type is None:
        object_type = getattr(getattr(sender, "_meta", None), "label_lower", "") or ""
    tenant_denied.send_robust(
        sender=sender, request=request, object_id=object_id, object_type=object_type
    )


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
        if self.op1.has_permission(request, view):
            if self.op2.has_permission(request, view):
                return True
        elif _only_auth_contexts(_missing(request)[mark:]):
            # A step-up would grant only if the other side grants too: ask it, so that a
            # scope or role it lacks is named instead of a step-up that would not help.
            named = len(_missing(request))
            if not self.op2.has_permission(request, view) and len(_missing(request)) == named:
                _rewind(request, mark)  # it refuses, and nothing named would cure it
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
        _must_not_grant_alone(self, other)
        return _EntraOperandHolder(_AnyOf, self, other)

    def __rand__(self, other: Any) -> Any:
        return _EntraOperandHolder(_AllOf, other, self)

    def __ror__(self, other: Any) -> Any:
        _must_not_grant_alone(other, self)
        return _EntraOperandHolder(_AnyOf, other, self)

    def __invert__(self) -> Any:
        _must_not_grant_alone(self)
        return _EntraOperandHolder(_AllOf, IsEntraCaller, _EntraSingleOperandHolder(_NoneOf, self))


def _must_not_grant_alone(*operands: Any) -> None:
    """``RequiresAuthContext.from_setting`` grants every Entra caller while its setting is
    empty, so it may only add to another rule: ``X | B`` would admit anyone, ``~X`` no one."""
    for operand in operands:
        if (
            isinstance(operand, type)
            and issubclass(operand, RequiresAuthContext)
            and operand.setting is not None
        ):
            raise ImproperlyConfigured(
                f"{operand.__name__} grants every caller while its setting is empty: "
                "combine it with '&' only."
            )


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
        if not cls._is_named():
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

    @classmethod
    def _is_named(cls) -> bool:
        return cls.required is not None

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


class RequiresAuthContext(_Requirement):
    """A user's token issued for one of the required Conditional Access authentication
    contexts: its ``acrs`` claim holds one of them (the step-up of Microsoft's "Developer guide
    to Conditional Access authentication context").

    ``RequiresAuthContext("c1")`` names the context ids; ``RequiresAuthContext.from_setting(
    "NAME")`` reads them from the Django setting ``NAME`` on every request (a string or a list
    of strings), and grants every Entra caller while that setting is empty, so it combines with
    ``&`` only. Without the context, a delegated caller is answered with a 401 claims challenge
    asking for the first one named (``RequestContextMiddleware``); an app-only token never
    carries one (Conditional Access applies to users' sign-ins), so it is refused with a 403
    that names nothing. See docs/permissions.md#step-up-authentication-context.
    """

    denial_reason = MISSING_AUTH_CONTEXT
    # The Django setting naming the context ids, for ``from_setting``.
    setting: str | None = None

    @classmethod
    def requiring(cls, *required: str) -> type[_Requirement]:
        _check_auth_context_ids(cls.__name__, required)
        return super().requiring(*required)

    @classmethod
    def from_setting(cls, name: str) -> type[RequiresAuthContext]:
        """A requirement whose context ids are the Django setting ``name``, read per request."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ImproperlyConfigured(f"{cls.__name__}.from_setting needs a setting name.")
        return type(
            f"{cls.__name__}.from_setting({name!r})",
            (cls,),
            {"setting": name, "__module__": cls.__module__},
        )

    @classmethod
    def _is_named(cls) -> bool:
        return cls.required is not None or cls.setting is not None

    @classmethod
    def auth_contexts(cls) -> tuple[str, ...]:
        """The context ids this requirement asks for now, in order; ``()`` for a setting that
        is empty (nothing is required). For API descriptions (an OpenAPI generator) as much as
        for the check itself."""
        if cls.setting is None:
            return cls._order
        value = getattr(settings, cls.setting, None)
        if value is None or value == "" or value == [] or value == ():
            return ()
        ids = (value,) if isinstance(value, str) else value
        if not isinstance(ids, (list, tuple)):
            raise ImproperlyConfigured(
                f"settings.{cls.setting} must be an authentication context id such as 'c1', "
                "or a list of them."
            )
        _check_auth_context_ids(f"settings.{cls.setting}", ids)
        return tuple(dict.fromkeys(ids))

    def has_permission(self, request: Request, view: Any) -> bool:
        if not self._is_named():
            raise ImproperlyConfigured(
                f"{type(self).__name__} must name the authentication contexts it requires, "
                f"e.g. {type(self).__name__}('c1')."
            )
        required = self.auth_contexts()
        caller = _entra_caller(request)
        if not required:  # from_setting, with the setting empty: nothing more is required
            return caller is not None
        if caller is not None and self._holds(caller, required):
            return True
        if caller is None or caller.is_app_only:
            # No step-up can help: nothing is named, and a valid token gets a plain 403.
            return False
        missing = _missing(request)
        mark = len(missing)
        missing.extend((MISSING_AUTH_CONTEXT, context) for context in required)
        return _refused(self, request, mark)

    @staticmethod
    def _holds(caller: Any, required: tuple[str, ...]) -> bool:
        held = getattr(caller, "auth_contexts", None) or frozenset()
        return not caller.is_app_only and not held.isdisjoint(required)


def _check_auth_context_ids(owner: str, ids: Any) -> None:
    if not ids or not all(isinstance(i, str) and AUTH_CONTEXT_ID.fullmatch(i) for i in ids):
        raise ImproperlyConfigured(
            f"{owner} needs authentication context ids such as 'c1' (letters, digits, '.', "
            "'_' or '-', at most 64 characters)."
        )


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
            report_tenant_denial(
                request,
                sender=type(view),
                object_id=getattr(obj, "pk", None),
                object_type=getattr(getattr(obj, "_meta", None), "label_lower", "") or "",
            )
            raise NotFound()
        return True


class _DenyAll(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return False


class _PerAction(BasePermission, metaclass=_EntraRuleMeta):
    """Chooses the rule for the view's action; an action with no rule is refused."""

    rules: dict[str, Any] = {}

    @classmethod
    def rule_for(cls, action: str, method: str) -> Any:
        """The rule of ``action``, else ``safe``/``unsafe`` by ``method``, else ``default``."""
        rule = cls.rules.get(action)
        if rule is None:
            fallback = SAFE_KEY if method.upper() in SAFE_METHODS else UNSAFE_KEY
            rule = cls.rules.get(fallback, cls.rules.get(DEFAULT_KEY))
        return rule

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
            rule = self.rule_for(action, request.method)
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
    return permission.rule_for(action, method) is not None


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
        return [] if permission._is_named() else [permission.__name__]
    return []
