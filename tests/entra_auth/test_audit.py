"""The audit log (docs/audit.md): events recorded by real requests, never a token, never a 500.

Requests go through the whole stack (fake Entra tokens, authentication, the widget views of
``tests.views``, the exception handler); the rows are then read back from ``AuditEvent``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from entra_auth import audit, permissions, throttling
from entra_auth.audit import AuditEvent, EventType, Outcome, Reason, record
from entra_auth.exceptions import InvalidBearerRequest
from entra_auth.logging import JsonFormatter
from entra_auth.permissions import SameTenant
from entra_auth.principal import EntraPrincipal
from entra_auth.signals import authentication_failed, authentication_succeeded
from entra_auth.tenancy import (
    TenantContextMissing,
    all_tenants_context,
    exists_in_other_tenant,
    tenant_context,
)
from entra_auth.tokens import TokenError
from tests.audit_support import only_event
from tests.factories import (
    APP_WITH_ADMIN_ROLE,
    READER,
    RENAMER,
    UNRELATED_USER,
    WRITER,
    Caller,
    user_oid,
)
from tests.fake_entra import CLIENT_APP_ID, TENANT_A, TENANT_B, TENANT_OTHER, FakeEntra
from tests.tenancy_app.factories import WidgetFactory
from tests.tenancy_app.models import Widget
from tests.views import WIDGET_CREATED, WIDGET_RENAMED

pytestmark = pytest.mark.django_db

ME = "/api/me/"
WIDGETS = "/api/widgets/"
CLIENT_ADDRESS = "198.51.100.23"
USER_AGENT = "audit-test/1.0"
JWT_PREFIX = "eyJ"
NEW_WIDGET = {"name": "Order 1001"}
TOO_LONG_NAME = "x" * (Widget._meta.get_field("name").max_length + 1)
MISSING_ID = "999999999"
WIDGET_TYPE = "tenancy_app.widget"
FLOOD_SIZE = 40


@pytest.fixture(autouse=True)
def two_tenants(configure: Callable[..., None]) -> None:
    """A multi-tenant API serving TENANT_A and TENANT_B."""
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])


@pytest.fixture
def send(api_client: APIClient, fake_entra: FakeEntra) -> Callable[..., Any]:
    """``send(method, path, caller=None, token=None, body=None, **meta)``: one API request."""

    def request(
        method: str,
        path: str,
        caller: Caller | None = None,
        *,
        token: str | None = None,
        authorization: str | None = None,
        body: Any = None,
        **meta: str,
    ) -> Any:
        headers = {"REMOTE_ADDR": CLIENT_ADDRESS, "HTTP_USER_AGENT": USER_AGENT, **meta}
        if caller is not None:
            headers.update(caller.headers(fake_entra))
        if token is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if authorization is not None:
            headers["HTTP_AUTHORIZATION"] = authorization
        if body is None:
            return getattr(api_client, method)(path, **headers)
        return getattr(api_client, method)(path, body, format="json", **headers)

    return request


# --- each event type, recorded by real requests ---------------------------------------------


def _expired(fake: FakeEntra) -> str:
    return fake.token(lifetime_s=-3600, now=None)


def _bad_signature(fake: FakeEntra) -> str:
    header, payload, signature = fake.token().split(".")
    return f"{header}.{payload}.{signature[:-4]}AAAA"


def _wrong_audience(fake: FakeEntra) -> str:
    return fake.token(audience="api://someone-else")


def _tenant_not_allowed(fake: FakeEntra) -> str:
    return fake.token(tenant=TENANT_OTHER)


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        pytest.param(_expired, "expired", id="expired"),
        pytest.param(_bad_signature, "bad_signature", id="bad-signature"),
        pytest.param(_wrong_audience, "wrong_audience", id="wrong-audience"),
        pytest.param(_tenant_not_allowed, "tenant_not_allowed", id="tenant-not-allowed"),
    ],
)
def test_refused_token_is_recorded_with_its_reason_and_no_claim(
    send, fake_entra, make_token, reason
):
    response = send("get", ME, token=make_token(fake_entra))

    assert response.status_code == 401
    event = only_event()
    assert event.event_type == EventType.AUTHENTICATION_FAILED
    assert event.outcome == Outcome.FAILURE
    assert event.reason == reason
    # Claims of a refused token are not believed, so none is recorded.
    assert (event.tenant_id, event.subject_oid, event.app_id) == ("", "", "")
    assert event.client_ip == CLIENT_ADDRESS
    assert event.request_id == response["X-Request-ID"]
    assert (event.method, event.path, event.user_agent) == ("GET", ME, USER_AGENT)
    assert event.count == 1


def test_malformed_authorization_header_is_recorded_as_invalid_request(send):
    response = send("get", ME, authorization="Bearer two tokens")

    assert response.status_code == 401
    event = only_event()
    assert (event.event_type, event.reason) == (EventType.AUTHENTICATION_FAILED, "invalid_request")


def test_requests_without_credentials_and_accepted_tokens_record_nothing(send):
    assert send("get", ME).status_code == 401
    assert send("get", ME, READER).status_code == 200
    assert send("get", WIDGETS, READER).status_code == 200

    assert not AuditEvent.objects.exists()


def test_missing_scope_is_recorded_as_authorization_denied_naming_the_scopes(send):
    response = send("get", WIDGETS, UNRELATED_USER)

    assert response.status_code == 403
    event = only_event()
    assert event.event_type == EventType.AUTHORIZATION_DENIED
    assert event.outcome == Outcome.DENIED
    assert event.reason == Reason.MISSING_SCOPE
    assert event.missing == "Widgets.Read Widgets.Write"
    assert event.tenant_id == TENANT_A
    assert event.subject_oid == user_oid(TENANT_A)
    assert event.app_id == CLIENT_APP_ID
    assert event.request_id == response["X-Request-ID"]
    assert (event.method, event.path) == ("GET", WIDGETS)


def test_missing_user_role_is_recorded_as_missing_role(send):
    widget = WidgetFactory()

    response = send("post", f"{WIDGETS}{widget.pk}/rename/", WRITER, body={"name": "Renamed"})

    assert response.status_code == 403
    event = only_event()
    assert (event.reason, event.missing) == (Reason.MISSING_ROLE, "Widgets.Admin")


def test_rule_a_scope_or_a_role_would_satisfy_is_recorded_as_missing_scope_or_role(send):
    response = send("get", WIDGETS, APP_WITH_ADMIN_ROLE)

    assert response.status_code == 403
    event = only_event()
    assert event.reason == Reason.MISSING_SCOPE_OR_ROLE
    assert event.missing == "Widgets.Read Widgets.Write Widgets.Read.All Widgets.ReadWrite.All"


@pytest.mark.parametrize(
    ("method", "suffix", "caller", "body"),
    [
        pytest.param("get", "", READER, None, id="retrieve"),
        pytest.param("post", "rename/", RENAMER, {"name": "Renamed"}, id="rename"),
    ],
)
def test_another_tenants_widget_is_a_404_recorded_as_tenant_denied(
    send, method, suffix, caller, body
):
    theirs = WidgetFactory(tenant_id=TENANT_B)

    response = send(method, f"{WIDGETS}{theirs.pk}/{suffix}", caller, body=body)

    assert response.status_code == 404
    assert response.json()["detail"] == "Not found."
    event = only_event()
    assert event.event_type == EventType.TENANT_DENIED
    assert (event.outcome, event.reason) == (Outcome.DENIED, Reason.OTHER_TENANT)
    assert (event.object_type, event.object_id) == (WIDGET_TYPE, str(theirs.pk))
    # The caller's tenant, never the owner's: the row says who tried.
    assert (event.tenant_id, event.subject_oid) == (TENANT_A, user_oid(TENANT_A))


@pytest.mark.parametrize("widget_id", [MISSING_ID, "not-a-number"])
def test_a_widget_that_exists_nowhere_is_a_plain_404_with_no_event(send, widget_id):
    response = send("get", f"{WIDGETS}{widget_id}/", READER)

    assert response.status_code == 404
    assert not AuditEvent.objects.exists()


def test_same_tenant_permission_records_another_tenants_object(fake_entra):
    request = Request(APIRequestFactory().get("/things/7/", REMOTE_ADDR=CLIENT_ADDRESS))
    request.user = EntraPrincipal.from_claims(fake_entra.claims(tenant=TENANT_A))
    theirs = SimpleNamespace(pk=7, tenant_id=TENANT_B)

    with pytest.raises(NotFound):
        SameTenant().has_object_permission(request, view=object(), obj=theirs)

    event = only_event()
    assert (event.event_type, event.object_id, event.tenant_id) == (
        EventType.TENANT_DENIED,
        "7",
        TENANT_A,
    )
    assert event.object_type == ""  # not a model: what it is stays unsaid


def test_host_event_is_recorded_once_with_the_caller_and_the_request(send):
    created = send("post", WIDGETS, WRITER, body=NEW_WIDGET)

    assert created.status_code == 201
    event = only_event()
    assert event.event_type == WIDGET_CREATED
    assert (event.outcome, event.reason) == (Outcome.SUCCESS, "")
    assert (event.object_type, event.object_id) == (WIDGET_TYPE, str(created.json()["id"]))
    assert (event.tenant_id, event.subject_oid, event.app_id) == (
        TENANT_A,
        user_oid(TENANT_A),
        CLIENT_APP_ID,
    )
    assert event.request_id == created["X-Request-ID"]
    assert (event.method, event.path, event.client_ip) == ("POST", WIDGETS, CLIENT_ADDRESS)


def test_action_on_an_object_is_recorded_with_its_event_type_and_object(send):
    widget = WidgetFactory()

    response = send("post", f"{WIDGETS}{widget.pk}/rename/", RENAMER, body={"name": "Renamed"})

    assert response.status_code == 200
    event = only_event()
    assert (event.event_type, event.outcome) == (WIDGET_RENAMED, Outcome.SUCCESS)
    assert event.object_id == str(widget.pk)
    assert event.path == f"{WIDGETS}{widget.pk}/rename/"


def test_refused_action_records_no_success_event(send):
    widget = WidgetFactory()

    refused = send("post", f"{WIDGETS}{widget.pk}/rename/", RENAMER, body={"name": TOO_LONG_NAME})

    assert refused.status_code == 400
    assert not AuditEvent.objects.filter(outcome=Outcome.SUCCESS).exists()


def test_failed_authentications_over_the_limit_are_recorded_as_rate_limited(
    send, configure, fake_entra
):
    configure(
        TENANT_ID="organizations",
        ALLOWED_TENANTS=[TENANT_A, TENANT_B],
        AUTH_FAILURE_RATE_LIMIT="2/h",
    )
    statuses = [send("get", ME, token=_expired(fake_entra)).status_code for _ in range(4)]

    assert statuses == [401, 401, 429, 429]
    limited = only_event(event_type=EventType.RATE_LIMITED)
    assert (limited.reason, limited.client_ip) == (Reason.AUTH_FAILURE_RATE_LIMIT, CLIENT_ADDRESS)
    assert limited.tenant_id == ""


def test_caller_over_its_rate_limit_is_recorded_with_the_caller(send, configure):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A], API_RATE_LIMIT="1/h")

    assert [send("get", ME, READER).status_code for _ in range(2)] == [200, 429]
    limited = only_event(event_type=EventType.RATE_LIMITED)
    assert limited.reason == Reason.CALLER_RATE_LIMIT
    assert (limited.tenant_id, limited.subject_oid) == (TENANT_A, user_oid(TENANT_A))


def test_every_reason_entra_auth_records_is_a_known_reason():
    def codes(cls: type[TokenError]) -> set[str]:
        return {cls.code} | {code for sub in cls.__subclasses__() for code in codes(sub)}

    recorded = codes(TokenError) | {
        InvalidBearerRequest.rfc6750_error,
        permissions.MISSING_SCOPE,
        permissions.MISSING_ROLE,
        permissions.MISSING_SCOPE_OR_ROLE,
        permissions.PERMISSION_DENIED,
        throttling.CALLER_RATE_LIMIT,
        throttling.AUTH_FAILURE_RATE_LIMIT,
    }
    assert recorded <= set(Reason.values)


def test_authentication_signals_reach_subscribers_and_a_failing_one_breaks_nothing(
    send, fake_entra
):
    received: list[tuple[str, Any]] = []

    def on_success(sender, request, user, **kwargs):
        received.append(("succeeded", user.oid))

    def on_failure(sender, request, reason, **kwargs):
        received.append(("failed", reason))
        raise RuntimeError("a buggy subscriber")

    authentication_succeeded.connect(on_success)
    authentication_failed.connect(on_failure)
    try:
        ok = send("get", ME, READER)
        refused = send("get", ME, token=_expired(fake_entra))
    finally:
        authentication_succeeded.disconnect(on_success)
        authentication_failed.disconnect(on_failure)

    assert (ok.status_code, refused.status_code) == (200, 401)
    assert received == [("succeeded", user_oid(TENANT_A)), ("failed", "expired")]
    assert only_event().reason == "expired"  # the audit receiver ran too


def test_exists_in_other_tenant_looks_across_tenants_only_for_that_question():
    theirs = WidgetFactory(tenant_id=TENANT_B)
    ours = WidgetFactory(tenant_id=TENANT_A)

    with tenant_context(TENANT_A):
        assert exists_in_other_tenant(Widget, theirs.pk)
        assert not exists_in_other_tenant(Widget, ours.pk)
        assert not exists_in_other_tenant(Widget, MISSING_ID)
        assert not exists_in_other_tenant(Widget, "not-a-number")
        # The context is back: the scoped manager still sees tenant A alone.
        assert list(Widget.objects.values_list("pk", flat=True)) == [ours.pk]
    with pytest.raises(TenantContextMissing):
        exists_in_other_tenant(Widget, theirs.pk)


# --- never a token ------------------------------------------------------------------------


def test_no_audit_row_and_no_log_line_contains_a_token(send, fake_entra, caplog):
    caplog.set_level(logging.DEBUG)
    theirs = WidgetFactory(tenant_id=TENANT_B)
    tokens = [_expired(fake_entra), _bad_signature(fake_entra), _tenant_not_allowed(fake_entra)]

    for token in tokens:
        send("get", f"{ME}?access_token={token}", token=token)
    send("get", f"{WIDGETS}{tokens[0]}/", READER)
    send("get", WIDGETS, UNRELATED_USER)
    send("get", f"{WIDGETS}{theirs.pk}/", READER)
    send("post", WIDGETS, WRITER, body=NEW_WIDGET)
    send("get", ME, READER, HTTP_USER_AGENT=f"curl {tokens[1]}")

    rows = list(AuditEvent.objects.values())
    assert {row["event_type"] for row in rows} >= {
        EventType.AUTHENTICATION_FAILED,
        EventType.AUTHORIZATION_DENIED,
        EventType.TENANT_DENIED,
        WIDGET_CREATED,
    }
    for row in rows:
        assert not any(JWT_PREFIX in str(value) for value in row.values()), row
    formatter = JsonFormatter()
    assert caplog.records
    for log_record in caplog.records:
        assert JWT_PREFIX not in formatter.format(log_record)
        assert JWT_PREFIX not in log_record.getMessage()


# --- never a 500 --------------------------------------------------------------------------


def test_missing_audit_table_leaves_the_write_in_the_same_transaction_intact(
    send, audit_table_missing, caplog
):
    response = send("post", WIDGETS, WRITER, body=NEW_WIDGET)

    assert response.status_code == 201, response.content
    # The failed INSERT rolled back only its savepoint: the widget committed.
    with all_tenants_context():
        assert Widget.all_tenants.filter(pk=response.json()["id"], name="Order 1001").exists()
    failures = [r for r in caplog.records if r.name == "entra_auth.audit"]
    assert failures and WIDGET_CREATED in failures[0].getMessage()
    assert all(JWT_PREFIX not in JsonFormatter().format(r) for r in failures)


@pytest.mark.parametrize(
    "caller_or_token",
    [pytest.param("expired-token", id="failed-token"), pytest.param(UNRELATED_USER, id="403")],
)
def test_audit_write_errors_leave_refusals_unchanged(
    send, fake_entra, monkeypatch, caller_or_token
):
    def fail(**fields: Any) -> None:
        raise DatabaseError("the audit store is down")

    monkeypatch.setattr(AuditEvent.objects, "create", fail)
    if caller_or_token == "expired-token":
        response, expected = send("get", ME, token=_expired(fake_entra)), 401
    else:
        response, expected = send("get", WIDGETS, caller_or_token), 403

    assert response.status_code == expected
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_missing_audit_table_leaves_a_refusal_unchanged(send, fake_entra, audit_table_missing):
    response = send("get", ME, token=_expired(fake_entra))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')


# --- floods are coalesced, and counted exactly ----------------------------------------------

REFUSED_TOKEN_BURST = 27
FORBIDDEN_BURST = 13


def audit_writes(queries: CaptureQueriesContext) -> list[str]:
    table = AuditEvent._meta.db_table
    return [
        query["sql"]
        for query in queries.captured_queries
        if table in query["sql"] and query["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))
    ]


@pytest.fixture
def one_tenant_no_limits(configure: Callable[..., None]) -> None:
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A], AUTH_FAILURE_RATE_LIMIT=None)


def totals_by_reason() -> dict[str, int]:
    totals: dict[str, int] = {}
    for reason, count in AuditEvent.objects.values_list("reason", "count"):
        totals[reason] = totals.get(reason, 0) + count
    return totals


def test_bursts_of_refusals_reach_their_exact_totals_with_no_later_request(
    send, fake_entra, one_tenant_no_limits
):
    # Given: a burst of refused tokens and a burst of 403s, one kind each.
    refused = [send("get", ME, token=_expired(fake_entra)) for _ in range(REFUSED_TOKEN_BURST)]
    forbidden = [send("get", WIDGETS, UNRELATED_USER) for _ in range(FORBIDDEN_BURST)]
    assert {r.status_code for r in refused} == {401}
    assert {r.status_code for r in forbidden} == {403}

    # When: no request comes, and the flusher does what it does every few seconds.
    audit.flush_pending()

    # Then: the audit log holds the exact totals, each burst in one row.
    assert totals_by_reason() == {
        "expired": REFUSED_TOKEN_BURST,
        Reason.MISSING_SCOPE: FORBIDDEN_BURST,
    }
    for burst, reason in ((refused, "expired"), (forbidden, Reason.MISSING_SCOPE)):
        row = only_event(reason=reason)
        # Both ends of the burst lead to the request logs.
        assert row.request_id == burst[0]["X-Request-ID"]
        assert row.last_request_id == burst[-1]["X-Request-ID"]
        assert row.occurred_at <= row.last_occurred_at


def test_flood_of_bad_tokens_writes_one_row_then_one_update_per_flush(
    send, fake_entra, one_tenant_no_limits
):
    token = _expired(fake_entra)

    with CaptureQueriesContext(connection) as queries:
        statuses = {send("get", ME, token=token).status_code for _ in range(FLOOD_SIZE)}
    assert statuses == {401}
    assert only_event().count == 1  # the others wait in memory: no write per request
    assert len(audit_writes(queries)) == 1

    with CaptureQueriesContext(connection) as queries:
        written = audit.flush_pending()

    assert written == FLOOD_SIZE - 1
    event = only_event()
    assert (event.reason, event.client_ip, event.count) == ("expired", CLIENT_ADDRESS, FLOOD_SIZE)
    updates = audit_writes(queries)
    assert len(updates) == 1 and updates[0].lstrip().upper().startswith("UPDATE")
    # Added to the row, never written over it.
    assert '"count" + ' in updates[0] or "count + " in updates[0].lower()
    assert audit.flush_pending() == 0  # nothing is counted twice


def test_counts_of_every_worker_add_up_in_the_one_row_of_their_window(
    send, fake_entra, one_tenant_no_limits, monkeypatch
):
    # Two worker processes share the cache and the database; each counts in its own memory.
    workers = {"a": audit._PendingCounts(), "b": audit._PendingCounts()}

    def burst(worker: str, size: int) -> None:
        monkeypatch.setattr(audit, "_counts", workers[worker])
        for _ in range(size):
            assert send("get", ME, token=_expired(fake_entra)).status_code == 401

    def flush(worker: str) -> int:
        monkeypatch.setattr(audit, "_counts", workers[worker])
        return audit.flush_pending()

    burst("a", 5)  # the first refusal writes the row, 4 are counted by a
    burst("b", 7)
    assert flush("b") == 7
    burst("a", 3)
    burst("b", 2)
    assert (flush("a"), flush("b"), flush("a")) == (7, 2, 0)

    assert only_event().count == 5 + 7 + 3 + 2


def test_a_failed_flush_keeps_its_counts_and_the_next_one_writes_them(
    send, fake_entra, one_tenant_no_limits, monkeypatch, caplog
):
    for _ in range(10):
        send("get", ME, token=_expired(fake_entra))
    table = AuditEvent._meta.db_table

    # The audit table is unreachable for a while: the UPDATE fails in the database.
    monkeypatch.setattr(AuditEvent._meta, "db_table", f"{table}_unreachable")
    assert audit.flush_pending() == 0
    assert audit.flush_pending() == 0
    for _ in range(5):  # refusals keep coming during the outage, and keep being counted
        send("get", ME, token=_expired(fake_entra))
    monkeypatch.setattr(AuditEvent._meta, "db_table", table)

    assert audit.flush_pending() == 9 + 5
    assert only_event().count == 15
    errors = [r for r in caplog.records if r.name == "entra_auth.audit" and r.levelname == "ERROR"]
    assert len(errors) == 1, "an outage is logged once, not on every flush"
    assert "kept for retry" in errors[0].getMessage()


def test_the_first_refusal_of_a_window_is_kept_when_its_row_cannot_be_written(
    send, fake_entra, one_tenant_no_limits, monkeypatch
):
    def database_down(**fields: Any) -> None:
        raise DatabaseError("the audit store is down")

    with monkeypatch.context() as outage:
        outage.setattr(AuditEvent.objects, "create", database_down)
        responses = [send("get", ME, token=_expired(fake_entra)) for _ in range(4)]
        assert {r.status_code for r in responses} == {401}
        assert audit.flush_pending() == 0  # still down: kept

    assert audit.flush_pending() == 4
    row = only_event()
    assert row.count == 4
    assert (row.request_id, row.last_request_id) == (
        responses[0]["X-Request-ID"],
        responses[-1]["X-Request-ID"],
    )


def test_counts_whose_row_never_appears_become_a_row_of_their_own(
    send, fake_entra, one_tenant_no_limits, monkeypatch
):
    # The process that wrote the window's row could not publish it (its cache write failed).
    monkeypatch.setattr(audit, "_publish_row", lambda *args, **kwargs: None)
    responses = [send("get", ME, token=_expired(fake_entra)) for _ in range(6)]

    # At first the counts wait for the row, which another process may still be writing...
    assert audit.flush_pending() == 0
    assert only_event().count == 1
    # ...then, past the wait (here: at exit), they are written as a row of their own.
    audit._flush_at_exit()

    rows = list(AuditEvent.objects.order_by("id"))
    assert [row.count for row in rows] == [1, 5]
    assert rows[1].request_id == responses[1]["X-Request-ID"]
    assert rows[1].last_request_id == responses[-1]["X-Request-ID"]


def test_counts_for_a_row_that_is_gone_become_a_row_of_their_own(
    send, fake_entra, one_tenant_no_limits
):
    for _ in range(4):
        send("get", ME, token=_expired(fake_entra))
    AuditEvent.objects.all().delete()  # pruned, or rolled back with its request

    assert audit.flush_pending() == 3
    assert only_event().count == 3


def test_pending_counts_are_bounded_and_past_the_bound_events_get_rows_of_their_own(
    send, fake_entra, one_tenant_no_limits, monkeypatch
):
    monkeypatch.setattr(audit, "MAX_PENDING_ROWS", 1)
    for _ in range(3):
        send("get", ME, token=_expired(fake_entra))  # holds the one pending row
        send("get", ME, token=_expired(fake_entra), REMOTE_ADDR="203.0.113.9")

    assert len(audit._counts) == 1
    audit.flush_pending()
    # Nothing lost: the second address's refusals were written as rows as they came.
    assert dict(
        AuditEvent.objects.values("client_ip")
        .annotate(total=Sum("count"))
        .values_list("client_ip", "total")
    ) == {CLIENT_ADDRESS: 3, "203.0.113.9": 3}


def test_a_forked_worker_starts_with_no_counts_of_its_parent(send, fake_entra, monkeypatch):
    send("get", ME, token=_expired(fake_entra))
    send("get", ME, token=_expired(fake_entra))
    assert len(audit._counts) == 1

    audit._forget_parent_counts()  # what os.register_at_fork runs in the child

    assert len(audit._counts) == 0


# --- the background flusher ---------------------------------------------------------------


def test_flusher_flushes_once_per_interval_until_stopped():
    schedule: list[str] = []
    stop_after = 3

    def wait(timeout_s: float) -> bool:
        schedule.append(f"wait {timeout_s}")
        return schedule.count(f"wait {timeout_s}") > stop_after

    flusher = audit._Flusher(2.5, flush=lambda: schedule.append("flush"), wait=wait)
    flusher.run()  # the thread's body, here in the test's thread

    assert schedule == ["wait 2.5", "flush"] * stop_after + ["wait 2.5"]


def test_flusher_outlives_a_flush_that_raises(caplog):
    calls: list[int] = []

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the audit store is down")

    waits = iter([False, False, True])
    audit._Flusher(1, flush=flush, wait=lambda timeout_s: next(waits)).run()

    assert len(calls) == 2
    assert any("audit flush failed" in r.getMessage() for r in caplog.records)


def test_flusher_interval_is_a_few_seconds_so_a_burst_lands_within_ten():
    assert 0 < audit.COALESCE_FLUSH_INTERVAL_S <= 5
    # Counts waiting for another process's row are written by then too.
    assert audit.ROW_WAIT_S + audit.COALESCE_FLUSH_INTERVAL_S < 10
    assert audit._Flusher().interval_s == audit.COALESCE_FLUSH_INTERVAL_S


@pytest.mark.django_db(transaction=True)
def test_the_flusher_thread_starts_itself_and_writes_a_burst_with_no_later_request(
    send, fake_entra, one_tenant_no_limits, monkeypatch
):
    flushed = threading.Event()
    flush_pending = audit.flush_pending
    written: list[int] = []

    def observed_flush(**kwargs: Any) -> int:
        written.append(flush_pending(**kwargs))
        # The first refusal wrote the row; the thread writes every other one.
        if sum(written) == REFUSED_TOKEN_BURST - 1:
            flushed.set()
        return written[-1]

    monkeypatch.setattr(audit, "flush_pending", observed_flush)
    monkeypatch.setattr(audit, "COALESCE_FLUSH_INTERVAL_S", 0.05)
    monkeypatch.setattr(audit, "_start_flusher_automatically", True)
    monkeypatch.setattr(audit, "_flusher", None)
    try:
        for _ in range(REFUSED_TOKEN_BURST):
            send("get", ME, token=_expired(fake_entra))

        # No request from here on: the thread the first counted refusal started writes them.
        assert flushed.wait(timeout=10), "the flusher thread wrote nothing"
    finally:
        flusher = audit._flusher
        assert flusher is not None and flusher.daemon
        flusher.stop(timeout_s=10)
    assert not flusher.is_alive()
    assert only_event().count == REFUSED_TOKEN_BURST


def test_a_flusher_that_cannot_start_loses_and_doubles_nothing(
    send, fake_entra, one_tenant_no_limits, monkeypatch, caplog
):
    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(audit._Flusher, "start", no_thread)
    monkeypatch.setattr(audit, "_start_flusher_automatically", True)
    monkeypatch.setattr(audit, "_flusher", None)

    statuses = {send("get", ME, token=_expired(fake_entra)).status_code for _ in range(5)}

    assert statuses == {401}
    assert only_event().count == 1  # the others are counted once, not written as rows too
    assert any("could not start the audit flusher" in r.getMessage() for r in caplog.records)
    audit.flush_pending()
    assert only_event().count == 5


def test_exit_flush_writes_what_is_pending(send, fake_entra, one_tenant_no_limits):
    for _ in range(5):
        send("get", ME, token=_expired(fake_entra))

    audit._flush_at_exit()

    assert only_event().count == 5
    assert len(audit._counts) == 0


def test_refusals_are_coalesced_per_address_and_reason_only(send, configure, fake_entra):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A], AUTH_FAILURE_RATE_LIMIT=None)
    for _ in range(3):
        send("get", ME, token=_expired(fake_entra))
        send("get", ME, token=_expired(fake_entra), REMOTE_ADDR="203.0.113.9")
        send("get", ME, token=_wrong_audience(fake_entra))

    rows = set(AuditEvent.objects.values_list("client_ip", "reason"))
    assert rows == {
        (CLIENT_ADDRESS, "expired"),
        ("203.0.113.9", "expired"),
        (CLIENT_ADDRESS, "wrong_audience"),
    }


def test_coalescing_off_writes_a_row_per_refusal(send, configure, fake_entra):
    configure(
        TENANT_ID="organizations",
        ALLOWED_TENANTS=[TENANT_A],
        AUTH_FAILURE_RATE_LIMIT=None,
        AUDIT_COALESCE_WINDOW=0,
    )
    for _ in range(3):
        send("get", ME, token=_expired(fake_entra))

    assert AuditEvent.objects.count() == 3


def test_client_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(
    send, configure, fake_entra
):
    forwarded = {"HTTP_X_FORWARDED_FOR": "192.0.2.77", "REMOTE_ADDR": "10.0.0.5"}
    send("get", ME, token=_expired(fake_entra), **forwarded)
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A], TRUSTED_PROXIES=["10.0.0.0/8"])
    send("get", ME, token=_wrong_audience(fake_entra), **forwarded)

    assert set(AuditEvent.objects.values_list("reason", "client_ip")) == {
        ("expired", "10.0.0.5"),
        ("wrong_audience", "192.0.2.77"),
    }


# --- the public API -----------------------------------------------------------------------


def test_record_takes_explicit_fields_and_truncates_long_ones(rf):
    long_path = "/api/" + "x" * 2000
    request = rf.get(long_path, HTTP_USER_AGENT="u" * 2000, REMOTE_ADDR=CLIENT_ADDRESS)

    event = record(
        EventType.AUTHORIZATION_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        reason="custom_reason",
        tenant_id=TENANT_B,
        subject_oid="oid-1",
        app_id="app-1",
    )

    assert event is not None
    event.refresh_from_db()
    assert (event.tenant_id, event.subject_oid, event.app_id) == (TENANT_B, "oid-1", "app-1")
    assert len(event.path) == AuditEvent._meta.get_field("path").max_length
    assert event.path.endswith("…")
    assert len(event.user_agent) == AuditEvent._meta.get_field("user_agent").max_length


def test_record_says_what_the_object_is_from_a_model_instance_or_explicitly():
    widget = WidgetFactory()

    from_instance = record(WIDGET_RENAMED, object=widget)
    explicit = record(WIDGET_RENAMED, object_type="billing.invoice", object_id="inv-7")

    assert from_instance is not None and explicit is not None
    assert (from_instance.object_type, from_instance.object_id) == (WIDGET_TYPE, str(widget.pk))
    assert (explicit.object_type, explicit.object_id) == ("billing.invoice", "inv-7")
    # A single event is its own first and last.
    assert from_instance.last_request_id == from_instance.request_id
    assert from_instance.last_occurred_at == from_instance.occurred_at


def test_host_app_event_types_must_be_registered():
    with pytest.raises(ValueError, match="register"):
        record("widget_exploded")
    with pytest.raises(ValueError):
        audit.register_event_type("Not A Name")

    name = audit.register_event_type("invoice_sent", "Invoice sent")
    event = record(name, object_id="inv-1")

    assert event is not None and event.event_type == "invoice_sent"
    assert audit.event_types()["invoice_sent"] == "Invoice sent"


def test_unknown_outcome_is_a_programming_error():
    with pytest.raises(ValueError, match="outcome"):
        record(EventType.RATE_LIMITED, outcome="maybe")
