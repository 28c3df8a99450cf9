"""The job layer's API: health for everybody, jobs, runs, logs and alerts for staff."""

from django.urls import path

from scheduling.api import jobs, schedules
from scheduling.api.health import HealthView

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
    path("system/jobs", jobs.JobList.as_view(), name="job-list"),
    path("system/jobs/status", jobs.JobsStatus.as_view(), name="jobs-status"),
    path("system/jobs/health", jobs.JobsHealth.as_view(), name="jobs-health"),
    path("system/jobs/<str:code>", jobs.JobDetail.as_view(), name="job-detail"),
    path("system/jobs/<str:code>/backfill", schedules.JobBackfill.as_view(), name="job-backfill"),
    path("system/schedules", schedules.ScheduleList.as_view(), name="schedule-list"),
    path("system/schedules/<int:pk>", schedules.ScheduleDetail.as_view(), name="schedule-detail"),
    path("system/runs", jobs.RunList.as_view(), name="run-list"),
    path("system/runs/<int:pk>", jobs.RunDetail.as_view(), name="run-detail"),
    path("system/runs/<int:pk>/logs", jobs.RunLogs.as_view(), name="run-logs"),
    path("system/runs/<int:pk>/cancel", jobs.RunAction.as_view(action="cancel"), name="run-cancel"),
    path("system/runs/<int:pk>/rerun", jobs.RunAction.as_view(action="rerun"), name="run-rerun"),
    path("system/runs/<int:pk>/release", jobs.RunAction.as_view(action="release"), name="run-release"),
    path("system/alerts", jobs.AlertList.as_view(), name="alert-list"),
    path("system/alerts/<int:pk>/acknowledge", jobs.AlertAcknowledge.as_view(), name="alert-acknowledge"),
]
