"""The test API's widgets in the admin: where an audit event about a widget links to."""

from django.contrib import admin

from entra_auth.admin import AllTenantsAdminMixin, ReadOnlyAdminMixin
from tests.tenancy_app.models import Widget


@admin.register(Widget)
class WidgetAdmin(AllTenantsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "name", "tenant_id"]
    fields = readonly_fields = ["id", "name", "tenant_id"]
