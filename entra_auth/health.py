"""Health endpoints: liveness (the process answers)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    """200 while the process runs; touches no dependency."""
    return JsonResponse({"status": "ok"})
