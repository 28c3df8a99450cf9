"""Unit-test settings: SQLite in memory, an in-memory broker, no services at all.

Whatever the shell exports (CI exports the distributed variables for the integration
run), unit tests stay on SQLite.
"""

from config.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT = None  # the embedded filesystem transport would override memory://
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = False  # unit tests call services; tasks are tested on real workers
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
HEALTH_WORKER_TIMEOUT = 0.2
STATIC_ROOT = None  # tests serve no collected static files; whitenoise would warn about the folder
JOB_MODULES = [*JOB_MODULES, "tests.jobs"]  # noqa: F405 (and throw-away jobs the tests run)
NOTIFY_WEBHOOK_ALLOW_PRIVATE = True  # the tests' receivers listen on 127.0.0.1
