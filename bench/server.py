"""A gunicorn server for the bench, started with the project's gunicorn.conf.py.

Bound to a free loopback port, logging to a file in the bench's scratch folder; stopped
by its own process id when the ``with`` block ends.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

from .environment import ROOT, BenchSetupError

BOOT_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
POLL_S = 0.05
BOOT_MARK = "Booting worker with pid"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GunicornServer:
    """``gunicorn -c project/gunicorn.conf.py project.wsgi`` with ``workers`` processes."""

    def __init__(self, *, workers: int, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.workers = workers
        self.log_path = log_path
        self.env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            # No recycling in the middle of a measurement (production recycles every ~10k).
            "GUNICORN_MAX_REQUESTS": "0",
            "GUNICORN_GRACEFUL_TIMEOUT": "5",
            "GUNICORN_LOG_LEVEL": "info",
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GunicornServer:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "project/gunicorn.conf.py", "project.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise BenchSetupError(f"gunicorn exited early; see {self.log_path}")

    def wait_for_workers(self) -> None:
        """Until every worker has logged its boot (its app may still be loading)."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            if self.log_path.read_text(errors="replace").count(BOOT_MARK) >= self.workers:
                return
            time.sleep(POLL_S)
        raise BenchSetupError(f"gunicorn workers did not boot in time; see {self.log_path}")

    def wait_until_serving(self, path: str = "/health/live") -> None:
        """Until ``path`` answers 200 (touches neither signing keys nor the database)."""
        self.wait_for_workers()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", path)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(POLL_S)
        raise BenchSetupError(f"gunicorn did not answer {path} in time; see {self.log_path}")
