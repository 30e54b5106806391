"""End to end in a real browser (docs/openapi.md): try the sample API from its Swagger UI.

Debian's Chromium, driven by Playwright for Python, opens ``/api/docs/`` on a live server
whose development issuer is trusted, as a developer would: the Authorize dialog offers Entra
sign-in (authorization code with PKCE) and a development bearer token; a token printed by
``manage.py entra_dev_token`` is pasted there, and ``GET /api/payments/`` executed from the page
answers 200 with the tenant's payment. All of it under the docs page's Content-Security-Policy
(scripts only from 'self', no ``'unsafe-eval'``): the browser reports no violation. A user also
signs in with Entra's authorization code flow (PKCE) against the fake Entra on another origin,
through the sign-in popup and the redirect page. A screenshot is saved under ``artifacts/``.
Skipped like every browser test (tests/browser_support.py).
"""

from __future__ import annotations

import io

from django.core.management import call_command

from entra_auth.openapi import DEV_SCHEME_NAME, swagger_ui_policy
from tests.browser_support import BROWSER_MARKS, PAGE_TIMEOUT_MS, browser_page, playwright_api
from tests.fake_entra import CLIENT_ID, TENANT_A
from tests.sample.factories import PaymentFactory

DOCS = "/api/docs/"
PAYMENTS = "/api/payments/"
# Swagger UI's id of an operation: operations-<tag>-<operationId> (docs/openapi.yaml).
PAYMENTS_LIST = "#operations-payments-payments_list"
SCREENSHOT = "swagger-ui-authorized.png"
# The client ID of the docs' own app registration (OPENAPI_CLIENT_ID), typed in the dialog.
DOCS_CLIENT_ID = "5d0c5d0c-0000-4000-8000-0000000d0c5d"

sync_api = playwright_api()
pytestmark = BROWSER_MARKS


def development_token(tenant_id: str, scope: str) -> str:
    """A token printed by ``manage.py entra_dev_token``, as a developer would get one."""
    out, err = io.StringIO(), io.StringIO()
    call_command("entra_dev_token", "--tenant", tenant_id, "--scope", scope, stdout=out, stderr=err)
    assert err.getvalue() == ""  # no "this server does not trust development tokens"
    return out.getvalue().strip()


def execute(page: sync_api.Page, operation: sync_api.Locator) -> sync_api.Response:
    """Click the operation's Execute button; the API's answer, as the browser received it."""
    with page.expect_response(
        lambda response: response.url.endswith(PAYMENTS) and response.request.method == "GET"
    ) as answer:
        operation.get_by_role("button", name="Execute").click()
    return answer.value


def test_a_developer_authorizes_swagger_ui_with_a_development_token_and_lists_payments(
    live_server, trusted_dev_issuer, artifacts
):
    # Given: the sample API trusting the development issuer, and a payment of tenant A.
    payment = PaymentFactory(tenant_id=TENANT_A, description="Swagger UI browser test")
    token = development_token(TENANT_A, "Payments.Read")

    with browser_page() as (page, violations):
        # When: a developer opens the docs...
        docs = page.goto(f"{live_server.url}{DOCS}")
        assert docs is not None and docs.status == 200
        assert docs.headers["content-security-policy"] == swagger_ui_policy()
        operation = page.locator(PAYMENTS_LIST)
        sync_api.expect(operation).to_be_visible(timeout=PAGE_TIMEOUT_MS)

        # ...tries GET /api/payments/ before authorizing: refused...
        operation.locator(".opblock-summary-control").click()
        operation.get_by_role("button", name="Try it out").click()
        refused = execute(page, operation)
        assert refused.status == 401
        assert refused.request.header_value("authorization") is None
        status = operation.locator(".live-responses-table .response .response-col_status")
        sync_api.expect(status).to_have_text("401", timeout=PAGE_TIMEOUT_MS)

        # ...opens the Authorize dialog: Entra sign-in and a development bearer token...
        page.get_by_role("button", name="Authorize", exact=True).click()
        dialog = page.locator(".modal-ux")
        sync_api.expect(dialog).to_be_visible()
        for entra_flow in ("authorizationCode with PKCE", "clientCredentials"):
            heading = dialog.get_by_role("heading", name=f"oauth2 (OAuth2, {entra_flow})")
            sync_api.expect(heading).to_be_visible()
        development = dialog.locator(".auth-container").filter(
            has=page.locator("h4", has_text=DEV_SCHEME_NAME)
        )
        sync_api.expect(development.locator("h4")).to_contain_text("(http, Bearer)")
        sync_api.expect(development).to_contain_text("entra_dev_token")

        # ...pastes the token, authorizes and closes the dialog...
        development.get_by_role("textbox").fill(token)
        development.get_by_role("button", name="Apply credentials").click()
        authorized = development.get_by_role("heading", name="Authorized")
        sync_api.expect(authorized).to_be_visible()
        logout = development.get_by_role("button", name="Remove authorization")
        sync_api.expect(logout).to_have_text("Logout")
        development.get_by_role("button", name="Close").click()
        sync_api.expect(dialog).to_be_hidden()

        # ...and executes GET /api/payments/ again.
        answered = execute(page, operation)

        # Then: the token went with the request and the page shows 200 and the payment.
        assert answered.request.header_value("authorization") == f"Bearer {token}"
        assert answered.status == 200
        sync_api.expect(status).to_have_text("200", timeout=PAGE_TIMEOUT_MS)
        body = operation.locator(".live-responses-table .response .response-col_description")
        sync_api.expect(body).to_contain_text(str(payment.pk))
        sync_api.expect(body).to_contain_text('"amount": "12.50"')
        sync_api.expect(body).to_contain_text("Swagger UI browser test")
        body.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / SCREENSHOT), full_page=True)
        assert violations == []

    assert (artifacts / SCREENSHOT).stat().st_size > 0


