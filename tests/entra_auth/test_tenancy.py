"""Tenant isolation: the tenant context, the scoped manager, PostgreSQL row-level security.

See docs/tenancy.md.

The same tests run on SQLite and on PostgreSQL (``DATABASE_URL=postgres://...``); the ones
marked ``postgres`` check the database's own policy and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.core.checks import ERROR, run_checks
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.migrations.state import ProjectState
from django.db.models import Count, Subquery, prefetch_related_objects

from entra_auth.checks import REQUEST_CONTEXT_MIDDLEWARE
from entra_auth.context import canonical_tenant_id
from entra_auth.rls import EnableRowLevelSecurity, TenantSettingsSync, install_tenant_settings
from entra_auth.tenancy import (
    CrossTenantAccessRefused,
    TenantContextMissing,
    TenantMismatch,
    activate_tenant,
    all_tenants_context,
    all_tenants_open,
    current_scope,
    current_tenant,
    deactivate_tenant,
    tenant_context,
)
from tests.fake_entra import TENANT_A, TENANT_B
from tests.tenancy_app.models import Part, Widget

THREAD_TIMEOUT_S = 5


class Boom(Exception):
    """Raised by a test to roll a block back."""


@pytest.fixture
def rows(db: None) -> SimpleNamespace:
    """A widget with one part in tenant A and the same in tenant B."""
    made = {}
    for tenant, prefix in ((TENANT_A, "a"), (TENANT_B, "b")):
        with tenant_context(tenant):
            widget = Widget.objects.create(name=f"{prefix}-widget")
            part = Part.objects.create(widget=widget, name=f"{prefix}-part")
        made[prefix] = SimpleNamespace(widget=widget, part=part)
    return SimpleNamespace(**made)


def snapshot() -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Every tenant's rows (outside any tenant context, where nothing is filtered)."""
    assert current_tenant() is None
    # Unscoped: the test compares every tenant's rows before and after.
    with all_tenants_context():
        widgets = sorted(
            (str(t), name) for t, name in Widget.all_tenants.values_list("tenant_id", "name")
        )
        parts = sorted(
            (str(t), name, widget)
            for t, name, widget in Part.all_tenants.values_list("tenant_id", "name", "widget__name")
        )
    return widgets, parts


# --- the tenant context ---------------------------------------------------------------------


def test_there_is_no_tenant_outside_any_context() -> None:
    assert current_tenant() is None


def test_activate_tenant_normalises_the_guid_and_deactivate_restores() -> None:
    token = activate_tenant(TENANT_A.upper())
    assert current_tenant() == TENANT_A
    deactivate_tenant(token)
    assert current_tenant() is None


@pytest.mark.parametrize("bad", ["", "contoso.onmicrosoft.com", "organizations", "1234"])
def test_activate_tenant_refuses_what_is_not_a_guid(bad: str) -> None:
    with pytest.raises(ValueError):
        activate_tenant(bad)
    assert current_tenant() is None


def test_a_string_subclass_cannot_make_a_non_guid_pass_for_canonical() -> None:
    class Sneaky(str):
        def __hash__(self) -> int:
            return hash("not-a-guid")

        def __eq__(self, other: object) -> bool:
            return True

    assert canonical_tenant_id(Sneaky(TENANT_A)) == TENANT_A

    with pytest.raises(ValueError):
        canonical_tenant_id("not-a-guid")


def test_tenant_context_is_restored_after_an_exception() -> None:
    with pytest.raises(Boom), tenant_context(TENANT_A):
        raise Boom
    assert current_tenant() is None


def test_nested_tenant_contexts_restore_the_outer_one() -> None:
    with tenant_context(TENANT_A):
        with pytest.raises(Boom), tenant_context(TENANT_B):
            assert current_tenant() == TENANT_B
            raise Boom
        assert current_tenant() == TENANT_A


def test_asyncio_tasks_each_see_their_own_tenant() -> None:
    async def as_tenant(tenant: str, barrier: asyncio.Barrier) -> str | None:
        with tenant_context(tenant):
            await barrier.wait()  # both tasks have set their tenant before either reads it
            return current_tenant()

    async def main() -> list[str | None]:
        barrier = asyncio.Barrier(2)
        return await asyncio.gather(as_tenant(TENANT_A, barrier), as_tenant(TENANT_B, barrier))

    assert asyncio.run(main()) == [TENANT_A, TENANT_B]
    assert current_tenant() is None


