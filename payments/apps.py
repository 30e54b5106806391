from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """The sample payments service."""

    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"
