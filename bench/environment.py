"""The world a bench run happens in: the fake Entra server, Redis, a scratch database.

Everything is configured through the environment before Django starts, so the driver, the
memory probe and the gunicorn workers it launches all read the same settings.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tests.fake_entra import CLIENT_APP_ID, CLIENT_ID, TENANT_A, USER_OID, FakeEntra

ROOT = Path(__file__).resolve().parent.parent
# A database of its own: test suites clear the cache (FLUSHDB) of database 0, which would drop
# the bench's keys and fetch lock mid-run, whatever their prefix.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
SEEDED_PAYMENTS = 10


class BenchSetupError(Exception):
    """Something the bench needs is missing (Redis, wrk): the message says what to do."""


@dataclass
class BenchEnvironment:
    fake: FakeEntra
    workdir: Path

    def subprocess_env(self, **overrides: str) -> dict[str, str]:
        """The environment for a child process, with a fresh shared-cache prefix by default."""
        env = dict(os.environ)
        env["BENCH_CACHE_PREFIX"] = f"bench-{uuid.uuid4().hex[:12]}"
        env.update(overrides)
        return env


def configure_process_environment(fake: FakeEntra, database_url: str) -> None:
    """Point this process (and its children) at the fake Entra, Redis and the database."""
    for name in [name for name in os.environ if name.startswith("ENTRA_")]:
        del os.environ[name]
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        ENTRA_INSTANCE=fake.base_url,
        ENTRA_TENANT_ID=TENANT_A,
        ENTRA_CLIENT_ID=CLIENT_ID,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        DATABASE_URL=database_url,
        BENCH_CACHE_PREFIX=f"bench-{uuid.uuid4().hex[:12]}",
    )


def start_django() -> None:
    import django
    from django.core.cache import cache

    django.setup()
    probe = f"probe-{uuid.uuid4().hex}"
    try:
        cache.set(probe, 1, timeout=10)
        reachable = cache.get(probe) == 1
        cache.delete(probe)
    except Exception as exc:  # any client error means the same: no usable Redis
        raise BenchSetupError(
            f"Redis at {os.environ['REDIS_URL']} is not reachable ({type(exc).__name__}); "
            "start it (redis-server) or set BENCH_REDIS_URL"
        ) from exc
    if not reachable:
        raise BenchSetupError(f"Redis at {os.environ['REDIS_URL']} did not keep a value")


def prepare_database() -> None:
    """Migrate, and give the bench tenant a page of payments for the list view."""
    from django.core.management import call_command

    from entra_auth.tenancy import tenant_context
    from payments.models import Payment

    call_command("migrate", verbosity=0, interactive=False)
    with tenant_context(TENANT_A):
        missing = SEEDED_PAYMENTS - Payment.objects.count()
        for index in range(max(0, missing)):
            Payment.objects.create(
                amount=Decimal("10.00") + index,
                currency="EUR",
                description=f"Bench payment {index}",
                created_by_oid=USER_OID,
                created_by_app_id=CLIENT_APP_ID,
            )


@contextmanager
def bench_environment() -> Iterator[BenchEnvironment]:
    """Fake Entra running, environment set, Django started, database migrated and seeded."""
    fake = FakeEntra().start()
    fake.reset()
    try:
        with tempfile.TemporaryDirectory(prefix="entra-bench-") as workdir:
            database_url = os.environ.get("BENCH_DATABASE_URL") or (
                f"sqlite:///{Path(workdir) / 'bench.sqlite3'}"
            )
            configure_process_environment(fake, database_url)
            start_django()
            prepare_database()
            yield BenchEnvironment(fake=fake, workdir=Path(workdir))
    finally:
        fake.stop()
