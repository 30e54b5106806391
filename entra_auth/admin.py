"""The audit log in the Django admin: read-only, filterable, searchable, newest first.

Built to investigate with: readable labels, links from an event to its object and to the other
events of its request, caller and client address, a list that fits a 1366 px screen, a CSV
export of the filtered list (streamed) and a chart of refusals per hour (``audit_chart``).

Built for a large table: filters offer fixed choices (no ``DISTINCT`` scan of the table to
list them), each filter and id search matches an indexed column exactly (path and user agent
searches read the rows the filters leave), the list sorts by time only, and the full result
count and facet counts are never computed.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst

from . import audit_chart
from .audit import event_types
from .audit_chart import reason_label
from .context import all_tenants_context
from .models import AuditEvent, Reason

# Ids (GUIDs, request ids) are shown by their first characters in the list, in full on hover.
SHORT_ID_LENGTH = 8
SHORT_ADDRESS_LENGTH = 15
SHORT_PATH_LENGTH = 30
EXPORT_CHUNK_SIZE = 2_000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


class _TextFilter(admin.SimpleListFilter):
    """A text box (a deployment may have thousands of values), matched on indexed columns."""

    template = "admin/entra_auth/auditevent/text_filter.html"
    placeholder = ""
    # Filters an investigator reaches by a link (same request, caller, address) appear once
    # in use, so the sidebar stays short.
    always_shown = True

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return self.always_shown or bool(self.value())

    def cleaned(self) -> str:
        return (self.value() or "").strip()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.cleaned()
        return self.matching(queryset, value) if value else queryset

    def matching(self, queryset: QuerySet, value: str) -> QuerySet:
        return queryset.filter(**{self.parameter_name: value})

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


class TenantFilter(_TextFilter):
    """A text box for the tenant id: a deployment may serve thousands of tenants."""

    title = "tenant"
    parameter_name = "tenant_id"
    placeholder = "tenant id (GUID)"

    def cleaned(self) -> str:
        return super().cleaned().lower()


class CallerFilter(_TextFilter):
    """The caller's ``oid`` (with the tenant filter: one caller); reached from an event."""

    title = "caller (oid)"
    parameter_name = "subject_oid"
    placeholder = "oid (GUID)"
    always_shown = False

    def cleaned(self) -> str:
        return super().cleaned().lower()


class ClientIpFilter(_TextFilter):
    """One client address; reached from an event."""

    title = "client IP"
    parameter_name = "client_ip"
    placeholder = "IP address"
    always_shown = False

    def matching(self, queryset: QuerySet, value: str) -> QuerySet:
        try:
            return queryset.filter(client_ip=str(ipaddress.ip_address(value)))
        except ValueError:
            return queryset.none()  # not an address: no event came from it


class RequestFilter(_TextFilter):
    """One request id: the events it started or ended (coalesced rows keep both)."""

    title = "request id"
    parameter_name = "request_id"
    placeholder = "request id"
    always_shown = False

    def matching(self, queryset: QuerySet, value: str) -> QuerySet:
        return queryset.filter(Q(request_id=value) | Q(last_request_id=value))


# --- readable values ----------------------------------------------------------------------


def event_label(code: str) -> str:
    return event_types().get(code, code)


def _short(value: str, keep: int = SHORT_ID_LENGTH) -> str:
    return value if len(value) <= keep + 1 else value[:keep] + "…"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _csv_cell(value: Any) -> Any:
    """A cell no spreadsheet runs as a formula: text starting with = + - @ gets a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose ``write`` hands the line back (csv.writer, streamed)."""

    def write(self, value: str) -> str:
        return value


