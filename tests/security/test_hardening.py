"""The security pass: each rule, tested where it is enforced.

Rules proven elsewhere, not repeated here: keys stored as hashes and refused
when wrong, revoked or malformed (tests/api/test_auth.py); uploads refused past
the size limit while streaming (tests/api/test_files.py) and over-long lines
(tests/security/test_bad_inputs.py); CSRF on the star endpoint
(tests/curation/test_stars.py); no unauthenticated access to any operation
(tests/api/test_openapi.py, fuzzed).
"""

import hmac
import subprocess
import sys
from email.message import Message
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from batches.models import ApiKey, Batch, File
from tests.factories import chat_requests
from tests.helpers import production_env, run_python

BASE = Path(settings.BASE_DIR)


# --- API keys ------------------------------------------------------------------


def test_a_revoked_key_stops_working_at_once(api_url, openai_client, alice_key, capsys):
    openai_client.models.list()
    key = ApiKey.objects.get()
    call_command("revoke_api_key", str(key.pk))
    assert "Revoked 1 key(s)" in capsys.readouterr().out
    with pytest.raises(openai.AuthenticationError):
        openai_client.models.list()


def test_revoking_by_user_leaves_other_users_keys_alone(api_url, alice_key, bob_key):
    call_command("revoke_api_key", "--user", "alice")
    assert httpx.get(f"{api_url}/models", headers=bearer(alice_key)).status_code == 401
    assert httpx.get(f"{api_url}/models", headers=bearer(bob_key)).status_code == 200


def test_the_key_hash_is_compared_in_constant_time(api_url, alice_key, monkeypatch):
    compared, compare_digest = [], hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr("batches.authentication.hmac.compare_digest", spy)
    assert httpx.get(f"{api_url}/models", headers=bearer(alice_key)).status_code == 200
    assert compared == [(ApiKey.hash(alice_key), ApiKey.hash(alice_key))]


# --- Isolation -------------------------------------------------------------------


