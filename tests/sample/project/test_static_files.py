"""Static files with DEBUG off: after ``collectstatic``, the application serves the admin's and
Swagger UI's files itself (WhiteNoise), so ``/api/docs/`` works under gunicorn alone."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

SWAGGER_UI = "/static/drf_spectacular_sidecar/swagger-ui-dist/"
STATIC_REFERENCE = re.compile(r"""(?:src|href)="(/static/[^"]+)\"""")


@pytest.fixture
def collected(settings: Any, tmp_path: Path) -> Path:
    """``collectstatic`` into a fresh STATIC_ROOT, served as in production (no autorefresh)."""
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", "--noinput", verbosity=0)
    return settings.STATIC_ROOT


def test_the_docs_page_loads_only_files_the_application_serves(collected: Path) -> None:
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    references = set(STATIC_REFERENCE.findall(page.content.decode()))
    assert {f"{SWAGGER_UI}swagger-ui-bundle.js", f"{SWAGGER_UI}swagger-ui.css"} <= references

    for url in sorted(references | {f"{SWAGGER_UI}oauth2-redirect.html"}):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content), url
        assert response["X-Content-Type-Options"] == "nosniff", url


def test_static_files_are_sent_compressed_to_clients_that_accept_it(collected: Path) -> None:
    bundle = f"{SWAGGER_UI}swagger-ui-bundle.js"
    plain = Client().get(bundle)
    compressed = Client().get(bundle, HTTP_ACCEPT_ENCODING="gzip")

    assert plain["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert compressed["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(compressed.streaming_content)) == b"".join(
        plain.streaming_content
    )


def test_the_admins_styles_are_served(collected: Path) -> None:
    response = Client().get("/static/admin/css/base.css")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")


def test_without_collectstatic_nothing_is_served_from_the_source_tree(
    settings: Any, tmp_path: Path
) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "empty"
    settings.STATIC_ROOT.mkdir()
    settings.WHITENOISE_AUTOREFRESH = False

    response = Client().get(f"{SWAGGER_UI}swagger-ui-bundle.js")

    assert response.status_code == 404
