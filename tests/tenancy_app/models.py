"""Test-only tenant-owned models: a widget and its parts, in two tenants."""

from django.db import models

from entra_auth.tenancy import TenantOwnedModel


class Widget(TenantOwnedModel):
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Part(TenantOwnedModel):
    widget = models.ForeignKey(Widget, on_delete=models.CASCADE, related_name="parts")
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name
