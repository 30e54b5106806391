#!/usr/bin/env python3
"""CI leg: the production topology, nginx -> gunicorn -> PostgreSQL + Redis, under failure.

The sample runs as it does in production (docs/deployment.md#production-topology): gunicorn
on a loopback port behind nginx configured from deploy/ (the http-level definitions of
deploy/nginx.conf and deploy/snippets/payments-api-proxy.conf, in a plain-HTTP loopback server
instead of the TLS one), on a database of its own and the shared Redis. Then:

a. normal traffic through nginx: /health/live, /api/me/ and a payment created with a
   development token, X-Request-ID on every answer, the client's X-Forwarded-* and
   X-Request-ID overwritten by nginx, a 16 KiB Authorization header let through to the
   application, a body over client_max_body_size stopped by nginx as JSON;
b. slowloris: 200 connections that never finish their headers; 50 normal requests through
   nginx meanwhile must each succeed within 2 s, and nginx must drop the slow connections
   after client_header_timeout. The same 200 connections straight to gunicorn's port are
   reported as a control (not a check): they stall it. Then requests whose bodies never come
   fill one address's limit_conn: the next request gets nginx's JSON 503;
c. database outage: PostgreSQL stopped, the API answers 503 with Retry-After and a JSON body
   (detail, request_id) and /health/ready 503 naming the database; PostgreSQL started again,
   the API answers 200 without gunicorn being restarted;
d. Redis outage: Redis stopped, /api/me/ still answers 200 and /health/ready 200 "degraded"
   naming the cache; Redis started again as .ci/run starts it;
e. no 500 (nor 502/504) in nginx's access log, from nginx or from gunicorn;
f. gunicorn down: nginx answers a JSON 503 with Retry-After, not its own 502 page;
g. deploy/nginx.conf as shipped (TLS server included, with a throwaway self-signed
   certificate) passes `nginx -t`.

Needs root (apt-get, `su postgres`, pg_ctlcluster) and PostgreSQL and Redis installed and
started: .ci/run does both, and DATABASE_URL and REDIS_URL name them (.ci/run's values by
default). Installs nginx from Debian's packages when it is missing. Standard library only; run
from the repository root with `.venv/bin/python .ci/topology.py`. Prints one PASS/FAIL line
per check; exits non-zero on any failure, after printing the logs of gunicorn and nginx.
Whatever happens, it stops its gunicorn and nginx, starts again the PostgreSQL and Redis it
stopped, and drops its database.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEPLOY = REPO / "deploy"
SITE_CONF = DEPLOY / "nginx.conf"
SNIPPETS = DEPLOY / "snippets"
SNIPPET = SNIPPETS / "payments-api-proxy.conf"
PRODUCTION_UPSTREAM = "server 127.0.0.1:8000;"

DEFAULT_DATABASE_URL = "postgres://app:app@127.0.0.1:5432/entra"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TOPOLOGY_DATABASE = "entra_topology"
APP_ROLE = "app"
# .ci/run's role, should this leg run alone: neither superuser nor BYPASSRLS, so row-level
# security applies.
CREATE_APP_ROLE_SQL = """\
SELECT 'CREATE ROLE app LOGIN PASSWORD ''app'' NOSUPERUSER NOBYPASSRLS CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app')\\gexec
"""

TENANT = "11111111-1111-4111-8111-111111111111"
SCOPES = ("Payments.Read", "Payments.Write")
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4

# Bounded everything: the whole leg takes well under two minutes.
COMMAND_TIMEOUT_S = 120
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
HTTP_TIMEOUT_S = 10
POLL_INTERVAL_S = 0.25
SLOW_CLIENTS = 200
SLOW_TRICKLE_INTERVAL_S = 2.0
NORMAL_REQUESTS = 50
NORMAL_REQUEST_BOUND_S = 2.0
CONTROL_REQUESTS = 5
# client_header_timeout (10 s) plus a margin for the timer and the trickle's rounds.
SLOW_DROP_DEADLINE_S = 16.0
RECOVERY_DEADLINE_S = 30.0
SERVICE_DEADLINE_S = 20.0
LOG_SHOWN_LINES = 80
BODY_SHOWN_CHARS = 600
HEADER_TOKEN_BYTES = 16 * 1024 - 64  # with "Bearer ", just under the application's 16 KiB
TOO_LARGE_BODY_BYTES = 2 * 1024 * 1024  # over client_max_body_size (1 MiB)

# A request whose body never comes: in progress for nginx (its header is complete), unknown to
# gunicorn (nginx buffers the whole body first).
SLOW_BODY_REQUEST = (
    b"POST /api/payments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
)
_NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


class Abort(Exception):
    """A prerequisite failed (already reported): the later checks cannot run."""


class Report:
    def __init__(self) -> None:
        self.failures = 0

    def check(self, name: str, ok: bool, reason: str = "") -> bool:
        if ok:
            print(f"PASS {name}", flush=True)
        else:
            self.failures += 1
            print(f"FAIL {name}" + (f": {reason}" if reason else ""), flush=True)
        return ok

    def require(self, name: str, ok: bool, reason: str = "") -> None:
        if not self.check(name, ok, reason):
            raise Abort(name)

    @staticmethod
    def info(text: str) -> None:
        print(f"INFO {text}", flush=True)


def _clip(text: str, limit: int = BODY_SHOWN_CHARS) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


def _tail(path: Path, lines: int = LOG_SHOWN_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# --------------------------------------------------------------------------------------------
# Commands and services


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args = [str(part) for part in cmd]
    done = subprocess.run(  # noqa: S603 -- fixed argument lists built by this script
        args,
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"exit {done.returncode}: {' '.join(args)}\n{(done.stdout + done.stderr).strip()}"
        )
    return done


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _system_nginx_pid() -> int | None:
    try:
        pid = int(Path("/run/nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _process_alive(pid) else None


def ensure_nginx() -> str:
    """nginx's path; installs Debian's package first when it is missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return found
    print("installing nginx (Debian's package)", flush=True)
    running_before = _system_nginx_pid()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, timeout=300)
    run(["apt-get", "install", "-y", "-qq", "nginx"], env=env, timeout=300)
    # Where the package's scripts may start services, its default site now listens on port 80:
    # this leg needs none of it, so the system nginx the installation started is stopped.
    started = _system_nginx_pid()
    if started is not None and running_before is None:
        run(["/usr/sbin/nginx", "-s", "quit"], check=False)
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Postgres:
    """The cluster serving DATABASE_URL's port, driven with pg_ctlcluster as .ci/run does."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise RuntimeError(f"DATABASE_URL must name PostgreSQL, not {parts.scheme!r}")
        self.url = url
        self.port = parts.port or 5432
        self.version, self.cluster = self._cluster()
        self.stopped_by_us = False

    def _cluster(self) -> tuple[str, str]:
        listing = run(["pg_lsclusters", "--no-header"], check=False).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == str(self.port):
                return fields[0], fields[1]
        versions = sorted(
            (path.name for path in Path("/usr/lib/postgresql").iterdir()),
            key=lambda name: [int(part) for part in re.findall(r"\d+", name)],
        )
        return versions[-1], "main"

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def psql(self, sql: str) -> str:
        return run(
            ["su", "postgres", "-c", f"psql -X -q -t -A -p {self.port} -v ON_ERROR_STOP=1"],
            stdin=sql,
        ).stdout

    def is_up(self) -> bool:
        done = run(["pg_ctlcluster", self.version, self.cluster, "status"], check=False)
        return done.returncode == 0

    def accepts_connections(self) -> bool:
        done = run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False)
        return done.returncode == 0

    def stop(self) -> None:
        self.stopped_by_us = True
        run(["pg_ctlcluster", self.version, self.cluster, "stop"])

    def start(self) -> None:
        if not self.is_up():
            run(["pg_ctlcluster", self.version, self.cluster, "start"])
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while not self.accepts_connections() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
        self.stopped_by_us = False

    def create_database(self, name: str) -> None:
        self.psql(CREATE_APP_ROLE_SQL)
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\n")
        self.psql(f"CREATE DATABASE {name} OWNER {APP_ROLE};\n")

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\n")


class Redis:
    """The Redis of REDIS_URL, stopped and started again as .ci/run starts it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.port = parts.port or 6379
        self.stopped_by_us = False

    def ping(self) -> bool:
        done = run(["redis-cli", "-p", str(self.port), "ping"], check=False, timeout=10)
        return done.stdout.strip() == "PONG"

    def stop(self) -> None:
        self.stopped_by_us = True
        run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], check=False, timeout=10)
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while self.ping() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)

    def start(self) -> None:
        if not self.ping():
            run(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--daemonize",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
            )
        deadline = time.monotonic() + SERVICE_DEADLINE_S
        while not self.ping() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
        self.stopped_by_us = False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str], log: Path):
    """A server in a process group of its own (stopped as a group), output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 -- our own servers
            [str(part) for part in cmd],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


def child_pids(parent: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            # The command may hold spaces and parentheses: the fields after the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                children.add(int(stat.parent.name))
    return children


# --------------------------------------------------------------------------------------------
# nginx configuration, rendered from deploy/


def _top_level_statements(text: str) -> list[str]:
    """nginx configuration text cut into its top-level statements (simple ones and blocks),
    each with the comments before it; quotes and comments are respected."""
    statements: list[str] = []
    start = depth = index = 0
    quote = ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                statements.append(text[start : index + 1])
                start = index + 1
        elif char == ";" and depth == 0:
            statements.append(text[start : index + 1])
            start = index + 1
        index += 1
    if depth != 0 or quote or re.sub(r"#[^\n]*", "", text[start:]).strip():
        raise ValueError("unbalanced braces or quotes, or an unterminated statement")
    return statements


def _directive(statement: str) -> str:
    code = re.sub(r"#[^\n]*", "", statement).strip()
    return code.split(None, 1)[0] if code else ""


def site_http_definitions(gunicorn_port: int) -> str:
    """deploy/nginx.conf without its server blocks (zones, log format, upstream), the
    upstream pointed at this leg's gunicorn port."""
    text = SITE_CONF.read_text()
    kept = "".join(s for s in _top_level_statements(text) if _directive(s) != "server")
    if kept.count(PRODUCTION_UPSTREAM) != 1:
        raise RuntimeError(f"deploy/nginx.conf must hold {PRODUCTION_UPSTREAM!r} exactly once")
    return kept.replace(PRODUCTION_UPSTREAM, f"server 127.0.0.1:{gunicorn_port};")


