"""gunicorn settings for the API (port 4080): `gunicorn -c deploy/gunicorn/api.py`."""

import os
import shutil
import tempfile

wsgi_app = "batchserver.wsgi:api"
bind = os.environ.get("API_BIND", "127.0.0.1:4080")
# Threads, not processes, carry concurrency: polls are tiny, and an upload or a
# download streams for seconds without holding a process.
worker_class = "gthread"
workers = int(os.environ.get("API_WORKERS", "2"))
# gthread hands a connection to a thread at its first byte, and the thread then
# blocks until the request's headers are in: a client that sends them at 1 B/s
# holds a thread for as long as it likes (gunicorn has no header or body read
# timeout). With 8 threads per worker, 20 such connections starved every other
# client; 32 keep the API answering (bench/RESULTS.md, "Slow clients"). An idle
# thread costs little; each may keep a database connection (CONN_MAX_AGE), so
# PostgreSQL's max_connections must exceed workers x threads here and in the
# viewer, plus the clusters. Behind nginx (deploy/nginx), which buffers whole
# requests before it passes them on, slow clients never reach a thread.
threads = int(os.environ.get("API_THREADS", "32"))
# A 200 MB upload over a slow link takes a while; gthread workers keep
# heartbeating meanwhile, this only bounds a stuck request.
timeout = 600
# A reload lets uploads and downloads in flight finish for up to two minutes
# (systemd's TimeoutStopSec is set above it).
graceful_timeout = 120
keepalive = 5
# What a request head may hold before gunicorn refuses it on its own, with a
# short HTML page before Django runs (414, 431; README, "Errors and limits"): a
# 4 KiB request line, 50 headers of up to 8 KiB. The SDK sends about a dozen.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
# The path without its query string, and no referrer or basic-auth user: a
# client that puts a key in the URL (`?api_key=…`, which the API ignores) must
# not have it written to the journal. The API's own parameters (after, limit,
# order, partial) are not worth that risk.
access_log_format = '%(h)s - - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"
proc_name = "batchserver-api"
# gunicorn >= 25.1 opens a control socket at one path per user; the API and the
# viewer would take each other's. Nothing here uses it.
control_socket_disable = True


def on_starting(server):
    """Each worker counts its HTTP responses in files under this directory, and
    /metrics sums them all (prometheus_client's multiprocess mode). The workers
    inherit it from the master, so it lives across reloads and goes with it."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="batchserver-api-metrics-")


def on_exit(server):
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
