"""What a refusal names: the requirements that refused say so themselves, and composition
keeps exactly what would have granted (RFC 6750 §3.1 ``insufficient_scope``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    IsEntraCaller,
    denial,
    per_action,
)
from tests.factories import evaluate, principal_request


@pytest.mark.parametrize(
    ("rule", "caller", "expected"),
    [
        pytest.param(
            HasScope("A") | HasScope("B"), {}, ("missing_scope", ("A", "B")), id="or-names-both"
        ),
        pytest.param(
            (HasScope("A") | HasScope("B")) & HasScope("C"),
            {"scopes": ("B",)},
            ("missing_scope", ("C",)),
            id="a-granting-or-inside-and-names-nothing",
        ),
        pytest.param(
            HasScope("A") & HasAppRole("R"),
            {"scopes": ("A",)},
            ("missing_role", ("R",)),
            id="and-names-the-side-that-refused",
        ),
        pytest.param(
            ~HasAppRole("Blocked") & HasScope("X"),
            {},
            ("missing_scope", ("X",)),
            id="a-negation-names-nothing",
        ),
        pytest.param(
            HasScope("S") | (IsAppOnly & HasAppRole("R")),
            {"app": True},
            ("missing_scope_or_role", ("S", "R")),
            id="scope-or-app-permission-for-an-app",
        ),
        pytest.param(
            IsAuthenticated & HasScope("A"),
            {},
            ("missing_scope", ("A",)),
            id="a-drf-class-on-the-left",
        ),
        pytest.param(
            IsAppOnly,
            {},
            ("permission_denied", ()),
            id="nothing-a-scope-would-cure",
        ),
    ],
)
def test_a_refusal_names_exactly_what_would_have_granted(rule, caller, expected):
    request = principal_request(**caller)

    granted, permission = evaluate(rule, request)

    assert not granted
    assert denial(request) == expected
    names = expected[1]
    message = getattr(permission, "message", None)
    if names:
        assert message == (
            "The token lacks the scope or app role this action requires: one of "
            + ", ".join(names)
            + "."
        )
    else:
        assert message is None


def test_a_granting_rule_leaves_nothing_to_name():
    request = principal_request(scopes=("B",))

    granted, _permission = evaluate(HasScope("A") | HasScope("B"), request)

    assert granted
    assert denial(request) == ("permission_denied", ())


def test_per_action_says_what_its_rule_lacked():
    view = type("View", (), {"action": "list", "action_map": {"get": "list"}})()
    request = principal_request()
    permission = per_action(list=HasScope("Things.Read"))()

    assert not permission.has_permission(request, view)
    assert denial(request) == ("missing_scope", ("Things.Read",))
    assert "Things.Read" in permission.message


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(~(HasScope("A") | HasScope("B")), id="negated-or"),
        pytest.param(~HasScope("A"), id="negated-requirement"),
        pytest.param(~IsEntraCaller | ~HasScope("A"), id="negations-or-ed"),
    ],
)
def test_a_negation_never_admits_an_anonymous_caller(rule):
    request = Request(RequestFactory().get("/"))
    request.user = AnonymousUser()

    granted, _permission = evaluate(rule, request)

    assert not granted
