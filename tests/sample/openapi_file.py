"""docs/openapi.yaml: the sample's schema, as ``tests/sample/test_openapi.py`` checks it.

``python -m tests.sample.openapi_file`` (``make openapi``) writes it again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DOCS_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
# The settings the file is generated with: a multi-tenant API on the public cloud.
DOCS_ENTRA_AUTH = {"TENANT_ID": "organizations", "CLIENT_ID": "<client-id>"}


def generate() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def as_yaml(schema: dict[str, Any]) -> str:
    from drf_spectacular.renderers import OpenApiYamlRenderer

    return OpenApiYamlRenderer().render(schema, renderer_context={}).decode()


def docs_schema() -> str:
    """The schema as docs/openapi.yaml holds it."""
    from django.test import override_settings

    with override_settings(ENTRA_AUTH=DOCS_ENTRA_AUTH):
        return as_yaml(generate())


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sample.settings")
    import django

    django.setup()
    DOCS_SCHEMA.write_text(docs_schema())
