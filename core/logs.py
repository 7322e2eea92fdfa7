"""Logging filters (framework-free: the settings' LOGGING names them)."""

import logging


class ClientErrorAsWarning(logging.Filter):
    """Log a record as a WARNING line without its traceback.

    Django's `django.security.*` loggers report a request it refuses (a Host
    header not in ALLOWED_HOSTS, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too
    many form fields or files) at ERROR with a traceback. Those are a client's
    mistakes, answered with a 400 or 413, not faults to page anyone about; the
    line stays, so a misconfigured ALLOWED_HOSTS is still visible.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True
