"""The sample served by gunicorn as ``make serve`` runs it, for the integration tests."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.subprocess_support import PROJECT_ROOT

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_environment(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """The sample's environment with DEBUG off, a SQLite file in ``tmp_path`` and the
    development issuer trusted by explicit override; an override of None removes a name."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENTRA_DEV_ISSUER": "1",
        "ENTRA_DEV_ISSUER_WITHOUT_DEBUG": "1",
        "ENTRA_DEV_ISSUER_KEY_FILE": str(tmp_path / "dev-key.pem"),
    }
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def migrate(environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )


def _status(url: str) -> int:
    return requests.get(url, timeout=10).status_code


def _wait_until_serving(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if _status(f"{base_url}/health/live") == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not start in time")


@contextmanager
def gunicorn(
    environment: dict[str, str], workers: int, threads: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn with the sample's configuration on a free loopback port: its base URL and
    process, serving until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "project/gunicorn.conf.py"]
    command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    if threads is not None:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(  # noqa: S603 - our own server
        [*command, "project.wsgi"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=STOP_TIMEOUT_S)
