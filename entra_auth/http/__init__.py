"""Optional HTTP hardening for API projects (docs/http.md).

Each module does one job and is used only if a project names it in its settings or URLs;
importing the core of entra_auth imports none of them:

- ``entra_auth.http.errors``: ``JsonErrorMiddleware``, JSON error pages on API routes;
- ``entra_auth.http.csp``: ``ContentSecurityPolicyMiddleware``, django-csp with the strictest
  policy on API routes (the ``csp`` extra: ``pip install drf-entra-auth[csp]``);
- ``entra_auth.http.request_log``: ``RequestLogMiddleware``, one JSON log line per request;
- ``entra_auth.http.health``: liveness and readiness views (``entra_auth.http.urls`` routes
  them);
- ``entra_auth.http.body_limit``: ``RequestBodyLimitMiddleware``, bodies over the cap refused
  before they are read (declared or chunked);
- ``entra_auth.http.parsers``: ``BoundedJSONParser``, a size-capped strict JSON parser with a
  nesting bound;
- ``entra_auth.http.wsgi``: ``guard_wsgi_application``, a 400 for requests Django cannot even
  build;
- ``entra_auth.http.admin_login``: ``AdminLoginRateLimitMiddleware``, failed Django admin
  logins limited per client address and per username.
"""
