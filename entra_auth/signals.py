"""Security signals a host app can subscribe to (``entra_auth.audit`` records the refusals).

Every signal is sent with ``request`` (the DRF or Django request) and the keyword arguments
listed beside it; none carries the token or any claim beyond what ``request.user`` exposes::

    from django.dispatch import receiver
    from entra_auth.signals import authentication_failed

    @receiver(authentication_failed)
    def alert(sender, request, reason, **kwargs): ...

Receivers run inside the request, so keep them quick. They are called with
``send_robust``: a receiver that raises is logged (logger ``django.dispatch``) and the
request goes on with its normal answer.
"""

from django.dispatch import Signal

# A token was accepted; ``user`` is the EntraPrincipal. Not audited (one row per request).
authentication_succeeded = Signal()

# A bearer credential was refused (401); ``reason`` is a stable code: ``invalid_request`` for
# a malformed header, else ``TokenError.code`` (``expired``, ``bad_signature``, …).
authentication_failed = Signal()

# An authenticated caller lacked a scope or app role (403); ``reason`` is ``missing_scope``,
# ``missing_role``, ``missing_scope_or_role`` or ``permission_denied``; ``missing`` names the
# scopes/roles that would have granted the request (may be empty).
authorization_denied = Signal()

# A caller asked for an object of another tenant (answered 404); ``object_id`` names it and
# ``object_type`` says what it is (its model's label, such as "payments.payment"; may be empty).
tenant_denied = Signal()

# A request was refused with 429; ``reason`` is ``caller_rate_limit`` (an authenticated
# caller over API_RATE_LIMIT, given as ``user``), ``auth_failure_rate_limit`` (a client IP
# over AUTH_FAILURE_RATE_LIMIT) or ``admin_login_rate_limit`` (too many failed admin logins
# from an address or for a username, ADMIN_LOGIN_RATE_LIMIT).
rate_limited = Signal()
