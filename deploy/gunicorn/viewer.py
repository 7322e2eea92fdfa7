"""gunicorn settings for the viewer and admin (port 8001)."""

import os

wsgi_app = "batchserver.wsgi:viewer"
bind = os.environ.get("VIEWER_BIND", "127.0.0.1:8001")
worker_class = "gthread"
workers = int(os.environ.get("VIEWER_WORKERS", "2"))
threads = int(os.environ.get("VIEWER_THREADS", "4"))
timeout = 300
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
proc_name = "batchserver-viewer"
# gunicorn >= 25.1 opens a control socket at one path per user; the API and the
# viewer would take each other's. Nothing here uses it.
control_socket_disable = True
