"""``make serve`` never prints the secret key it runs with."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.subprocess_support import PROJECT_ROOT

# What secrets.token_urlsafe(50) makes: 67 base64url characters.
GENERATED_SECRET = re.compile(r"[A-Za-z0-9_-]{60,}")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_serve_prints_its_commands_without_the_secret_key():
    printed = subprocess.run(
        ["make", "-n", "serve"],  # noqa: S607 - the repository's own Makefile
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    serve_lines = [line for line in printed.splitlines() if "DJANGO_SECRET_KEY" in line]
    assert serve_lines, printed
    for line in serve_lines:
        assert not GENERATED_SECRET.search(line), line
        assert "DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-$(cat .serve_secret_key)}" in line
