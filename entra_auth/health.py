"""Moved to ``entra_auth.http.health`` (optional HTTP hardening); this path keeps working."""

from ._moved import moved_names

__getattr__ = moved_names(
    __name__,
    {name: "entra_auth.http.health" for name in ("live", "ready", "READINESS_CHECKS")},
)
