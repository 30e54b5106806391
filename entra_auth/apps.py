from django.apps import AppConfig


class EntraAuthConfig(AppConfig):
    """Protects Django REST Framework APIs with Microsoft Entra ID access tokens."""

    name = "entra_auth"
    verbose_name = "Entra ID authentication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import audit, checks  # noqa: F401  (audit receivers, system checks)
