"""Integration-test settings: the real settings module, pointed at local services.

Variables already in the environment win (CI sets them); otherwise the local
PostgreSQL and Redis that the project's machines run are used. Redis databases 14 and
15 keep tests away from anything else on the same server.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/countinghouse")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("SECRET_KEY", "integration-tests-only")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
STATIC_ROOT = None  # tests serve no collected static files; whitenoise would warn about the folder
JOB_MODULES = [*JOB_MODULES, "tests.jobs"]  # noqa: F405 (and throw-away jobs the tests run)
NOTIFY_WEBHOOK_ALLOW_PRIVATE = True  # the tests' receivers listen on 127.0.0.1
