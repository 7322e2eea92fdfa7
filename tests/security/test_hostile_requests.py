"""Hostile requests to the API (port 4080), each with what it must get.

Client values are quoted by a short prefix in every error, so nothing stored
or answered grows with the input; a body Django refuses to read (too big, too
deep, too many parts) is a 400 or 413 in OpenAI's envelope with nothing logged
at ERROR; an upload carries exactly one file and its whole body is bounded;
and every error port 4080 can produce, whatever layer answers it, is JSON.
"""

import json
import logging
import os
import re
from pathlib import Path

import httpx
import orjson
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from batches import importing, uploads
from batches.models import File
from tests.factories import CHAT, MODEL, chat_requests, ingest, jsonl, request_line

HUGE = 4 * 1024 * 1024  # characters in a hostile value


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def errors_logged(caplog) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records if r.levelno >= logging.ERROR
    ]


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def temp_files() -> list[str]:
    return os.listdir(settings.FILE_UPLOAD_TEMP_DIR)


def stored_files() -> list[Path]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- 1. Client values in errors are quoted by a short prefix --------------------------


def test_a_huge_model_or_custom_id_leaves_a_failed_batch_with_short_errors(alice):
    huge_model = "m" * HUGE
    lines = [
        request_line("ok-1"),
        request_line("bad-model-1", model=huge_model),
        request_line("bad-model-2", model=huge_model + "x"),
        request_line("c" * 512),
        request_line("c" * 512),  # duplicate_custom_id quotes it
        {**request_line("bad-url"), "url": "/" + "u" * HUGE},
    ]
    batch = ingest(alice, jsonl(lines))

    assert batch.status == "failed"
    codes = [e["code"] for e in batch.errors]
    assert codes == ["model_not_found", "model_not_found", "duplicate_custom_id", "invalid_url"]
    assert len(orjson.dumps(batch.errors)) < 2048, batch.errors
    for error in batch.errors:
        assert len(error["message"]) < 300
    # The quote says how long the value was, so the client can find it.
    assert "4,194,304 characters" in batch.errors[0]["message"]


def test_a_hundred_bad_lines_keep_the_batch_errors_at_a_few_kib(alice, settings):
    settings.MAX_UPLOAD_BYTES = 512 * 1024 * 1024
    model = "m" * (1024 * 1024)
    batch = ingest(alice, jsonl([request_line(f"r{i}", model=model) for i in range(120)]))
    assert batch.status == "failed"
    # At most MAX_REPORTED_LINES entries of a few hundred bytes each, 100 MiB of input or not.
    assert len(batch.errors) == 100
    assert max(len(orjson.dumps(e)) for e in batch.errors) < 300
    assert len(orjson.dumps(batch.errors)) < 32 * 1024


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"endpoint": "/" + "e" * HUGE}, "endpoint"),
        ({"completion_window": "w" * HUGE}, "completion_window"),
        ({"input_file_id": "file-" + "f" * HUGE}, "input_file_id"),
        ({"metadata": {"k" * HUGE: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * HUGE}}, "metadata"),
    ],
)
def test_api_errors_quote_a_huge_value_by_its_start(api_url, alice_key, settings, body, param):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
    valid = {"input_file_id": "file-x", "endpoint": CHAT, "completion_window": "24h"}
    response = httpx.post(
        f"{api_url}/batches", json={**valid, **body}, headers=bearer(alice_key), timeout=60
    )
    error = assert_envelope(response, response.status_code)
    assert 400 <= response.status_code < 500
    assert (error["param"] or "").startswith(param)
    assert len(response.content) < 2048, response.text[:3000]


def test_a_huge_form_value_is_not_echoed(api_url, alice_key):
    response = httpx.post(
        f"{api_url}/files",
        headers=bearer(alice_key),
        data={"purpose": "p" * (2 * 1024 * 1024)},
        files={"file": ("in.jsonl", chat_requests(1))},
        timeout=60,
    )
    assert_envelope(response, 400)
    assert len(response.content) < 2048