def test_threads_each_see_their_own_tenant() -> None:
    barrier = threading.Barrier(2, timeout=THREAD_TIMEOUT_S)
    seen: dict[str, str | None] = {}

    def as_tenant(tenant: str) -> None:
        with tenant_context(tenant):
            barrier.wait()  # both threads have set their tenant before either reads it
            seen[tenant] = current_tenant()

    threads = [threading.Thread(target=as_tenant, args=(t,)) for t in (TENANT_A, TENANT_B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT_S)
    assert seen == {TENANT_A: TENANT_A, TENANT_B: TENANT_B}
    assert current_tenant() is None


def test_a_new_thread_does_not_inherit_the_tenant() -> None:
    seen: list[str | None] = []
    with tenant_context(TENANT_A):
        thread = threading.Thread(target=lambda: seen.append(current_tenant()))
        thread.start()
        thread.join(THREAD_TIMEOUT_S)
    assert seen == [None]


# --- reads through the scoped manager ---------------------------------------------------------

READ_PATHS: dict[str, tuple[Callable[[SimpleNamespace], Any], Any]] = {
    "all": (lambda rows: [w.name for w in Widget.objects.all()], ["a-widget"]),
    "filter": (
        lambda rows: [w.name for w in Widget.objects.filter(name__endswith="widget")],
        ["a-widget"],
    ),
    "get": (lambda rows: Widget.objects.get(name__endswith="widget").name, "a-widget"),
    "order_by first": (lambda rows: Widget.objects.order_by("-name").first().name, "a-widget"),
    "count": (lambda rows: Widget.objects.count(), 1),
    "exists": (lambda rows: Widget.objects.filter(name="b-widget").exists(), False),
    "values": (lambda rows: list(Widget.objects.values("name")), [{"name": "a-widget"}]),
    "values_list": (lambda rows: list(Part.objects.values_list("name", flat=True)), ["a-part"]),
    "aggregate": (lambda rows: Part.objects.aggregate(n=Count("id"))["n"], 1),
    "in_bulk": (lambda rows: [w.name for w in Widget.objects.in_bulk().values()], ["a-widget"]),
    "iterator": (lambda rows: [w.name for w in Widget.objects.iterator()], ["a-widget"]),
    "as a subquery": (
        # Unscoped outer query (the plain base manager) on purpose: the scoped subquery
        # alone must limit it.
        lambda rows: [
            p.name
            for p in Part._base_manager.filter(widget__in=Subquery(Widget.objects.values("pk")))
        ],
        ["a-part"],
    ),
    "reverse related manager": (
        lambda rows: [[p.name for p in w.parts.all()] for w in (rows.a.widget, rows.b.widget)],
        [["a-part"], []],
    ),
    "prefetch_related": (
        lambda rows: [
            [p.name for p in w.parts.all()]
            for w in prefetch_related_objects_and_return([rows.a.widget, rows.b.widget], "parts")
        ],
        [["a-part"], []],
    ),
    "queryset prefetch_related": (
        lambda rows: [
            [p.name for p in w.parts.all()] for w in Widget.objects.prefetch_related("parts")
        ],
        [["a-part"]],
    ),
    "select_related": (
        lambda rows: [(p.name, p.widget.name) for p in Part.objects.select_related("widget")],
        [("a-part", "a-widget")],
    ),
    "filter across the relation": (
        lambda rows: [w.name for w in Widget.objects.filter(parts__name__endswith="part")],
        ["a-widget"],
    ),
}


def prefetch_related_objects_and_return(instances: list[Any], lookup: str) -> list[Any]:
    for instance in instances:
        instance._prefetched_objects_cache = {}
    prefetch_related_objects(instances, lookup)
    return instances


@pytest.mark.parametrize("path", READ_PATHS)
def test_every_read_path_returns_only_the_current_tenants_rows(
    rows: SimpleNamespace, path: str
) -> None:
    read, expected = READ_PATHS[path]
    with tenant_context(TENANT_A):
        assert read(rows) == expected


@pytest.mark.parametrize("path", READ_PATHS)
def test_every_read_path_raises_without_a_tenant_context(rows: SimpleNamespace, path: str) -> None:
    read, _expected = READ_PATHS[path]
    with pytest.raises(TenantContextMissing):
        read(rows)


def test_get_of_another_tenants_row_is_not_found(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A), pytest.raises(Widget.DoesNotExist):
        Widget.objects.get(pk=rows.b.widget.pk)


def test_a_queryset_built_without_context_is_scoped_when_evaluated(rows: SimpleNamespace) -> None:
    queryset = Widget.objects.all()  # like ``queryset = ...`` on a view class, at import time
    with tenant_context(TENANT_A):
        assert [w.name for w in queryset.all()] == ["a-widget"]
    with tenant_context(TENANT_B):
        assert [w.name for w in queryset.all()] == ["b-widget"]


def test_concurrent_async_tasks_read_only_their_tenants_rows(rows: SimpleNamespace) -> None:
    async def names_for(tenant: str, barrier: asyncio.Barrier) -> list[str]:
        with tenant_context(tenant):
            await barrier.wait()
            return [w.name async for w in Widget.objects.all()]

    async def main() -> list[list[str]]:
        barrier = asyncio.Barrier(2)
        return await asyncio.gather(names_for(TENANT_A, barrier), names_for(TENANT_B, barrier))

    # async_to_sync runs the ORM calls back on this thread, inside the test's transaction.
    assert async_to_sync(main)() == [["a-widget"], ["b-widget"]]


def test_all_tenants_sees_every_tenants_rows_in_all_tenants_context(rows: SimpleNamespace) -> None:
    # Unscoped on purpose: this is what the admin and maintenance commands use.
    with all_tenants_context():
        assert sorted(w.name for w in Widget.all_tenants.all()) == ["a-widget", "b-widget"]
        # A tenant context inside the block confines what follows to that tenant again.
        with tenant_context(TENANT_A):
            assert [w.name for w in Widget.objects.all()] == ["a-widget"]
            with pytest.raises(CrossTenantAccessRefused):
                list(Widget.all_tenants.all())
    assert not all_tenants_open()


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda: list(Widget.all_tenants.all()), id="read"),
        pytest.param(lambda: Widget.all_tenants.count(), id="count"),
        pytest.param(lambda: Widget.all_tenants.update(name="x"), id="update"),
        pytest.param(lambda: Widget.all_tenants.filter(name="b-widget").delete(), id="delete"),
    ],
)
@pytest.mark.parametrize("inside", ["no context", "a tenant context"])
def test_all_tenants_is_refused_outside_all_tenants_context(
    rows: SimpleNamespace, use: Any, inside: str
) -> None:
    context = tenant_context(TENANT_A) if inside == "a tenant context" else contextlib.nullcontext()
    with context, pytest.raises(CrossTenantAccessRefused):
        use()
    assert snapshot()[0] == sorted([(TENANT_A, "a-widget"), (TENANT_B, "b-widget")])


