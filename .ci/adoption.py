#!/usr/bin/env python3
"""CI leg: the built wheel, installed alone into a brand-new Django project set up as README says.

The test suite runs against the repository's source tree; this leg proves what a new user gets:

1. ``python -m build`` makes the sdist and, from it, the wheel; the wheel must hold the
   ``entra_auth`` package only (plus its dist-info), with ``py.typed``, the migrations and the
   admin templates.
2. A fresh venv gets ``pip install <wheel>`` and nothing else (the declared dependencies come
   from the package index); ``django-admin startproject mysite <dir>`` and ``startapp invoices``
   make the project.
3. The titled code blocks of README's Quickstart are applied as written (the ``invoices/`` files
   as whole contents, ``mysite/settings.py`` and ``mysite/urls.py`` appended to what
   startproject generated); then makemigrations, migrate and ``check --fail-level WARNING``.
4. ``runserver`` answers the Quickstart's promises over HTTP with development tokens: 401s,
   201/200 for the right tenant and scopes, 403 ``insufficient_scope`` naming the scope, 404
   for another tenant's invoice, a request id on every response, and the refusals in the audit
   log. The core must import no optional package (django-csp is not even installed).

Standard library only; any Python 3.11+. The only network use is the package index (build
requirements and the wheel's dependencies). The project's processes get HTTP(S)_PROXY pointed
at a local sink that answers nothing, so an accidental call to Entra (login.microsoftonline.com)
fails fast and is reported instead of leaving the machine.

Usage: python .ci/adoption.py [--python PYTHON] [--readme README.md] [--keep]
Prints one PASS/FAIL line per check; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "entra_auth"
DISTRIBUTION = "drf-entra-auth"

TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
READ_SCOPE = "Invoices.Read"
WRITE_SCOPE = "Invoices.Write"

# README Quickstart blocks, by title. These two extend files startproject generated; every
# other titled block is a file's whole content (startapp's stubs are replaced).
APPENDED = ("mysite/settings.py", "mysite/urls.py")
REQUIRED_TITLES = ("invoices/models.py", "invoices/views.py", *APPENDED)

EXPECTED_AUDIT_EVENTS = ("authentication_failed", "authorization_denied", "tenant_denied")

# The same statement the README's promise of an optional-free core rests on.
CORE_IMPORT_CHECK = (
    "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','mysite.settings'); "
    "django.setup(); import entra_auth.authentication, entra_auth.permissions, "
    "entra_auth.tenancy, sys; assert 'csp' not in sys.modules"
)
AUDIT_QUERY = (
    "import json; from entra_auth.models import AuditEvent; "
    "print(json.dumps(sorted(set(AuditEvent.objects.values_list('event_type', flat=True)))))"
)

# Bounded waits: the whole leg is meant to take well under three minutes with warm pip caches.
BUILD_TIMEOUT_S = 240
PIP_TIMEOUT_S = 240
COMMAND_TIMEOUT_S = 90
SERVER_START_TIMEOUT_S = 30
SERVER_POLL_INTERVAL_S = 0.2
HTTP_TIMEOUT_S = 10
SERVER_STOP_TIMEOUT_S = 10
BODY_SHOWN_CHARS = 2000
OUTPUT_SHOWN_LINES = 40

# Not copied into the build tree: local state that a clean clone does not have either.
BUILD_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    "artifacts",
    "db.sqlite3",
    "*.pem",
)


class Abort(Exception):
    """A prerequisite failed (already reported): the later checks cannot run."""


class Report:
    def __init__(self) -> None:
        self.failures = 0
        self.count = 0

    def check(self, name: str, ok: bool, reason: str = "", body: str = "") -> bool:
        self.count += 1
        if ok:
            print(f"PASS {name}", flush=True)
            return True
        self.failures += 1
        print(f"FAIL {name}: {reason}" if reason else f"FAIL {name}", flush=True)
        if body:
            print(_indent(_clip(body)), flush=True)
        return False

    def require(self, name: str, ok: bool, reason: str = "", body: str = "") -> None:
        if not self.check(name, ok, reason, body):
            raise Abort(name)


def _clip(text: str, limit: int = BODY_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines())


def _tail(text: str, lines: int = OUTPUT_SHOWN_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Commands


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = COMMAND_TIMEOUT_S,
) -> tuple[bool, str, str]:
    """(succeeded, stdout, a failure description with the output's tail)."""
    args = [str(part) for part in cmd]
    try:
        done = subprocess.run(  # noqa: S603 -- fixed argument lists built by this script
            args,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = (_text(exc.stdout) + _text(exc.stderr)).strip()
        return False, "", f"timed out after {timeout:.0f}s: {' '.join(args)}\n{_tail(output)}"
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        return (
            False,
            done.stdout,
            f"exit {done.returncode}: {' '.join(args)}\n{_tail(output)}",
        )
    return True, done.stdout, ""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _failure_parts(detail: str) -> tuple[str, str]:
    """Split a run() failure into the one-line reason and the output shown under it."""
    first, _, rest = detail.partition("\n")
    return first, rest


def base_env() -> dict[str, str]:
    """The caller's environment without what would make a child use another Python or project."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("PYTHON", "DJANGO_", "ENTRA_")) or name in (
            "VIRTUAL_ENV",
            "DATABASE_URL",
            "REDIS_URL",
        ):
            del env[name]
    return env


# --------------------------------------------------------------------------------------------
# README


FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
TITLE = re.compile(r"""\btitle=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")


def quickstart_blocks(readme: Path) -> dict[str, str]:
    """The titled fenced code blocks of the README's Quickstart section, title -> content.

    Raises ValueError naming what is missing, so that a README edit that drops or renames a
    block fails this leg with a clear message rather than testing something else.
    """
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read {readme}: {exc}") from None

    blocks: dict[str, str] = {}
    duplicates: list[str] = []
    section_level: int | None = None
    seen_section = False
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = FENCE_OPEN.match(line)
        if opening and not (opening["fence"][0] == "`" and "`" in opening["info"]):
            fence, indent = opening["fence"], len(opening["indent"])
            closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            body: list[str] = []
            index += 1
            while index < len(lines) and not closing.match(lines[index]):
                content = lines[index]
                strip = len(content) - len(content.lstrip(" "))
                body.append(content[min(indent, strip) :])
                index += 1
            index += 1  # the closing fence (or the end of the file)
            title = TITLE.search(opening["info"])
            if section_level is not None and title:
                name = title["dq"] if title["dq"] is not None else title["sq"]
                if name in blocks:
                    duplicates.append(name)
                blocks[name] = "\n".join(body) + "\n"
            continue
        heading = HEADING.match(line)
        if heading:
            level = len(heading["level"])
            if section_level is not None and level <= section_level:
                section_level = None
            if heading["text"].lower().startswith("quickstart"):
                section_level = level
                seen_section = True
        index += 1

    if not seen_section:
        raise ValueError(f"{readme} has no 'Quickstart' heading")
    missing = [title for title in REQUIRED_TITLES if title not in blocks]
    if missing:
        raise ValueError(
            f"{readme}'s Quickstart lacks the titled code block(s) "
            + ", ".join(f'title="{title}"' for title in missing)
            + f" (found: {', '.join(blocks) or 'none'})"
        )
    if duplicates:
        raise ValueError(f"{readme}'s Quickstart has more than one block titled {duplicates}")
    for title in blocks:
        path = Path(title)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"block title {title!r} is not a path inside the project")
    return blocks


def apply_blocks(project: Path, blocks: dict[str, str]) -> None:
    for title, content in blocks.items():
        target = project / title
        if title in APPENDED:
            if not target.is_file():
                raise ValueError(f"{title} should have been generated by startproject")
            with target.open("a", encoding="utf-8") as handle:
                handle.write("\n\n" + content)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Packaging


def source_version() -> str:
    text = (REPO / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return match.group(1) if match else "?"


def source_files(pattern: str) -> set[str]:
    """Files of the package in the working tree matching pattern, as wheel member names."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / PACKAGE).rglob(pattern)
        if "__pycache__" not in path.parts and path.is_file()
    }


def build_and_inspect(report: Report, python: str, work: Path) -> Path:
    # Built from a copy so the sdist step's egg-info never lands in the working tree.
    tree = work / "src"
    shutil.copytree(REPO, tree, ignore=BUILD_IGNORE)
    dist = work / "dist"
    ok, _, detail = run(
        [python, "-m", "build", "--outdir", dist, tree],
        cwd=work,
        env=base_env(),
        timeout=BUILD_TIMEOUT_S,
    )
    reason, output = _failure_parts(detail)
    report.require("build: python -m build makes the sdist and the wheel", ok, reason, output)

    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    report.require(
        "build: one wheel",
        len(wheels) == 1,
        f"found {[path.name for path in wheels]}",
    )
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    version = source_version()
    dist_info = f"{DISTRIBUTION.replace('-', '_')}-{version}.dist-info"

    strays = sorted(name for name in names if name.split("/", 1)[0] not in (PACKAGE, dist_info))
    report.check(
        f"wheel: only {PACKAGE}/ and {dist_info}/",
        not strays and any(name.startswith(dist_info + "/") for name in names),
        f"unexpected members {strays}" if strays else f"no {dist_info}/ in {wheel.name}",
    )
    compiled = sorted(name for name in names if name.endswith((".pyc", ".pyo")))
    report.check("wheel: no compiled files", not compiled, f"found {compiled}")
    report.check(
        "wheel: py.typed", f"{PACKAGE}/py.typed" in names, f"no {PACKAGE}/py.typed in the wheel"
    )
    migrations = source_files("migrations/*.py")
    missing = sorted(migrations - names)
    report.check(
        "wheel: the migrations",
        bool(migrations) and not missing and f"{PACKAGE}/migrations/0001_initial.py" in names,
        f"missing {missing or [f'{PACKAGE}/migrations/0001_initial.py']}",
    )
    templates = source_files("templates/**/*.html")
    missing = sorted(templates - names)
    admin_templates = [name for name in names if name.startswith(f"{PACKAGE}/templates/admin/")]
    report.check(
        "wheel: the admin templates",
        not missing and bool(admin_templates),
        f"missing {missing}" if missing else "no templates/admin/ in the wheel",
    )
    static = source_files("static/**/*.css")
    missing = sorted(static - names)
    report.check(
        "wheel: the admin's static files",
        bool(static) and not missing,
        f"missing {missing}" if missing else "no static/ in the source tree",
    )
    missing = sorted(source_files("*.py") - names)
    report.check("wheel: every module of the source tree", not missing, f"missing {missing}")

    report.check(
        "sdist: built",
        len(sdists) == 1,
        f"found {[path.name for path in sdists]}",
    )
    if len(sdists) == 1:
        with tarfile.open(sdists[0]) as archive:
            members = {name.split("/", 1)[-1] for name in archive.getnames()}
        wanted = ["pyproject.toml", "README.md", "LICENSE", f"{PACKAGE}/py.typed"]
        absent = [name for name in wanted if name not in members]
        report.check(
            "sdist: pyproject.toml, README.md, LICENSE, py.typed",
            not absent,
            f"missing {absent}",
        )
    return wheel


# --------------------------------------------------------------------------------------------
# Network guard


class _Sink(socketserver.BaseRequestHandler):
    """Records the first line a client sends (``CONNECT host:443 ...``) and hangs up."""

    def handle(self) -> None:
        self.request.settimeout(2)
        try:
            line = self.request.recv(1024).split(b"\r\n", 1)[0]
        except OSError:
            line = b"(nothing sent)"
        self.server.attempts.append(line.decode(errors="replace"))  # type: ignore[attr-defined]


class ProxySink(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Sink)
        self.attempts: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


# --------------------------------------------------------------------------------------------
# HTTP


# Never a proxy for the script's own requests to the local server.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self) -> str:
        shown = {name: value for name, value in self.headers.items() if name != "content-length"}
        return f"HTTP {self.status} {json.dumps(shown)}\n{self.body}"


def request(
    base: str, method: str, path: str, token: str | None = None, payload: object = None
) -> Response:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    # base is always http://127.0.0.1:<port>, built by this script.
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with OPENER.open(req, timeout=HTTP_TIMEOUT_S) as answer:
            status, raw_headers, body = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, raw_headers, body = error.code, error.headers, error.read()
    lowered = {name.lower(): value for name, value in raw_headers.items()}
    return Response(status, lowered, body.decode(errors="replace"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(base: str, server: subprocess.Popen[bytes]) -> str:
    """'' once the server answers any HTTP request, else why not (exited or timed out)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return f"runserver exited with {server.returncode}"
        try:
            with OPENER.open(base + "/", timeout=2):
                return ""
        except urllib.error.HTTPError:
            return ""  # any HTTP status: the server is up
        except (urllib.error.URLError, OSError):
            time.sleep(SERVER_POLL_INTERVAL_S)
    return f"no answer within {SERVER_START_TIMEOUT_S}s"


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop runserver and anything it started (it runs in a process group of its own)."""
    if server.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, SERVER_STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def auth_param(challenge: str, name: str) -> str | None:
    match = re.search(rf'(?:^|[\s,]){re.escape(name)}="([^"]*)"', challenge)
    return match.group(1) if match else None


def invoice_numbers(payload: object) -> list[str]:
    items = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        return []
    return [item.get("number") for item in items if isinstance(item, dict)]


# --------------------------------------------------------------------------------------------
# The leg


def adopt(report: Report, python: str, readme: Path, work: Path) -> None:
    try:
        blocks: dict[str, str] | None = quickstart_blocks(readme)
    except ValueError as exc:
        blocks = None
        report.check("README: the Quickstart's titled code blocks", False, str(exc))
    else:
        report.check(
            "README: the Quickstart's titled code blocks",
            True,
        )

    wheel = build_and_inspect(report, python, work)
    if blocks is None:
        raise Abort("no Quickstart blocks to configure the project with")

    # A venv with the wheel and what it declares, nothing else.
    venv = work / "venv"
    ok, _, detail = run([python, "-m", "venv", venv], cwd=work, env=base_env())
    report.require("venv: created", ok, *_failure_parts(detail))
    bin_dir = venv / "bin"
    vpython = bin_dir / "python"
    ok, _, detail = run(
        [vpython, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", wheel],
        cwd=work,
        env=base_env(),
        timeout=PIP_TIMEOUT_S,
    )
    report.require(f"venv: pip install {wheel.name} (alone)", ok, *_failure_parts(detail))
    ok, _, detail = run(
        [vpython, "-m", "pip", "check", "--disable-pip-version-check"], cwd=work, env=base_env()
    )
    report.check("venv: pip check (the declared dependencies agree)", ok, *_failure_parts(detail))

    # The project's processes: a home and cache of their own (the development key is created
    # there), the venv first on PATH, and every proxy variable pointing at the sink.
    sink = ProxySink()
    home = work / "home"
    cache = work / "cache"
    home.mkdir()
    cache.mkdir()
    env = base_env()
    for name in list(env):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[name]
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(cache),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HTTP_PROXY=sink.url,
        HTTPS_PROXY=sink.url,
        ALL_PROXY=sink.url,
        http_proxy=sink.url,
        https_proxy=sink.url,
        all_proxy=sink.url,
        PYTHONDONTWRITEBYTECODE="1",
    )
    try:
        serve_and_probe(report, vpython, bin_dir, blocks, work, env)
    finally:
        sink.shutdown()
        sink.server_close()
        # Reported even when a later step stopped the leg: an outbound call may be the cause.
        report.check(
            "network: no outbound HTTP(S) from the project (Entra never contacted)",
            not sink.attempts,
            f"requests sent through the proxy sink: {sink.attempts}",
        )


def serve_and_probe(
    report: Report,
    vpython: Path,
    bin_dir: Path,
    blocks: dict[str, str],
    work: Path,
    env: dict[str, str],
) -> None:
    project = work / "project"
    project.mkdir()
    ok, _, detail = run(
        [bin_dir / "django-admin", "startproject", "mysite", project], cwd=work, env=env
    )
    report.require("project: django-admin startproject mysite <dir>", ok, *_failure_parts(detail))
    made = sorted(path.relative_to(project).as_posix() for path in project.rglob("*"))
    report.require(
        "project: <dir>/manage.py and <dir>/mysite/settings.py",
        (project / "manage.py").is_file() and (project / "mysite" / "settings.py").is_file(),
        f"startproject made {made}",
    )

    def manage(*args: str) -> tuple[bool, str, str]:
        return run([vpython, "manage.py", *args], cwd=project, env=env)

    ok, _, detail = manage("startapp", "invoices")
    report.require("project: manage.py startapp invoices", ok, *_failure_parts(detail))
    try:
        apply_blocks(project, blocks)
    except ValueError as exc:
        report.require("project: README blocks applied", False, str(exc))
    report.check("project: README blocks applied (" + ", ".join(blocks) + ")", True)

    ok, out, detail = run(
        [vpython, "-c", "import entra_auth, sys; print(entra_auth.__file__)"],
        cwd=project,
        env=env,
    )
    report.check(
        f"project: {PACKAGE} is imported from the venv, not the repository",
        ok and Path(out.strip()).resolve().is_relative_to((work / "venv").resolve()),
        detail or f"imported from {out.strip()}",
    )
    ok, _, detail = run([vpython, "-c", "import csp"], cwd=project, env=env)
    report.check(
        "venv: django-csp is not installed (import csp fails)",
        not ok and "ModuleNotFoundError" in detail,
        "import csp succeeded" if ok else detail,
    )
    ok, _, detail = run([vpython, "-c", CORE_IMPORT_CHECK], cwd=project, env=env)
    report.check(
        "core: authentication, permissions, tenancy import no optional package",
        ok,
        *_failure_parts(detail),
    )

    ok, _, detail = manage("makemigrations", "invoices")
    report.require("manage.py makemigrations invoices", ok, *_failure_parts(detail))
    ok, _, detail = manage("migrate", "--noinput")
    report.require("manage.py migrate", ok, *_failure_parts(detail))
    ok, _, detail = manage("check", "--fail-level", "WARNING")
    report.check("manage.py check --fail-level WARNING", ok, *_failure_parts(detail))

    tokens: dict[str, str] = {}
    for name, tenant, scopes in (
        ("A", TENANT_A, (READ_SCOPE, WRITE_SCOPE)),
        ("wrong scope", TENANT_A, ("Other.Scope",)),
        ("B", TENANT_B, (READ_SCOPE, WRITE_SCOPE)),
    ):
        scope_args = [part for scope in scopes for part in ("--scope", scope)]
        ok, out, detail = manage("entra_dev_token", "--tenant", tenant, *scope_args)
        token = out.strip().splitlines()[-1] if ok and out.strip() else ""
        report.require(
            f"manage.py entra_dev_token: token {name} ({tenant[:8]}…, {' '.join(scopes)})",
            ok and token.count(".") == 2,
            *(_failure_parts(detail) if not ok else (f"not a JWT: {out!r}", "")),
        )
        tokens[name] = token

    stray_keys = sorted(path.name for path in project.rglob("*.pem"))
    report.check(
        "dev issuer: the key is created under XDG_CACHE_HOME, not in the project",
        any(Path(env["XDG_CACHE_HOME"]).rglob("*.pem")) and not stray_keys,
        f"key files in the project: {stray_keys}" if stray_keys else "no key under XDG_CACHE_HOME",
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "runserver.log"
    failures_before = report.failures
    try:
        with log_path.open("wb") as log:
            server = subprocess.Popen(  # noqa: S603 -- fixed argument list
                [str(vpython), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                started = time.monotonic()
                why = wait_until_answering(base, server)
                report.require(
                    f"runserver 127.0.0.1:{port} answers"
                    + ("" if why else f" (after {time.monotonic() - started:.1f}s)"),
                    not why,
                    why,
                )
                probe(report, base, tokens)
            finally:
                stop(server)
        check_audit_log(report, manage)
    finally:
        # The audit rows are written while serving: their absence is explained by this log too.
        if report.failures > failures_before:
            print(f"---- runserver log ({log_path.name}) ----")
            print(_indent(log_path.read_text(errors="replace")) or "    | (empty)")
            print("---- end of runserver log ----", flush=True)


def check_audit_log(report: Report, manage: Callable[..., tuple[bool, str, str]]) -> None:
    """After the server stopped: the refusals it answered are in the audit log."""
    ok, out, detail = manage("shell", "-c", AUDIT_QUERY)
    lines = out.strip().splitlines()
    try:
        present = json.loads(lines[-1]) if ok and lines else None
    except ValueError:
        present = None
    report.require(
        "audit: AuditEvent event types read with manage.py shell",
        isinstance(present, list),
        *(_failure_parts(detail) if not ok else (f"unexpected output {out!r}", "")),
    )
    for event in EXPECTED_AUDIT_EVENTS:
        report.check(
            f"audit: {event} recorded",
            event in present,  # type: ignore[operator]
            f"event types present: {present}",
        )


def probe(report: Report, base: str, tokens: dict[str, str]) -> None:
    responses: list[tuple[str, Response]] = []

    def call(label: str, method: str, path: str, token: str | None = None, payload=None):
        response = request(base, method, path, token, payload)
        responses.append((label, response))
        return response

    r = call("no token", "GET", "/api/invoices/")
    challenge = r.header("WWW-Authenticate")
    report.check(
        "GET /api/invoices/ without a token -> 401, WWW-Authenticate: Bearer ...",
        r.status == 401 and challenge.startswith("Bearer"),
        f"got {r.status}, WWW-Authenticate {challenge!r}",
        r.describe(),
    )

    r = call("malformed token", "GET", "/api/invoices/", "not-a-token")
    challenge = r.header("WWW-Authenticate")
    report.check(
        'Bearer not-a-token -> 401, error="invalid_token" (or "invalid_request")',
        r.status == 401
        and challenge.startswith("Bearer")
        and auth_param(challenge, "error") in ("invalid_token", "invalid_request"),
        f"got {r.status}, WWW-Authenticate {challenge!r}",
        r.describe(),
    )

    r = call(
        "create as A", "POST", "/api/invoices/", tokens["A"], {"number": "INV-1", "amount": "12.50"}
    )
    created = r.json()
    invoice_id = created.get("id") if isinstance(created, dict) else None
    report.check(
        "POST /api/invoices/ as tenant A -> 201 with the invoice",
        r.status == 201
        and invoice_id is not None
        and created.get("number") == "INV-1"  # type: ignore[union-attr]
        and created.get("amount") == "12.50",  # type: ignore[union-attr]
        f"got {r.status}",
        r.describe(),
    )

    r = call("list as A", "GET", "/api/invoices/", tokens["A"])
    report.check(
        "GET /api/invoices/ as tenant A -> 200 listing INV-1",
        r.status == 200 and "INV-1" in invoice_numbers(r.json()),
        f"got {r.status}",
        r.describe(),
    )

    r = call("list with the wrong scope", "GET", "/api/invoices/", tokens["wrong scope"])
    challenge = r.header("WWW-Authenticate")
    named = (auth_param(challenge, "scope") or "").split()
    report.check(
        f'GET /api/invoices/ without {READ_SCOPE} -> 403, error="insufficient_scope", '
        f'scope="{READ_SCOPE}"',
        r.status == 403
        and auth_param(challenge, "error") == "insufficient_scope"
        and READ_SCOPE in named,
        f"got {r.status}, WWW-Authenticate {challenge!r}",
        r.describe(),
    )

    if invoice_id is None:
        report.check("GET /api/invoices/<id>/ as tenant B -> 404", False, "no invoice was created")
    else:
        r = call("detail as B", "GET", f"/api/invoices/{invoice_id}/", tokens["B"])
        report.check(
            f"GET /api/invoices/{invoice_id}/ as tenant B -> 404",
            r.status == 404,
            f"got {r.status}",
            r.describe(),
        )

    r = call("list as B", "GET", "/api/invoices/", tokens["B"])
    report.check(
        "GET /api/invoices/ as tenant B -> 200 without tenant A's invoice",
        r.status == 200 and isinstance(r.json(), list | dict) and not invoice_numbers(r.json()),
        f"got {r.status}",
        r.describe(),
    )

    lacking = [
        f"{label} ({response.status})"
        for label, response in responses
        if not response.header("X-Request-ID")
    ]
    report.check(
        f"X-Request-ID on every response ({len(responses)})",
        not lacking,
        f"missing on: {', '.join(lacking)}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs `-m build` (needs the build package) and makes the venv",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=REPO / "README.md",
        help="Markdown file whose Quickstart section configures the project (default README.md)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    started = time.monotonic()
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="entra-adoption-"))
    try:
        adopt(report, args.python, args.readme.resolve(), work)
    except Abort as exc:
        print(f"stopped: {exc}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    verdict = "FAILED" if report.failures else "passed"
    print(f"adoption: {report.count} checks, {report.failures} failed, {elapsed:.0f}s -- {verdict}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