def test_import_skip_reasons_quote_a_custom_id_by_its_start(tmp_path, alice):
    long_id = "c" * 512
    body = {
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    }
    line = {"custom_id": long_id, "response": {"status_code": 200, "body": body}, "error": None}
    output = tmp_path / "output.jsonl"
    output.write_bytes(jsonl([line, line]))
    report = importing.results_import(
        output_path=output, input_path=None, owner=alice, model=MODEL, endpoint=CHAT
    )
    (skipped,) = report.skipped_lines
    assert "appears on an earlier line" in skipped.reason and len(skipped.reason) < 200


# --- 3. An upload carries one file, and its whole body is bounded ----------------------


def test_a_second_file_part_is_refused_and_nothing_is_kept(api_url, alice_key, caplog):
    before, temp_before = stored_files(), temp_files()
    response = httpx.post(
        f"{api_url}/files",
        headers=bearer(alice_key),
        data={"purpose": "batch"},
        files=[("file", ("in.jsonl", chat_requests(50))) for _ in range(3)],
    )
    error = assert_envelope(response, 400, "too_many_files")
    assert error["param"] == "file"
    assert File.objects.count() == 0
    assert stored_files() == before
    # Another test may leave a killed upload's temporary file behind; none is new.
    assert temp_files() == temp_before
    assert errors_logged(caplog) == []


def test_an_upload_request_over_the_bound_is_refused_before_it_is_read(
    alice_key, settings, monkeypatch
):
    """Checked in-process: the refusal reads no body, so over a socket the
    server closes the connection while a client may still be sending."""
    settings.ROOT_URLCONF = settings.API_URLCONF
    settings.MAX_UPLOAD_BYTES = 64 * 1024
    opened = []
    monkeypatch.setattr(
        uploads.LimitedTemporaryFileUploadHandler,
        "new_file",
        lambda self, *args, **kwargs: opened.append(args),
    )
    content = b"x" * (uploads.upload_request_limit() + 1)
    temp_before = temp_files()
    response = Client().post(
        "/v1/files",
        {"purpose": "batch", "file": SimpleUploadedFile("big.jsonl", content)},
        headers=bearer(alice_key),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert opened == []  # not a byte of the file was read
    assert File.objects.count() == 0 and temp_files() == temp_before


# --- 4. Bounded but malformed bodies: a 400 or 413, nothing at ERROR -------------------


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict]:
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + b"--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}


def _fields(count: int):
    return multipart(
        [("purpose", None, b"batch")]
        + [(f"f{i}", None, b"x") for i in range(count)]
        + [("file", "in.jsonl", chat_requests(1))]
    )


def _files(count: int):
    return multipart(
        [("purpose", None, b"batch")] + [("file", f"{i}.jsonl", b"{}") for i in range(count)]
    )


JSON = {"Content-Type": "application/json"}
DEEP = 100_000

