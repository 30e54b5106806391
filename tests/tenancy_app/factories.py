"""factory-boy factories of the test app's tenant-owned models."""

import factory

from tests.factories import TenantOwnedFactory
from tests.tenancy_app.models import Widget


class WidgetFactory(TenantOwnedFactory):
    """A widget, in ``TENANT_A`` unless told otherwise."""

    class Meta:
        model = Widget

    name = factory.Sequence(lambda n: f"Widget {n}")
