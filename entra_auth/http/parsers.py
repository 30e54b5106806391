"""A JSON parser with a body-size cap and a nesting bound: hostile bodies are 4xx, never 500."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..conf import entra_settings
from ..exceptions import RequestBodyTooLarge
from .body_limit import parse_content_length

__all__ = ["MAX_JSON_DEPTH", "BoundedJSONParser", "RequestBodyTooLarge", "json_depth_exceeds"]

# Arrays and objects nested deeper than this are refused. json.loads recurses once per level
# and fails with RecursionError (a 500) near a thousand levels, which fit in a few KiB.
MAX_JSON_DEPTH = 64
NESTED_TOO_DEEPLY = "The request body is nested too deeply."
INVALID_JSON = "The request body is not valid JSON."
# One token of the scan: a string literal (skipped whole, escapes included, possibly
# unterminated) or a bracket. Linear: the string alternatives never overlap.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_OPENING = frozenset("[{")


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays or objects inside one another.

    One pass over the text, without recursion and without parsing it; brackets inside
    strings do not count. Text that is not JSON at all may pass: json.loads refuses it next.
    """
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        bracket = token.group()
        if bracket[0] == '"':
            continue
        if bracket in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; 1e999 would silently become Infinity."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


class BoundedJSONParser(JSONParser):
    """JSON bodies up to ``ENTRA_AUTH["MAX_REQUEST_BODY_BYTES"]``, nested at most
    ``MAX_JSON_DEPTH`` levels; strict JSON (no NaN, no Infinity, no number beyond a float)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = entra_settings.MAX_REQUEST_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared:
            try:
                too_large = parse_content_length(declared) > limit
            except ValueError:
                # Not plain digits: the read below is capped all the same.
                too_large = False
            if too_large:
                raise RequestBodyTooLarge()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestBodyTooLarge()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(INVALID_JSON) from exc
        if json_depth_exceeds(text):
            raise ParseError(NESTED_TOO_DEEPLY)
        try:
            return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except ValueError as exc:
            # Also a number of more than 4300 digits: int() refuses it with a ValueError.
            raise ParseError(INVALID_JSON) from exc
