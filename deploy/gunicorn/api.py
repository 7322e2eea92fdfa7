"""gunicorn settings for the API (port 4080): `gunicorn -c deploy/gunicorn/api.py`."""

import os

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
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
proc_name = "batchserver-api"