@pytest.fixture
def alices_objects(openai_client, q_sync) -> dict:
    upload = openai_client.files.create(file=("in.jsonl", chat_requests(2)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return {"file": upload.id, "batch": batch.id, "output": batch.output_file_id}


ISOLATED_CALLS = [
    ("GET", "/files/{file}"),
    ("GET", "/files/{file}/content"),
    ("DELETE", "/files/{file}"),
    ("GET", "/files/{output}"),
    ("GET", "/files/{output}/content"),
    ("GET", "/batches/{batch}"),
    ("POST", "/batches/{batch}/cancel"),
    ("GET", "/batches/{batch}/results"),
    ("GET", "/batches/{batch}/results?partial=true"),
    ("GET", "/files?after={file}"),
    ("GET", "/batches?after={batch}"),
]


@pytest.mark.parametrize(("method", "path"), ISOLATED_CALLS)
def test_another_key_finds_none_of_alices_objects(api_url, alices_objects, bob_key, method, path):
    response = httpx.request(
        method, api_url + path.format(**alices_objects), headers=bearer(bob_key)
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert Batch.objects.get(public_id=alices_objects["batch"]).status == "completed"
    assert File.objects.filter(deleted_at__isnull=True).count() == 2


def test_another_key_cannot_batch_alices_file_or_replay_her_idempotency_key(
    api_url, openai_client, alices_objects, bob_key
):
    body = {
        "input_file_id": alices_objects["file"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    alice_first = openai_client.batches.create(**body, extra_headers={"Idempotency-Key": "k-1"})
    bob = httpx.post(
        f"{api_url}/batches", json=body, headers={**bearer(bob_key), "Idempotency-Key": "k-1"}
    )
    assert bob.status_code == 404  # her file is not his; her key's answer is not replayed
    assert alice_first.id not in bob.text


def test_lists_and_models_show_a_new_key_nothing_of_alices(api_url, alices_objects, bob_key):
    bob = openai.OpenAI(base_url=api_url, api_key=bob_key, max_retries=0)
    assert bob.files.list().data == []
    assert bob.batches.list().data == []
    assert [m.id for m in bob.models.list().data] == [settings.TINY_MODEL_NAME]


# --- Rate limits -------------------------------------------------------------------


def test_creates_are_rate_limited_per_key_with_retry_after(api_url, alice_key, bob_key, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"create": "3/min"},
    }
    alice = openai.OpenAI(base_url=api_url, api_key=alice_key, max_retries=0)
    for _ in range(3):
        alice.files.create(file=("in.jsonl", chat_requests(1)), purpose="batch")
    with pytest.raises(openai.RateLimitError) as raised:
        alice.files.create(file=("in.jsonl", chat_requests(1)), purpose="batch")
    response = raised.value.response
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert raised.value.body["type"] == "rate_limit_error"
    assert File.objects.count() == 3  # the refused upload left nothing behind
    # Batch creates count against the same budget; reads and other keys are not limited.
    refused = httpx.post(f"{api_url}/batches", json={}, headers=bearer(alice_key))
    assert refused.status_code == 429
    assert alice.files.list().data
    bob = openai.OpenAI(base_url=api_url, api_key=bob_key, max_retries=0)
    bob.files.create(file=("in.jsonl", chat_requests(1)), purpose="batch")


# --- Files and downloads --------------------------------------------------------------

NASTY_FILENAMES = [
    "../../../etc/cron.d/evil.jsonl",
    "..\\..\\windows\\win.ini",
    '"; filename="x.exe',
    "line\r\nSet-Cookie: pwned=1.jsonl",
    "café \u202egnp.jsonl",
    "/absolute/path.jsonl",
    "CON.jsonl",
    "x" * 600 + ".jsonl",
]


@pytest.mark.parametrize("filename", NASTY_FILENAMES)
def test_a_filename_is_a_label_never_a_path_nor_a_header(
    api_url, openai_client, alice_key, filename
):
    content = chat_requests(1)
    uploaded = httpx.post(
        f"{api_url}/files",
        headers=bearer(alice_key),
        data={"purpose": "batch"},
        files={"file": (filename, content, "application/jsonl")},
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    stored = Path(File.objects.get(public_id=file_id).content.path).resolve()
    files_root = Path(settings.STORAGES["default"]["OPTIONS"]["location"]).resolve()
    assert stored.is_relative_to(files_root) and file_id in stored.name
    assert stored.read_bytes() == content

    download = httpx.get(f"{api_url}/files/{file_id}/content", headers=bearer(alice_key))
    assert download.content == content
    disposition = download.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert "set-cookie" not in {
        name.lower() for name in download.headers if name != "content-disposition"
    }
    header = Message()
    header["content-disposition"] = disposition
    assert header.get_content_disposition() == "attachment"
    sent_name = header.get_filename() or ""
    assert "/" not in sent_name and "\\" not in sent_name


# --- The viewer --------------------------------------------------------------------


def test_the_viewer_cannot_be_framed_and_sets_protective_headers(client, db):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_viewer_forms_refuse_a_post_without_csrf_token(carol):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/admin/login/", {"username": "carol", "password": "carol-pw"})
    assert response.status_code == 403
    browser.force_login(carol)
    assert browser.post("/api/gold-star", {"request": 1}).status_code == 403


# --- Production settings (a fresh interpreter each: settings load once) -----------------


def test_secret_key_is_required_and_debug_is_off_by_default(tmp_path):
    settings_of = "import django; django.setup(); from django.conf import settings as s; "
    missing = run_python(settings_of + "print(s.DEBUG)", production_env(tmp_path, SECRET_KEY=None))
    assert missing.returncode != 0
    assert "SECRET_KEY is not set" in missing.stderr
    defaults = run_python(
        settings_of + "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS)",
        production_env(tmp_path),
    )
    assert defaults.returncode == 0, defaults.stderr
    assert defaults.stdout.split() == ["False", "True", "True", "True", "31536000"]


def test_cookies_are_secure_behind_tls_and_plain_http_is_redirected(tmp_path):
    script = """
import django; django.setup()
from django.core.management import call_command
from django.test import Client
call_command("collectstatic", interactive=False, verbosity=0)  # the login page's CSS
client = Client(HTTP_HOST="review.example.com")
print(client.get("/admin/login/").status_code)
tls = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
cookie = tls.cookies["csrftoken"]
print(tls.status_code, bool(cookie["secure"]), tls["Strict-Transport-Security"])
"""
    result = run_python(script, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "301",
        "200 True max-age=31536000; includeSubDomains; preload",
    ]


def test_check_deploy_is_clean_with_the_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=production_env(tmp_path),
        cwd=BASE,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}