def test_raw_sql_through_the_scoped_manager_is_refused(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A), pytest.raises(TypeError):
        Widget.objects.raw("SELECT * FROM tenancy_app_widget")


# --- writes -----------------------------------------------------------------------------------


def test_new_rows_take_the_current_tenant(db: None) -> None:
    with tenant_context(TENANT_A):
        created = Widget.objects.create(name="created")
        saved = Widget(name="saved")
        saved.save()
        bulk = Widget.objects.bulk_create(
            [Widget(name="bulk"), Widget(name="bulk", tenant_id=TENANT_A)]
        )
        part = created.parts.create(name="related")
    assert {str(obj.tenant_id) for obj in (created, saved, *bulk, part)} == {TENANT_A}
    assert {tenant for tenant, _name in snapshot()[0]} == {TENANT_A}


def test_save_outside_a_tenant_context_needs_all_tenants_context_and_a_tenant(db: None) -> None:
    with all_tenants_context():
        Widget(name="maintenance", tenant_id=TENANT_B).save()
        with pytest.raises(TenantContextMissing):
            Widget(name="nobody's").save()
    with pytest.raises(TenantContextMissing):
        Widget(name="outside", tenant_id=TENANT_B).save()
    assert snapshot()[0] == [(TENANT_B, "maintenance")]


