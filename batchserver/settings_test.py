"""Test settings: the production settings with a throw-away DATA_DIR.

DATA_DIR is chosen before the base settings load, and exported, so that the
qcluster and server subprocesses a test starts share it with the test process.
"""

import os
import secrets
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="batchserver-test-"))
# Tests run the deterministic engine unless they ask for vLLM explicitly, and
# serve the tiny random-weight model (fast to build and to run) unless a test
# asks for the quickstart's instruct model.
os.environ.setdefault("ENGINE", "test")
os.environ.setdefault("MODELS", f"tiny-chat={os.environ['DATA_DIR']}/models/tiny-chat")
# The quickstart's plain-HTTP settings, and a key, shared with subprocesses.
os.environ.setdefault("QUICKSTART", "true")
os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(40))

from batchserver.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collectstatic run in tests: serve static files without the manifest.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
