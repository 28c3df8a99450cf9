"""Countinghouse settings, read from the environment (see config/env.py for every variable).

Two modes, chosen by the environment:

- embedded (none of DATABASE_URL, CELERY_BROKER_URL, REDIS_URL set): SQLite in WAL mode,
  Celery's filesystem broker and a file cache, all under COUNTINGHOUSE_VAR_DIR;
- distributed (any of them set): all three are then required — PostgreSQL, a Redis or
  RabbitMQ broker, and Redis for the shared cache.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange

from config import env
from scheduling import priorities

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.text("COUNTINGHOUSE_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DISTRIBUTED_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL")
MODE = "distributed" if any(env.is_set(name) for name in DISTRIBUTED_VARIABLES) else "embedded"
if MODE == "distributed":
    for name in DISTRIBUTED_VARIABLES:
        if not env.is_set(name):
            others = ", ".join(n for n in DISTRIBUTED_VARIABLES if env.is_set(n))
            raise ImproperlyConfigured(
                f"{name} is required in distributed mode ({others} set); "
                f"unset all of {', '.join(DISTRIBUTED_VARIABLES)} for the embedded mode"
            )
else:
    for folder in ("broker/queues", "broker/processed", "broker/control", "cache"):
        (VAR_DIR / folder).mkdir(parents=True, exist_ok=True)


def _embedded_secret(name: str) -> str:
    """A random secret kept in the var directory, so restarts keep sessions and tokens valid."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.boolean("DEBUG", False)
if MODE == "distributed":
    SECRET_KEY = env.text("SECRET_KEY")
else:
    SECRET_KEY = env.text("SECRET_KEY", "") or _embedded_secret("secret_key")
SECRETS_KEYS = env.listing("SECRETS_KEYS", [])
for _key in SECRETS_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "SECRETS_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes each), newest first; make one "
            'with python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        ) from None
