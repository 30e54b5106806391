"""A lookup by the tenant-scoped manager that another tenant's row would have answered is a
tenant denial in the audit log; the caller sees only ``DoesNotExist``, as for a missing row."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from entra_auth.context import request_context
from entra_auth.models import AuditEvent, EventType
from entra_auth.tenancy import all_tenants_context, tenant_context
from tests.fake_entra import TENANT_A, TENANT_B
from tests.tenancy_app.models import Widget

# The fake Entra fixture also empties the caches, where audit coalescing counts refusals.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_entra")]


@pytest.fixture
def theirs() -> Widget:
    with tenant_context(TENANT_B):
        return Widget.objects.create(name="theirs")


def denials() -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(event_type=EventType.TENANT_DENIED).values_list(
            "object_id", "request_id"
        )
    )


def look_up_in_a_request(queryset_call):
    request = RequestFactory().get("/api/widgets/")
    with request_context(request, "request-1"), tenant_context(TENANT_A):
        with pytest.raises(Widget.DoesNotExist):
            queryset_call()


def test_a_lookup_that_names_another_tenants_row_is_recorded(theirs):
    look_up_in_a_request(lambda: Widget.objects.get(pk=theirs.pk))

    assert denials() == [(str(theirs.pk), "request-1")]


def test_any_lookup_is_checked_not_only_the_primary_key(theirs):
    look_up_in_a_request(lambda: Widget.objects.get(name="theirs"))

    assert denials() == [(str(theirs.pk), "request-1")]


def test_the_querysets_own_filters_still_apply_to_the_check(theirs):
    look_up_in_a_request(lambda: Widget.objects.filter(name="other").get(pk=theirs.pk))

    assert denials() == []


def test_a_row_missing_everywhere_is_not_a_tenant_denial(theirs):
    look_up_in_a_request(lambda: Widget.objects.get(pk=theirs.pk + 1000))

    assert denials() == []


def test_outside_a_request_nothing_is_recorded(theirs):
    with tenant_context(TENANT_A), pytest.raises(Widget.DoesNotExist):
        Widget.objects.get(pk=theirs.pk)

    assert denials() == []


def test_the_unscoped_manager_records_nothing(theirs):
    request = RequestFactory().get("/")
    with request_context(request, "request-1"), all_tenants_context():
        # all_tenants sees every row: a miss there is simply a missing row.
        with pytest.raises(Widget.DoesNotExist):
            Widget.all_tenants.get(pk=theirs.pk + 1000)

    assert denials() == []
