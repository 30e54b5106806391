"""Prometheus metrics (entra_auth.metrics): GET /metrics behind its own bearer token, every
metric family moving as the library works, labels that never carry a token or an identity,
and counts that add up across processes.

Prometheus registries are process-wide and other tests move the same counters: every test
reads a value before and after, and checks the difference.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import HttpResponse
from django.test import RequestFactory
from prometheus_client.parser import text_string_to_metric_families

import entra_auth
from entra_auth import metrics
from entra_auth.keys import KeyFetchError, fetch_json
from entra_auth.models import AuditEvent
from entra_auth.signals import authentication_failed, rate_limited
from tests.conftest import entra_config
from tests.factories import user_oid
from tests.fake_entra import TENANT_A, FakeEntra
from tests.subprocess_support import run_python

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.metrics_urls")]

METRICS_TOKEN = "scrape-7c1f0e8a4b2d49e6a3f5c8d1e0b9a7f6"
METRICS_MIDDLEWARE = "entra_auth.metrics.MetricsMiddleware"
SUBPROCESS_TIMEOUT_S = 120


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def metrics_on(fake_entra: FakeEntra, settings: Any) -> Callable[..., None]:
    """Metrics turned on (the token, the middleware right after the request context);
    ``metrics_on(**overrides)`` changes other ``ENTRA_AUTH`` settings too."""
    middleware = [name for name in settings.MIDDLEWARE if name != METRICS_MIDDLEWARE]
    middleware.insert(1, METRICS_MIDDLEWARE)
    settings.MIDDLEWARE = middleware

    def apply(**overrides: Any) -> None:
        settings.ENTRA_AUTH = entra_config(fake_entra, METRICS_TOKEN=METRICS_TOKEN, **overrides)

    apply()
    return apply


def scrape(client: Any) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def label_values(text: str, name: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and label in sample.labels
    }


class Delta:
    """``delta = Delta(client)``, act, then ``delta(name, **labels)``: how much it moved."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.before = scrape(client)
        self.after = ""

    def __call__(self, name: str, **labels: str) -> float:
        if not self.after:
            self.after = scrape(self.client)
        return value(self.after, name, **labels) - value(self.before, name, **labels)


def get_me(client: Any, token: str | None = None, **extra: Any) -> Any:
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get("/api/me/", **extra)


# --- GET /metrics -------------------------------------------------------------------------


def test_a_refused_token_shows_in_the_metrics_by_reason_and_only_with_the_token(
    metrics_on, fake_entra, api_client
):
    delta = Delta(api_client)
    forged = fake_entra.token(headers={"kid": "no-such-key"})

    assert get_me(api_client, forged).status_code == 401
    assert get_me(api_client, "not-a-jwt").status_code == 401

    assert delta("entra_auth_authentications_total", outcome="failure", reason="unknown_key") == 1
    assert delta("entra_auth_authentications_total", outcome="failure", reason="malformed") == 1
    shown = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert shown["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-store" in shown["Cache-Control"]
    assert 'entra_auth_authentications_total{outcome="failure",reason="unknown_key"}' in (
        shown.content.decode()
    )

    for authorization in (
        None,
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {METRICS_TOKEN}x",
        f"Basic {METRICS_TOKEN}",
        METRICS_TOKEN,
    ):
        extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
        refused = api_client.get("/metrics", **extra)
        assert refused.status_code == 401, authorization
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "no-store" in refused["Cache-Control"]
        assert b"entra_auth" not in refused.content
        assert b"python_" not in refused.content


def test_the_bearer_scheme_is_case_insensitive(metrics_on, api_client):
    response = api_client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {METRICS_TOKEN}")

    assert response.status_code == 200
    assert b"# TYPE entra_auth_authentications_total counter" in response.content


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_configured_token_metrics_is_a_404_as_if_absent(configure, api_client, token):
    configure(METRICS_TOKEN=token)

    for authorization in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "x"}):
        response = api_client.get("/metrics", **authorization)
        assert response.status_code == 404
        assert b"entra_auth" not in response.content
    assert api_client.get("/no-such-route").content == response.content


