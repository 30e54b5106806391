"""Metrics under gunicorn as deployed (project/gunicorn.conf.py): with METRICS_TOKEN set, the
workers count into a directory of the run's own, /metrics adds every worker's counts up and
shows them only to the token, and the directory goes when gunicorn exits."""

from __future__ import annotations

import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.sample.integration.servers import STOP_TIMEOUT_S, gunicorn, migrate, sample_environment

METRICS_TOKEN = secrets.token_urlsafe(32)
REFUSED = 24

pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="runs the SQLite default; the metrics do not depend on the database",
)


@pytest.fixture
def server(tmp_path):
    environment = sample_environment(
        tmp_path,
        API_AUTH_FAILURE_RATE_LIMIT="100000/m",
        METRICS_TOKEN=METRICS_TOKEN,
        # mkdtemp() makes the run's metrics directory here, where the test can see it.
        TMPDIR=str(tmp_path),
        REDIS_URL=None,
        PROMETHEUS_MULTIPROC_DIR=None,
    )
    migrate(environment)
    with gunicorn(environment, workers=2, threads=4) as (base_url, process):
        yield base_url, process, tmp_path


def _value(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _refused(base_url: str) -> int:
    return requests.get(
        f"{base_url}/api/me/", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10
    ).status_code


def test_workers_counts_add_up_behind_the_token_and_the_directory_goes_on_exit(server):
    base_url, process, tmp_path = server

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: _refused(base_url), range(REFUSED)))
    assert statuses == [401] * REFUSED

    hidden = requests.get(f"{base_url}/metrics", timeout=10)
    assert hidden.status_code == 401
    assert "entra_auth" not in hidden.text
    # Whichever worker answers, it shows every worker's counts.
    for _ in range(4):
        shown = requests.get(
            f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
        assert shown.status_code == 200
        text = shown.text
        assert (
            _value(text, "entra_auth_authentications_total", outcome="failure", reason="malformed")
            == REFUSED
        )
        assert (
            _value(
                text, "entra_auth_http_requests_total", route="api/me/", method="GET", status="401"
            )
            == REFUSED
        )
        assert METRICS_TOKEN not in text

    directories = list(tmp_path.glob("gunicorn-metrics-*"))
    assert len(directories) == 1
    assert list(directories[0].glob("*.db"))

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=STOP_TIMEOUT_S)
    assert not directories[0].exists()