ALLOWED_HOSTS = env.listing("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.listing("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here, not a CDN
    "django_celery_beat",
    "django_celery_results",
    # Floors: an app imports only from apps on its own floor or below (tests/unit/test_floors.py).
    "scheduling",
    "notifications",
    "ledger",
    "billing",
    "receivables",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------

SQLITE_OPTIONS = {
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN
    # so two processes never deadlock upgrading a read lock (which the busy timeout
    # cannot resolve and SQLite reports at once as "database is locked").
    "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=30000;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}

if MODE == "distributed":
    DATABASES = {"default": env.database()}
    DATABASES["default"]["CONN_MAX_AGE"] = env.integer("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "countinghouse.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------

if MODE == "distributed":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.url("REDIS_URL", env.REDIS_SCHEMES),
            "KEY_PREFIX": "countinghouse",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth, i18n, static -------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"  # timestamps are UTC; business dates use each company's timezone
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- API ----------------------------------------------------------------------------

AUTH_TOKEN_RATE = env.text("AUTH_TOKEN_RATE", "20/min")
if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", AUTH_TOKEN_RATE):
    raise ImproperlyConfigured(
        f"AUTH_TOKEN_RATE must look like 20/min (n/sec, n/min, n/hour, n/day), not {AUTH_TOKEN_RATE!r}"
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": AUTH_TOKEN_RATE},
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Countinghouse API",
    "DESCRIPTION": "Back-office jobs, books and reports for finance teams.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two fields named alike would otherwise get generated enum names.
    "ENUM_NAME_OVERRIDES": {
        "CurrencyEnum": "ledger.currencies.CHOICES",
        "PeriodStatusEnum": "ledger.models.periods.PeriodStatus",
        "DeliveryStatusEnum": "notifications.models.DeliveryStatus",
        "ChannelEnum": "notifications.models.Channel",
    },
}

# --- Celery -------------------------------------------------------------------------

QUEUES = ("default", "billing", "receivables", "ledger", "notifications")

if MODE == "distributed":
    CELERY_BROKER_URL = env.url("CELERY_BROKER_URL", env.BROKER_SCHEMES)
else:
    CELERY_BROKER_URL = "filesystem://localhost//"  # the host means nothing here; naming one keeps kombu quiet

CELERY_TASK_SOFT_TIME_LIMIT = env.integer("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=1)
CELERY_TASK_TIME_LIMIT = env.integer("CELERY_TASK_TIME_LIMIT", 3600, minimum=1)
CELERY_VISIBILITY_TIMEOUT = env.integer("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT")
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    # Otherwise Redis hands a still-running task to a second worker.
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT")

if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT = "config.filesystem_broker:Transport"  # kombu's, without its races
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(VAR_DIR / "broker/queues"),
        "data_folder_out": str(VAR_DIR / "broker/queues"),
        "processed_folder": str(VAR_DIR / "broker/processed"),
        "control_folder": str(VAR_DIR / "broker/control"),
        "store_processed": False,
        # Seconds between looks at the queue folders: how long an idle worker takes to see a task.
        "polling_interval": 0.25,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        **priorities.redis_transport_options(),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
    # RabbitMQ closes the channel of a consumer that holds an unacknowledged message
    # longer than its consumer_timeout (30 min by default): with acks_late, any task
    # running that long. Refuse a time limit the server would cut short.
    RABBITMQ_CONSUMER_TIMEOUT = env.integer("RABBITMQ_CONSUMER_TIMEOUT", 1800, minimum=1)
    if CELERY_TASK_TIME_LIMIT >= RABBITMQ_CONSUMER_TIMEOUT:
        raise ImproperlyConfigured(
            f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}s) must be below RABBITMQ_CONSUMER_TIMEOUT "
            f"({RABBITMQ_CONSUMER_TIMEOUT}s): raise consumer_timeout on the RabbitMQ server and set "
            "RABBITMQ_CONSUMER_TIMEOUT to match, or lower the time limits"
        )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 4

CELERY_TASK_DEFAULT_QUEUE = "default"
# Priority queues on every broker (RabbitMQ: x-max-priority; the others ignore the argument). A job's
# priority is mapped to each broker's direction when its tasks are sent (scheduling/priorities.py).
CELERY_TASK_QUEUES = [priorities.PriorityQueue(name, Exchange(name), routing_key=name) for name in QUEUES]
CELERY_TASK_QUEUE_MAX_PRIORITY = priorities.MOST_URGENT  # and queues made on demand (a job's queue not in QUEUES)
# Tasks sent without a priority (alerts, notifications) are normal ones: on Redis no priority means its most urgent.
CELERY_TASK_DEFAULT_PRIORITY = priorities.message_priority(priorities.NORMAL, CELERY_BROKER_URL)
# A task named "<app>.<...>" runs on its app's queue; anything else on "default".
CELERY_TASK_ROUTES = {f"{name}.*": {"queue": name, "routing_key": name} for name in QUEUES if name != "default"}

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.integer("CELERY_WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)
CELERY_WORKER_CONCURRENCY = env.integer("CELERY_WORKER_CONCURRENCY", 2, minimum=1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = 500
# On a cold shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT) running tasks get
# this long to finish; then they are cancelled and their messages requeued at once,
# rather than after the broker's visibility timeout.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env.number("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 0.0, minimum=0, integer=False)
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env.integer("CELERY_RESULT_EXPIRES", 604800, minimum=60)
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "scheduling.beat:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Health -------------------------------------------------------------------------

HEALTH_CHECKS = ("database", "broker", "cache", "workers", "beat")
HEALTH_CRITICAL_CHECKS = env.listing("HEALTH_CRITICAL_CHECKS", ["database", "broker", "cache"])
for _check in HEALTH_CRITICAL_CHECKS:
    if _check not in HEALTH_CHECKS:
        raise ImproperlyConfigured(f"HEALTH_CRITICAL_CHECKS names {_check!r}; choose from {', '.join(HEALTH_CHECKS)}")
HEALTH_WORKER_TIMEOUT = env.number("HEALTH_WORKER_TIMEOUT", 1.5, minimum=0.1, integer=False)
HEALTH_BEAT_STALE_AFTER = env.integer("HEALTH_BEAT_STALE_AFTER", 60, minimum=5)

# --- Job layer --------------------------------------------------------------------

SCHEDULING_COMPANY_MODEL = "ledger.Company"  # what a run's company is; the job layer imports no domain app
BEAT_LEASE_SECONDS = env.integer("BEAT_LEASE_SECONDS", 30, minimum=5)
JOB_LOG_RETENTION_DAYS = env.integer("JOB_LOG_RETENTION_DAYS", 90, minimum=1)
JOB_MISSED_GRACE = env.integer("JOB_MISSED_GRACE", 300, minimum=30)
METRICS_TOKEN = env.text("METRICS_TOKEN", "")
JOB_MODULES: list[str] = ["config.jobs"]  # modules declaring jobs besides each app's jobs.py
JOB_ALERT_DELIVERY = "notifications.alerts.deliver_job_alert"  # the job layer hands its alerts over here
JOB_SILENCE = "notifications.services.sending.silenced"  # how a run that may not notify is kept quiet
# A queued run, or a running run's chunks, with no progress this long and no message for them
# on a queue or a worker were lost (a broker restart, a failed send): the watchdog sends them again.
JOB_STALL_GRACE = env.integer("JOB_STALL_GRACE", 180, minimum=10)
# Runs one backfill may create without --force: a typo in a year must not start a century of runs.
JOB_BACKFILL_MAX_RUNS = env.integer("JOB_BACKFILL_MAX_RUNS", 400, minimum=1)

# --- Ledger ---------------------------------------------------------------------------

LEDGER_STALE_DRAFT_DAYS = env.integer("LEDGER_STALE_DRAFT_DAYS", 3, minimum=0)
LEDGER_STALE_DRAFT_ACTION = env.text("LEDGER_STALE_DRAFT_ACTION", "flag")
if LEDGER_STALE_DRAFT_ACTION not in ("flag", "post"):
    raise ImproperlyConfigured("LEDGER_STALE_DRAFT_ACTION must be flag or post.")

# --- Notifications ----------------------------------------------------------------------

NOTIFY_MAX_ATTEMPTS = env.integer("NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
NOTIFY_RETRY_BACKOFF = env.number("NOTIFY_RETRY_BACKOFF", 30, minimum=0, integer=False)
NOTIFY_RETRY_BACKOFF_MAX = env.number("NOTIFY_RETRY_BACKOFF_MAX", 3600, minimum=0, integer=False)
if NOTIFY_RETRY_BACKOFF_MAX >= CELERY_VISIBILITY_TIMEOUT:
    # A countdown longer than the visibility timeout gets the message handed out twice.
    raise ImproperlyConfigured("NOTIFY_RETRY_BACKOFF_MAX must be below CELERY_VISIBILITY_TIMEOUT")
NOTIFY_WEBHOOK_TIMEOUT = env.number("NOTIFY_WEBHOOK_TIMEOUT", 10, minimum=0.1, integer=False)
NOTIFY_WEBHOOK_ALLOW_PRIVATE = env.boolean("NOTIFY_WEBHOOK_ALLOW_PRIVATE", False)
NOTIFY_WEBHOOK_DISABLE_AFTER = env.integer("NOTIFY_WEBHOOK_DISABLE_AFTER", 5, minimum=1)
NOTIFY_RETENTION_DAYS = env.integer("NOTIFY_RETENTION_DAYS", 365, minimum=1)
NOTIFY_DELIVERY_CHUNK = env.integer("NOTIFY_DELIVERY_CHUNK", 500, minimum=1)

# --- Email ----------------------------------------------------------------------------

_email = env.email("EMAIL_URL", "consolemail://")
EMAIL_BACKEND = _email.pop("EMAIL_BACKEND")
EMAIL_TIMEOUT = (
    30  # a mail server that hangs fails the attempt instead of holding a worker; ?timeout= in EMAIL_URL wins
)
for _name, _value in _email.items():
    globals()[_name] = _value
DEFAULT_FROM_EMAIL = env.text("DEFAULT_FROM_EMAIL", "countinghouse@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging ------------------------------------------------------------------------

LOG_LEVEL = env.text("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for name in ("config", "scheduling", "notifications", "ledger", "billing", "receivables")
    },
}
