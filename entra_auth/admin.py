"""The audit log in the Django admin: read-only, filterable, searchable, newest first.

Built for a large table: filters offer fixed choices (no ``DISTINCT`` scan of the table to
list them), each filter and search matches an indexed column exactly, the list sorts by
time only, and the full result count and facet counts are never computed.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import URLPattern

from .audit import event_types
from .context import all_tenants_context
from .models import AuditEvent, Reason


class ReadOnlyAdminMixin:
    """A ModelAdmin that shows rows and changes none: no add, change, delete or bulk delete.

    For records whose value is that nobody edits them (audit events, payments).
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AllTenantsAdminMixin:
    """A ModelAdmin over a tenant-owned model, showing every tenant's rows to staff.

    The admin is the operators' view across tenants: its querysets use the ``all_tenants``
    manager and each of its views, template rendering included, runs inside
    ``all_tenants_context()``, so that row-level security opens to every tenant there and
    nowhere else (docs/tenancy.md).
    """

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.model.all_tenants.all()

    def get_urls(self) -> list[Any]:
        return [_across_tenants(pattern) for pattern in super().get_urls()]


def _across_tenants(pattern: URLPattern) -> URLPattern:
    view = pattern.callback

    @functools.wraps(view)
    def across_tenants(*args: Any, **kwargs: Any) -> Any:
        with all_tenants_context():
            response = view(*args, **kwargs)
            # A TemplateResponse evaluates its querysets when rendered: render it here.
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            return response

    return URLPattern(pattern.pattern, across_tenants, pattern.default_args, pattern.name)


class _ExactChoiceFilter(admin.SimpleListFilter):
    """A fixed list of choices, filtered by exact (indexed) match on ``parameter_name``."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class EventTypeFilter(_ExactChoiceFilter):
    """``entra_auth``'s event types and those the host app registered."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return sorted(event_types().items(), key=lambda item: item[1])


class ReasonFilter(_ExactChoiceFilter):
    """The known reason codes; other codes can still be given in the URL (``?reason=...``)."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Reason.choices)


class TenantFilter(admin.SimpleListFilter):
    """A text box for the tenant id: a deployment may serve thousands of tenants."""

    title = "tenant"
    parameter_name = "tenant_id"
    placeholder = "tenant id (GUID)"
    template = "admin/entra_auth/auditevent/text_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip().lower()
        return queryset.filter(tenant_id=value) if value else queryset

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        # The other filters and the search ride along as hidden fields of the text box's form.
        others = sorted(
            (name, value)
            for name, value in changelist.params.items()
            if name != self.parameter_name
        )
        yield {
            "selected": bool(self.value()),
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            "hidden": others,
        }


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Nobody adds, changes or deletes audit events here; retention is ``entra_audit_prune``."""

    # The app id, user agent and the rest are on each event's page.
    list_display = [
        "occurred_at",
        "event",
        "outcome",
        "reason",
        "tenant_id",
        "subject_oid",
        "client_ip",
        "request",
        "count",
    ]
    list_filter = [EventTypeFilter, "outcome", ReasonFilter, TenantFilter]
    date_hierarchy = "occurred_at"
    search_fields = ["subject_oid", "app_id", "request_id", "client_ip"]
    search_help_text = "An exact oid, app id, request id or client IP address."
    ordering = ["-occurred_at", "-id"]
    sortable_by = ["occurred_at"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None

    @admin.display(description="event type")
    def event(self, obj: AuditEvent) -> str:
        return event_types().get(obj.event_type, obj.event_type)

    @admin.display(description="request")
    def request(self, obj: AuditEvent) -> str:
        return f"{obj.method} {obj.path}".strip()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact matches on indexed columns (the default ``icontains`` would scan the table)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        spellings = {term, term.lower()}
        matches = (
            Q(subject_oid__in=spellings) | Q(app_id__in=spellings) | Q(request_id__in=spellings)
        )
        try:
            matches |= Q(client_ip=str(ipaddress.ip_address(term)))
        except ValueError:
            pass  # not an address: the other columns only
        return queryset.filter(matches), False