def test_only_get_and_head_read_the_metrics(metrics_on, api_client):
    authorization = {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"}

    assert api_client.head("/metrics", **authorization).status_code == 200
    posted = api_client.post("/metrics", **authorization)
    assert posted.status_code == 405
    assert posted["Allow"] == "GET, HEAD"
    # Without the token even the method is not discussed.
    assert api_client.post("/metrics").status_code == 401


# --- each metric family -------------------------------------------------------------------


def test_accepted_tokens_and_the_validated_token_cache_are_counted(
    metrics_on, fake_entra, api_client
):
    token = fake_entra.token()
    delta = Delta(api_client)

    assert get_me(api_client, token).status_code == 200
    assert get_me(api_client, token).status_code == 200

    assert delta("entra_auth_authentications_total", outcome="success", reason="ok") == 2
    assert delta("entra_auth_token_cache_lookups_total", result="miss") == 1
    assert delta("entra_auth_token_cache_lookups_total", result="hit") == 1


def test_a_cold_start_fetches_metadata_and_keys_and_times_each_fetch(
    metrics_on, fake_entra, api_client
):
    delta = Delta(api_client)

    assert get_me(api_client, fake_entra.token()).status_code == 200

    assert delta("entra_auth_key_refreshes_total", trigger="cold_start") == 1
    # v2 and v1 metadata, then each version's key set.
    assert delta("entra_auth_key_fetches_total", document="metadata", result="ok") == 2
    assert delta("entra_auth_key_fetches_total", document="jwks", result="ok") == 2
    assert delta("entra_auth_key_fetch_duration_seconds_count", document="metadata") == 2
    assert delta("entra_auth_key_fetch_duration_seconds_count", document="jwks") == 2
    assert delta("entra_auth_key_fetch_duration_seconds_sum", document="jwks") > 0
    assert fake_entra.requests_to("metadata") == 2


def test_a_failing_fetch_is_counted_by_result_and_the_refusal_as_an_error(
    metrics_on, fake_entra, api_client
):
    delta = Delta(api_client)
    fake_entra.state.down = True

    assert get_me(api_client, fake_entra.token()).status_code == 503

    assert delta("entra_auth_key_fetches_total", document="metadata", result="http_error") == 1
    assert delta("entra_auth_key_fetches_total", document="metadata", result="ok") == 0
    assert (
        delta("entra_auth_authentications_total", outcome="error", reason="keys_unavailable") == 1
    )


def test_a_fetch_that_times_out_is_counted_as_a_timeout(metrics_on, fake_entra, api_client):
    metrics_on(HTTP_READ_TIMEOUT=0.05)
    delta = Delta(api_client)
    fake_entra.state.response_delay_s = 0.5

    assert get_me(api_client, fake_entra.token()).status_code == 503

    assert delta("entra_auth_key_fetches_total", document="metadata", result="timeout") == 1


def test_fetch_errors_name_their_result():
    with pytest.raises(KeyFetchError) as refused:
        fetch_json("http://keys.example.invalid/discovery/keys")

    assert refused.value.result == "refused_url"
    assert KeyFetchError("not a JWKS").result == "invalid"


def test_an_unknown_key_id_triggers_a_counted_refresh(metrics_on, fake_entra, api_client):
    assert get_me(api_client, fake_entra.token()).status_code == 200
    delta = Delta(api_client)
    rotated = fake_entra.rotate()

    assert get_me(api_client, fake_entra.token(key=rotated)).status_code == 200

    assert delta("entra_auth_key_refreshes_total", trigger="unknown_kid") == 1
    assert delta("entra_auth_key_refreshes_total", trigger="cold_start") == 0
    assert delta("entra_auth_key_fetches_total", document="jwks", result="ok") == 2


def test_rate_limit_refusals_are_counted_by_limit(metrics_on, fake_entra, api_client):
    metrics_on(AUTH_FAILURE_RATE_LIMIT="1/h")
    delta = Delta(api_client)

    assert get_me(api_client, "not.a.token").status_code == 401
    assert get_me(api_client, fake_entra.token()).status_code == 429

    assert delta("entra_auth_rate_limited_total", limit="auth_failure_rate_limit") == 1
    assert delta("entra_auth_rate_limited_total", limit="caller_rate_limit") == 0


def test_audit_write_failures_are_counted(metrics_on, api_client, monkeypatch):
    delta = Delta(api_client)

    def fail(**fields: Any) -> None:
        raise RuntimeError("the audit table is gone")

    monkeypatch.setattr(AuditEvent.objects, "create", fail)

    assert get_me(api_client, "not.a.token").status_code == 401

    monkeypatch.undo()
    assert delta("entra_auth_audit_write_failures_total", operation="insert") == 1


def test_requests_are_counted_and_timed_by_route_and_status_never_by_path(
    metrics_on, fake_entra, api_client
):
    token = fake_entra.token(scopes=("Widgets.Read",))
    delta = Delta(api_client)

    assert get_me(api_client).status_code == 401
    assert get_me(api_client, token).status_code == 200
    assert (
        api_client.get("/api/widgets/987654321/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code
        == 404
    )
    assert api_client.get("/api/no-such-thing/123456789/").status_code == 404
    too_large = api_client.generic(
        "POST", "/api/echo/", b"x" * (65 * 1024), content_type="application/json"
    )
    assert too_large.status_code == 413
    assert api_client.generic("BREW", "/api/me/").status_code in (401, 405)

    requests = "entra_auth_http_requests_total"
    assert delta(requests, route="api/me/", method="GET", status="401") == 1
    assert delta(requests, route="api/me/", method="GET", status="200") == 1
    widget_route = "api/widgets/(?P<pk>[^/.]+)/$"
    assert delta(requests, route=widget_route, method="GET", status="404") == 1
    assert delta(requests, route="<unmatched>", method="GET", status="404") == 1
    # Refused before the URL was resolved: still named by its route.
    assert delta(requests, route="api/echo/", method="POST", status="413") == 1
    assert delta(requests, route="api/me/", method="other") == 1
    durations = "entra_auth_http_request_duration_seconds_count"
    assert delta(durations, route="api/me/", method="GET", status_class="4xx") == 1
    assert delta(durations, route="api/me/", method="GET", status_class="2xx") == 1
    assert delta("entra_auth_http_request_duration_seconds_sum", route="api/me/") > 0

    routes = label_values(delta.after, requests, "route")
    assert not any("987654321" in route or "123456789" in route for route in routes)
    assert label_values(delta.after, requests, "method") <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "other",
    }


def test_no_label_carries_a_token_a_user_id_or_a_tenant_id(metrics_on, fake_entra, api_client):
    metrics_on(API_RATE_LIMIT="1/h")
    accepted = fake_entra.token()
    refused = fake_entra.token(aud="api://someone-else")

    assert get_me(api_client, accepted).status_code == 200
    assert get_me(api_client, accepted).status_code == 429
    assert get_me(api_client, refused).status_code == 401
    assert get_me(api_client, f"{accepted}x").status_code == 401
    text = scrape(api_client)

    assert value(text, "entra_auth_rate_limited_total", limit="caller_rate_limit") >= 1
    for secret in (accepted, refused, accepted.split(".")[1], METRICS_TOKEN):
        assert secret not in text
    for identity in (TENANT_A, user_oid(TENANT_A)):
        assert identity not in text
        assert identity.replace("-", "") not in text


def test_reasons_from_outside_the_library_are_bounded(metrics_on, api_client):
    delta = Delta(api_client)
    request = RequestFactory().get("/api/me/")

    authentication_failed.send_robust(sender=None, request=request, reason="Bearer eyJ0.eyJ1.c2ln")
    authentication_failed.send_robust(sender=None, request=request, reason=None)
    rate_limited.send_robust(sender=None, request=request, reason="x" * 200)

    assert delta("entra_auth_authentications_total", outcome="failure", reason="other") == 2
    assert delta("entra_auth_rate_limited_total", limit="other") == 1
    assert "eyJ" not in delta.after


def test_a_bounded_label_keeps_codes_up_to_its_limit():
    label = metrics.BoundedLabel(limit=2)

    assert [label("expired"), label("bad_signature"), label("wrong_audience")] == [
        "expired",
        "bad_signature",
        "other",
    ]
    assert label("expired") == "expired"
    assert [label("Expired"), label("a.b"), label(42), label("")] == ["other"] * 4


# --- turning it on and off ----------------------------------------------------------------


def test_the_middleware_stays_out_while_metrics_are_off(configure):
    configure(METRICS_TOKEN=None)

    with pytest.raises(MiddlewareNotUsed):
        metrics.MetricsMiddleware(lambda request: HttpResponse())


def test_without_the_extra_the_module_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    spec = importlib.util.spec_from_file_location(
        "entra_auth._metrics_without_the_extra", Path(entra_auth.__file__).parent / "metrics.py"
    )
    module = importlib.util.module_from_spec(spec)

    with pytest.raises(ImproperlyConfigured, match=r"drf-entra-auth\[metrics\]"):
        spec.loader.exec_module(module)


# --- several processes --------------------------------------------------------------------

MULTIPROCESS_PROBE = """
import json, sys
import django
from django.conf import settings

settings.configure(ENTRA_AUTH={"METRICS_TOKEN": "t"})
django.setup()
from entra_auth import metrics
from entra_auth.signals import authentication_failed

metrics.install()
if sys.argv[1] == "count":
    authentication_failed.send_robust(sender=None, request=None, reason="expired")
    print(json.dumps({"pid": __import__("os").getpid()}))
else:
    print(metrics.render().decode())
"""


def _probe(mode: str, environment: dict[str, str]) -> str:
    result = run_python(
        ["-c", MULTIPROCESS_PROBE, mode], env=environment, timeout=SUBPROCESS_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_counts_of_several_processes_add_up_in_multiprocess_mode(tmp_path):
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)

    pids = {json.loads(_probe("count", environment))["pid"] for _ in range(2)}
    text = _probe("render", environment)

    assert len(pids) == 2
    assert value(text, "entra_auth_authentications_total", reason="expired") == 2
    # Only what the workers wrote: no collector of the rendering process itself.
    assert "python_gc" not in text and "process_cpu" not in text


def test_a_single_process_renders_its_own_registry(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    text = metrics.render().decode()

    assert "# TYPE entra_auth_authentications_total counter" in text
    assert "python_gc_objects_collected_total" in text
