"""Metadata and signing keys (docs/keys.md): read from metadata, fetched once, shared between
workers, refreshed sparingly, and failing closed with a 503 when no keys can be had.

Several gunicorn workers are modelled as several ``EntraKeyStore`` (or ``TokenValidator``)
instances sharing Django's local-memory cache, which stands in for a shared Redis. Time is
injected: ``FakeClock`` drives the stores, the validators and the cache's expiry alike.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import caches
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem
from jwt.algorithms import ECAlgorithm

from entra_auth import validation
from entra_auth.conf import entra_settings
from entra_auth.keys import (
    FETCH_WAIT_MAX_S,
    EntraEndpoints,
    EntraKeyStore,
    KeyFetchError,
    KeysUnavailable,
    fetch_json,
    is_allowed_url,
    key_set_changed,
)
from entra_auth.tokens import TokenError, TrustedIssuer
from entra_auth.validation import TokenValidator, get_validator
from tests.fake_entra import (
    CLIENT_ID,
    DROP,
    TENANT_A,
    TENANT_B,
    TENANT_OTHER,
    FakeEntra,
    PublishedKey,
    public_jwk,
    self_signed_certificate,
)

pytestmark = pytest.mark.django_db

# ``fetched_at`` is stamped with the wall clock, a moment after the fake clock starts: step
# past a lifetime by this much more so that the comparison cannot land on the boundary.
MARGIN_S = 60
WORKERS = 4
FLOOD_SIZE = 200


# -- helpers -------------------------------------------------------------------------------


class FakeClock:
    """A settable ``time.time``: starts at the real time and moves only when told."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def get_me(client: Any, token: str) -> Any:
    return client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")


def fetched(fake: FakeEntra) -> tuple[int, int]:
    """(metadata, JWKS) requests the fake has answered so far."""
    return fake.requests_to("metadata"), fake.requests_to("jwks")


def full_fetches(count: int) -> tuple[int, int]:
    """One full fetch reads the v2 and v1 metadata and the two JWKS they name."""
    return 2 * count, 2 * count


def worker(clock: Callable[[], float] = time.time) -> EntraKeyStore:
    """One worker's key store: its own memory, Django's cache shared with the other workers."""
    endpoints = EntraEndpoints.from_settings()
    assert endpoints is not None
    return EntraKeyStore(endpoints, clock=clock, started_at=clock())


def v2_issuer(store: EntraKeyStore) -> TrustedIssuer:
    return next(trusted for trusted in store.current().issuers if trusted.version == "2.0")


def random_kid() -> str:
    return uuid.uuid4().hex


def assert_keys_unavailable(response: Any) -> None:
    """Our fault, so 503 with Retry-After and a JSON detail; never 401, never 500
    (docs/keys.md, docs/errors.md)."""
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(entra_settings.KEYS_RETRY_AFTER)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "invalid_token" not in response.get("WWW-Authenticate", "")


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def v2_metadata(fake: FakeEntra, **changes: Any) -> dict[str, Any]:
    document = {
        "issuer": fake.issuer("2.0", TENANT_A),
        "jwks_uri": f"{fake.base_url}{TENANT_A}/discovery/v2.0/keys",
    }
    for name, value in changes.items():
        if value is DROP:
            document.pop(name)
        else:
            document[name] = value
    return document


def jwk_of(key: PublishedKey, **changes: Any) -> dict[str, Any]:
    """The key's JWKS entry, with members changed (or dropped with ``DROP``)."""
    entry = public_jwk(key.private_key, key.kid)
    for name, value in changes.items():
        if value is DROP:
            entry.pop(name)
        else:
            entry[name] = value
    return entry


