"""Settings for the sample payments service, read from the environment (12-factor).

The embedded default (no environment at all, with ``DJANGO_DEBUG=1``) is SQLite, the
local-memory cache and the development token issuer: see docs/configuration.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0, not {value!r}")


def env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


# Seconds a writer waits for another one's lock before the request answers 503.
SQLITE_BUSY_TIMEOUT_S = 10


def sqlite_database(name: object) -> dict[str, object]:
    """SQLite for concurrent writers: WAL (readers never block the writer), transactions that
    take the write lock when they begin (no read-to-write upgrade that fails at once with
    "database is locked"), and an explicit busy timeout."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def database_from_url(url: str | None) -> dict[str, object]:
    """``sqlite:///path`` or ``postgres://user:password@host:port/name``."""
    if not url:
        return sqlite_database(BASE_DIR / "db.sqlite3")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return sqlite_database(unquote(parts.path[1:]) or ":memory:")
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path[1:]),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
            # A connection kept across requests is checked before reuse: after a database
            # restart the next request reconnects instead of failing (no worker restart).
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported")


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    SECRET_KEY = "development-only-secret-key-never-use-in-production-0123456789"  # noqa: S105
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or (
    ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "entra_auth",
    "payments",
]

MIDDLEWARE = [
    "entra_auth.middleware.RequestContextMiddleware",
    "entra_auth.http.request_log.RequestLogMiddleware",
    # Prometheus metrics (entra_auth.metrics); left out by Django while METRICS_TOKEN is unset.
    "entra_auth.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Swagger UI's) from STATIC_ROOT after `collectstatic`, by
    # gunicorn itself with DEBUG off; nginx serves /static/ first where it runs (deploy/).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "entra_auth.http.csp.ContentSecurityPolicyMiddleware",
    "entra_auth.http.errors.JsonErrorMiddleware",
    "entra_auth.http.body_limit.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "entra_auth.http.admin_login.AdminLoginRateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The admin's passwords: Django's four validators, at least 12 characters ("manage.py
# changepassword", the admin's password forms and ensure_demo_superuser apply them). Failed
# admin logins are limited by AdminLoginRateLimitMiddleware (ENTRA_AUTH["ADMIN_LOGIN_RATE_LIMIT"]).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REDIS_URL = os.environ.get("REDIS_URL")
CACHES = {
    "default": (
        {
            "BACKEND": "project.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that stops answering must fail fast: keys in memory and the rate
            # limits' fail-open policy then apply, instead of requests hanging.
            "OPTIONS": {
                "socket_connect_timeout": float(os.environ.get("REDIS_TIMEOUT_S", "1")),
                "socket_timeout": float(os.environ.get("REDIS_TIMEOUT_S", "1")),
            },
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes gzip copies, which WhiteNoise serves to clients accepting them.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Transport and headers, the first layer of defence. TLS is terminated at the proxy: set
# DJANGO_SECURE_PROXY_SSL_HEADER=1 only when the proxy sets X-Forwarded-Proto and strips it
# from clients; then HSTS and secure cookies apply to what clients see as HTTPS.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT")
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(
    os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or (0 if DEBUG else 31_536_000)
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD")
SECURE_CONTENT_TYPE_NOSNIFF = True
# Not "no-referrer": browsers then send "Origin: null" with the admin's forms, and Django's
# CSRF origin check refuses every login. "same-origin" still sends nothing to other sites.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SAMESITE = "Strict"

# django-csp: this policy lets the admin work; API routes get "default-src 'none';
# frame-ancestors 'none'" from entra_auth.http.csp.ContentSecurityPolicyMiddleware.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["entra_auth.authentication.EntraJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["entra_auth.http.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "entra_auth.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # OpenAPI: security derived from the permission classes (docs/openapi.md).
    "DEFAULT_SCHEMA_CLASS": "entra_auth.openapi.EntraAutoSchema",
}


def _entra_auth_from_environment() -> dict[str, object]:
    config: dict[str, object] = {
        "INSTANCE": os.environ.get("ENTRA_INSTANCE") or "https://login.microsoftonline.com/",
        "TENANT_ID": os.environ.get("ENTRA_TENANT_ID") or None,
        "CLIENT_ID": os.environ.get("ENTRA_CLIENT_ID") or None,
        "AUDIENCES": env_list("ENTRA_AUDIENCES"),
        "ALLOWED_TENANTS": env_list("ENTRA_ALLOWED_TENANTS") or [],
        "CLOCK_SKEW": int(os.environ.get("ENTRA_CLOCK_SKEW") or 300),
        "ALLOWED_CLIENT_APPS": env_list("ENTRA_ALLOWED_CLIENT_APPS"),
        "ALLOW_GUESTS": env_bool("ENTRA_ALLOW_GUESTS", default=True),
        "APP_SPECIFIC_KEYS": env_bool("ENTRA_APP_SPECIFIC_KEYS"),
        "DEV_ISSUER": env_bool("ENTRA_DEV_ISSUER"),
        "DEV_ISSUER_WITHOUT_DEBUG": env_bool("ENTRA_DEV_ISSUER_WITHOUT_DEBUG"),
        "DEV_ISSUER_KEY_FILE": os.environ.get("ENTRA_DEV_ISSUER_KEY_FILE") or None,
        "TRUST_REQUEST_ID_HEADER": env_bool("ENTRA_TRUST_REQUEST_ID_HEADER"),
        "TRUSTED_PROXIES": env_list("ENTRA_TRUSTED_PROXIES") or [],
        "API_RATE_LIMIT": os.environ.get("API_RATE_LIMIT") or "300/m",
        "AUTH_FAILURE_RATE_LIMIT": os.environ.get("API_AUTH_FAILURE_RATE_LIMIT") or "30/m",
        "ADMIN_LOGIN_RATE_LIMIT": os.environ.get("ADMIN_LOGIN_RATE_LIMIT") or "5/m",
        "API_RATE_LIMIT_BATCH": int(os.environ.get("API_RATE_LIMIT_BATCH") or "5"),
        "AUDIT_COALESCE_WINDOW": int(os.environ.get("ENTRA_AUDIT_COALESCE_WINDOW") or 60),
        # GET /metrics answers Prometheus only with this bearer token; unset, it is a 404.
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
    }
    return config


ENTRA_AUTH = _entra_auth_from_environment()

# Step-up for refunds (docs/sample.md#step-up-for-refunds): the Conditional Access
# authentication context a user's token must carry to refund, such as "c1"; unset, refunds
# need no step-up. Read by payments.views on every request.
PAYMENTS_REFUND_AUTH_CONTEXT = os.environ.get("PAYMENTS_REFUND_AUTH_CONTEXT", "").strip() or None
if PAYMENTS_REFUND_AUTH_CONTEXT is not None and not re.fullmatch(
    r"[A-Za-z0-9._-]{1,64}", PAYMENTS_REFUND_AUTH_CONTEXT
):
    raise ImproperlyConfigured(
        "PAYMENTS_REFUND_AUTH_CONTEXT must be an authentication context id such as c1"
    )

# Structured logs: one JSON object per line on standard error, each with the request id of
# the request it belongs to; entra_auth.requests logs one line per request
# (RequestLogMiddleware). Django's own 4xx warnings are left out: the request line says it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "entra_auth.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL") or "INFO"},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"level": "ERROR"},
        "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}

# OpenAPI (docs/openapi.md): GET /api/schema/ and the Swagger UI at /api/docs/, public unless
# OPENAPI_ENABLED=0. Swagger UI signs users in with PKCE as the app OPENAPI_CLIENT_ID (a
# single-page application registration whose redirect URI is
# https://<host>/api/docs/oauth2-redirect.html).
OPENAPI_ENABLED = env_bool("OPENAPI_ENABLED", default=True)
SPECTACULAR_SETTINGS = {
    "TITLE": "Payments API",
    "DESCRIPTION": "The sample payments service, protected by Microsoft Entra ID access tokens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False},
    "SWAGGER_UI_OAUTH2_CONFIG": {
        "clientId": os.environ.get("OPENAPI_CLIENT_ID", ""),
        "usePkceWithAuthorizationCodeGrant": True,
    },
}