def test_a_user_signs_in_with_entra_from_swagger_ui_and_lists_payments(live_server, fake_entra):
    """The authorization code flow with PKCE, from the Authorize dialog, against the fake
    Entra on another origin: the popup signs in, comes back to /api/docs/oauth2-redirect.html
    and hands the code to Swagger UI, which redeems it and sends the token. The sample's
    Cross-Origin-Opener-Policy (same-origin) applies to every other page."""
    payment = PaymentFactory(tenant_id=TENANT_A, description="Signed in with Entra")
    read_scope = f"api://{CLIENT_ID}/Payments.Read"

    with browser_page() as (page, violations):
        page.goto(f"{live_server.url}{DOCS}")
        operation = page.locator(PAYMENTS_LIST)
        sync_api.expect(operation).to_be_visible()

        # When: the user chooses Entra sign-in, with Payments.Read...
        page.get_by_role("button", name="Authorize", exact=True).click()
        dialog = page.locator(".modal-ux")
        entra = dialog.locator(".auth-container").filter(
            has=page.get_by_role("heading", name="oauth2 (OAuth2, authorizationCode with PKCE)")
        )
        entra.get_by_role("textbox").first.fill(DOCS_CLIENT_ID)
        entra.locator("label", has_text=read_scope).click()
        with page.expect_popup() as sign_in:
            entra.get_by_role("button", name="Apply given OAuth2 credentials").click()
        # ...signs in (the fake Entra answers at once): the popup hands the code over and
        # closes itself, possibly before the page has even reported it open.
        popup = sign_in.value
        sync_api.expect(entra.get_by_role("heading", name="Authorized")).to_be_visible()
        if not popup.is_closed():
            popup.wait_for_event("close", timeout=PAGE_TIMEOUT_MS)
        dialog.get_by_role("button", name="Close").first.click()
        operation.locator(".opblock-summary-control").click()
        operation.get_by_role("button", name="Try it out").click()
        answered = execute(page, operation)

        # Then: a PKCE sign-in as the docs' client, the token it got sent, the payment listed.
        [signed_in] = fake_entra.state.sign_ins
        assert signed_in["client_id"] == DOCS_CLIENT_ID
        assert signed_in["code_challenge_method"] == "S256"
        assert signed_in["redirect_uri"] == f"{live_server.url}{DOCS}oauth2-redirect.html"
        assert read_scope in signed_in["scope"].split()
        assert answered.request.header_value("authorization") == f"Bearer {signed_in['token']}"
        assert answered.status == 200
        body = operation.locator(".live-responses-table .response .response-col_description")
        sync_api.expect(body).to_contain_text(str(payment.pk))
        assert violations == []
