"""The job layer's alerts, delivered to staff through notifications.

``settings.JOB_ALERT_DELIVERY`` points here; the job layer imports nothing of this app.
"""

from __future__ import annotations

import logging

from notifications.models import Priority
from notifications.services.staff import notify_staff

logger = logging.getLogger(__name__)

PRIORITY_BY_SEVERITY = {"critical": Priority.URGENT, "warning": Priority.HIGH}


def deliver_job_alert(alert) -> None:
    """Each active staff user gets the alert in the app and by email, once per alert."""
    run = f"{alert.run_id} {alert.run.run_key} ({alert.run.status})" if alert.run_id else ""
    outcome = notify_staff(
        "job_alert",
        {
            "alert": alert.pk,
            "job": alert.job.code,
            "title": alert.job.title,
            "cause": alert.get_cause_display(),
            "severity": alert.severity,
            "message": alert.message,
            "run": run,
        },
        dedupe_key=f"job_alert:{alert.pk}",
        priority=PRIORITY_BY_SEVERITY.get(alert.severity, Priority.HIGH),
    )
    if not outcome.created and not outcome.skipped:
        logger.warning("alert %s has no active staff user to go to", alert.pk)
