"""End to end in a real browser (SPEC 12): API refusals show up in the admin's audit log.

Debian's Chromium, driven by Playwright for Python, logs into the admin of a live server,
filters the audit log by event type and tenant, and saves a screenshot under ``artifacts/``.
Skipped when ``/usr/bin/chromium`` or Playwright is missing, except under ``.ci/run``
(``ENTRA_REQUIRE_BROWSER_TEST=1``), which installs Chromium and must run it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.fake_entra import TENANT_A, TENANT_B

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_PASSWORD = "browser-test-password"
AUDIT_LOG = "/admin/entra_auth/auditevent/"
SCREENSHOT = "audit-admin-filtered.png"
HTTP_TIMEOUT_S = 10
PAGE_TIMEOUT_MS = 20_000

# .ci/run sets it: there a missing browser is a failure, not a skip.
BROWSER_REQUIRED = os.environ.get("ENTRA_REQUIRE_BROWSER_TEST") == "1"

if BROWSER_REQUIRED and not CHROMIUM.exists():
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
if BROWSER_REQUIRED:
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def call_api(base_url: str, method: str, path: str, token: str, **kwargs) -> int:
    response = requests.request(
        method,
        f"{base_url}/api/{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT_S,
        **kwargs,
    )
    return response.status_code


def test_admin_lists_and_filters_audit_events_of_real_api_requests(
    live_server, fake_entra, configure, django_user_model
):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    django_user_model.objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)
    # Given: a refused token, a missing scope, a write and another tenant's read, over HTTP.
    expired = fake_entra.token(lifetime_s=-3600)
    no_widgets_scope = fake_entra.token(scopes=("User.Read",))
    other_tenant_reader = fake_entra.token(tenant=TENANT_B, scopes=("Widgets.Read",))
    writer = fake_entra.token(scopes=("Widgets.Write",))
    base = live_server.url
    assert call_api(base, "get", "me/", expired) == 401
    assert call_api(base, "get", "widgets/", no_widgets_scope) == 403
    created = requests.post(
        f"{base}/api/widgets/",
        json={"name": "Order 1001"},
        headers={"Authorization": f"Bearer {writer}"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert created.status_code == 201
    assert call_api(base, "get", f"widgets/{created.json()['id']}/", other_tenant_reader) == 404

    artifacts = Path(settings.BASE_DIR) / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)

            # When: an operator logs in and opens the audit log...
            page.goto(f"{base}/admin/login/?next={AUDIT_LOG}")
            page.fill("#id_username", "admin")
            page.fill("#id_password", ADMIN_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"**{AUDIT_LOG}")
            rows = page.locator("#result_list tbody tr")
            sync_api.expect(rows).to_have_count(4)

            # ...filters by event type...
            page.locator("#changelist-filter").get_by_role(
                "link", name="Authorization denied"
            ).click()
            page.wait_for_url("**event_type=authorization_denied**")
            sync_api.expect(rows).to_have_count(1)
            sync_api.expect(rows.first).to_contain_text("missing_scope")
            sync_api.expect(rows.first).to_contain_text(TENANT_A)

            # ...then by tenant, with the text box, keeping the event type.
            page.locator("#changelist-filter").get_by_role("link", name="Tenant denied").click()
            page.wait_for_url("**event_type=tenant_denied**")
            tenant_box = page.locator('#changelist-filter input[name="tenant_id"]')
            tenant_box.fill(TENANT_B)
            tenant_box.press("Enter")
            page.wait_for_url(f"**tenant_id={TENANT_B}**")

            # Then: exactly the other tenant's attempt on tenant A's widget.
            assert "event_type=tenant_denied" in page.url
            sync_api.expect(rows).to_have_count(1)
            sync_api.expect(rows.first).to_contain_text("other_tenant")
            sync_api.expect(rows.first).to_contain_text(f"/api/widgets/{created.json()['id']}/")
            assert "eyJ" not in page.content()
            page.screenshot(path=str(artifacts / SCREENSHOT), full_page=True)
        finally:
            browser.close()

    assert (artifacts / SCREENSHOT).stat().st_size > 0
