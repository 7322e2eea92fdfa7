"""Operations-side hardening: secrets stay out of logs, files stay private, the
metrics token is compared in constant time, and create_api_key checks first."""

import hmac
import logging
import stat
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from batches.models import ApiKey, WebhookDelivery
from batches.webhooks import delivery_attempt, loggable_url
from tests.factories import chat_requests, ingest
from tests.helpers import free_port, production_env, run_python

BASE = Path(settings.BASE_DIR)
PASSWORD, TOKEN = "pa55-s3cret-word", "q-s3cret-t0ken"


# --- Webhook URLs: no password or query string in logs ---------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hook:{PASSWORD}@example.com/in?token={TOKEN}", "https://example.com/in"),
        (f"http://{PASSWORD}@127.0.0.1:8080/h#frag", "http://127.0.0.1:8080/h"),
        (f"https://u:{PASSWORD}@[::1]:9/x?a=1", "https://[::1]:9/x"),
        ("https://example.com", "https://example.com"),
        ("http://[::1", "<unparsable URL>"),
    ],
)
def test_a_webhook_url_is_logged_without_userinfo_or_query(url, shown):
    assert loggable_url(url) == shown


def failing_delivery(alice, url: str) -> WebhookDelivery:
    from batches.services import api_key_create

    key = api_key_create(owner=alice, name="aris", webhook_url=url)[0]
    batch = ingest(alice, chat_requests(1))
    return WebhookDelivery.objects.create(
        batch=batch, api_key=key, event="batch.completed", url=url, next_attempt_at=timezone.now()
    )


@pytest.mark.parametrize("failure", ["refused", "http_500"])
def test_a_failed_delivery_logs_and_stores_no_secret_of_its_url(
    alice, caplog, monkeypatch, failure
):
    caplog.set_level(logging.DEBUG)
    host = f"127.0.0.1:{free_port()}"  # nothing listens there: a ConnectError
    url = f"http://hook:{PASSWORD}@{host}/in?token={TOKEN}"
    if failure == "http_500":

        def answer_500(*args, **kwargs):
            return httpx.Response(500, request=httpx.Request("POST", url))

        monkeypatch.setattr("batches.webhooks.httpx.post", answer_500)
    delivery = failing_delivery(alice, url)
    assert not delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.last_error
    logged = "\n".join(
        record.getMessage() + (caplog.text if record.exc_info else "") for record in caplog.records
    )
    assert f"http://{host}/in" in logged  # the failure is still reported, by a safe URL
    for secret in (PASSWORD, TOKEN):
        assert secret not in logged
        assert secret not in caplog.text
        assert secret not in delivery.last_error


def test_the_http_client_does_not_log_request_urls_at_info():
    # httpx logs every request's full URL at INFO; the settings raise its level.
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


# --- The API's access log -----------------------------------------------------------


def gunicorn_config(name: str) -> dict:
    import runpy

    return runpy.run_path(str(BASE / "deploy" / "gunicorn" / f"{name}.py"))


def test_the_api_access_log_leaves_out_query_strings():
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = Config()
    config.set("access_log_format", gunicorn_config("api")["access_log_format"])
    config.set("accesslog", "-")
    logger = Logger(config)
    lines = StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(lines)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/v1/models?api_key={TOKEN}",
        "PATH_INFO": "/v1/models",
        "QUERY_STRING": f"api_key={TOKEN}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_REFERER": f"https://elsewhere/?key={TOKEN}",
        "HTTP_AUTHORIZATION": "Basic " + "aGVsbG86d29ybGQ=",
    }
    response = SimpleNamespace(status="200 OK", sent=42, headers=[])
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=7))
    line = lines.getvalue()
    assert '"GET /v1/models HTTP/1.1" 200 42 7ms' in line, line
    assert TOKEN not in line and "hello" not in line


# --- /metrics ----------------------------------------------------------------------------


def test_the_metrics_token_is_compared_in_constant_time(settings, db, monkeypatch):
    settings.METRICS_TOKEN = "scrape-me"
    settings.ROOT_URLCONF = settings.API_URLCONF
    compared, compare_digest = [], hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr("batches.health.hmac.compare_digest", spy)
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert compared == [(b"Bearer nope", b"Bearer scrape-me"), (b"Bearer scrape-me",) * 2]


# --- create_api_key checks before it writes ------------------------------------------------


def test_create_api_key_refuses_a_bad_webhook_url_before_creating_the_user(db):
    with pytest.raises(CommandError, match="not an http"):
        call_command("create_api_key", "newcomer", "--webhook-url", "ftp://x", stdout=StringIO())
    assert not get_user_model().objects.filter(username="newcomer").exists()
    assert ApiKey.objects.count() == 0


def test_create_api_key_does_not_print_a_webhook_password(db):
    err = StringIO()
    url = f"https://hook:{PASSWORD}@example.com/in?token={TOKEN}"
    call_command("create_api_key", "aris", "--webhook-url", url, stdout=StringIO(), stderr=err)
    assert "https://example.com/in" in err.getvalue()
    assert PASSWORD not in err.getvalue() and TOKEN not in err.getvalue()
    assert ApiKey.objects.get().webhook_url == url  # stored whole: deliveries need it


# --- Files under DATA_DIR are private ---------------------------------------------------------

PERMISSIONS_SCRIPT = """
import os, stat, django
from pathlib import Path
django.setup()
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
call_command("migrate", verbosity=0)
data = Path(settings.DATA_DIR)
export = data / "gold_star" / "exports" / "x"
export.mkdir(parents=True)
(export / "icl.jsonl").write_text("{}")  # exports are written with open(), like this
stored = Path(default_storage.path(default_storage.save("f/in.jsonl", ContentFile(b"x"))))
database = Path(settings.DATABASES["default"]["NAME"])
for path in (data, data / "gold_star", export, export / "icl.jsonl", stored, database):
    print(path.relative_to(data) if path != data else ".", oct(stat.S_IMODE(path.stat().st_mode)))
"""


def run_settings_script(tmp_path, quickstart: str) -> dict:
    result = run_python(PERMISSIONS_SCRIPT, production_env(tmp_path, QUICKSTART=quickstart))
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines())


def test_the_quickstart_keeps_data_dir_private(tmp_path):
    modes = run_settings_script(tmp_path, "true")
    assert modes == {
        ".": "0o700",
        "gold_star": "0o700",
        "gold_star/exports/x": "0o700",
        "gold_star/exports/x/icl.jsonl": "0o600",
        "files/f/in.jsonl": "0o600",
        "batchserver.sqlite3": "0o600",
    }


def test_a_quickstart_database_made_before_is_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    database = data / "batchserver.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    modes = run_settings_script(tmp_path, "true")
    assert modes["."] == "0o700" and modes["batchserver.sqlite3"] == "0o600"


def test_a_server_keeps_group_read_and_nothing_for_others(tmp_path):
    modes = run_settings_script(tmp_path, "false")
    for path, mode in modes.items():
        assert int(mode, 8) & stat.S_IRWXO == 0, (path, mode)
    assert modes["files/f/in.jsonl"] == "0o640"
