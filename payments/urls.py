from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import MeView, PaymentViewSet

router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
    *router.urls,
]
