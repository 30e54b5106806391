"""PostgreSQL row-level security for tenant-owned tables: the policy and its settings.

See docs/tenancy.md.

Two halves, both no-ops on any other database:

- ``EnableRowLevelSecurity``, a migration operation that turns RLS on (``ENABLE`` and
  ``FORCE``) for a table and adds the ``tenant_isolation`` policy: a row is visible and
  writable only when its ``tenant_id`` equals the session setting ``app.tenant_id``, or when
  ``app.all_tenants`` is ``'on'``.
- ``TenantSettingsSync``, an execute wrapper that ``entra_auth.tenancy`` installs on every new
  PostgreSQL connection. Before each query it makes ``app.tenant_id`` equal the current tenant,
  and ``app.all_tenants`` ``'on'`` only inside ``all_tenants_context()`` (the admin,
  maintenance commands, the existence check behind a 404). Without a tenant context the
  database shows no tenant's rows, so even raw SQL outside a request sees nothing, and inside
  a request it sees only the caller's tenant. When a request or an ``all_tenants_context()``
  block ends, a session left open to a tenant (or to all) is closed again at once, so a raw
  DB-API cursor that bypasses the wrapper finds it closed too.

Database role requirements: PostgreSQL skips every policy for superusers and for roles with
``BYPASSRLS``, and for a table's owner unless ``FORCE ROW LEVEL SECURITY`` is set. The role
the application connects as must therefore be neither a superuser nor ``BYPASSRLS``. It may
own the tables (``FORCE`` covers the owner; that is how the test suite runs), though the
stronger set-up migrates as an owner role and serves as a role with only ``SELECT``,
``INSERT``, ``UPDATE`` and ``DELETE`` grants. ``app.all_tenants`` guards against bugs, not
against SQL injection: any session may change its own settings. The settings live in the
database session, so a pooler must keep a client on one server session (PgBouncer session
pooling, or none); transaction pooling is not supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.migrations.operations.base import Operation

TENANT_SETTING = "app.tenant_id"
ALL_TENANTS_SETTING = "app.all_tenants"
POLICY_NAME = "tenant_isolation"
TENANT_COLUMN_FIELD = "tenant_id"

# A session that never set the values sees no row (NULL), so the policy fails closed.
CLOSED = ("", "off")
_POLICY_PREDICATE = (
    f"current_setting('{ALL_TENANTS_SETTING}', true) = 'on' "
    f"OR {{column}} = NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"
)
_SET_TENANT_SQL = (
    f"SELECT set_config('{TENANT_SETTING}', %s, false), "
    f"set_config('{ALL_TENANTS_SETTING}', %s, false)"
)
# Statements after which the session's settings are no longer what we last set: a rollback
# (also to a savepoint) undoes a set_config made inside the transaction.
_RESETTING_STATEMENTS = ("ROLLBACK", "RESET", "DISCARD", "SET")
_LONGEST_RESETTING_KEYWORD = max(map(len, _RESETTING_STATEMENTS))
# libpq's PQtransactionStatus values (psycopg 2 and 3 report the same numbers).
_PQTRANS_IDLE = 0
_PQTRANS_INERROR = 3


class EnableRowLevelSecurity(Operation):
    """Migration operation: ``ENABLE``/``FORCE ROW LEVEL SECURITY`` and the tenant policy.

    Add one per tenant-owned table after its ``CreateModel``; on other databases it does nothing.
    """

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    @property
    def model_name_lower(self) -> str:
        return self.model_name.lower()

    def state_forwards(self, app_label: str, state: Any) -> None:
        """Row-level security is not part of Django's model state."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table, column = self._table_and_column(app_label, schema_editor, to_state)
        if table is None:
            return
        predicate = _POLICY_PREDICATE.format(column=column)
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(
            f"CREATE POLICY {POLICY_NAME} ON {table} USING ({predicate}) WITH CHECK ({predicate})"
        )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table, _column = self._table_and_column(app_label, schema_editor, from_state)
        if table is None:
            return
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

    def _table_and_column(
        self, app_label: str, schema_editor: Any, state: Any
    ) -> tuple[str | None, str | None]:
        if schema_editor.connection.vendor != "postgresql":
            return None, None
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None, None
        column = model._meta.get_field(TENANT_COLUMN_FIELD).column
        return schema_editor.quote_name(model._meta.db_table), schema_editor.quote_name(column)

    def describe(self) -> str:
        return f"Enable row-level security (tenant isolation) on {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"enable_rls_{self.model_name_lower}"


