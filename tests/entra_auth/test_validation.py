"""The deployment's validator: its index of trusted issuers follows the key sets it serves."""

from __future__ import annotations

from entra_auth import validation
from entra_auth.keys import KeySet
from entra_auth.tokens import TrustedIssuer
from tests.fake_entra import TENANT_A

OLD_ISSUER = f"https://login.microsoftonline.com/{TENANT_A}/v2.0"
NEW_ISSUER = f"https://sts.windows.net/{TENANT_A}/"


class StubKeyStore:
    """A key store whose current key set the test swaps, as a refresh would."""

    def __init__(self, key_set: KeySet) -> None:
        self.key_set = key_set

    def current(self) -> KeySet:
        return self.key_set


def key_set(issuer: str, version: str) -> KeySet:
    return KeySet((TrustedIssuer(issuer, version, f"{issuer}keys"),), {}, fetched_at=0.0)


def test_the_issuer_index_follows_a_new_key_set_even_when_object_ids_collide(
    fake_entra, monkeypatch
):
    # Every object the same id: what happens when a refreshed key set reuses the address of
    # a freed one. The validator must not trust ids.
    monkeypatch.setattr(validation, "id", lambda _obj: 1, raising=False)
    validator = validation.TokenValidator()
    store = StubKeyStore(key_set(OLD_ISSUER, "2.0"))
    validator.entra, validator.dev = store, None
    assert validator.issuers().find(OLD_ISSUER, TENANT_A) is not None

    store.key_set = key_set(NEW_ISSUER, "1.0")

    index = validator.issuers()
    assert index.find(NEW_ISSUER, TENANT_A) is not None
    assert index.find(OLD_ISSUER, TENANT_A) is None


def test_the_issuer_index_is_reused_while_the_key_sets_are_the_same(fake_entra):
    validator = validation.TokenValidator()
    validator.entra, validator.dev = StubKeyStore(key_set(OLD_ISSUER, "2.0")), None

    assert validator.issuers() is validator.issuers()