def serve_jwks(fake: FakeEntra, *entries: dict[str, Any], status: int = 200) -> None:
    """Answer every JWKS request (v1 and v2) with exactly these entries."""
    fake.state.override = {
        "kind": "jwks",
        "status": status,
        "body": json.dumps({"keys": list(entries)}).encode(),
    }


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each path with the (status, headers, body) the test scripted for it."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, headers, body = self.server.script[self.path]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, settings: Any) -> FakeClock:
    """A fake clock that also drives the cache's expiry (a shared Redis keeps the same time).

    Only the local-memory cache can follow a fake clock, so these tests use it even when the
    suite runs against Redis.
    """
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    fake_clock = FakeClock(time.time())
    cache_time = SimpleNamespace(time=fake_clock)
    monkeypatch.setattr(locmem, "time", cache_time)
    monkeypatch.setattr(cache_base, "time", cache_time)
    return fake_clock


@pytest.fixture
def clocked_api(fake_entra: FakeEntra, clock: FakeClock, monkeypatch: pytest.MonkeyPatch):
    """The API's validator, rebuilt whenever settings change, runs on the fake clock."""
    monkeypatch.setattr(validation, "TokenValidator", partial(TokenValidator, clock=clock))
    monkeypatch.setattr(validation, "_validator", None)
    return clock


