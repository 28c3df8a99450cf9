"""The notifications API under notifications/: the caller's own inbox and preferences, and,
scoped to the caller's companies, what was sent (notifications and deliveries, resending),
webhook endpoints, templates and their previews, preferences, quiet hours and the kinds."""

from rest_framework.routers import SimpleRouter

from notifications.api.endpoints import WebhookEndpointViewSet
from notifications.api.inbox import InboxViewSet
from notifications.api.preferences import PreferenceViewSet, QuietHoursViewSet
from notifications.api.records import DeliveryViewSet, NotificationViewSet
from notifications.api.templates import KindViewSet, TemplateViewSet

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("notifications/inbox", InboxViewSet, basename="notification-inbox")
router.register("notifications/notifications", NotificationViewSet, basename="notification")
router.register("notifications/deliveries", DeliveryViewSet, basename="notification-delivery")
router.register("notifications/webhook-endpoints", WebhookEndpointViewSet, basename="notification-webhook-endpoint")
router.register("notifications/templates", TemplateViewSet, basename="notification-template")
router.register("notifications/preferences", PreferenceViewSet, basename="notification-preference")
router.register("notifications/quiet-hours", QuietHoursViewSet, basename="notification-quiet-hours")
router.register("notifications/kinds", KindViewSet, basename="notification-kind")

urlpatterns = router.urls