def test_update_changes_only_the_current_tenants_rows(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A):
        assert Widget.objects.update(name="renamed") == 1
    assert snapshot()[0] == sorted([(TENANT_A, "renamed"), (TENANT_B, "b-widget")])


def test_delete_removes_only_the_current_tenants_rows(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A):
        Widget.objects.all().delete()
    assert snapshot() == ([(TENANT_B, "b-widget")], [(TENANT_B, "b-part", "b-widget")])


def test_get_or_create_never_returns_another_tenants_row(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A):
        widget, created = Widget.objects.get_or_create(name="b-widget")
    assert created and str(widget.tenant_id) == TENANT_A
    assert widget.pk != rows.b.widget.pk


def test_update_or_create_never_updates_another_tenants_row(rows: SimpleNamespace) -> None:
    with tenant_context(TENANT_A):
        widget, created = Widget.objects.update_or_create(
            name="b-widget", defaults={"name": "mine"}
        )
        _same, updated_existing = Widget.objects.update_or_create(
            name="a-widget", defaults={"name": "a2"}
        )
    assert created and str(widget.tenant_id) == TENANT_A and not updated_existing
    assert snapshot()[0] == sorted([(TENANT_A, "a2"), (TENANT_A, "mine"), (TENANT_B, "b-widget")])


def test_save_cannot_overwrite_another_tenants_row_by_primary_key(rows: SimpleNamespace) -> None:
    before = snapshot()
    with tenant_context(TENANT_A), pytest.raises(IntegrityError), transaction.atomic():
        Widget(pk=rows.b.widget.pk, name="hijacked").save()  # takes tenant A; B's row stays
    assert snapshot() == before


WRITES_WITHOUT_CONTEXT: dict[str, Callable[[SimpleNamespace], Any]] = {
    "create": lambda rows: Widget.objects.create(name="x"),
    "create with a tenant": lambda rows: Widget.objects.create(name="x", tenant_id=TENANT_A),
    "save": lambda rows: Widget(name="x").save(),
    "bulk_create": lambda rows: Widget.objects.bulk_create([Widget(name="x", tenant_id=TENANT_A)]),
    "bulk_update": lambda rows: Widget.objects.bulk_update([rows.a.widget], ["name"]),
    "update": lambda rows: Widget.objects.update(name="x"),
    "delete": lambda rows: Widget.objects.all().delete(),
    "get_or_create": lambda rows: Widget.objects.get_or_create(name="x"),
    "update_or_create": lambda rows: Widget.objects.update_or_create(name="x"),
    "related manager create": lambda rows: rows.a.widget.parts.create(name="x"),
    "related manager delete": lambda rows: rows.a.widget.parts.all().delete(),
}


@pytest.mark.parametrize("path", WRITES_WITHOUT_CONTEXT)
def test_every_write_path_raises_without_a_tenant_context(rows: SimpleNamespace, path: str) -> None:
    before = snapshot()
    with pytest.raises(TenantContextMissing), transaction.atomic():
        WRITES_WITHOUT_CONTEXT[path](rows)
    assert snapshot() == before


def _move_part_to(part: Part, widget: Widget) -> int:
    part.widget = widget
    return Part.objects.bulk_update([part], ["widget"])


def _repoint_and_save(part: Part, widget: Widget) -> None:
    part.widget = widget
    part.save()


