"""The development issuer: ``manage.py entra_dev_token`` and when the API trusts it.

See docs/development-issuer.md.
"""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.core.management import CommandError, call_command

from entra_auth.dev_issuer import DEV_CLIENT_APP_ID, key_id, load_or_create_private_key
from entra_auth.tokens import UnknownIssuer, UnknownSigningKey
from tests.fake_entra import TENANT_A, TENANT_B, USER_OID

pytestmark = pytest.mark.django_db

OWNER_READ_WRITE = 0o600


def mint_with_warnings(*args: str) -> tuple[str, str]:
    """``manage.py entra_dev_token <args>``: the printed token and the warnings."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("entra_dev_token", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue().strip(), stderr.getvalue()


def mint(*args: str) -> str:
    return mint_with_warnings(*args)[0]


def get_me(api_client: Any, token: str) -> Any:
    return api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_dev_token_is_accepted_when_debug_is_on(dev_issuer: Path, api_client: Any) -> None:
    token = mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--role", "Payments.Admin")

    response = get_me(api_client, token)

    assert response.status_code == 200, response.json()
    me = response.json()
    assert me["tid"] == TENANT_A
    assert me["scopes"] == ["Payments.Read"]
    assert me["roles"] == ["Payments.Admin"]
    assert me["is_app_only"] is False
    assert me["token_version"] == "2.0"
    assert me["app_id"] == DEV_CLIENT_APP_ID


def test_dev_token_names_the_given_caller(dev_issuer: Path, api_client: Any) -> None:
    token = mint("--tenant", TENANT_B, "--oid", USER_OID, "--scope", "Payments.Write")

    me = get_me(api_client, token).json()

    assert (me["tid"], me["oid"], me["scopes"]) == (TENANT_B, USER_OID, ["Payments.Write"])


def test_dev_token_is_refused_with_503_when_debug_is_off_and_no_issuer_is_trusted(
    dev_issuer: Path, settings: Any, api_client: Any
) -> None:
    """DEBUG off: the dev issuer is not trusted, and with no tenant there is no issuer at all."""
    settings.DEBUG = False
    token, warnings = mint_with_warnings("--tenant", TENANT_A, "--scope", "Payments.Read")
    assert "does not trust development tokens" in warnings

    response = get_me(api_client, token)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0


def test_dev_token_is_trusted_with_debug_off_only_with_the_explicit_override(
    dev_issuer: Path, settings: Any, api_client: Any
) -> None:
    settings.DEBUG = False
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "DEV_ISSUER_WITHOUT_DEBUG": True}
    token = mint("--tenant", TENANT_A, "--scope", "Payments.Read")

    response = get_me(api_client, token)

    assert response.status_code == 200, response.json()


def test_key_file_is_created_owner_only_and_reused(dev_issuer: Path) -> None:
    assert not dev_issuer.exists()

    first = mint("--tenant", TENANT_A, "--scope", "Payments.Read")
    pem = dev_issuer.read_bytes()
    second = mint("--tenant", TENANT_A, "--scope", "Payments.Read")

    assert stat.S_IMODE(dev_issuer.stat().st_mode) == OWNER_READ_WRITE
    assert dev_issuer.read_bytes() == pem
    kid = jwt.get_unverified_header(first)["kid"]
    assert jwt.get_unverified_header(second)["kid"] == kid
    assert kid == key_id(load_or_create_private_key(dev_issuer).public_key())


def test_token_signed_by_a_replaced_key_file_is_refused(
    dev_issuer: Path, settings: Any, tmp_path: Path, api_client: Any
) -> None:
    token = mint("--tenant", TENANT_A, "--scope", "Payments.Read")
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "DEV_ISSUER_KEY_FILE": str(tmp_path / "new.pem")}
    mint("--tenant", TENANT_A, "--scope", "Payments.Read")

    response = get_me(api_client, token)

    assert response.status_code == 401
    assert response.json()["detail"] == UnknownSigningKey.detail


def test_app_only_token_carries_roles_and_no_scopes(dev_issuer: Path, api_client: Any) -> None:
    token = mint("--tenant", TENANT_A, "--app-only", "--role", "Payments.Read.All")

    response = get_me(api_client, token)

    assert response.status_code == 200, response.json()
    me = response.json()
    assert me["is_app_only"] is True
    assert me["roles"] == ["Payments.Read.All"]
    assert me["scopes"] == []
    assert "scp" not in unverified_claims(token)


@pytest.mark.parametrize(
    ("expires", "lifetime_s"),
    [("30m", 1800), ("1h", 3600), ("90", 90), ("45s", 45), ("2H", 7200), ("1d", 86400)],
)
def test_expires_sets_the_token_lifetime(dev_issuer: Path, expires: str, lifetime_s: int) -> None:
    claims = unverified_claims(
        mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--expires", expires)
    )

    assert claims["exp"] - claims["iat"] == lifetime_s


def test_default_lifetime_is_one_hour(dev_issuer: Path) -> None:
    claims = unverified_claims(mint("--tenant", TENANT_A, "--scope", "Payments.Read"))

    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--tenant", TENANT_A, "--expires", "soon"], id="expires-not-a-duration"),
        pytest.param(["--tenant", TENANT_A, "--expires", "0"], id="expires-zero"),
        pytest.param(["--tenant", TENANT_A, "--expires=-5m"], id="expires-negative"),
        pytest.param(["--tenant", TENANT_A, "--expires", "1.5h"], id="expires-fractional"),
        pytest.param(["--tenant", TENANT_A, "--expires", "1w"], id="expires-unknown-unit"),
        pytest.param(["--tenant", TENANT_A, "--expires", "25h"], id="expires-over-a-day"),
        pytest.param(["--tenant", TENANT_A, "--expires", ""], id="expires-empty"),
        pytest.param(["--tenant", "contoso.onmicrosoft.com"], id="tenant-not-a-guid"),
        pytest.param(["--tenant", ""], id="tenant-empty"),
        pytest.param(["--tenant", TENANT_A, "--oid", "ada@contoso.example"], id="oid-not-a-guid"),
    ],
)
def test_invalid_option_is_a_command_error(dev_issuer: Path, args: list[str]) -> None:
    with pytest.raises(CommandError):
        mint(*args, "--scope", "Payments.Read")
    assert not dev_issuer.exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--tenant", TENANT_A], id="no-scope-and-no-role"),
        pytest.param(["--tenant", TENANT_A, "--app-only"], id="app-only-without-role"),
        pytest.param(
            ["--tenant", TENANT_A, "--app-only", "--role", "Payments.Read.All", "--scope", "X"],
            id="app-only-with-scope",
        ),
    ],
)
def test_token_that_grants_nothing_or_mixes_kinds_is_a_command_error(
    dev_issuer: Path, args: list[str]
) -> None:
    with pytest.raises(CommandError):
        mint(*args)
    assert not dev_issuer.exists()


def test_dev_token_is_refused_by_a_deployment_trusting_only_entra(
    configure: Any, settings: Any, key_file: Path, api_client: Any
) -> None:
    """Only the issuer differs: the token names this API's client id as its audience."""
    settings.DEBUG = True
    configure(DEV_ISSUER_KEY_FILE=str(key_file))
    token = mint("--tenant", TENANT_A, "--scope", "Payments.Read")

    response = get_me(api_client, token)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert response.json()["detail"] == UnknownIssuer.detail


