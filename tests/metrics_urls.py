"""The library tests' URLconf with ``GET /metrics`` added (``entra_auth.metrics``, the metrics
extra), for the tests that turn metrics on: ``@pytest.mark.urls("tests.metrics_urls")``."""

from django.urls import path

from entra_auth.metrics import metrics_view
from tests.urls import urlpatterns as library_test_urlpatterns

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
    *library_test_urlpatterns,
]
