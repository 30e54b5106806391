"""The principal: immutable, and shared by the requests that present the same cached token."""

from __future__ import annotations

import contextvars
import copy
import pickle

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from entra_auth.authentication import EntraJWTAuthentication
from entra_auth.principal import EntraPrincipal
from entra_auth.tenancy import current_tenant
from entra_auth.validation import get_validator
from tests.fake_entra import TENANT_A, TENANT_B


def authenticate(token: str) -> tuple[EntraPrincipal, str | None]:
    """The principal ``authenticate`` gives, and the tenant it entered (in a context of its
    own, as each request has: nothing leaks into the test)."""

    def run() -> tuple[EntraPrincipal, str | None]:
        request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}"))
        user, _claims = EntraJWTAuthentication().authenticate(request)
        return user, current_tenant()

    return contextvars.copy_context().run(run)


# A frozen, slotted dataclass refuses its fields with FrozenInstanceError (an AttributeError)
# and any other name with TypeError (CPython's slotted dataclasses): refused either way.
REFUSED = (AttributeError, TypeError)


def test_the_principal_cannot_be_changed(fake_entra):
    user, _tenant = authenticate(fake_entra.token(scopes=("Payments.Read",)))

    with pytest.raises(AttributeError):
        user.scopes = frozenset({"Payments.Write"})
    with pytest.raises(REFUSED):
        user.is_superuser = True
    with pytest.raises(AttributeError):
        del user.roles
    with pytest.raises(REFUSED):
        user.anything_new = 1

    assert user.scopes == frozenset({"Payments.Read"})
    assert user.is_superuser is False


def test_calling_init_again_cannot_rewrite_a_shared_principal(fake_entra):
    user, _tenant = authenticate(fake_entra.token(scopes=("Payments.Read",)))

    with pytest.raises(TypeError):
        user.__init__(fake_entra.claims(tenant=TENANT_B, scopes=("Payments.Write",)))

    assert (user.tid, user.scopes) == (TENANT_A, frozenset({"Payments.Read"}))


def test_the_principal_copies_and_pickles_with_every_field(fake_entra):
    user, _tenant = authenticate(fake_entra.token(scopes=("Payments.Read",), roles=("R",)))

    restored = pickle.loads(pickle.dumps(user))  # noqa: S301 (our own bytes)

    for twin in (restored, copy.copy(user), copy.deepcopy(user)):
        assert type(twin) is EntraPrincipal and twin == user
        assert {name: getattr(twin, name) for name in EntraPrincipal.__slots__} == {
            name: getattr(user, name) for name in EntraPrincipal.__slots__
        }
    with pytest.raises(AttributeError):
        restored.scopes = frozenset()


def test_a_token_seen_again_gets_the_same_principal(fake_entra):
    token = fake_entra.token()

    first, first_tenant = authenticate(token)
    second, second_tenant = authenticate(token)

    assert second is first
    assert first_tenant == second_tenant == first.tid


def test_different_tokens_of_one_caller_get_principals_of_their_own(fake_entra):
    read = fake_entra.token(scopes=("Payments.Read",))
    write = fake_entra.token(scopes=("Payments.Write",))

    read_user, _ = authenticate(read)
    write_user, _ = authenticate(write)

    assert read_user is not write_user
    assert read_user == write_user  # the same caller (tid, oid) ...
    assert read_user.scopes == {"Payments.Read"}  # ... with what each token grants
    assert write_user.scopes == {"Payments.Write"}


def test_the_tenant_entered_is_the_canonical_form_of_the_tid_claim(fake_entra):
    token = fake_entra.token(tenant=TENANT_A, tid=TENANT_A.upper())

    # Twice: the second time the canonical form is already known.
    assert authenticate(token)[1] == TENANT_A
    get_validator().token_cache.clear()
    assert authenticate(token)[1] == TENANT_A


def test_a_token_validated_again_after_its_cache_entry_went_gets_a_new_principal(fake_entra):
    token = fake_entra.token()
    first, _ = authenticate(token)

    get_validator().token_cache.clear()  # as after a key rotation
    second, _ = authenticate(token)

    assert second is not first
    assert second == first


def test_without_the_token_cache_every_request_gets_a_new_principal(fake_entra, configure):
    configure(TOKEN_CACHE_MAX_ENTRIES=0)
    token = fake_entra.token()

    first, _ = authenticate(token)
    second, _ = authenticate(token)

    assert second is not first
    assert second == first


def test_remembered_principals_are_bounded_by_the_token_cache_size(fake_entra, configure):
    from entra_auth import principal

    configure(TOKEN_CACHE_MAX_ENTRIES=3)
    principal._principals.clear()
    tokens = [fake_entra.token() for _ in range(5)]

    users = [authenticate(token)[0] for token in tokens]

    assert len(principal._principals) == 3
    # The newest three are shared; the oldest was forgotten with its cache entry.
    assert all(
        authenticate(token)[0] is user for token, user in zip(tokens[2:], users[2:], strict=True)
    )
    assert authenticate(tokens[0])[0] is not users[0]
    assert len(principal._principals) == 3
