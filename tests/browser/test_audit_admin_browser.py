"""End to end in a real browser (docs/audit.md): API refusals show up in the admin's audit log.

Debian's Chromium, driven by Playwright for Python, logs into the admin of a live server on a
1366 px wide screen and investigates as an operator would: filters the audit log, opens an
event, follows its link to the object, exports the filtered list as CSV and reads the chart of
refusals, saving screenshots under ``artifacts/``. Skipped when ``/usr/bin/chromium`` or
Playwright is missing, except under ``.ci/run`` (``ENTRA_REQUIRE_BROWSER_TEST=1``), which
installs Chromium and must run it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from entra_auth import audit
from entra_auth.audit import AuditEvent, EventType, Outcome, Reason
from tests.browser_support import BROWSER_MARKS, SCREEN, browser_page, playwright_api
from tests.fake_entra import TENANT_A, TENANT_B

ADMIN_PASSWORD = "browser-test-password"
AUDIT_LOG = "/admin/entra_auth/auditevent/"
SCREENSHOT = "audit-admin-filtered.png"
REFUSED_TOKEN_BURST = 6
FORBIDDEN_BURST = 3
HTTP_TIMEOUT_S = 10

sync_api = playwright_api()
pytestmark = BROWSER_MARKS


def call_api(base_url: str, method: str, path: str, token: str, **kwargs) -> int:
    response = requests.request(
        method,
        f"{base_url}/api/{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT_S,
        **kwargs,
    )
    return response.status_code


def refusals_and_a_widget(base: str, fake_entra) -> int:
    """Bursts of a refused token and of 403s, a widget written, then another tenant's read.

    Returns the widget's id. The bursts' counts are flushed as the flusher thread would.
    """
    expired = fake_entra.token(lifetime_s=-3600)
    no_widgets_scope = fake_entra.token(scopes=("User.Read",))
    other_tenant_reader = fake_entra.token(tenant=TENANT_B, scopes=("Widgets.Read",))
    writer = fake_entra.token(scopes=("Widgets.Write",))
    assert {call_api(base, "get", "me/", expired) for _ in range(REFUSED_TOKEN_BURST)} == {401}
    assert {
        call_api(base, "get", "widgets/", no_widgets_scope) for _ in range(FORBIDDEN_BURST)
    } == {403}
    created = requests.post(
        f"{base}/api/widgets/",
        json={"name": "Order 1001"},
        headers={"Authorization": f"Bearer {writer}"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert created.status_code == 201
    widget_id = created.json()["id"]
    assert call_api(base, "get", f"widgets/{widget_id}/", other_tenant_reader) == 404
    audit.flush_pending()
    return widget_id


@contextmanager
def admin_page(base: str) -> Iterator[tuple[sync_api.Page, list[str]]]:
    """A logged-in admin page on a 1366 px screen, and the Content Security Policy
    violations the browser reports while it is used."""
    with browser_page(accept_downloads=True) as (page, violations):
        page.goto(f"{base}/admin/login/?next={AUDIT_LOG}")
        page.fill("#id_username", "admin")
        page.fill("#id_password", ADMIN_PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"**{AUDIT_LOG}")
        yield page, violations


def assert_fits_the_screen(page: sync_api.Page) -> None:
    """Nothing wider than the screen, and the list's table within its own box (no scroll)."""
    widths = page.evaluate(
        """() => {
            const table = document.querySelector('#result_list');
            const box = document.querySelector('#changelist-form .results');
            return {
                page: document.documentElement.scrollWidth,
                table: table ? table.scrollWidth : 0,
                box: box ? box.clientWidth : 0,
            };
        }"""
    )
    assert widths["page"] <= SCREEN["width"], widths
    assert widths["table"] <= widths["box"], widths


def widest_event() -> AuditEvent:
    """An event with the longest values each column can show."""
    return AuditEvent.objects.create(
        event_type=EventType.AUTHENTICATION_FAILED,
        outcome=Outcome.FAILURE,
        reason=Reason.AUTH_FAILURE_RATE_LIMIT,
        tenant_id=TENANT_A,
        subject_oid="ffffffff-ffff-4fff-8fff-ffffffffffff",
        app_id="eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee",
        client_ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        request_id="f" * 128,
        last_request_id="e" * 128,
        method="OPTIONS",
        path="/api/" + "very-long-segment/" * 20,
        user_agent="Mozilla/5.0 " * 20,
        object_type="tenancy_app.widget",
        object_id="9" * 64,
        missing="Widgets.ReadWrite.All " * 10,
        count=4_294_967,
    )