def _main_context(work: Path, *, user: str) -> str:
    """What Debian's /etc/nginx/nginx.conf gives, with every path in ``work``."""
    return f"""\
{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/logs/error.log notice;
events {{
    worker_connections 1024;
}}
"""


def _http_paths(work: Path) -> str:
    temp = work / "temp"
    return f"""\
    default_type application/octet-stream;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
"""


def _worker_user() -> str:
    if os.geteuid() != 0:
        return ""
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        return ""
    return "user www-data;\n"


def render_loopback_config(work: Path, nginx_port: int, gunicorn_port: int) -> Path:
    """The CI variant: the site's definitions and shared snippet, one plain-HTTP loopback server."""
    for sub in ("logs", "temp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "snippets").symlink_to(SNIPPETS, target_is_directory=True)
    config = work / "nginx.conf"
    config.write_text(
        "# Rendered by .ci/topology.py from deploy/: the production site's definitions and\n"
        "# proxy snippet, served on plain HTTP on loopback instead of TLS.\n"
        "daemon off;\n"
        + _main_context(work, user=_worker_user())
        + "http {\n"
        + _http_paths(work)
        + site_http_definitions(gunicorn_port)
        + f"""
    server {{
        listen 127.0.0.1:{nginx_port} default_server;
        server_name 127.0.0.1 localhost;
        access_log {work}/logs/access.log payments_api;
        include snippets/payments-api-proxy.conf;
    }}
}}
"""
    )
    return config


def render_production_config(work: Path) -> tuple[Path, str]:
    """deploy/nginx.conf as shipped, with a throwaway certificate and logs in ``work``;
    returns (main config, the reason it cannot be rendered or "")."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return work, "openssl is not installed: no certificate to test with"
    for sub in ("logs", "temp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "snippets").symlink_to(SNIPPETS, target_is_directory=True)
    certificate, key = work / "cert.pem", work / "key.pem"
    run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=api.example.com",
            "-keyout",
            key,
            "-out",
            certificate,
        ]
    )
    site = SITE_CONF.read_text()
    replacements = {
        "/etc/ssl/certs/api.example.com.fullchain.pem": str(certificate),
        "/etc/ssl/private/api.example.com.key": str(key),
        "/var/log/nginx/": f"{work}/logs/",
    }
    for old, new in replacements.items():
        if old not in site:
            raise RuntimeError(f"deploy/nginx.conf no longer holds {old!r}")
        site = site.replace(old, new)
    (work / "site.conf").write_text(site)
    config = work / "nginx.conf"
    config.write_text(
        _main_context(work, user=_worker_user())
        + "http {\n"
        + _http_paths(work)
        + "    include /etc/nginx/mime.types;\n"
        + f"    include {work}/site.conf;\n}}\n"
    )
    return config, ""


# --------------------------------------------------------------------------------------------
# HTTP


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, elapsed: float):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self) -> str:
        text = self.body.decode(errors="replace")
        return f"{self.status} {_clip(text)}"


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    token: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Answer | str:
    """The answer, or a description of why there is none."""
    sent = {"Host": "127.0.0.1", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, answer_headers, data, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc} after {time.monotonic() - started:.1f}s"
    finally:
        connection.close()


def describe(answer: Answer | str) -> str:
    return answer.describe() if isinstance(answer, Answer) else answer


def wait_until(port: int, path: str, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Answer | str = "no attempt"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        last = request(port, path, timeout=2)
        if isinstance(last, Answer) and last.status == 200:
            return
        time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"{name} did not answer {path} in {START_TIMEOUT_S}s: {describe(last)}")


# --------------------------------------------------------------------------------------------
# Slow clients


class SlowClients:
    """Connections that send part of a request header, then one more byte every couple of
    seconds, never finishing it (slowloris)."""

    PREFIX = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.sockets: list[socket.socket] = []
        self.opened_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        self.opened_at = time.monotonic()
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(self.PREFIX)
            sock.setblocking(False)
            self.sockets.append(sock)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SLOW_TRICKLE_INTERVAL_S + 5)
        for sock in self.sockets:
            with suppress(OSError):
                sock.close()

    def _trickle(self) -> None:
        while not self._stop.wait(SLOW_TRICKLE_INTERVAL_S):
            for sock in self.sockets:
                with suppress(OSError):
                    sock.send(b"a")

    @staticmethod
    def _is_open(sock: socket.socket) -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True  # nothing to read: still open, still waiting for our header
        except OSError:
            return False

    def open_count(self) -> int:
        return sum(self._is_open(sock) for sock in self.sockets)


def per_address_limit() -> int:
    """The snippet's limit_conn per client address."""
    match = re.search(
        r"^\s*limit_conn\s+payments_api_per_ip\s+(\d+)\s*;", SNIPPET.read_text(), re.M
    )
    if match is None:
        raise RuntimeError(f"no `limit_conn payments_api_per_ip N;` in {SNIPPET}")
    return int(match.group(1))


def normal_requests(port: int, token: str, count: int) -> list[tuple[str, Answer | str]]:
    """Alternately /health/live and /api/me/, one at a time, each bounded."""
    results = []
    for index in range(count):
        path = "/health/live" if index % 2 == 0 else "/api/me/"
        answer = request(
            port,
            path,
            token=token if path == "/api/me/" else None,
            timeout=NORMAL_REQUEST_BOUND_S,
        )
        results.append((path, answer))
    return results


def _within_bound(answer: Answer | str) -> bool:
    return (
        isinstance(answer, Answer)
        and answer.status == 200
        and answer.elapsed <= NORMAL_REQUEST_BOUND_S
    )


# --------------------------------------------------------------------------------------------
# The leg


class Topology:
    def __init__(self, report: Report, work: Path) -> None:
        self.report = report
        self.work = work
        self.postgres = Postgres(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
        self.redis = Redis(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
        self.gunicorn: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.database_created = False
        self.gunicorn_log = work / "gunicorn.log"
        self.nginx_dir = work / "nginx"
        self.nginx_port = free_port()
        self.gunicorn_port = free_port()
        self.token = ""
        self.env = self._app_env()

    def _app_env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DJANGO_", "ENTRA_", "GUNICORN_", "API_", "PYTHON"))
            and name not in {"VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL", "PORT"}
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.postgres.database_url(TOPOLOGY_DATABASE),
                "REDIS_URL": os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
                "ENTRA_DEV_ISSUER": "1",
                "ENTRA_DEV_ISSUER_WITHOUT_DEBUG": "1",
                "ENTRA_DEV_ISSUER_KEY_FILE": str(self.work / "dev-issuer-key.pem"),
                # nginx is the only client and it connects from 127.0.0.1: its
                # X-Forwarded-For, X-Forwarded-Proto and X-Request-ID are believed.
                "ENTRA_TRUSTED_PROXIES": "127.0.0.1",
                "ENTRA_TRUST_REQUEST_ID_HEADER": "1",
                "DJANGO_SECURE_PROXY_SSL_HEADER": "1",
                "GUNICORN_FORWARDED_ALLOW_IPS": "127.0.0.1",
                "GUNICORN_BIND": f"127.0.0.1:{self.gunicorn_port}",
                "GUNICORN_WORKERS": str(GUNICORN_WORKERS),
                "GUNICORN_THREADS": str(GUNICORN_THREADS),
                # One caller makes all of this leg's requests: its rate limit is not under test.
                "API_RATE_LIMIT": "100000/m",
            }
        )
        return env

    def manage(self, *args: str) -> str:
        return run([VENV_BIN / "python", "manage.py", *args], env=self.env).stdout

    # ---- set-up and clean-up

    def set_up(self, nginx: str) -> None:
        report = self.report
        if not self.postgres.accepts_connections():
            report.require(
                "PostgreSQL is running",
                False,
                f"nothing accepts connections on port {self.postgres.port}: "
                "start it as .ci/run does",
            )
        if not self.redis.ping():
            report.require(
                "Redis is running",
                False,
                f"no PONG on port {self.redis.port}: start it as .ci/run does",
            )
        self.postgres.create_database(TOPOLOGY_DATABASE)
        self.database_created = True
        self.manage("migrate", "--noinput")
        self.token = self.manage(
            "entra_dev_token", "--tenant", TENANT, *(f"--scope={scope}" for scope in SCOPES)
        ).strip()
        report.require("development token minted", bool(self.token))

        self.gunicorn = start_process(
            [VENV_BIN / "gunicorn", "-c", "project/gunicorn.conf.py", "project.wsgi"],
            self.env,
            self.gunicorn_log,
        )
        self.nginx_dir.mkdir()
        # nginx's workers run as www-data: they must get into the directory.
        os.chmod(self.work, 0o755)  # noqa: S103 -- nothing secret in it but throwaway keys
        config = render_loopback_config(self.nginx_dir, self.nginx_port, self.gunicorn_port)
        tested = run([nginx, "-t", "-q", "-c", config, "-p", self.nginx_dir], check=False)
        report.require(
            "the loopback variant of deploy/ passes nginx -t",
            tested.returncode == 0,
            (tested.stdout + tested.stderr).strip(),
        )
        self.nginx = start_process(
            [nginx, "-c", config, "-p", self.nginx_dir], os.environ.copy(), self.work / "nginx.out"
        )
        wait_until(self.gunicorn_port, "/health/live", self.gunicorn, "gunicorn")
        wait_until(self.nginx_port, "/health/live", self.nginx, "nginx")
        report.info(
            f"nginx on 127.0.0.1:{self.nginx_port} -> gunicorn on 127.0.0.1:{self.gunicorn_port}"
            f" ({GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads) -> PostgreSQL "
            f"{self.postgres.version}/{self.postgres.cluster} database {TOPOLOGY_DATABASE}"
            f" + Redis on port {self.redis.port}"
        )

    def clean_up(self) -> None:
        problems = []
        for name, action in (
            ("Redis", lambda: self.redis.stopped_by_us and self.redis.start()),
            ("PostgreSQL", lambda: self.postgres.stopped_by_us and self.postgres.start()),
            ("gunicorn", lambda: stop_process_group(self.gunicorn)),
            ("nginx", lambda: stop_process_group(self.nginx, signal.SIGQUIT)),
            (
                f"database {TOPOLOGY_DATABASE}",
                lambda: self.database_created and self.postgres.drop_database(TOPOLOGY_DATABASE),
            ),
        ):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 -- every clean-up step is attempted
                problems.append(f"{name}: {exc}")
        for problem in problems:
            print(f"clean-up failed: {problem}", file=sys.stderr, flush=True)

    def print_logs(self) -> None:
        for title, path in (
            ("gunicorn (application) log", self.gunicorn_log),
            ("nginx error log", self.nginx_dir / "logs" / "error.log"),
            ("nginx output", self.work / "nginx.out"),
            ("nginx access log", self.nginx_dir / "logs" / "access.log"),
        ):
            if path.exists():
                print(f"---- {title} (last {LOG_SHOWN_LINES} lines) ----")
                print(_tail(path), flush=True)

    # ---- a. normal traffic

    def check_normal_traffic(self) -> None:
        report, port = self.report, self.nginx_port
        live = request(port, "/health/live")
        report.check(
            "a. GET /health/live through nginx: 200 with X-Request-ID",
            isinstance(live, Answer) and live.status == 200 and bool(live.header("X-Request-ID")),
            describe(live),
        )
        me = request(port, "/api/me/", token=self.token)
        report.check(
            "a. GET /api/me/ with a development token through nginx: 200 with X-Request-ID",
            isinstance(me, Answer)
            and me.status == 200
            and bool(me.header("X-Request-ID"))
            and isinstance(me.json(), dict)
            and me.json().get("tid") == TENANT,
            describe(me),
        )
        created = request(
            port,
            "/api/payments/",
            method="POST",
            token=self.token,
            headers={"Content-Type": "application/json", "Idempotency-Key": "topology-1"},
            body=json.dumps(
                {"amount": "12.50", "currency": "EUR", "description": "Topology"}
            ).encode(),
        )
        report.check(
            "a. POST /api/payments/ (body buffered by nginx): 201",
            isinstance(created, Answer) and created.status == 201,
            describe(created),
        )

        # Headers only the proxy may set: the client's are overwritten.
        forged_id = "client-chosen-request-id"
        forged = request(
            port,
            "/api/me/",
            token=self.token,
            headers={
                "X-Request-ID": forged_id,
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Proto": "https",
            },
        )
        request_id = forged.header("X-Request-ID") if isinstance(forged, Answer) else ""
        report.check(
            "a. a client's X-Request-ID is replaced by nginx's id",
            isinstance(forged, Answer)
            and forged.status == 200
            and request_id != forged_id
            and bool(_NGINX_REQUEST_ID.fullmatch(request_id)),
            describe(forged) + f" X-Request-ID={request_id!r}",
        )
        report.check(
            "a. a client's X-Forwarded-Proto: https is replaced (no HSTS on plain HTTP)",
            isinstance(forged, Answer) and not forged.header("Strict-Transport-Security"),
            f"Strict-Transport-Security: {forged.header('Strict-Transport-Security')!r}"
            if isinstance(forged, Answer)
            else describe(forged),
        )
        client = self._logged_client_ip(request_id)
        report.check(
            "a. a client's X-Forwarded-For is replaced (the application sees 127.0.0.1)",
            client == "127.0.0.1",
            f"the application logged client_ip={client!r} for request {request_id}",
        )

        big = request(port, "/api/me/", token="a" * HEADER_TOKEN_BYTES)
        report.check(
            "a. a 16 KiB Authorization header reaches the application (401 invalid_token)",
            isinstance(big, Answer)
            and big.status == 401
            and "invalid_token" in big.header("WWW-Authenticate"),
            describe(big),
        )
        too_large = request(
            port,
            "/api/payments/",
            method="POST",
            token=self.token,
            headers={"Content-Type": "application/json"},
            body=b" " * TOO_LARGE_BODY_BYTES,
        )
        report.check(
            "a. a 2 MiB body is refused by nginx: 413 JSON with request_id",
            isinstance(too_large, Answer)
            and too_large.status == 413
            and isinstance(too_large.json(), dict)
            and bool(too_large.json().get("request_id")),
            describe(too_large),
        )

    def _logged_client_ip(self, request_id: str) -> str | None:
        deadline = time.monotonic() + 5
        while request_id and time.monotonic() < deadline:
            for line in self.gunicorn_log.read_text(errors="replace").splitlines():
                if request_id not in line:
                    continue
                with suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("client_ip"):
                        return entry["client_ip"]
            time.sleep(POLL_INTERVAL_S)
        return None

    # ---- b. slow clients

    def check_slow_clients(self) -> None:
        report = self.report
        with SlowClients(self.nginx_port, SLOW_CLIENTS) as slow:
            time.sleep(1)
            open_before = slow.open_count()
            results = normal_requests(self.nginx_port, self.token, NORMAL_REQUESTS)
            open_after = slow.open_count()
            good = [answer for _, answer in results if _within_bound(answer)]
            slowest = max(
                (answer.elapsed for _, answer in results if isinstance(answer, Answer)),
                default=0.0,
            )
            bad = [f"{path}: {describe(answer)}" for path, answer in results if answer not in good]
            report.check(
                f"b. slowloris: {NORMAL_REQUESTS} normal requests through nginx all answer 200 "
                f"within {NORMAL_REQUEST_BOUND_S:.0f} s while {SLOW_CLIENTS} slow connections "
                f"are open",
                len(good) == NORMAL_REQUESTS and open_before == SLOW_CLIENTS,
                f"{len(good)}/{NORMAL_REQUESTS} good, slow connections open: {open_before}; "
                + "; ".join(bad[:5]),
            )
            report.info(
                f"through nginx: {len(good)}/{NORMAL_REQUESTS} answered, slowest "
                f"{slowest * 1000:.0f} ms; slow connections open {open_before} before, "
                f"{open_after} after"
            )
            while slow.open_count() and time.monotonic() < slow.opened_at + SLOW_DROP_DEADLINE_S:
                time.sleep(0.5)
            still_open = slow.open_count()
            dropped_after = time.monotonic() - slow.opened_at
            report.check(
                "b. nginx drops connections that never finish their headers "
                "(client_header_timeout)",
                still_open == 0,
                f"{still_open} of {SLOW_CLIENTS} still open after {dropped_after:.0f} s",
            )
            report.info(f"nginx dropped all slow connections within {dropped_after:.1f} s")

        # The control: the same connections straight to gunicorn. Reported, not checked.
        with SlowClients(self.gunicorn_port, SLOW_CLIENTS) as slow:
            time.sleep(1)
            results = [
                request(self.gunicorn_port, "/health/live", timeout=NORMAL_REQUEST_BOUND_S)
                for _ in range(CONTROL_REQUESTS)
            ]
            good = [answer for answer in results if _within_bound(answer)]
            open_count = slow.open_count()
        verdict = "normal requests blocked" if not good else "normal requests still answered"
        report.info(
            f"control, {SLOW_CLIENTS} slow connections straight to gunicorn: {verdict} "
            f"({len(good)}/{CONTROL_REQUESTS} answered within {NORMAL_REQUEST_BOUND_S:.0f} s; "
            f"{open_count} slow connections held open by gunicorn)"
        )
        wait_until(self.gunicorn_port, "/health/live", self.gunicorn, "gunicorn after the control")

    def check_connection_cap(self) -> None:
        """Requests whose bodies never come fill one address's limit_conn slots: the next
        request gets nginx's JSON 503; once they are gone, requests pass again."""
        report, limit = self.report, per_address_limit()
        held = []
        try:
            for _ in range(limit):
                sock = socket.create_connection(("127.0.0.1", self.nginx_port), timeout=5)
                sock.sendall(SLOW_BODY_REQUEST)
                held.append(sock)
            time.sleep(0.5)
            refused = request(self.nginx_port, "/health/live")
            body = refused.json() if isinstance(refused, Answer) else None
            report.check(
                f"b. {limit} requests waiting for their bodies fill the address's limit_conn: "
                "the next one gets nginx's JSON 503 with Retry-After",
                isinstance(refused, Answer)
                and refused.status == 503
                and refused.header("Retry-After").isdigit()
                and isinstance(body, dict)
                and bool(body.get("request_id")),
                describe(refused),
            )
        finally:
            for sock in held:
                with suppress(OSError):
                    sock.close()
        deadline = time.monotonic() + 5
        again: Answer | str = "no attempt"
        while time.monotonic() < deadline:
            again = request(self.nginx_port, "/health/live")
            if isinstance(again, Answer) and again.status == 200:
                break
            time.sleep(POLL_INTERVAL_S)
        report.check(
            "b. once those connections close, requests from the address pass again",
            isinstance(again, Answer) and again.status == 200,
            describe(again),
        )

    # ---- c. database outage

    def check_database_outage(self) -> None:
        report, port = self.report, self.nginx_port
        workers_before = child_pids(self.gunicorn.pid)
        self.postgres.stop()
        listed = request(port, "/api/payments/", token=self.token)
        body = listed.json() if isinstance(listed, Answer) else None
        report.check(
            "c. database down: GET /api/payments/ answers 503 with Retry-After and JSON "
            "detail + request_id",
            isinstance(listed, Answer)
            and listed.status == 503
            and listed.header("Retry-After").isdigit()
            and isinstance(body, dict)
            and bool(body.get("detail"))
            and bool(body.get("request_id"))
            and b"Traceback" not in listed.body,
            describe(listed)
            + (
                f" Retry-After={listed.header('Retry-After')!r}"
                if isinstance(listed, Answer)
                else ""
            ),
        )
        upstream = self.upstream_status(listed)
        report.check(
            "c. database down: that 503 is the application's own (gunicorn answered it)",
            upstream == "503",
            f"gunicorn's status in nginx's access log: {upstream!r}",
        )
        ready = request(port, "/health/ready")
        report.check(
            "c. database down: GET /health/ready answers 503 naming the database",
            isinstance(ready, Answer) and ready.status == 503 and b"database" in ready.body,
            describe(ready),
        )
        self.postgres.start()
        started = time.monotonic()
        last: Answer | str = "no attempt"
        while time.monotonic() - started < RECOVERY_DEADLINE_S:
            last = request(port, "/api/payments/", token=self.token)
            if isinstance(last, Answer) and last.status == 200:
                break
            time.sleep(0.5)
        recovered = isinstance(last, Answer) and last.status == 200
        workers_after = child_pids(self.gunicorn.pid)
        report.check(
            "c. database back: GET /api/payments/ answers 200 again without restarting gunicorn",
            recovered and self.gunicorn.poll() is None and workers_after == workers_before,
            f"last answer {describe(last)}; workers before {sorted(workers_before)}, "
            f"after {sorted(workers_after)}",
        )
        if recovered:
            report.info(
                f"200 again {time.monotonic() - started:.1f} s after PostgreSQL accepted "
                "connections again, from the same gunicorn workers"
            )

    # ---- d. Redis outage

    def check_redis_outage(self) -> None:
        report, port = self.report, self.nginx_port
        self.redis.stop()
        report.require("Redis stopped", not self.redis.ping())
        me = request(port, "/api/me/", token=self.token)
        report.check(
            "d. Redis down: GET /api/me/ still answers 200",
            isinstance(me, Answer) and me.status == 200,
            describe(me),
        )
        ready = request(port, "/health/ready")
        body = ready.json() if isinstance(ready, Answer) else None
        report.check(
            'd. Redis down: GET /health/ready answers 200 "degraded" naming the cache',
            isinstance(ready, Answer)
            and ready.status == 200
            and isinstance(body, dict)
            and body.get("status") == "degraded"
            and b"cache" in ready.body,
            describe(ready),
        )
        self.redis.start()
        report.check("d. Redis started again", self.redis.ping())

    # ---- e. never a 500

    def access_log(self) -> list[dict[str, object]]:
        entries = []
        with suppress(OSError):
            for line in (self.nginx_dir / "logs" / "access.log").read_text().splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    entries.append({"unreadable": line[:120]})
        return entries

    def upstream_status(self, answer: Answer | str) -> str | None:
        """gunicorn's status for ``answer`` in nginx's access log (None: not found)."""
        request_id = answer.header("X-Request-ID") if isinstance(answer, Answer) else ""
        deadline = time.monotonic() + 5
        while request_id and time.monotonic() < deadline:
            for entry in self.access_log():
                if entry.get("request_id") == request_id:
                    return str(entry.get("upstream_status"))
            time.sleep(POLL_INTERVAL_S)
        return None

    def check_access_log(self) -> None:
        seen: dict[str, int] = {}
        bad = []
        for entry in self.access_log():
            if "unreadable" in entry:
                bad.append(f"unreadable line: {entry['unreadable']}")
                continue
            status = str(entry.get("status"))
            seen[status] = seen.get(status, 0) + 1
            upstream = str(entry.get("upstream_status", ""))
            if status in {"500", "502", "504"} or re.search(r"\b50[024]\b", upstream):
                bad.append(f"{entry.get('method')} {entry.get('path')} {status} ({upstream})")
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(seen.items()))
        self.report.check(
            "e. never a 500: no 500, 502 or 504 in nginx's access log",
            not bad and bool(seen),
            "; ".join(bad[:10]) or "empty access log",
        )
        self.report.info(f"nginx access log statuses: {summary}")

    # ---- f. gunicorn down

    def check_gunicorn_down(self) -> None:
        stop_process_group(self.gunicorn)
        answer = request(self.nginx_port, "/api/me/", token=self.token)
        body = answer.json() if isinstance(answer, Answer) else None
        self.report.check(
            "f. gunicorn down: nginx answers 503 with Retry-After and JSON detail + request_id",
            isinstance(answer, Answer)
            and answer.status == 503
            and answer.header("Retry-After").isdigit()
            and isinstance(body, dict)
            and bool(body.get("detail"))
            and body.get("request_id") == answer.header("X-Request-ID"),
            describe(answer),
        )


