"""``make run``'s admin login: a demo superuser in development only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

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