@pytest.fixture
def http_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the library asks ``requests`` for, in order."""
    urls: list[str] = []
    original = requests.Session.request

    def recording(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any):
        urls.append(url)
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    return urls


@pytest.fixture
def scripted_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.daemon_threads = True
    server.script = {}
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def key_set_changes() -> Iterator[list[Any]]:
    changes: list[Any] = []

    def record(sender: Any, key_set: Any, **kwargs: Any) -> None:
        changes.append(key_set)

    key_set_changed.connect(record, weak=False)
    yield changes
    key_set_changed.disconnect(record)


# -- metadata ------------------------------------------------------------------------------


def test_v2_and_v1_metadata_are_read_and_their_jwks_uris_fetched(fake_entra, api_client, http_log):
    assert get_me(api_client, fake_entra.token(version="2.0")).status_code == 200
    assert get_me(api_client, fake_entra.token(version="1.0")).status_code == 200

    base = f"{fake_entra.base_url}{TENANT_A}"
    assert sorted(http_log) == sorted(
        [
            f"{base}/v2.0/.well-known/openid-configuration",
            f"{base}/.well-known/openid-configuration",
            f"{base}/discovery/v2.0/keys",
            f"{base}/discovery/keys",
        ]
    )


def test_issuer_and_jwks_uri_are_taken_from_metadata_never_hard_coded(fake_entra, api_client):
    custom_issuer = f"{fake_entra.base_url}{TENANT_A}/custom-issuer/v2.0"
    fake_entra.state.override = {
        "kind": "metadata",
        "body": json.dumps(
            v2_metadata(
                fake_entra,
                issuer=custom_issuer,
                jwks_uri=f"{fake_entra.base_url}{TENANT_A}/discovery/keys",
            )
        ).encode(),
    }

    assert get_me(api_client, fake_entra.token(iss=custom_issuer)).status_code == 200
    assert_invalid_token(get_me(api_client, fake_entra.token()))
    # Both metadata documents name the same JWKS, which is therefore fetched once.
    assert fetched(fake_entra) == (2, 1)


def test_app_specific_keys_are_fetched_with_the_client_id(
    fake_entra, configure, api_client, http_log
):
    configure(APP_SPECIFIC_KEYS=True)
    app_key = fake_entra.publish_app_key(CLIENT_ID)

    assert get_me(api_client, fake_entra.token(key=app_key)).status_code == 200
    jwks_urls = [url for url in http_log if "/discovery/" in url]
    assert len(jwks_urls) == 2
    assert all(url.endswith(f"?appid={CLIENT_ID}") for url in jwks_urls)


# -- cold start and the shared cache ---------------------------------------------------------


def test_cold_start_fetches_once_then_serves_keys_from_memory(fake_entra, api_client):
    for index in range(10):
        token = fake_entra.token(version="2.0" if index % 2 else "1.0")
        assert get_me(api_client, token).status_code == 200

    assert fetched(fake_entra) == full_fetches(1)


def test_keys_refetched_after_the_cache_ttl_are_then_served_from_memory(
    fake_entra, clocked_api, api_client
):
    """The refreshed keys' age is measured on the store's clock, like the TTL it is held to."""
    clock = clocked_api
    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    clock.advance(entra_settings.KEY_CACHE_TTL + MARGIN_S)

    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    assert fetched(fake_entra) == full_fetches(2)
    for _ in range(3):
        assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    assert fetched(fake_entra) == full_fetches(2)


def test_concurrent_cold_start_across_workers_fetches_once(fake_entra):
    fake_entra.state.response_delay_s = 0.2
    workers = [worker() for _ in range(8)]
    barrier = threading.Barrier(len(workers))

    def start(store: EntraKeyStore):
        barrier.wait()
        return store.current()

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        key_sets = list(pool.map(start, workers))

    assert fetched(fake_entra) == full_fetches(1)
    kid = fake_entra.signing_key.kid
    assert all(key_set.find(v2_issuer(workers[0]).jwks_uri, kid) for key_set in key_sets)


def test_worker_that_missed_anothers_publish_by_a_moment_does_not_fetch_again(fake_entra):
    """Concurrent cold starts fetch once (docs/keys.md): the lock winner re-reads the shared
    cache."""
    first, second = worker(), worker()
    read_shared = second._read_shared

    def read_then_let_the_other_worker_publish():
        document = read_shared()  # nothing shared yet...
        first.current()  # ...then the other worker fetches, publishes and releases its lock
        return document

    second._read_shared = read_then_let_the_other_worker_publish

    second.current()

    assert fetched(fake_entra) == full_fetches(1)


def test_second_worker_adopts_keys_from_the_shared_cache_without_fetching(fake_entra):
    first, second = worker(), worker()
    first.current()

    key_set = second.current()

    assert fetched(fake_entra) == full_fetches(1)
    kid = fake_entra.signing_key.kid
    assert key_set.find(v2_issuer(second).jwks_uri, kid) is not None


# -- rotation --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_rotated_key_is_accepted_after_one_refresh_on_the_request_that_met_it(
    fake_entra, api_client, version
):
    assert get_me(api_client, fake_entra.token(version=version)).status_code == 200
    new_key = fake_entra.rotate()

    assert get_me(api_client, fake_entra.token(key=new_key, version=version)).status_code == 200
    assert fetched(fake_entra) == full_fetches(2)
    assert get_me(api_client, fake_entra.token(key=new_key, version=version)).status_code == 200
    assert fetched(fake_entra) == full_fetches(2)


def test_withdrawn_key_is_refused_once_a_refresh_has_dropped_it(fake_entra, api_client):
    old_key = fake_entra.signing_key
    assert get_me(api_client, fake_entra.token()).status_code == 200
    new_key = fake_entra.rotate(keep_old=False)

    assert get_me(api_client, fake_entra.token(key=new_key)).status_code == 200
    assert_invalid_token(get_me(api_client, fake_entra.token(key=old_key)))
    assert fetched(fake_entra) == full_fetches(2)


def test_rotation_one_worker_fetched_is_adopted_by_the_others_without_fetching(fake_entra):
    first, second = worker(), worker()
    first.current()
    second.current()
    new_key = fake_entra.rotate()

    assert first.find_key(v2_issuer(first), new_key.kid) is not None
    assert second.find_key(v2_issuer(second), new_key.kid) is not None
    assert fetched(fake_entra) == full_fetches(2)


def test_first_refresh_after_start_up_is_allowed_while_another_worker_holds_the_window(
    fake_entra,
):
    veteran = worker()
    veteran.current()
    assert veteran.find_key(v2_issuer(veteran), random_kid()) is None  # opens the window
    assert fetched(fake_entra) == full_fetches(2)
    new_key = fake_entra.rotate()
    newcomer = worker()
    newcomer.current()
    assert fetched(fake_entra) == full_fetches(2)

    assert newcomer.find_key(v2_issuer(newcomer), new_key.kid) is not None
    assert fetched(fake_entra) == full_fetches(3)
    assert newcomer.find_key(v2_issuer(newcomer), random_kid()) is None
    assert fetched(fake_entra) == full_fetches(3)


def test_keys_another_worker_fetched_are_adopted_during_this_workers_closed_window(fake_entra):
    """docs/keys.md "a key rotation never costs a legitimate caller a 401": a closed refresh window
    forbids fetching, not adopting keys that are already in the shared cache."""
    first, second = worker(), worker()
    first.current()
    second.current()
    # Both spend their start-up refresh on unknown kids; their windows are now closed.
    assert first.find_key(v2_issuer(first), random_kid()) is None
    assert second.find_key(v2_issuer(second), random_kid()) is None
    new_key = fake_entra.rotate()
    # A worker that starts now (a recycled or scaled-out one) fetches the rotated key.
    newcomer = worker()
    assert newcomer.find_key(v2_issuer(newcomer), new_key.kid) is not None
    refreshes = fetched(fake_entra)

    assert second.find_key(v2_issuer(second), new_key.kid) is not None
    assert fetched(fake_entra) == refreshes


# -- random-kid flood ------------------------------------------------------------------------


def test_random_kid_flood_costs_at_most_one_refresh_per_interval_across_workers(fake_entra, clock):
    workers = [TokenValidator(clock=clock) for _ in range(WORKERS)]
    for validator in workers:
        validator.validate(fake_entra.token(now=clock()))
    assert fetched(fake_entra) == full_fetches(1)

    def flood() -> None:
        for index in range(FLOOD_SIZE):
            token = fake_entra.token(now=clock(), headers={"kid": random_kid()})
            with pytest.raises(TokenError) as refused:
                workers[index % WORKERS].validate(token)
            assert refused.value.rfc6750_error == "invalid_token"
            assert refused.value.code == "unknown_key"

    flood()
    # Workers whose keys were fetched after they started share one refresh per interval.
    after_start_up = fetched(fake_entra)
    assert after_start_up == full_fetches(2)

    flood()
    assert fetched(fake_entra) == after_start_up

    clock.advance(entra_settings.KEY_REFRESH_MIN_INTERVAL + 1)
    flood()
    assert fetched(fake_entra) == (after_start_up[0] + 2, after_start_up[1] + 2)


def test_random_kid_is_refused_through_the_api_with_invalid_token(fake_entra, api_client):
    assert get_me(api_client, fake_entra.token()).status_code == 200

    for _ in range(3):
        assert_invalid_token(get_me(api_client, fake_entra.token(headers={"kid": random_kid()})))
    assert fetched(fake_entra) == full_fetches(2)


# -- endpoint down ---------------------------------------------------------------------------


def test_cached_keys_keep_serving_while_the_endpoint_is_down_until_too_stale(
    fake_entra, clocked_api, api_client
):
    clock = clocked_api
    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    fake_entra.state.down = True
    attempts = fake_entra.requests_to("all")

    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    assert fake_entra.requests_to("all") == attempts

    clock.advance(entra_settings.KEY_CACHE_TTL + MARGIN_S)
    for _ in range(5):
        assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    assert fake_entra.requests_to("all") == attempts + 1

    clock.advance(entra_settings.KEYS_RETRY_AFTER + 1)
    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200
    assert fake_entra.requests_to("all") == attempts + 2

    clock.advance(entra_settings.KEY_MAX_STALE)
    assert_keys_unavailable(get_me(api_client, fake_entra.token(now=clock())))


def test_without_any_keys_the_api_answers_503_and_spares_the_endpoint(
    fake_entra, clocked_api, api_client
):
    clock = clocked_api
    fake_entra.state.down = True

    for _ in range(5):
        assert_keys_unavailable(get_me(api_client, fake_entra.token(now=clock())))
    assert fake_entra.requests_to("all") == 1

    clock.advance(entra_settings.KEYS_RETRY_AFTER + 1)
    assert_keys_unavailable(get_me(api_client, fake_entra.token(now=clock())))
    assert fake_entra.requests_to("all") == 2

    fake_entra.state.down = False
    clock.advance(entra_settings.KEYS_RETRY_AFTER + 1)
    assert get_me(api_client, fake_entra.token(now=clock())).status_code == 200


# -- malformed answers -----------------------------------------------------------------------


def _metadata_answer(document: Any, status: int = 200) -> Callable[[FakeEntra], dict]:
    def build(fake: FakeEntra) -> dict[str, Any]:
        body = document(fake) if callable(document) else document
        return {"kind": "metadata", "status": status, "body": json.dumps(body).encode()}

    return build


def _jwks_answer(body: Any, status: int = 200) -> Callable[[FakeEntra], dict]:
    def build(fake: FakeEntra) -> dict[str, Any]:
        raw = body(fake) if callable(body) else body
        return {"kind": "jwks", "status": status, "body": raw}

    return build


def _good_jwks(fake: FakeEntra) -> bytes:
    return json.dumps({"keys": [jwk_of(fake.signing_key)]}).encode()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(_metadata_answer(partial(v2_metadata, jwks_uri=DROP)), id="no-jwks_uri"),
        pytest.param(_metadata_answer(partial(v2_metadata, issuer=DROP)), id="no-issuer"),
        pytest.param(_metadata_answer(partial(v2_metadata, jwks_uri=42)), id="jwks_uri-not-str"),
        pytest.param(_metadata_answer([]), id="metadata-not-an-object"),
        pytest.param(_metadata_answer(v2_metadata, status=500), id="metadata-http-500"),
        pytest.param(_metadata_answer(v2_metadata, status=302), id="metadata-redirect"),
        pytest.param(_jwks_answer(b"<html>not json</html>"), id="jwks-not-json"),
        pytest.param(_jwks_answer(b'{"keys": {}}'), id="jwks-keys-not-a-list"),
        pytest.param(_jwks_answer(_good_jwks, status=404), id="jwks-http-404"),
        pytest.param(_jwks_answer(_good_jwks, status=301), id="jwks-redirect"),
        pytest.param(_jwks_answer(_good_jwks, status=204), id="jwks-http-204"),
    ],
)
def test_malformed_answer_is_a_fetch_failure_and_503_without_keys(fake_entra, api_client, answer):
    fake_entra.state.override = answer(fake_entra)

    assert_keys_unavailable(get_me(api_client, fake_entra.token()))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(_metadata_answer(v2_metadata), id="metadata"),
        pytest.param(_jwks_answer(_good_jwks), id="jwks"),
    ],
)
def test_well_formed_scripted_answers_are_accepted(fake_entra, api_client, answer):
    """The control for the malformed answers: only the named defect makes them fail."""
    fake_entra.state.override = answer(fake_entra)

    assert get_me(api_client, fake_entra.token()).status_code == 200


def test_response_larger_than_the_cap_is_a_fetch_failure(fake_entra, configure, api_client):
    padded = {"keys": [jwk_of(fake_entra.signing_key)], "padding": "x" * 8192}
    fake_entra.state.override = {"kind": "jwks", "body": json.dumps(padded).encode()}
    configure(HTTP_MAX_RESPONSE_BYTES=4096)

    assert_keys_unavailable(get_me(api_client, fake_entra.token()))

    configure(HTTP_MAX_RESPONSE_BYTES=64 * 1024)
    assert get_me(api_client, fake_entra.token()).status_code == 200


def test_body_without_content_length_is_cut_at_the_cap(fake_entra, configure, scripted_server):
    configure(HTTP_MAX_RESPONSE_BYTES=4096)
    body = json.dumps({"keys": [], "padding": "x" * 100_000}).encode()
    scripted_server.script["/keys"] = (200, {"Content-Type": "application/json"}, body)
    url = f"http://127.0.0.1:{scripted_server.server_address[1]}/keys"

    with pytest.raises(KeyFetchError):
        fetch_json(url)


def test_redirect_is_not_followed(fake_entra, scripted_server):
    target = f"{fake_entra.base_url}{TENANT_A}/v2.0/.well-known/openid-configuration"
    scripted_server.script["/metadata"] = (302, {"Location": target}, b"")
    url = f"http://127.0.0.1:{scripted_server.server_address[1]}/metadata"

    with pytest.raises(KeyFetchError):
        fetch_json(url)
    assert fake_entra.requests_to("all") == 0


# -- HTTPS only ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://login.microsoftonline.com/common/discovery/v2.0/keys",
        "http://localhost/keys",
        "http://localhost:8000/keys",
        "http://127.0.0.1:8000/keys",
        "http://127.0.0.5/keys",
        "http://[::1]/keys",
        "http://[::1]:8080/keys",
    ],
)
def test_https_and_loopback_http_urls_are_allowed(url):
    assert is_allowed_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/keys",
        "http://login.microsoftonline.com/common/discovery/v2.0/keys",
        "http://10.0.0.1/keys",
        "http://169.254.169.254/metadata",
        "http://0.0.0.0/keys",
        "http://localhost.example.com/keys",
        "http://127.0.0.1.example.com/keys",
        "ftp://login.microsoftonline.com/keys",
        "file:///etc/passwd",
        "https://",
        "",
    ],
)
def test_plain_http_to_other_hosts_and_other_schemes_are_refused(url):
    assert not is_allowed_url(url)


def test_fetch_json_refuses_a_disallowed_url_before_connecting():
    class RecordingSession:
        def __init__(self) -> None:
            self.urls: list[str] = []

        def get(self, url: str, **kwargs: Any) -> Any:
            self.urls.append(url)
            raise AssertionError("a refused URL must not be requested")

    session = RecordingSession()

    with pytest.raises(KeyFetchError):
        fetch_json("http://keys.example.invalid/discovery/keys", session)
    assert session.urls == []


def test_plain_http_jwks_uri_in_metadata_is_refused_without_a_request(
    fake_entra, api_client, http_log
):
    insecure = "http://keys.example.invalid/common/discovery/v2.0/keys"
    fake_entra.state.override = {
        "kind": "metadata",
        "body": json.dumps(v2_metadata(fake_entra, jwks_uri=insecure)).encode(),
    }

    assert_keys_unavailable(get_me(api_client, fake_entra.token()))
    assert not any("example.invalid" in url for url in http_log)


# -- JWKS parsing ----------------------------------------------------------------------------


def _ec_entry(fake: FakeEntra) -> tuple[dict[str, Any], str]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    entry = {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec", "use": "sig"}
    return entry, fake.token(headers={"kid": "ec"})


def _changed_entry(**changes: Any) -> Callable[[FakeEntra], tuple[dict[str, Any], str]]:
    def build(fake: FakeEntra) -> tuple[dict[str, Any], str]:
        return jwk_of(fake.signing_key, **changes), fake.token()

    return build


def _short_rsa_entry(fake: FakeEntra) -> tuple[dict[str, Any], str]:
    # A key under the 2048-bit minimum is the point of this entry.
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    short = PublishedKey("short", private_key)
    return jwk_of(short), fake.token(key=short)


@pytest.mark.parametrize(
    "published",
    [
        pytest.param(_ec_entry, id="kty-EC"),
        pytest.param(_changed_entry(kty="EC"), id="kty-EC-with-rsa-members"),
        pytest.param(_changed_entry(kty="oct"), id="kty-oct"),
        pytest.param(_changed_entry(use="enc"), id="use-enc"),
        pytest.param(_changed_entry(key_ops=["sign"]), id="key-ops-without-verify"),
        pytest.param(_changed_entry(key_ops=[]), id="key-ops-empty"),
        pytest.param(_changed_entry(key_ops="verify"), id="key-ops-not-a-list"),
        pytest.param(_changed_entry(alg="RS384"), id="alg-RS384"),
        pytest.param(_changed_entry(alg="PS256"), id="alg-PS256"),
        pytest.param(_changed_entry(alg="HS256"), id="alg-HS256"),
        pytest.param(_changed_entry(alg="none"), id="alg-none"),
        pytest.param(
            _short_rsa_entry,
            id="rsa-1024-bits",
            # Newer PyJWT warns about the short key (a UserWarning); older releases do not.
            marks=pytest.mark.filterwarnings("ignore::UserWarning"),
        ),
        pytest.param(_changed_entry(n=DROP), id="missing-n"),
        pytest.param(_changed_entry(e=DROP), id="missing-e"),
        pytest.param(_changed_entry(n="***"), id="n-not-base64url"),
    ],
)
def test_unusable_jwks_entry_is_skipped(fake_entra, api_client, published):
    entry, token = published(fake_entra)
    serve_jwks(fake_entra, entry)

    assert_invalid_token(get_me(api_client, token))


def test_a_key_whose_key_ops_include_verify_is_used(fake_entra, api_client):
    serve_jwks(fake_entra, jwk_of(fake_entra.signing_key, key_ops=["verify", "encrypt"]))

    assert get_me(api_client, fake_entra.token()).status_code == 200


def test_unusable_entries_do_not_hide_the_usable_key_beside_them(fake_entra, api_client):
    key = fake_entra.signing_key
    serve_jwks(
        fake_entra,
        {"kty": "EC", "kid": "ec", "crv": "P-256"},
        jwk_of(key, kid="enc", use="enc"),
        jwk_of(key, kid="rs384", alg="RS384"),
        {"kid": "no-members"},
        jwk_of(key, alg="RS256"),
    )

    assert get_me(api_client, fake_entra.token()).status_code == 200


def test_x5c_and_x5u_are_never_used_to_find_a_key(fake_entra, api_client):
    key = fake_entra.signing_key
    x5u = f"{fake_entra.base_url}certs/{key.kid}.pem"
    serve_jwks(
        fake_entra,
        jwk_of(key, n=DROP, e=DROP, x5c=[self_signed_certificate(key.private_key)], x5u=x5u),
    )

    assert_invalid_token(get_me(api_client, fake_entra.token()))
    assert fake_entra.requests_to("other") == 0


def test_x5c_certificate_does_not_override_the_keys_n_and_e(fake_entra, api_client):
    key = fake_entra.signing_key
    attacker = PublishedKey(key.kid, fake_entra.new_key().private_key)
    serve_jwks(fake_entra, jwk_of(key, x5c=[self_signed_certificate(attacker.private_key)]))

    assert_invalid_token(get_me(api_client, fake_entra.token(key=attacker)))
    assert get_me(api_client, fake_entra.token(key=key)).status_code == 200


# -- the key's issuer ------------------------------------------------------------------------


def publish_only(fake: FakeEntra, key: PublishedKey) -> None:
    with fake.lock:
        fake.state.keys = [key]


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_key_bound_to_another_tenants_issuer_refuses_tokens_it_signed(
    fake_entra, api_client, version
):
    key = fake_entra.new_key(issuer=fake_entra.issuer("2.0", TENANT_OTHER))
    publish_only(fake_entra, key)

    assert_invalid_token(get_me(api_client, fake_entra.token(key=key, version=version)))


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_key_with_the_tenantid_template_accepts_the_matching_tenant(
    fake_entra, api_client, version
):
    key = fake_entra.new_key(issuer=fake_entra.issuer("2.0", "{tenantid}"))
    publish_only(fake_entra, key)

    assert get_me(api_client, fake_entra.token(key=key, version=version)).status_code == 200


def test_multi_tenant_key_bound_to_one_tenant_cannot_sign_for_another(
    fake_entra, configure, api_client
):
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])
    bound = fake_entra.new_key(issuer=fake_entra.issuer("2.0", TENANT_A))
    with fake_entra.lock:
        fake_entra.state.keys.append(bound)

    assert get_me(api_client, fake_entra.token(key=bound, tenant=TENANT_A)).status_code == 200
    assert_invalid_token(get_me(api_client, fake_entra.token(key=bound, tenant=TENANT_B)))
    assert get_me(api_client, fake_entra.token(tenant=TENANT_B)).status_code == 200


# -- key_set_changed -------------------------------------------------------------------------


def test_refresh_that_changes_keys_clears_the_validated_token_cache(
    fake_entra, api_client, key_set_changes
):
    old_token = fake_entra.token()
    assert get_me(api_client, old_token).status_code == 200
    assert len(get_validator().token_cache) == 1
    new_key = fake_entra.rotate(keep_old=False)

    assert get_me(api_client, fake_entra.token(key=new_key)).status_code == 200

    assert len(key_set_changes) == 1
    assert key_set_changes[0].find(v2_issuer(get_validator().entra).jwks_uri, new_key.kid)
    assert len(get_validator().token_cache) == 1
    assert_invalid_token(get_me(api_client, old_token))


def test_refresh_that_finds_the_same_keys_keeps_the_validated_token_cache(
    fake_entra, api_client, key_set_changes
):
    token = fake_entra.token()
    assert get_me(api_client, token).status_code == 200

    assert_invalid_token(get_me(api_client, fake_entra.token(headers={"kid": random_kid()})))

    assert fetched(fake_entra) == full_fetches(2)
    assert key_set_changes == []
    assert len(get_validator().token_cache) == 1


# -- waiting for another worker's cold-start fetch -------------------------------------------


class SteppingMonotonic:
    """A monotonic clock that moves only when the store sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_waiting_worker_answers_503_as_soon_as_the_other_fetch_fails(fake_entra: FakeEntra):
    # Given another worker holds the cold-start lock and Entra is down...
    fake_entra.state.down = True
    endpoints = EntraEndpoints.from_settings()
    lock_key = f"{endpoints.cache_key}:lock"
    cache = caches["default"]
    cache.add(lock_key, "other-worker", 60)
    releases: list[float] = []

    def sleep(seconds: float) -> None:
        # ...whose fetch fails: it releases the lock without publishing keys.
        releases.append(seconds)
        cache.delete(lock_key)

    store = EntraKeyStore(endpoints, sleep=sleep)

    # When this worker needs keys, it stops waiting at once and answers 503...
    with pytest.raises(KeysUnavailable):
        store.current()
    assert len(releases) == 1
    # ...and does not fetch (nor wait) again within KEYS_RETRY_AFTER.
    with pytest.raises(KeysUnavailable):
        store.current()
    assert fake_entra.requests_to("all") == 0


def test_a_waiting_worker_gives_up_after_the_wait_limit(fake_entra: FakeEntra):
    endpoints = EntraEndpoints.from_settings()
    caches["default"].add(f"{endpoints.cache_key}:lock", "stuck-worker", 600)
    monotonic = SteppingMonotonic()
    store = EntraKeyStore(endpoints, monotonic=monotonic, sleep=monotonic.sleep)

    with pytest.raises(KeysUnavailable):
        store.current()

    assert monotonic.now == pytest.approx(FETCH_WAIT_MAX_S, abs=0.1)
    assert fake_entra.requests_to("all") == 0