def test_admin_lists_and_filters_audit_events_of_real_api_requests(
    live_server, fake_entra, configure, django_user_model, artifacts
):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    django_user_model.objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)
    # Given: refused tokens, missing scopes, a write and another tenant's read, over HTTP, and
    # an event as wide as any can be.
    widget_id = refusals_and_a_widget(live_server.url, fake_entra)
    widest_event()

    with admin_page(live_server.url) as (page, violations):
        # When: an operator opens the audit log, on a 1366 px screen: the list fits.
        rows = page.locator("#result_list tbody tr")
        sync_api.expect(rows).to_have_count(5)
        assert_fits_the_screen(page)
        page.screenshot(path=str(artifacts / "audit-admin-list-1366.png"), full_page=True)

        # ...filters by event type...
        page.locator("#changelist-filter").get_by_role("link", name="Authorization denied").click()
        page.wait_for_url("**event_type=authorization_denied**")
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(rows.first).to_contain_text("Denied · Missing scope")
        sync_api.expect(rows.first).to_contain_text(TENANT_A[:8])
        sync_api.expect(rows.first.locator("td.field-count")).to_have_text(str(FORBIDDEN_BURST))

        # ...then by tenant, with the text box, keeping the event type.
        page.locator("#changelist-filter").get_by_role("link", name="Tenant denied").click()
        page.wait_for_url("**event_type=tenant_denied**")
        tenant_box = page.locator('#changelist-filter input[name="tenant_id"]')
        tenant_box.fill(TENANT_B)
        tenant_box.press("Enter")
        page.wait_for_url(f"**tenant_id={TENANT_B}**")

        # Then: exactly the other tenant's attempt on tenant A's widget, in readable words.
        assert "event_type=tenant_denied" in page.url
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(rows.first).to_contain_text("Object of another tenant")
        sync_api.expect(rows.first).to_contain_text(f"/api/widgets/{widget_id}/")
        assert "eyJ" not in page.content()
        assert_fits_the_screen(page)
        page.screenshot(path=str(artifacts / SCREENSHOT), full_page=True)
        assert violations == []

    assert (artifacts / SCREENSHOT).stat().st_size > 0


def test_operator_investigates_from_a_reason_to_the_object_and_exports_the_list(
    live_server, fake_entra, configure, django_user_model, artifacts
):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    django_user_model.objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)
    widget_id = refusals_and_a_widget(live_server.url, fake_entra)
    shots = {
        "changelist": artifacts / "audit-admin-changelist-1366.png",
        "event": artifacts / "audit-admin-event-1366.png",
        "object": artifacts / "audit-admin-object-1366.png",
    }

    with admin_page(live_server.url) as (page, violations):
        rows = page.locator("#result_list tbody tr")
        sync_api.expect(rows).to_have_count(4)

        # The chart: refusals per hour by reason, drawn by the server, exact counts.
        charts = page.locator("svg.entra-audit-chart")
        sync_api.expect(charts).to_have_count(2)
        day_chart = page.locator("#entra-audit-chart-24h")
        assert day_chart.locator("rect.bar").count() >= 3  # expired, missing scope, other tenant
        assert day_chart.get_attribute("role") == "img"
        legend = page.locator("ul.entra-audit-legend")
        sync_api.expect(legend).to_contain_text(f"Expired ({REFUSED_TOKEN_BURST})")
        sync_api.expect(legend).to_contain_text(f"Missing scope ({FORBIDDEN_BURST})")
        assert day_chart.bounding_box()["height"] > 50
        assert_fits_the_screen(page)
        page.screenshot(path=str(shots["changelist"]), full_page=True)

        # Filter by reason...
        page.locator("#changelist-filter").get_by_role(
            "link", name="Object of another tenant"
        ).click()
        page.wait_for_url("**reason=other_tenant**")
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(rows.first).to_contain_text("Tenant denied")
        sync_api.expect(rows.first).to_contain_text(f"Widget {widget_id}")
        assert_fits_the_screen(page)
        filtered_list = page.url

        # ...open the event...
        rows.first.locator("th.field-when a, td.field-when a").first.click()
        page.wait_for_url("**/auditevent/*/change/**")
        content = page.locator("#content")
        sync_api.expect(content).to_contain_text("Object of another tenant")
        sync_api.expect(content).to_contain_text("other events of this caller")
        sync_api.expect(content).to_contain_text("other events of this request")
        sync_api.expect(content).to_contain_text("tenancy_app.widget")
        page.screenshot(path=str(shots["event"]), full_page=True)

        # ...follow the link to its object: the widget, in the admin...
        page.locator("div.field-object_detail a").click()
        page.wait_for_url(f"**/admin/tenancy_app/widget/{widget_id}/change/")
        sync_api.expect(page.locator("#content")).to_contain_text("Order 1001")
        page.screenshot(path=str(shots["object"]), full_page=True)

        # ...and export the filtered list as CSV.
        page.goto(filtered_list)
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Export CSV").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".csv")
        with open(download.path(), newline="", encoding="utf-8") as exported:
            lines = list(csv.DictReader(exported))
        assert violations == []

    assert len(lines) == 1
    (line,) = lines
    assert (line["event_type"], line["reason"], line["reason_label"]) == (
        "tenant_denied",
        "other_tenant",
        "Object of another tenant",
    )
    assert (line["object_type"], line["object_id"]) == ("tenancy_app.widget", str(widget_id))
    assert line["tenant_id"] == TENANT_B and line["count"] == "1"
    assert not any("eyJ" in value for value in line.values())
    for shot in shots.values():
        assert shot.stat().st_size > 0