def test_entra_and_dev_tokens_both_work_when_both_are_trusted(
    fake_entra: Any, configure: Any, settings: Any, key_file: Path, api_client: Any
) -> None:
    settings.DEBUG = True
    configure(DEV_ISSUER=True, DEV_ISSUER_KEY_FILE=str(key_file))
    dev_token = mint("--tenant", TENANT_B, "--scope", "Payments.Read")
    entra_token = fake_entra.token(scopes=("Payments.Write",))

    from_entra = get_me(api_client, entra_token)
    from_dev = get_me(api_client, dev_token)

    assert from_entra.status_code == 200, from_entra.json()
    assert from_dev.status_code == 200, from_dev.json()
    assert (from_entra.json()["tid"], from_entra.json()["scopes"]) == (
        TENANT_A,
        ["Payments.Write"],
    )
    assert (from_dev.json()["tid"], from_dev.json()["scopes"]) == (TENANT_B, ["Payments.Read"])


REFUSED_TOKENS = [
    pytest.param("--expired", "The access token has expired.", id="expired"),
    pytest.param("--not-yet-valid", "The access token is not valid yet.", id="not-yet-valid"),
    pytest.param(
        "--wrong-audience", "The access token was issued for another audience.", id="wrong-audience"
    ),
]


@pytest.mark.parametrize("clock_skew_s", [None, 600])  # the default, and the largest allowed
@pytest.mark.parametrize(("option", "detail"), REFUSED_TOKENS)
def test_tokens_made_to_be_refused_are_refused_for_that_reason(
    dev_issuer: Path,
    settings: Any,
    api_client: Any,
    option: str,
    detail: str,
    clock_skew_s: int | None,
) -> None:
    if clock_skew_s is not None:
        settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "CLOCK_SKEW": clock_skew_s}
    token, note = mint_with_warnings("--tenant", TENANT_A, "--scope", "Payments.Read", option)

    response = get_me(api_client, token)

    assert response.status_code == 401
    assert response.json()["detail"] == detail
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    # A development-issuer token, and said to be made to be refused.
    assert unverified_claims(token)["iss"] == f"https://entra-dev.localhost/{TENANT_A}/v2.0"
    assert note == (
        f'note: a development-issuer token made to be refused: the API answers 401, "{detail}"\n'
    )


def test_a_refused_token_is_wrong_in_one_way_only(
    dev_issuer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One instant for all four tokens: their times are compared to the second.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    valid = unverified_claims(mint("--tenant", TENANT_A, "--scope", "Payments.Read"))
    expired = unverified_claims(mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--expired"))
    early = unverified_claims(
        mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--not-yet-valid")
    )
    other_api = unverified_claims(
        mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--wrong-audience")
    )

    skew_and_an_hour = 300 + 3600
    assert expired["exp"] <= valid["iat"] - skew_and_an_hour
    assert expired["exp"] - expired["iat"] == 3600 and expired["aud"] == valid["aud"]
    assert early["nbf"] >= valid["iat"] + skew_and_an_hour
    assert early["exp"] - early["nbf"] == 3600 and early["aud"] == valid["aud"]
    assert other_api["aud"] == "api://entra-dev.localhost/another-api"
    assert other_api["aud"] != valid["aud"]
    assert valid["iat"] <= other_api["iat"] <= other_api["exp"] - 3600
    for claims in (expired, early, other_api):
        assert claims["scp"] == valid["scp"] and claims["tid"] == valid["tid"]


def test_an_untrusting_server_gets_the_warning_not_the_promise_of_a_401(
    dev_issuer: Path, settings: Any
) -> None:
    settings.DEBUG = False

    _, warnings = mint_with_warnings("--tenant", TENANT_A, "--scope", "Payments.Read", "--expired")

    assert warnings.startswith("warning: this server does not trust development tokens")
    assert "note:" not in warnings


def test_only_one_refusal_at_a_time(dev_issuer: Path) -> None:
    with pytest.raises(CommandError, match="not allowed with argument"):
        mint("--tenant", TENANT_A, "--scope", "Payments.Read", "--expired", "--wrong-audience")
    assert not dev_issuer.exists()