WRITES_ACROSS_TENANTS: dict[str, Callable[[SimpleNamespace], Any]] = {
    "save with another tenant's id": lambda rows: Widget(name="x", tenant_id=TENANT_B).save(),
    "save another tenant's row": lambda rows: rows.b.widget.save(),
    "create with another tenant's id": lambda rows: Widget.objects.create(
        name="x", tenant_id=TENANT_B
    ),
    "bulk_create with another tenant's id": lambda rows: Widget.objects.bulk_create(
        [Widget(name="x"), Widget(name="y", tenant_id=TENANT_B)]
    ),
    "bulk_create upsert on a cross-tenant key": lambda rows: Widget.objects.bulk_create(
        [Widget(pk=rows.b.widget.pk, name="x")],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["name"],
    ),
    "bulk_update of another tenant's row": lambda rows: Widget.objects.bulk_update(
        [rows.b.widget], ["name"]
    ),
    "update moving rows to another tenant": lambda rows: Widget.objects.update(tenant_id=TENANT_B),
    "delete another tenant's row": lambda rows: rows.b.widget.delete(),
    "save with a foreign key into another tenant": lambda rows: Part(
        widget=rows.b.widget, name="x"
    ).save(),
    "create with a foreign key into another tenant": lambda rows: Part.objects.create(
        widget=rows.b.widget, name="x"
    ),
    "related manager of another tenant's row": lambda rows: rows.b.widget.parts.create(name="x"),
    "bulk_create with a foreign key into another tenant": lambda rows: Part.objects.bulk_create(
        [Part(widget=rows.b.widget, name="x")]
    ),
    "update of a foreign key into another tenant": lambda rows: Part.objects.update(
        widget=rows.b.widget
    ),
    "update of a foreign key id into another tenant": lambda rows: Part.objects.update(
        widget_id=rows.b.widget.pk
    ),
    "bulk_update of a foreign key into another tenant": lambda rows: _move_part_to(
        rows.a.part, rows.b.widget
    ),
    "repointing a saved row at another tenant": lambda rows: _repoint_and_save(
        rows.a.part, rows.b.widget
    ),
}


@pytest.mark.parametrize("path", WRITES_ACROSS_TENANTS)
def test_every_write_across_tenants_is_refused(rows: SimpleNamespace, path: str) -> None:
    before = snapshot()
    with tenant_context(TENANT_A), pytest.raises(TenantMismatch), transaction.atomic():
        WRITES_ACROSS_TENANTS[path](rows)
    assert snapshot() == before


def test_a_foreign_key_into_another_tenant_is_refused_in_all_tenants_context_too(
    rows: SimpleNamespace,
) -> None:
    with all_tenants_context(), pytest.raises(TenantMismatch):
        Part(widget=rows.b.widget, name="x", tenant_id=TENANT_A).save()


# --- system check -----------------------------------------------------------------------------


def test_without_the_request_context_middleware_check_fails_with_e020(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != REQUEST_CONTEXT_MIDDLEWARE]

    assert [(m.id, m.level) for m in run_checks() if m.id == "entra_auth.E020"] == [
        ("entra_auth.E020", ERROR)
    ]


def test_the_request_context_middleware_satisfies_the_check(settings: Any) -> None:
    assert REQUEST_CONTEXT_MIDDLEWARE in settings.MIDDLEWARE
    assert [m.id for m in run_checks() if m.id == "entra_auth.E020"] == []


# --- the migration operation (SQL text; the policy itself is tested on PostgreSQL below) ------


def _fake_schema_editor(vendor: str) -> SimpleNamespace:
    executed: list[str] = []
    return SimpleNamespace(
        connection=SimpleNamespace(vendor=vendor, alias="default"),
        quote_name=lambda name: f'"{name}"',
        execute=executed.append,
        executed=executed,
    )


def test_enable_row_level_security_is_a_no_op_off_postgresql() -> None:
    state = ProjectState.from_apps(apps)
    editor = _fake_schema_editor("sqlite")
    operation = EnableRowLevelSecurity("Widget")
    operation.database_forwards("tenancy_app", editor, state, state)
    operation.database_backwards("tenancy_app", editor, state, state)
    assert editor.executed == []


def test_enable_row_level_security_forces_the_tenant_policy_and_reverses() -> None:
    state = ProjectState.from_apps(apps)
    editor = _fake_schema_editor("postgresql")
    operation = EnableRowLevelSecurity("Widget")
    predicate = (
        "current_setting('app.all_tenants', true) = 'on' "
        """OR "tenant_id" = NULLIF(current_setting('app.tenant_id', true), '')::uuid"""
    )
    operation.database_forwards("tenancy_app", editor, state, state)
    assert editor.executed == [
        'ALTER TABLE "tenancy_app_widget" ENABLE ROW LEVEL SECURITY',
        'ALTER TABLE "tenancy_app_widget" FORCE ROW LEVEL SECURITY',
        f'CREATE POLICY tenant_isolation ON "tenancy_app_widget" USING ({predicate}) '
        f"WITH CHECK ({predicate})",
    ]
    editor.executed.clear()
    operation.database_backwards("tenancy_app", editor, state, state)
    assert editor.executed == [
        'DROP POLICY IF EXISTS tenant_isolation ON "tenancy_app_widget"',
        'ALTER TABLE "tenancy_app_widget" NO FORCE ROW LEVEL SECURITY',
        'ALTER TABLE "tenancy_app_widget" DISABLE ROW LEVEL SECURITY',
    ]
    assert operation.reversible
    assert operation.deconstruct() == ("EnableRowLevelSecurity", ("Widget",), {})
    assert operation.migration_name_fragment == "enable_rls_widget"


