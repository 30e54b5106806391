"""The audit log in the Django admin: read-only, filters and search, cheap on a large table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from entra_auth.admin import AuditEventAdmin
from entra_auth.audit import AuditEvent, EventType, Outcome, Reason, prune
from tests.fake_entra import TENANT_A, TENANT_B
from tests.views import WIDGET_CREATED

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/entra_auth/auditevent/"
OID_A = "aaaaaaaa-0000-4000-8000-000000000001"
OID_B = "bbbbbbbb-0000-4000-8000-000000000002"
APP_A = "aaaaaaaa-0000-4000-8000-0000000000a1"
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def event(**fields: Any) -> AuditEvent:
    values = {
        "occurred_at": NOW,
        "event_type": EventType.AUTHENTICATION_FAILED,
        "outcome": Outcome.FAILURE,
        "reason": Reason.EXPIRED,
        "client_ip": "198.51.100.1",
        "request_id": "req-default",
        **fields,
    }
    return AuditEvent.objects.create(**values)


@pytest.fixture
def events() -> dict[str, AuditEvent]:
    """One event of each kind, in two tenants, on two days."""
    return {
        "expired": event(request_id="req-expired", client_ip="198.51.100.7"),
        "bad_signature": event(
            reason=Reason.BAD_SIGNATURE,
            request_id="req-signature",
            occurred_at=NOW - timedelta(days=40),
        ),
        "missing_scope": event(
            event_type=EventType.AUTHORIZATION_DENIED,
            outcome=Outcome.DENIED,
            reason=Reason.MISSING_SCOPE,
            tenant_id=TENANT_A,
            subject_oid=OID_A,
            app_id=APP_A,
            request_id="req-scope",
            missing="Widgets.Read",
        ),
        "tenant_denied": event(
            event_type=EventType.TENANT_DENIED,
            outcome=Outcome.DENIED,
            reason=Reason.OTHER_TENANT,
            tenant_id=TENANT_B,
            subject_oid=OID_B,
            request_id="req-tenant",
        ),
        "widget_created": event(
            event_type=WIDGET_CREATED,
            outcome=Outcome.SUCCESS,
            reason="",
            tenant_id=TENANT_A,
            subject_oid=OID_A,
            app_id=APP_A,
            request_id="req-widget",
            client_ip="2001:db8::5",
        ),
    }


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def listed(client: Client, query: str = "") -> list[AuditEvent]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


def test_changelist_lists_every_event_newest_first(admin_client, events):
    rows = listed(admin_client)

    assert [row.occurred_at for row in rows] == sorted(
        (row.occurred_at for row in rows), reverse=True
    )
    assert {row.pk for row in rows} == {e.pk for e in events.values()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?event_type=authentication_failed", {"expired", "bad_signature"}),
        (f"?event_type={WIDGET_CREATED}", {"widget_created"}),
        ("?outcome__exact=denied", {"missing_scope", "tenant_denied"}),
        ("?reason=expired", {"expired"}),
        ("?reason=missing_scope", {"missing_scope"}),
        (f"?tenant_id={TENANT_A}", {"missing_scope", "widget_created"}),
        (f"?tenant_id={TENANT_B.upper()}", {"tenant_denied"}),
        ("?occurred_at__year=2026&occurred_at__month=2", {"bad_signature"}),
        ("?event_type=authentication_failed&outcome__exact=success", set()),
        (f"?q={OID_A}", {"missing_scope", "widget_created"}),
        (f"?q={APP_A.upper()}", {"missing_scope", "widget_created"}),
        ("?q=req-tenant", {"tenant_denied"}),
        ("?q=198.51.100.7", {"expired"}),
        ("?q=2001:DB8::5", {"widget_created"}),
        ("?q=nothing-matches", set()),
    ],
)
def test_filters_and_search_return_the_right_rows(admin_client, events, query, expected):
    rows = listed(admin_client, query)

    names = {name for name, e in events.items() if e.pk in {row.pk for row in rows}}
    assert names == expected


def test_filter_sidebar_offers_every_event_type_reason_and_a_tenant_box(admin_client, events):
    page = admin_client.get(CHANGELIST).content.decode()

    for label in ("Authentication failed", "Tenant denied", "Widget created", "Rate limited"):
        assert label in page
    assert "Missing scope" in page and "Bad signature" in page
    assert 'name="tenant_id"' in page


def test_audit_events_cannot_be_added_changed_or_deleted(admin_client, events):
    target = events["expired"]
    change_url = f"{CHANGELIST}{target.pk}/change/"

    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}add/", {"event_type": "x"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}{target.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{target.pk}/delete/", {"post": "yes"}).status_code == 403
    detail = admin_client.get(change_url)
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    admin_client.post(change_url, {"reason": "edited", "count": "9"})
    bulk = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [target.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)

    target.refresh_from_db()
    assert (target.reason, target.count) == (Reason.EXPIRED, 1)
    assert AuditEvent.objects.count() == len(events)
    assert 'name="action"' not in admin_client.get(CHANGELIST).content.decode()


def test_model_admin_grants_no_write_permission(admin_client, rf):
    request = rf.get(CHANGELIST)
    request.user = User.objects.get(username="root")
    model_admin = AuditEventAdmin(AuditEvent, admin_site=None)

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.get_actions(request) == {}


def test_staff_need_the_view_permission(client, events):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    assert client.get(CHANGELIST).status_code == 200


def test_changelist_queries_do_not_grow_with_the_rows(admin_client):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            listed(admin_client, "?event_type=authentication_failed")
        return len(queries)

    for _ in range(3):
        event()
    few = queries_for_page()
    for _ in range(40):
        event()
    many = queries_for_page()

    assert many == few
    assert AuditEventAdmin.show_full_result_count is False


# --- retention ----------------------------------------------------------------------------


def test_prune_dry_run_counts_and_deletes_nothing(events, capsys, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW + timedelta(days=1))

    call_command("entra_audit_prune", "--older-than", "30d", "--dry-run")

    assert "Would delete 1 audit event(s) older than 30d." in capsys.readouterr().out
    assert AuditEvent.objects.count() == len(events)


def test_prune_deletes_only_older_events(events, capsys, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW + timedelta(days=1))

    call_command("entra_audit_prune", "--older-than", "30d")

    assert "Deleted 1 audit event(s)" in capsys.readouterr().out
    assert not AuditEvent.objects.filter(pk=events["bad_signature"].pk).exists()
    assert AuditEvent.objects.count() == len(events) - 1


def test_prune_works_in_batches(monkeypatch):
    monkeypatch.setattr("entra_auth.audit.PRUNE_BATCH_SIZE", 2)
    for _ in range(5):
        event(occurred_at=NOW - timedelta(days=200))

    assert prune(timedelta(days=90)) == 5
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("age", ["90", "0d", "-1d", "90 days", "1y"])
def test_prune_refuses_an_unclear_age(age):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("entra_audit_prune", "--older-than", age)
