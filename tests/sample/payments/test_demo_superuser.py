"""``make run``'s admin login: a demo superuser in development only, with a password the
project's validators accept."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from payments.management.commands import ensure_demo_superuser

pytestmark = pytest.mark.django_db

PRINTED_LOGIN = re.compile(r"user 'admin', password '([^']+)'")


def test_demo_superuser_is_refused_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG"):
        call_command("ensure_demo_superuser")

    assert not User.objects.exists()


def test_demo_superuser_prints_a_login_that_works(settings, capsys, client):
    settings.DEBUG = True

    call_command("ensure_demo_superuser", "--base-url", "http://127.0.0.1:8000")
    password = PRINTED_LOGIN.search(capsys.readouterr().out).group(1)

    user = User.objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.is_active
    assert client.login(username="admin", password=password)


def test_each_run_prints_a_fresh_password_for_the_same_user(settings, capsys):
    settings.DEBUG = True

    call_command("ensure_demo_superuser")
    first = PRINTED_LOGIN.search(capsys.readouterr().out).group(1)
    call_command("ensure_demo_superuser")
    second = PRINTED_LOGIN.search(capsys.readouterr().out).group(1)

    assert first != second
    assert User.objects.get(username="admin").check_password(second)
    assert User.objects.count() == 1


def test_the_printed_password_passes_the_projects_password_validators(settings, capsys):
    settings.DEBUG = True

    call_command("ensure_demo_superuser")
    password = PRINTED_LOGIN.search(capsys.readouterr().out).group(1)

    validate_password(password, User.objects.get(username="admin"))  # raises if it fails


def test_the_project_refuses_a_trivial_password():
    with pytest.raises(ValidationError) as refused:
        validate_password("1", User(username="admin"))

    codes = {error.code for error in refused.value.error_list}
    assert {"password_too_short", "password_entirely_numeric"} <= codes


def test_a_long_common_password_is_refused_too():
    with pytest.raises(ValidationError) as refused:
        validate_password("password1234", User(username="admin"))

    assert [error.code for error in refused.value.error_list] == ["password_too_common"]


def test_a_password_given_that_fails_the_validators_changes_nothing(settings, capsys):
    settings.DEBUG = True

    with pytest.raises(CommandError, match="AUTH_PASSWORD_VALIDATORS"):
        call_command("ensure_demo_superuser", "--password", "1")

    assert not User.objects.exists()
    assert "password" not in capsys.readouterr().out


def test_an_existing_login_keeps_its_password_when_the_new_one_fails(settings, capsys):
    settings.DEBUG = True
    call_command("ensure_demo_superuser")
    password = PRINTED_LOGIN.search(capsys.readouterr().out).group(1)

    with pytest.raises(CommandError, match="AUTH_PASSWORD_VALIDATORS"):
        call_command("ensure_demo_superuser", "--password", "123456789012")

    assert User.objects.get(username="admin").check_password(password)


def test_a_generated_password_the_validators_refuse_fails_loudly(settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.setattr(
        ensure_demo_superuser, "secrets", SimpleNamespace(token_urlsafe=lambda _bytes: "1")
    )

    with pytest.raises(CommandError, match="generated password does not pass"):
        call_command("ensure_demo_superuser")

    assert not User.objects.exists()
