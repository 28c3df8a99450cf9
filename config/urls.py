from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle

from scheduling.api.metrics import metrics_view


class ObtainToken(ObtainAuthToken):
    """Username and password for a token, rate-limited per client address against guessing."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


api_v1 = [
    path("", include("scheduling.api")),
    path("", include("ledger.api")),
    path("", include("notifications.api")),
    path("", include("billing.api")),
    path("", include("receivables.api")),
    path("auth/token", ObtainToken.as_view(), name="auth-token"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("metrics", metrics_view, name="metrics"),
]

handler404 = "config.api.not_found"
handler500 = "config.api.server_error"