# The row's own columns, exported as they are.
_PLAIN_FIELDS = [
    "tenant_id",
    "subject_oid",
    "app_id",
    "client_ip",
    "request_id",
    "last_request_id",
    "method",
    "path",
    "user_agent",
    "object_type",
    "object_id",
    "missing",
]
EXPORT_COLUMNS = [
    "first_seen",
    "last_seen",
    "event_type",
    "event",
    "outcome",
    "reason",
    "reason_label",
    "count",
    *_PLAIN_FIELDS,
]
# What each row of the export is made of: the row's own columns, nothing more.
_EXPORT_FIELDS = [
    "occurred_at",
    "last_occurred_at",
    "event_type",
    "outcome",
    "reason",
    "count",
    *_PLAIN_FIELDS,
]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Nobody adds, changes or deletes audit events here; retention is ``entra_audit_prune``.

    Each event links to its object, and to the other events of its request, caller and client
    address; the changelist exports its filtered rows as CSV and charts refusals per hour.
    """

    # Compact cells (labels, shortened ids with the full value in a title) so that the list
    # fits a 1366 px screen beside the navigation and the filters; the rest is on each event.
    list_display = ["when", "event", "source", "request_line", "object_link", "count"]
    list_display_links = ["when"]
    list_filter = [
        EventTypeFilter,
        "outcome",
        ReasonFilter,
        TenantFilter,
        CallerFilter,
        ClientIpFilter,
        RequestFilter,
    ]
    date_hierarchy = "occurred_at"
    # Searched by get_search_results: exact ids on indexed columns, path and user agent.
    search_fields = [
        "subject_oid",
        "app_id",
        "request_id",
        "last_request_id",
        "client_ip",
        "path",
        "user_agent",
    ]
    search_help_text = (
        "An exact oid, app id, request id or client IP address (indexed); or part of a path "
        "or user agent (a path from its start when it begins with /)."
    )
    ordering = ["-occurred_at", "-id"]
    sortable_by = ["when"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None
    fieldsets = [
        (None, {"fields": ["event_detail", "outcome_detail", "reason_detail", "missing", "count"]}),
        ("When", {"fields": ["first_seen", "last_seen"]}),
        ("Who", {"fields": ["caller_detail", "app_id", "client_ip_detail", "user_agent"]}),
        ("Request", {"fields": ["first_request", "last_request", "method", "path"]}),
        ("Object", {"fields": ["object_detail"]}),
    ]
    readonly_fields = [name for _title, part in fieldsets for name in part["fields"]]

    class Media:
        css = {"all": ["entra_auth/audit_admin.css"]}

    # --- the list ---------------------------------------------------------------------------

    @admin.display(description="when", ordering="occurred_at")
    def when(self, obj: AuditEvent) -> str:
        moment = _when(obj.occurred_at)
        day, _, time_of_day = moment.partition(" ")
        last = _when(obj.last_occurred_at)
        title = f"first {moment}, last {last}" if obj.count > 1 and last else moment
        return format_html('<span title="{}">{}<br>{}</span>', title, day, time_of_day)

    @admin.display(description="event")
    def event(self, obj: AuditEvent) -> str:
        reason = reason_label(obj.reason) if obj.reason else ""
        detail = f"{obj.get_outcome_display()} · {reason}" if reason else obj.get_outcome_display()
        return format_html(
            '<span class="entra-audit-event" title="{}">{}</span><br>'
            '<span class="entra-audit-muted" title="{}">{}</span>',
            obj.event_type,
            event_label(obj.event_type),
            obj.reason or obj.outcome,
            detail,
        )

    @admin.display(description="from")
    def source(self, obj: AuditEvent) -> str:
        address = (
            format_html(
                '<a href="{}" title="Events from {}">{}</a>',
                self._filtered_url(client_ip=obj.client_ip),
                obj.client_ip,
                _short(obj.client_ip, SHORT_ADDRESS_LENGTH),
            )
            if obj.client_ip
            else "—"
        )
        if not obj.subject_oid:
            return address
        return format_html(
            '{}<br><a class="entra-audit-muted" href="{}" title="Events of caller {} in tenant {}">'
            "{}/{}</a>",
            address,
            self._caller_url(obj),
            obj.subject_oid,
            obj.tenant_id or "-",
            _short(obj.tenant_id) or "-",
            _short(obj.subject_oid),
        )

    @admin.display(description="request")
    def request_line(self, obj: AuditEvent) -> str:
        line = f"{obj.method} {obj.path}".strip()
        if not line and not obj.request_id:
            return "—"
        shown = _short(line, SHORT_PATH_LENGTH)
        if not obj.request_id:
            return format_html('<span title="{}">{}</span>', line, shown)
        return format_html(
            '<span class="entra-audit-path" title="{}">{}</span><br>'
            '<a class="entra-audit-muted" href="{}" title="Events of request {}">req {}</a>',
            line,
            shown,
            self._filtered_url(request_id=obj.request_id),
            obj.request_id,
            _short(obj.request_id),
        )

    @admin.display(description="object")
    def object_link(self, obj: AuditEvent) -> str:
        return self._object_html(obj, short=True)

    # --- one event ----------------------------------------------------------------------------

    @admin.display(description="event type")
    def event_detail(self, obj: AuditEvent) -> str:
        return format_html("{} <code>{}</code>", event_label(obj.event_type), obj.event_type)

    @admin.display(description="outcome")
    def outcome_detail(self, obj: AuditEvent) -> str:
        return obj.get_outcome_display()

    @admin.display(description="reason")
    def reason_detail(self, obj: AuditEvent) -> str:
        if not obj.reason:
            return "—"
        return format_html("{} <code>{}</code>", reason_label(obj.reason), obj.reason)

    @admin.display(description="first seen")
    def first_seen(self, obj: AuditEvent) -> str:
        return _when(obj.occurred_at)

    @admin.display(description="last seen")
    def last_seen(self, obj: AuditEvent) -> str:
        return _when(obj.last_occurred_at or obj.occurred_at)

    @admin.display(description="caller")
    def caller_detail(self, obj: AuditEvent) -> str:
        if not obj.subject_oid and not obj.tenant_id:
            return "— (none: a refused token's claims are not believed)"
        if not obj.subject_oid:
            return format_html(
                'tenant {} · <a href="{}">other events of this tenant</a>',
                obj.tenant_id,
                self._filtered_url(tenant_id=obj.tenant_id),
            )
        return format_html(
            'oid {} in tenant {} · <a href="{}">other events of this caller</a>',
            obj.subject_oid,
            obj.tenant_id or "-",
            self._caller_url(obj),
        )

    @admin.display(description="client IP")
    def client_ip_detail(self, obj: AuditEvent) -> str:
        if not obj.client_ip:
            return "—"
        return format_html(
            '{} · <a href="{}">other events from this address</a>',
            obj.client_ip,
            self._filtered_url(client_ip=obj.client_ip),
        )

    @admin.display(description="request id (first)")
    def first_request(self, obj: AuditEvent) -> str:
        return self._request_html(obj.request_id)

    @admin.display(description="request id (last)")
    def last_request(self, obj: AuditEvent) -> str:
        return self._request_html(obj.last_request_id or obj.request_id)

    @admin.display(description="object")
    def object_detail(self, obj: AuditEvent) -> str:
        if not obj.object_id:
            return "—"
        described = self._object_html(obj, short=False)
        if not obj.object_type:
            return described
        return format_html("{} <code>{}</code>", described, obj.object_type)

    def _request_html(self, request_id: str) -> str:
        if not request_id:
            return "—"
        return format_html(
            '{} · <a href="{}">other events of this request</a>',
            request_id,
            self._filtered_url(request_id=request_id),
        )

    # --- links ----------------------------------------------------------------------------------

    def _filtered_url(self, **params: str) -> str:
        changelist = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        return f"{changelist}?{urlencode(params)}"

    def _caller_url(self, obj: AuditEvent) -> str:
        return self._filtered_url(tenant_id=obj.tenant_id, subject_oid=obj.subject_oid)

    def _object_html(self, obj: AuditEvent, *, short: bool) -> str:
        """The object, linked to its admin page when its model is registered there."""
        if not obj.object_id:
            return "—"
        shown_id = _short(obj.object_id) if short else obj.object_id
        model = self._object_model(obj.object_type)
        if model is None:
            text = f"{obj.object_type} {shown_id}".strip()
            return format_html('<span title="{}">{}</span>', obj.object_id, text)
        text = f"{capfirst(model._meta.verbose_name)} {shown_id}"
        try:
            url = reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
                args=[quote(obj.object_id)],
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:
            return format_html('<span title="{}">{}</span>', obj.object_id, text)
        return format_html(
            '<a href="{}" title="{} {}">{}</a>', url, model._meta.verbose_name, obj.object_id, text
        )

    def _object_model(self, object_type: str) -> type[models.Model] | None:
        if not object_type:
            return None
        try:
            model = apps.get_model(object_type)
        except (LookupError, ValueError):
            return None
        return model if self.admin_site.is_registered(model) else None

    # --- search -------------------------------------------------------------------------------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact matches on indexed ids; the path and user agent by substring (or prefix).

        The id columns are indexed. A path or user agent is matched within the rows the
        filters and the date leave, without an index: narrow those first on a large table.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        spellings = {term, term.lower()}
        matches = (
            Q(subject_oid__in=spellings)
            | Q(app_id__in=spellings)
            | Q(request_id__in=spellings)
            | Q(last_request_id__in=spellings)
        )
        try:
            matches |= Q(client_ip=str(ipaddress.ip_address(term)))
        except ValueError:
            pass  # not an address: the other columns only
        if term.startswith("/"):
            matches |= Q(path__startswith=term)
        else:
            matches |= Q(path__icontains=term) | Q(user_agent__icontains=term)
        return queryset.filter(matches), False

    # --- the changelist's chart and export ------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            context["refusal_charts"] = audit_chart.charts(
                context["cl"].queryset, now=timezone.now()
            )
            context["export_query"] = context["cl"].get_query_string()
        return response

    def get_urls(self) -> list[Any]:
        info = (self.opts.app_label, self.opts.model_name)
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name="{}_{}_export".format(*info),
        )
        return [export, *super().get_urls()]

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's rows, as filtered and searched, as CSV; streamed, newest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{self._filtered_url()}{ERROR_FLAG}=1")
        rows = (
            changelist.queryset.order_by("-occurred_at", "-id")
            .values_list(*_EXPORT_FIELDS)
            .iterator(chunk_size=EXPORT_CHUNK_SIZE)
        )
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(line) for line in _export_lines(rows)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response


def _export_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[Any]]:
    yield EXPORT_COLUMNS
    for (
        occurred_at,
        last_occurred_at,
        event_type,
        outcome,
        reason,
        count,
        *rest,
    ) in rows:
        line = [
            occurred_at.isoformat() if occurred_at else "",
            (last_occurred_at or occurred_at).isoformat() if occurred_at else "",
            event_type,
            event_label(event_type),
            outcome,
            reason,
            reason_label(reason) if reason else "",
            count,
            *("" if value is None else value for value in rest),
        ]
        yield [_csv_cell(value) for value in line]
