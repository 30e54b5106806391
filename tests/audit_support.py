"""Reading back the audit log in tests: the ``AuditEvent`` rows a request left behind.

Shared by both suites; the ``audit_table_missing`` fixture is in ``tests/conftest.py``.
"""

from __future__ import annotations

from typing import Any

from entra_auth.audit import AuditEvent


def events(**filters: Any) -> list[AuditEvent]:
    """The events matching ``filters``, in the model's ordering (newest first)."""
    return list(AuditEvent.objects.filter(**filters))


def only_event(**filters: Any) -> AuditEvent:
    """The one event matching ``filters``; fails, showing them all, on none or several."""
    matching = events(**filters)
    assert len(matching) == 1, [vars(event) for event in matching]
    return matching[0]
