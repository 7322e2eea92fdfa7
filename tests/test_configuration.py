import os
import re
import subprocess
import sys

import pytest
from django.conf import settings

BASE = settings.BASE_DIR


def variables_read_by_the_code() -> set[str]:
    names = set()
    settings_source = (BASE / "batchserver" / "settings.py").read_text()
    names |= set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_source))
    for config in (BASE / "deploy" / "gunicorn").glob("*.py"):
        names |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', config.read_text()))
    return names


def test_env_example_lists_every_variable():
    example = (BASE / "deploy" / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.MULTILINE))
    read = variables_read_by_the_code()
    assert len(read) > 20
    assert read - listed == set()


def test_the_env_example_loads_as_it_is(tmp_path):
    """Copying deploy/.env.example to .env must give a working default configuration."""
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], sorted(s.SERVED_MODELS), s.VLLM_ENGINE_ARGS, "
        "s.CHUNK_SIZE, 'orm' in s.Q_CLUSTER)"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in variables_read_by_the_code() and key != "DJANGO_SETTINGS_MODULE"
    }
    env |= {
        "SECRET_KEY": "only-the-key-is-required",
        "ENV_FILE": str(BASE / "deploy" / ".env.example"),
        "DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "batchserver.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "['tiny-chat']",
        "{}",
        "1000",
        "True",
    ]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's journal settings; PostgreSQL needs none")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["timeout"] >= 5
