"""The core's instrumentation hooks (entra_auth.observe): nothing until a receiver connects,
and a receiver can never break the code it observes."""

from __future__ import annotations

import logging

import pytest

from entra_auth import observe
from entra_auth.keys import KeyFetchError


@pytest.fixture
def hook():
    return observe.Hook("test_hook")


def test_a_hook_without_receivers_does_nothing(hook):
    assert hook.receivers == ()
    assert hook.send("anything", 1) is None


def test_receivers_get_the_arguments_once_each_until_disconnected(hook):
    received = []

    def receiver(*args):
        received.append(args)

    hook.connect(receiver)
    hook.connect(receiver)
    hook.send("hit", True)
    hook.disconnect(receiver)
    hook.send("lost")

    assert received == [("hit", True)]
    assert hook.receivers == ()


def test_a_failing_receiver_is_logged_and_the_others_still_run(hook, caplog):
    received = []

    def failing(*args):
        raise RuntimeError("broken receiver")

    hook.connect(failing)
    hook.connect(received.append)
    with caplog.at_level(logging.ERROR, logger="entra_auth.observe"):
        hook.send("value")

    assert received == ["value"]
    assert "receiver of test_hook failed" in caplog.text


@pytest.fixture
def fetches():
    seen = []

    def receiver(kind, result, seconds):
        seen.append((kind, result, seconds))

    observe.key_fetched.connect(receiver)
    yield seen
    observe.key_fetched.disconnect(receiver)


def test_a_timed_fetch_reports_ok_or_the_result_of_its_error(fetches):
    with observe.timed_key_fetch("metadata"):
        pass
    with pytest.raises(KeyFetchError), observe.timed_key_fetch("jwks"):
        raise KeyFetchError("down", result="http_error")
    with pytest.raises(ValueError), observe.timed_key_fetch("jwks"):
        raise ValueError("unexpected")

    assert [(kind, result) for kind, result, _ in fetches] == [
        ("metadata", "ok"),
        ("jwks", "http_error"),
        ("jwks", "error"),
    ]
    assert all(seconds >= 0 for *_, seconds in fetches)