MALFORMED = {
    "deep JSON": ("/batches", b"[" * DEEP + b"]" * DEEP, JSON, 400, "parse_error"),
    "deep JSON object": ("/batches", b'{"a":' * DEEP + b"1" + b"}" * DEEP, JSON, 400, None),
    "JSON nested 200 deep (inside orjson's limit)": (
        "/batches",
        b'{"metadata": ' + b"[" * 200 + b"]" * 200 + b"}",
        JSON,
        400,
        "parse_error",
    ),
    "JSON over 2.5 MiB": (
        "/batches",
        json.dumps({"input_file_id": "x" * (3 * 1024 * 1024)}).encode(),
        JSON,
        413,
        "request_too_large",
    ),
    "1,001 form fields": ("/files", *_fields(1001), 400, "too_many_fields"),
    "101 file parts": ("/files", *_files(101), 400, "too_many_files"),
    "a lone surrogate": ("/batches", b'{"input_file_id": "\\ud800"}', JSON, 400, "parse_error"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_body_gets_a_4xx_in_the_envelope_and_logs_no_error(
    api_url, alice_key, caplog, case
):
    path, body, headers, status, code = MALFORMED[case]
    temp_before = temp_files()
    response = httpx.post(
        api_url + path, content=body, headers={**bearer(alice_key), **headers}, timeout=60
    )
    assert_envelope(response, status, code)
    assert errors_logged(caplog) == []
    assert File.objects.count() == 0 and temp_files() == temp_before


def test_a_deep_body_within_limits_is_validated_as_usual(api_url, alice_key):
    """Nesting up to the input files' bound (100) is parsed; the serializer judges it."""
    body = {"input_file_id": "file-x", "endpoint": CHAT, "completion_window": "24h"}
    body["metadata"] = {"k": [[[["deep"]]]]}
    response = httpx.post(f"{api_url}/batches", json=body, headers=bearer(alice_key))
    assert_envelope(response, 400, "invalid_value")


# --- 5. Every error on port 4080 is JSON ----------------------------------------------


@pytest.fixture
def api_wsgi(db):
    """The API's real WSGI entry point (batchserver.wsgi.api), in process.

    As Django's test client does, the handler must not close the test's
    database connection at the end of each request.
    """
    from batchserver.wsgi import api

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        transport = httpx.WSGITransport(app=api)
        with httpx.Client(transport=transport, base_url="http://localhost") as c:
            yield c
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


WSGI_ERRORS = [
    ("GET", "/v1/models", {"Host": "evil.example"}, 400, "invalid_host"),
    ("GET", "/healthz", {"Host": "evil.example:4080"}, 400, "invalid_host"),
    ("GET", "/nope", {}, 404, "unknown_url"),
    ("GET", "/admin/", {}, 404, "unknown_url"),
    ("GET", "/v1/models", {}, 401, "invalid_api_key"),
    ("PUT", "/v1/files", {}, 405, "method_not_allowed"),
    ("PATCH", "/v1/batches/batch_x", {"key": True}, 405, "method_not_allowed"),
    ("POST", "/healthz", {}, 405, "method_not_allowed"),
    ("DELETE", "/metrics", {}, 405, "method_not_allowed"),
    ("POST", "/readyz", {"Content-Type": "application/x-www-form-urlencoded"}, 405, None),
]


@pytest.mark.parametrize(("method", "path", "headers", "status", "code"), WSGI_ERRORS)
def test_every_error_on_the_api_port_is_json(
    api_wsgi, alice_key, caplog, method, path, headers, status, code
):
    headers = dict(headers)
    if headers.pop("key", False):
        headers.update(bearer(alice_key))
    response = api_wsgi.request(method, path, headers=headers)
    assert_envelope(response, status, code)
    assert errors_logged(caplog) == []


def test_a_body_too_big_for_a_plain_view_is_a_json_413(api_wsgi, caplog):
    """Read by Django's CSRF check, before any view: the API's handler400 answers."""
    response = api_wsgi.post(
        "/healthz",
        content=b"a=" + b"x" * (3 * 1024 * 1024),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "csrftoken=" + "a" * 32,
        },
    )
    assert_envelope(response, 413, "request_too_large")
    assert errors_logged(caplog) == []


def test_a_refused_user_agent_is_a_json_403(api_wsgi, settings):
    settings.DISALLOWED_USER_AGENTS = [re.compile("evilbot")]
    response = api_wsgi.get("/v1/models", headers={"User-Agent": "evilbot/1"})
    assert_envelope(response, 403, "permission_denied")


def test_a_crash_is_a_json_500_in_a_view_and_outside_one(api_wsgi, alice_key, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("batches.apis.served_models", crash)
    monkeypatch.setattr("batches.health.heartbeats.control_alive", crash)
    for path, headers in (("/v1/models", bearer(alice_key)), ("/readyz", {})):
        response = api_wsgi.get(path, headers=headers)
        error = assert_envelope(response, 500)
        assert error["type"] == "server_error" and "boom" not in response.text


def test_the_viewer_keeps_its_html_error_pages(client, db):
    response = client.post("/admin/login/", {"username": "x"}, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")
