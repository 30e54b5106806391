"""Rate limits: per caller, per client IP for failed authentications, shared, fail-open."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from entra_auth import throttling
from entra_auth.client_address import client_ip
from entra_auth.rate_counter import PROBE_INTERVAL_S
from tests.fake_entra import TENANT_A, TENANT_B

pytestmark = pytest.mark.django_db


def get_me(api_client, token=None, address="198.51.100.7", **extra):
    headers = {"REMOTE_ADDR": address, **extra}
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return api_client.get("/api/me/", **headers)


def assert_rate_limited(response):
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["detail"] and body["request_id"] == response["X-Request-ID"]


def test_a_caller_over_the_limit_gets_429_and_others_are_unaffected(
    fake_entra, configure, api_client
):
    configure(API_RATE_LIMIT="3/h")
    token = fake_entra.token()
    colleague = fake_entra.token(oid="0f0f0f0f-0000-4000-8000-000000000001")
    other_tenant = fake_entra.token(tenant=TENANT_B, iss=fake_entra.issuer("2.0", TENANT_B))
    configure(API_RATE_LIMIT="3/h", TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])

    assert [get_me(api_client, token).status_code for _ in range(3)] == [200, 200, 200]
    assert_rate_limited(get_me(api_client, token))
    assert get_me(api_client, colleague).status_code == 200
    assert get_me(api_client, other_tenant).status_code == 200


def test_app_only_callers_are_limited_per_application(fake_entra, configure, api_client):
    configure(API_RATE_LIMIT="2/h")
    app = fake_entra.token(app_only=True, roles=("Payments.Read.All",))
    same_app_new_token = fake_entra.token(app_only=True, roles=("Payments.Read.All",))

    assert get_me(api_client, app).status_code == 200
    assert get_me(api_client, same_app_new_token).status_code == 200
    assert_rate_limited(get_me(api_client, app))


def test_failed_authentications_from_one_address_are_cut_off_with_429(
    fake_entra, configure, api_client
):
    configure(AUTH_FAILURE_RATE_LIMIT="3/h")
    known_good = fake_entra.token()
    assert get_me(api_client, known_good).status_code == 200

    statuses = [get_me(api_client, "not.a.token").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert_rate_limited(get_me(api_client, "still.not.valid"))
    # A token this API has not validated yet is not even looked at from that address...
    assert_rate_limited(get_me(api_client, fake_entra.token()))
    # ...while a token it already validated keeps working, and other addresses are not affected.
    assert get_me(api_client, known_good).status_code == 200
    assert get_me(api_client, "not.a.token", address="203.0.113.9").status_code == 401


def test_missing_credentials_do_not_count_as_failed_authentications(
    fake_entra, configure, api_client
):
    configure(AUTH_FAILURE_RATE_LIMIT="2/h")

    assert [get_me(api_client).status_code for _ in range(5)] == [401] * 5
    assert get_me(api_client, fake_entra.token()).status_code == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies(fake_entra, configure, api_client):
    configure(AUTH_FAILURE_RATE_LIMIT="1/h", TRUSTED_PROXIES=["10.0.0.0/8"])
    via_proxy = {"address": "10.1.2.3"}

    assert (
        get_me(api_client, "bad", HTTP_X_FORWARDED_FOR="192.0.2.1", **via_proxy).status_code == 401
    )
    assert_rate_limited(get_me(api_client, "bad", HTTP_X_FORWARDED_FOR="192.0.2.1", **via_proxy))
    # Another client behind the same proxy is counted apart.
    assert (
        get_me(api_client, "bad", HTTP_X_FORWARDED_FOR="192.0.2.2", **via_proxy).status_code == 401
    )


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        pytest.param("198.51.100.7", "", [], "198.51.100.7", id="direct"),
        pytest.param("198.51.100.7", "192.0.2.1", [], "198.51.100.7", id="untrusted-peer-lies"),
        pytest.param("10.0.0.5", "192.0.2.1", ["10.0.0.0/8"], "192.0.2.1", id="one-proxy"),
        pytest.param(
            "10.0.0.5",
            "192.0.2.66, 192.0.2.1, 10.0.0.9",
            ["10.0.0.0/8"],
            "192.0.2.1",
            id="client-forged-left-hops-ignored",
        ),
        pytest.param(
            "10.0.0.5", "garbage, 192.0.2.1", ["10.0.0.0/8"], "192.0.2.1", id="left-garbage"
        ),
        pytest.param(
            "10.0.0.5", "192.0.2.1, garbage", ["10.0.0.0/8"], "10.0.0.5", id="right-garbage"
        ),
        pytest.param("10.0.0.5", "", ["10.0.0.0/8"], "10.0.0.5", id="proxy-without-header"),
        pytest.param("::1", "2001:db8::1", ["::1"], "2001:db8::1", id="ipv6"),
        pytest.param(
            "::ffff:10.0.0.5", "192.0.2.1", ["10.0.0.0/8"], "192.0.2.1", id="ipv4-mapped-proxy"
        ),
        pytest.param("::ffff:192.0.2.8", "", [], "192.0.2.8", id="ipv4-mapped-client"),
        pytest.param("", "", [], "unknown", id="no-peer"),
    ],
)
def test_client_ip(settings, remote, forwarded, trusted, expected):
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "TRUSTED_PROXIES": trusted}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def test_rate_limits_let_requests_through_when_the_cache_is_down(
    fake_entra, configure, api_client, cache_outage
):
    configure(API_RATE_LIMIT="3/h", AUTH_FAILURE_RATE_LIMIT="1/h")
    token = fake_entra.token()
    assert get_me(api_client, token).status_code == 200  # keys now in memory
    with cache_outage():
        statuses = [get_me(api_client, token).status_code for _ in range(2)]
        # A token never seen before is validated with the keys each process holds in memory.
        colleague = fake_entra.token(oid="0f0f0f0f-0000-4000-8000-000000000001")
        new_token = get_me(api_client, colleague).status_code
        failures = [get_me(api_client, "bad").status_code for _ in range(3)]
        # What this process counted itself still counts: the caller's fourth request is over.
        over = get_me(api_client, token)

    assert statuses == [200, 200]
    assert new_token == 200
    assert failures == [401, 401, 401]
    assert_rate_limited(over)


def test_rate_limits_can_fail_closed_when_the_cache_is_down(
    fake_entra, configure, api_client, cache_outage
):
    configure(API_RATE_LIMIT="100/h", RATE_LIMIT_FAIL_OPEN=False, API_RATE_LIMIT_BATCH=1)
    token = fake_entra.token()
    assert get_me(api_client, token).status_code == 200
    with cache_outage():
        response = get_me(api_client, token)

    assert_rate_limited(response)


def test_failing_closed_with_batches_refuses_from_the_first_write_that_fails(
    fake_entra, configure, api_client, cache_outage, monkeypatch
):
    # 100/h: a process writes every 5 requests of a caller (100 // 20).
    configure(API_RATE_LIMIT="100/h", RATE_LIMIT_FAIL_OPEN=False)
    probe_clock = [0.0]
    monkeypatch.setattr(throttling._caller_counter, "monotonic", lambda: probe_clock[0])
    token = fake_entra.token()
    assert get_me(api_client, token).status_code == 200  # counted in memory, not written yet
    with cache_outage():
        during = [get_me(api_client, token).status_code for _ in range(5)]
    right_after = get_me(api_client, token).status_code  # the cache is not tried again yet
    probe_clock[0] += PROBE_INTERVAL_S
    once_tried = get_me(api_client, token).status_code

    # Requests 2-4 are counted in memory; the 5th is a write, which fails: from then on every
    # request is refused until a request, one per probe interval, finds the cache back.
    assert during == [200, 200, 200, 429, 429]
    assert right_after == 429
    assert once_tried == 200


def test_the_caller_limit_is_exact_across_a_batch_when_one_process_counts(
    fake_entra, configure, api_client
):
    # 200/h: a process writes every 5 requests, and on each of the last 5 before the limit.
    configure(API_RATE_LIMIT="200/h")
    token = fake_entra.token()

    statuses = [get_me(api_client, token).status_code for _ in range(202)]

    assert statuses == [200] * 200 + [429] * 2


def test_failed_authentications_from_one_ipv6_network_share_a_count(
    fake_entra, configure, api_client
):
    configure(AUTH_FAILURE_RATE_LIMIT="2/h")

    assert get_me(api_client, "bad", address="2001:db8:1:2::10").status_code == 401
    assert get_me(api_client, "bad", address="2001:db8:1:2::11").status_code == 401
    # Another address of the same /64 is the same client for the limit...
    assert_rate_limited(get_me(api_client, "bad", address="2001:db8:1:2:ffff::1"))
    # ...another /64 is not.
    assert get_me(api_client, "bad", address="2001:db8:1:3::10").status_code == 401


def test_refused_calls_count_against_the_callers_limit_too(fake_entra, configure, api_client):
    # The limit applies right after authentication, before authorization: a caller whose
    # every call is refused (403 for the missing scope, 404 for another tenant's row) still
    # meets it, instead of costing validation, permission walks and audit writes forever.
    configure(API_RATE_LIMIT="3/h")
    no_scope = fake_entra.token(scopes=("Other.Scope",))

    refused = [
        api_client.get("/api/widgets/", HTTP_AUTHORIZATION=f"Bearer {no_scope}").status_code
        for _ in range(3)
    ]
    over = api_client.get("/api/widgets/", HTTP_AUTHORIZATION=f"Bearer {no_scope}")

    assert refused == [403, 403, 403]
    assert_rate_limited(over)


def test_a_request_is_counted_once_even_with_the_throttle_class_listed(
    fake_entra, configure, api_client, monkeypatch
):
    from tests.views import MeView

    # A project that still lists the throttle: DRF's view classes read it at import time.
    monkeypatch.setattr(MeView, "throttle_classes", [throttling.CallerRateThrottle])
    configure(API_RATE_LIMIT="3/h")
    token = fake_entra.token()

    statuses = [get_me(api_client, token).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_the_caller_refused_for_its_rate_is_named_in_the_audit_log(
    fake_entra, configure, api_client
):
    from entra_auth.models import AuditEvent, EventType

    configure(API_RATE_LIMIT="1/h")
    token = fake_entra.token()
    get_me(api_client, token)

    assert_rate_limited(get_me(api_client, token))
    event = AuditEvent.objects.get(event_type=EventType.RATE_LIMITED)
    assert (event.reason, event.tenant_id) == ("caller_rate_limit", TENANT_A)
    assert event.subject_oid
