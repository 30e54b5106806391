"""``Idempotency-Key`` for POST: required, and the same request with the same key acts once.

A write without the header is refused with 400 naming it (a retry after a lost answer would
otherwise act twice).

Same key and same request → the first answer again, nothing created. Same key and another
request → 422. Concurrent requests with one key → one acts: the key row is inserted in the
same transaction as the work, so the others block on the unique constraint and then replay.
Keys are scoped to the tenant and the caller, and kept ``IDEMPOTENCY_KEY_TTL`` (24 h) before
``manage.py payments_purge_idempotency_keys`` removes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from entra_auth.tenancy import all_tenants_context
from entra_auth.throttling import caller_key

from .models import IDEMPOTENCY_KEY_MAX_LENGTH, IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
_KEY = re.compile(rf"[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")


class IdempotencyKeyReused(ValidationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request."
    default_code = "idempotency_key_reused"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    material = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(material.encode()).hexdigest()


def idempotent(request: Request, act: Callable[[], Response]) -> Response:
    """Run ``act`` once per key (required); a 2xx answer is stored and replayed, errors are
    not kept."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        # A write that moves money and may be retried after a lost answer must say which
        # request it is: without a key a retry would act twice.
        raise ValidationError(
            {
                IDEMPOTENCY_HEADER: [
                    "This header is required: a unique value per operation, sent again "
                    "unchanged when the request is retried."
                ]
            }
        )
    if not _KEY.fullmatch(key):
        raise ValidationError(
            {
                IDEMPOTENCY_HEADER: [
                    f"Use 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters."
                ]
            }
        )
    fingerprint = _fingerprint(request)
    # The same caller identity the rate limit counts: tenant + user, or tenant + app.
    caller = caller_key(request.user)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    key=key, caller=caller, request_fingerprint=fingerprint
                )
        except IntegrityError:
            return _replay(IdempotencyRecord.objects.get(key=key, caller=caller), fingerprint)
        response = act()
        if not status.is_success(response.status_code):
            transaction.set_rollback(True)
            return response
        record.response_status = response.status_code
        record.response_body = response.data
        record.save(update_fields=["response_status", "response_body"])
        return response


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return Response(
        record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"}
    )


def purge_expired(now=None) -> int:
    """Delete keys older than the TTL in every tenant; returns how many."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_KEY_TTL
    # Maintenance across tenants is explicit: the unscoped manager, in all_tenants_context().
    with all_tenants_context():
        deleted, _ = IdempotencyRecord.all_tenants.filter(created_at__lt=cutoff).delete()
    return deleted
