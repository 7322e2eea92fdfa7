import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE = settings.BASE_DIR


def variables_read_by_the_code() -> set[str]:
    names = set()
    settings_source = (BASE / "batchserver" / "settings.py").read_text()
    # env.str("X"), env("X") and the settings module's own envbool("X").
    names |= set(re.findall(r'\benv(?:bool|\.\w+)?\(\s*"([A-Z_]+)"', settings_source))
    for config in (BASE / "deploy" / "gunicorn").glob("*.py"):
        names |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', config.read_text()))
    return names


def test_env_example_lists_every_variable():
    example = (BASE / "deploy" / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.MULTILINE))
    read = variables_read_by_the_code()
    assert len(read) > 20
    assert read - listed == set()


def settings_loaded(tmp_path, script: str, *, env_file: Path, **variables: str):
    """Run `script` after django.setup() in a fresh interpreter (settings load once per process).

    Only `variables` and the required SECRET_KEY are set: the test run's own
    configuration (QUICKSTART, DATA_DIR, ...) is kept out of the child.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in variables_read_by_the_code() and key != "DJANGO_SETTINGS_MODULE"
    }
    env |= {
        "SECRET_KEY": "only-the-key-is-required",
        "ENV_FILE": str(env_file),
        "DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "batchserver.settings",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + script],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_the_env_example_loads_as_it_is(tmp_path):
    """Copying deploy/.env.example to .env must give a working default configuration."""
    script = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], sorted(s.SERVED_MODELS), s.VLLM_ENGINE_ARGS, "
        "s.CHUNK_SIZE, 'orm' in s.Q_CLUSTER)"
    )
    result = settings_loaded(tmp_path, script, env_file=BASE / "deploy" / ".env.example")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "['smollm2-135m-instruct']",
        "{'max_model_len':",
        "4096,",
        "'kv_cache_memory_bytes':",
        "1073741824,",
        "'dtype':",
        "'float32'}",
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


# Every boolean the settings read, and the settings it ends up in.
BOOLEANS = {
    "DEBUG": "s.DEBUG",
    "QUICKSTART": "s.QUICKSTART",
    "SECURE_SSL_REDIRECT": "s.SECURE_SSL_REDIRECT",
    "SECURE_COOKIES": "s.SESSION_COOKIE_SECURE and s.CSRF_COOKIE_SECURE",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "s.SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD": "s.SECURE_HSTS_PRELOAD",
}
PRINT_BOOLEANS = "from django.conf import settings as s; " + "; ".join(
    f"print({expression})" for expression in BOOLEANS.values()
)


def test_every_boolean_setting_is_read_strictly():
    source = (BASE / "batchserver" / "settings.py").read_text()
    # A new env.bool() would bring back the silent False for a typo.
    assert "env.bool(" not in source
    assert set(re.findall(r'envbool\(\s*"([A-Z_]+)"', source)) == set(BOOLEANS)


@pytest.mark.parametrize(
    ("spellings", "expected"),
    [
        (["true", "True", "TRUE", "1", "yes", "On"], True),
        (["false", "False", "FALSE", "0", "No", "off"], False),
    ],
    ids=["true", "false"],
)
def test_booleans_take_the_usual_spellings_in_any_case(tmp_path, spellings, expected):
    empty = tmp_path / "env"
    empty.write_text("")
    variables = dict(zip(BOOLEANS, spellings, strict=True))
    result = settings_loaded(tmp_path, PRINT_BOOLEANS, env_file=empty, **variables)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(expected)] * len(BOOLEANS)


def test_an_empty_boolean_is_its_default(tmp_path):
    empty = tmp_path / "env"
    empty.write_text("")
    variables = dict.fromkeys(BOOLEANS, "")
    result = settings_loaded(tmp_path, PRINT_BOOLEANS, env_file=empty, **variables)
    assert result.returncode == 0, result.stderr
    # Not the quickstart: no DEBUG, and every TLS protection on.
    assert result.stdout.split() == ["False", "False", "True", "True", "True", "True"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("SECURE_COOKIES", "ture"), ("DEBUG", "maybe"), ("SECURE_HSTS_PRELOAD", "2")],
)
def test_an_unknown_boolean_stops_start_up_naming_the_variable(tmp_path, name, value):
    empty = tmp_path / "env"
    empty.write_text("")
    result = settings_loaded(tmp_path, PRINT_BOOLEANS, env_file=empty, **{name: value})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name}={value!r} is not a boolean" in result.stderr


def test_an_unknown_boolean_in_the_env_file_stops_start_up_too(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("SECURE_COOKIES=ture\n")
    result = settings_loaded(tmp_path, PRINT_BOOLEANS, env_file=env_file)
    assert result.returncode != 0
    assert "SECURE_COOKIES='ture' is not a boolean" in result.stderr
