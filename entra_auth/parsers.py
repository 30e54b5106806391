"""Moved to ``entra_auth.http.parsers`` (optional HTTP hardening); this path keeps working."""

from ._moved import moved_names

__getattr__ = moved_names(
    __name__,
    {name: "entra_auth.http.parsers" for name in ("BoundedJSONParser", "RequestBodyTooLarge")},
)