def check_production_config(report: Report, nginx: str, work: Path) -> None:
    work.mkdir()
    os.chmod(work, 0o755)  # noqa: S103 -- nginx's workers read the throwaway certificate
    name = "g. deploy/nginx.conf as shipped (TLS server, throwaway certificate) passes nginx -t"
    try:
        config, skipped = render_production_config(work)
    except RuntimeError as exc:
        report.check(name, False, str(exc))
        return
    if skipped:
        print(f"SKIP g. deploy/nginx.conf as shipped passes nginx -t: {skipped}", flush=True)
        return
    tested = run([nginx, "-t", "-q", "-c", config, "-p", work], check=False)
    report.check(
        name,
        tested.returncode == 0,
        (tested.stdout + tested.stderr).strip(),
    )


@contextmanager
def enough_open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _exit_on_signal(signum: int, _frame: object) -> None:
    # A CI timeout or an interrupted run still cleans up: SystemExit runs the finally blocks.
    raise SystemExit(128 + signum)


def main() -> int:
    started = time.monotonic()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    report = Report()
    nginx = ensure_nginx()
    work = Path(tempfile.mkdtemp(prefix="topology-"))
    topology: Topology | None = None
    try:
        with enough_open_files():
            topology = Topology(report, work)
            topology.set_up(nginx)
            topology.check_normal_traffic()
            topology.check_slow_clients()
            topology.check_connection_cap()
            topology.check_database_outage()
            topology.check_redis_outage()
            topology.check_access_log()
            topology.check_gunicorn_down()
        check_production_config(report, nginx, work / "production")
    except Abort:
        pass  # reported already
    except Exception as exc:  # noqa: BLE001 -- reported as a failure, then cleaned up
        report.check("the topology leg ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        # Clean-up first: it must happen even if printing fails (a closed standard output).
        try:
            if topology is not None:
                topology.clean_up()
            if topology is not None and report.failures:
                topology.print_logs()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    if report.failures:
        print(f"production topology: {report.failures} check(s) failed ({elapsed:.0f} s)")
        return 1
    print(f"production topology: all checks passed ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