class TenantSettingsSync:
    """Execute wrapper keeping ``app.tenant_id``/``app.all_tenants`` equal to the tenant context.

    It remembers what it last set on its connection and calls ``set_config`` only on a change,
    or when a rollback or the end of the transaction that set it may have undone the value.
    ``current_scope`` answers the current tenant (or None) and whether every tenant is open.
    """

    def __init__(
        self, connection: Any, current_scope: Callable[[], tuple[str | None, bool]]
    ) -> None:
        self.connection = connection
        self.current_scope = current_scope
        self.forget()

    def forget(self) -> None:
        """A new or reset session: nothing is known to be set."""
        self._known: tuple[str, str] | None = None
        self._set_inside_transaction = False

    def __call__(self, execute: Callable, sql: Any, params: Any, many: bool, context: Any) -> Any:
        self._sync()
        try:
            return execute(sql, params, many, context)
        finally:
            if not isinstance(sql, str) or _resets_settings(sql):
                self.forget()

    def _sync(self) -> None:
        raw = self.connection.connection
        status = int(raw.info.transaction_status)
        if status == _PQTRANS_INERROR:
            # Only a rollback can run now, and it undoes what this transaction set.
            return
        if status == _PQTRANS_IDLE and self._set_inside_transaction:
            # The transaction that set the values has ended; had it rolled back, they are gone.
            self.forget()
        tenant, all_open = self.current_scope()
        if tenant:
            wanted = (tenant, "off")
        else:
            wanted = ("", "on") if all_open else CLOSED
        if wanted != self._known:
            self._set(raw, wanted)

    def close_session(self) -> None:
        """Close the session to every tenant now, unless it is known to be closed (or no
        session is open): the end of a request or of an ``all_tenants_context()``."""
        raw = self.connection.connection
        if raw is None or self._known == CLOSED:
            return
        if int(raw.info.transaction_status) == _PQTRANS_INERROR:
            return  # the rollback to come undoes what the transaction set
        self._set(raw, CLOSED)

    def _set(self, raw: Any, wanted: tuple[str, str]) -> None:
        # The raw DB-API cursor, so that this does not run through the execute wrappers again.
        with self.connection.wrap_database_errors, raw.cursor() as cursor:
            cursor.execute(_SET_TENANT_SQL, wanted)
        self._known = wanted
        self._set_inside_transaction = int(raw.info.transaction_status) != _PQTRANS_IDLE


def _resets_settings(sql: str) -> bool:
    return sql.lstrip()[:_LONGEST_RESETTING_KEYWORD].upper().startswith(_RESETTING_STATEMENTS)


def install_tenant_settings(
    connection: Any, current_scope: Callable[[], tuple[str | None, bool]]
) -> None:
    """``connection_created`` hook: add (or reset) the settings wrapper on a PostgreSQL connection.

    The wrapper goes first in ``execute_wrappers``, so ``connection.execute_wrapper()`` blocks
    that were open when the connection was made still pop their own wrapper.
    """
    if connection.vendor != "postgresql":
        return
    for wrapper in connection.execute_wrappers:
        if isinstance(wrapper, TenantSettingsSync):
            wrapper.forget()
            return
    connection.execute_wrappers.insert(0, TenantSettingsSync(connection, current_scope))


def close_tenant_sessions(connections: Any) -> None:
    """Close every open PostgreSQL session of ``connections`` to every tenant."""
    for connection in connections.all(initialized_only=True):
        for wrapper in connection.execute_wrappers:
            if isinstance(wrapper, TenantSettingsSync):
                wrapper.close_session()
