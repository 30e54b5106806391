"""The audit log: who tried what, and who did what (docs/audit.md).

A row never holds the token nor any claim beyond the caller's tenant, ``oid`` and app id.
Rows are written by ``entra_auth.audit.record()``; read them in the Django admin.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

EVENT_TYPE_MAX_LENGTH = 64
REASON_MAX_LENGTH = 64
GUID_MAX_LENGTH = 36
REQUEST_ID_MAX_LENGTH = 128
PATH_MAX_LENGTH = 512
USER_AGENT_MAX_LENGTH = 256
OBJECT_ID_MAX_LENGTH = 64
OBJECT_TYPE_MAX_LENGTH = 100
MISSING_MAX_LENGTH = 512
OUTCOME_MAX_LENGTH = 10
METHOD_MAX_LENGTH = 16


class EventType(models.TextChoices):
    """The events ``entra_auth`` records itself; host apps register theirs in ``audit``."""

    AUTHENTICATION_FAILED = "authentication_failed", "Authentication failed"
    AUTHORIZATION_DENIED = "authorization_denied", "Authorization denied"
    TENANT_DENIED = "tenant_denied", "Tenant denied"
    RATE_LIMITED = "rate_limited", "Rate limited"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"


class Reason(models.TextChoices):
    """Known reason codes (the admin's reason filter); host apps may record others.

    Authentication failures carry ``invalid_request`` (a malformed header) or the
    ``TokenError.code`` of ``entra_auth.tokens``.
    """

    INVALID_REQUEST = "invalid_request", "Malformed Authorization header"
    INVALID_TOKEN = "invalid_token", "Invalid token"
    MALFORMED = "malformed", "Malformed token"
    UNSUPPORTED_HEADER = "unsupported_header", "Unsupported token header"
    WRONG_ISSUER = "wrong_issuer", "Wrong issuer"
    TENANT_NOT_ALLOWED = "tenant_not_allowed", "Tenant not allowed"
    UNKNOWN_KEY = "unknown_key", "Unknown signing key"
    BAD_SIGNATURE = "bad_signature", "Bad signature"
    WRONG_AUDIENCE = "wrong_audience", "Wrong audience"
    EXPIRED = "expired", "Expired"
    NOT_YET_VALID = "not_yet_valid", "Not yet valid"
    NOT_ACCESS_TOKEN = "not_access_token", "Not an access token"
    INVALID_CLAIM = "invalid_claim", "Invalid claim"
    CLIENT_APP_NOT_ALLOWED = "client_app_not_allowed", "Client app not allowed"
    GUEST_NOT_ALLOWED = "guest_not_allowed", "Guest not allowed"
    MISSING_SCOPE = "missing_scope", "Missing scope"
    MISSING_ROLE = "missing_role", "Missing app role"
    MISSING_SCOPE_OR_ROLE = "missing_scope_or_role", "Missing scope or app role"
    MISSING_AUTH_CONTEXT = "missing_auth_context", "Missing authentication context (step-up)"
    PERMISSION_DENIED = "permission_denied", "Permission denied"
    OTHER_TENANT = "other_tenant", "Object of another tenant"
    CALLER_RATE_LIMIT = "caller_rate_limit", "Caller over its rate limit"
    AUTH_FAILURE_RATE_LIMIT = "auth_failure_rate_limit", "Too many failed authentications"
    ADMIN_LOGIN_RATE_LIMIT = "admin_login_rate_limit", "Too many failed admin logins"


class AuditEvent(models.Model):
    """One security event or sensitive action; ``count`` > 1 when refusals were coalesced.

    ``event_type`` is a plain string: the ``EventType`` values, or a type a host app
    registered with ``entra_auth.audit.register_event_type``.
    """

    occurred_at = models.DateTimeField(
        default=timezone.now,
        db_index=True,
        help_text="When the event happened (the first one, in a coalesced row).",
    )
    event_type = models.CharField(max_length=EVENT_TYPE_MAX_LENGTH)
    outcome = models.CharField(max_length=OUTCOME_MAX_LENGTH, choices=Outcome.choices)
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True, default="")
    tenant_id = models.CharField(max_length=GUID_MAX_LENGTH, blank=True, default="")
    subject_oid = models.CharField(max_length=GUID_MAX_LENGTH, blank=True, default="")
    app_id = models.CharField(max_length=GUID_MAX_LENGTH, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(
        max_length=REQUEST_ID_MAX_LENGTH,
        blank=True,
        default="",
        help_text="The request of the event (of the first one, in a coalesced row).",
    )
    method = models.CharField(max_length=METHOD_MAX_LENGTH, blank=True, default="")
    path = models.CharField(max_length=PATH_MAX_LENGTH, blank=True, default="")
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True, default="")
    object_type = models.CharField(
        max_length=OBJECT_TYPE_MAX_LENGTH,
        blank=True,
        default="",
        help_text='What the object is: its model\'s label, e.g. "payments.payment".',
    )
    object_id = models.CharField(
        max_length=OBJECT_ID_MAX_LENGTH,
        blank=True,
        default="",
        help_text="The object the event is about, e.g. a payment id.",
    )
    missing = models.CharField(
        max_length=MISSING_MAX_LENGTH,
        blank=True,
        default="",
        help_text="Scopes or app roles that would have granted the request.",
    )
    count = models.PositiveIntegerField(
        default=1, help_text="Events of one client, reason and window folded into this row."
    )
    # A coalesced row also keeps its last event, so both ends lead to the request logs.
    last_request_id = models.CharField(
        max_length=REQUEST_ID_MAX_LENGTH,
        blank=True,
        default="",
        help_text="The request of the last event counted in this row.",
    )
    last_occurred_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the last event counted in this row happened.",
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = "audit event"
        # One index per admin filter, each ending in the time so the newest-first page of a
        # filtered list is an index range scan; searches are exact matches on indexed fields.
        indexes = [
            models.Index(fields=["event_type", "-occurred_at"], name="audit_type_time"),
            models.Index(fields=["outcome", "-occurred_at"], name="audit_outcome_time"),
            models.Index(fields=["reason", "-occurred_at"], name="audit_reason_time"),
            models.Index(fields=["tenant_id", "-occurred_at"], name="audit_tenant_time"),
            models.Index(fields=["subject_oid"], name="audit_subject"),
            models.Index(fields=["app_id"], name="audit_app"),
            models.Index(fields=["request_id"], name="audit_request"),
            models.Index(fields=["last_request_id"], name="audit_last_request"),
            models.Index(fields=["client_ip"], name="audit_client_ip"),
        ]

    def __str__(self) -> str:
        from .audit import event_types  # the labels of host apps' types are registered there

        label = event_types().get(self.event_type, self.event_type)
        return f"{label} ({self.get_outcome_display()}) at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
