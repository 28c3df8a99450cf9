from django.contrib import admin

from scheduling.models import BeatHeartbeat


@admin.register(BeatHeartbeat)
class BeatHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "started_at", "last_tick_at"]
    readonly_fields = ["hostname", "started_at", "last_tick_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
