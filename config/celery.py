"""The Celery application. Configuration lives in Django settings under CELERY_*."""

from __future__ import annotations

import os

from celery import Celery

from config.startup import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
load_settings_or_exit()

app = Celery("countinghouse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
