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
threads = int(os.environ.get("API_THREADS", "8"))
# A 200 MB upload over a slow link takes a while; gthread workers keep
# heartbeating meanwhile, this only bounds a stuck request.
timeout = 600
# A reload lets uploads and downloads in flight finish for up to two minutes
# (systemd's TimeoutStopSec is set above it).
graceful_timeout = 120
keepalive = 5
accesslog = "-"
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