# --- the settings wrapper, against a fake PostgreSQL connection ------------------------------

IDLE, INTRANS, INERROR = 0, 2, 3


class FakeRawConnection:
    """Just enough of a psycopg connection: transaction status and a recording cursor."""

    def __init__(self) -> None:
        self.info = SimpleNamespace(transaction_status=IDLE)
        self.autocommit = True
        self.set_configs: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def cursor(self) -> Any:
        yield SimpleNamespace(execute=self._execute)

    def _execute(self, sql: str, params: tuple[str, str]) -> None:
        assert "set_config('app.tenant_id', %s, false)" in sql
        self.set_configs.append(tuple(params))
        if not self.autocommit:
            self.info.transaction_status = INTRANS


def _fake_connection(vendor: str = "postgresql") -> SimpleNamespace:
    return SimpleNamespace(
        vendor=vendor,
        connection=FakeRawConnection(),
        wrap_database_errors=contextlib.nullcontext(),
        execute_wrappers=[],
    )


def _run(sync: TenantSettingsSync, sql: str = "SELECT 1") -> None:
    sync(lambda *args: None, sql, None, False, {})


def test_settings_are_set_only_when_the_tenant_changes() -> None:
    fake = _fake_connection()
    sync = TenantSettingsSync(fake, current_scope)
    _run(sync)
    _run(sync)
    with tenant_context(TENANT_A):
        _run(sync)
        _run(sync)
    with tenant_context(TENANT_B):
        _run(sync)
    with all_tenants_context():
        _run(sync)
    _run(sync)
    # Outside any context the session is closed to every tenant; open only when asked.
    assert fake.connection.set_configs == [
        ("", "off"),
        (TENANT_A, "off"),
        (TENANT_B, "off"),
        ("", "on"),
        ("", "off"),
    ]


def test_closing_the_session_sets_it_closed_once_and_only_when_open() -> None:
    fake = _fake_connection()
    sync = TenantSettingsSync(fake, current_scope)
    with tenant_context(TENANT_A):
        _run(sync)
    sync.close_session()
    sync.close_session()
    assert fake.connection.set_configs == [(TENANT_A, "off"), ("", "off")]


def test_settings_are_set_again_after_a_rollback_to_a_savepoint() -> None:
    fake = _fake_connection()
    fake.connection.autocommit = False
    sync = TenantSettingsSync(fake, current_scope)
    with tenant_context(TENANT_A):
        _run(sync)
        _run(sync, 'ROLLBACK TO SAVEPOINT "s1"')
        _run(sync)
    assert fake.connection.set_configs == [(TENANT_A, "off"), (TENANT_A, "off")]


def test_settings_made_inside_a_transaction_are_set_again_after_it_ends() -> None:
    fake = _fake_connection()
    fake.connection.autocommit = False
    sync = TenantSettingsSync(fake, current_scope)
    with tenant_context(TENANT_A):
        _run(sync)
        _run(sync)
        fake.connection.info.transaction_status = IDLE  # committed or rolled back: unknown
        _run(sync)
    assert fake.connection.set_configs == [(TENANT_A, "off"), (TENANT_A, "off")]


def test_nothing_is_set_in_an_aborted_transaction() -> None:
    fake = _fake_connection()
    fake.connection.info.transaction_status = INERROR
    sync = TenantSettingsSync(fake, current_scope)
    with tenant_context(TENANT_A):
        _run(sync, 'ROLLBACK TO SAVEPOINT "s1"')
    assert fake.connection.set_configs == []


def test_the_wrapper_is_installed_once_first_and_only_on_postgresql() -> None:
    other = _fake_connection("sqlite")
    install_tenant_settings(other, current_scope)
    assert other.execute_wrappers == []

    fake = _fake_connection()
    existing = object()
    fake.execute_wrappers.append(existing)
    install_tenant_settings(fake, current_scope)
    sync = fake.execute_wrappers[0]
    assert isinstance(sync, TenantSettingsSync) and fake.execute_wrappers[1] is existing
    _run(sync)
    install_tenant_settings(fake, current_scope)  # a reconnect: a new, empty session
    _run(sync)
    assert len(fake.execute_wrappers) == 2
    assert fake.connection.set_configs == [("", "off"), ("", "off")]


# --- PostgreSQL row-level security, for real --------------------------------------------------


def _raw_names(table: str = "tenancy_app_widget") -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {table} ORDER BY name")  # noqa: S608 (constant names)
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")
class TestPostgresRowLevelSecurity:
    def test_the_database_role_is_subject_to_row_level_security(self, db: None) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )
            assert cursor.fetchone() == (False, False)
            cursor.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname IN ('tenancy_app_widget', 'tenancy_app_part') ORDER BY relname"
            )
            assert cursor.fetchall() == [
                ("tenancy_app_part", True, True),
                ("tenancy_app_widget", True, True),
            ]

    def test_raw_sql_inside_a_tenant_context_sees_no_other_tenants_rows(
        self, rows: SimpleNamespace
    ) -> None:
        with tenant_context(TENANT_A):
            assert _raw_names() == ["a-widget"]
            assert _raw_names("tenancy_app_part") == ["a-part"]
            # Even Django's plain base manager is confined to the tenant by the database.
            assert [w.name for w in Widget._base_manager.all()] == ["a-widget"]

    def test_raw_sql_outside_any_context_sees_no_tenants_rows(self, rows: SimpleNamespace) -> None:
        assert _raw_names() == []
        assert _raw_names("tenancy_app_part") == []
        assert list(Widget._base_manager.all()) == []

    def test_raw_sql_in_all_tenants_context_sees_every_tenant_and_only_there(
        self, rows: SimpleNamespace
    ) -> None:
        with all_tenants_context():
            assert _raw_names() == ["a-widget", "b-widget"]
        assert _raw_names() == []

    def test_a_raw_cursor_that_bypasses_the_wrapper_finds_the_session_closed(
        self, rows: SimpleNamespace
    ) -> None:
        with all_tenants_context():
            assert _raw_names() == ["a-widget", "b-widget"]
        with tenant_context(TENANT_A), connection.connection.cursor() as raw_cursor:
            raw_cursor.execute("SELECT name FROM tenancy_app_widget")
            assert raw_cursor.fetchall() == []

    def test_raw_writes_into_another_tenant_are_refused_by_the_policy(
        self, rows: SimpleNamespace
    ) -> None:
        with tenant_context(TENANT_A), connection.cursor() as cursor:
            with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
                cursor.execute(
                    "INSERT INTO tenancy_app_widget (tenant_id, name) VALUES (%s, %s)",
                    [TENANT_B, "smuggled"],
                )
            cursor.execute("UPDATE tenancy_app_widget SET name = 'x' WHERE name = 'b-widget'")
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM tenancy_app_part WHERE name = 'b-part'")
            assert cursor.rowcount == 0
        assert snapshot()[0] == sorted([(TENANT_A, "a-widget"), (TENANT_B, "b-widget")])

    def test_a_rolled_back_savepoint_does_not_leave_stale_settings(
        self, rows: SimpleNamespace
    ) -> None:
        with tenant_context(TENANT_B):
            savepoint = transaction.savepoint()  # the session has tenant B here
        with tenant_context(TENANT_A):
            assert _raw_names() == ["a-widget"]  # set_config inside the savepoint
            transaction.savepoint_rollback(savepoint)  # and app.tenant_id is B again
            assert _raw_names() == ["a-widget"]

    @pytest.mark.django_db(transaction=True)
    def test_a_rolled_back_transaction_does_not_leave_stale_settings(
        self, rows: SimpleNamespace
    ) -> None:
        with all_tenants_context():
            assert _raw_names() == ["a-widget", "b-widget"]
        with tenant_context(TENANT_A):
            with pytest.raises(Boom), transaction.atomic():
                assert _raw_names() == ["a-widget"]
                raise Boom  # rolls back the set_config made inside the transaction
            assert _raw_names() == ["a-widget"]
