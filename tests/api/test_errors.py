"""Malformed requests get a 4xx in OpenAI's error shape, never a 500."""

import httpx
import pytest

from tests.factories import chat_requests

CASES = [
    ("GET", "/files?limit=abc", None),
    ("GET", "/files?limit=-1", None),
    ("GET", "/files?order=%00", None),
    ("GET", "/batches?limit=1000", None),
    ("GET", "/batches?after=" + "x" * 5000, None),
    ("GET", "/files/" + "%F0%9F%92%A9" * 50, None),
    ("GET", "/batches/%00/results", None),
    ("DELETE", "/files", None),
    ("PUT", "/batches/batch_x", None),
    ("POST", "/batches", {"json": {}}),
    ("POST", "/batches", {"json": {"input_file_id": 5, "endpoint": [], "completion_window": {}}}),
    ("POST", "/batches", {"json": {"input_file_id": "f", "endpoint": "/v1/chat/completions"}}),
    ("POST", "/batches", {"json": {"metadata": "nope", "input_file_id": "f"}}),
    ("POST", "/batches", {"json": {"output_expires_after": {"anchor": "x", "seconds": "y"}}}),
    ("POST", "/batches", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/batches", {"data": {"input_file_id": "f", "metadata": "x"}}),
    ("POST", "/batches", {"content": b"a=b", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/files", {"data": {"purpose": "batch"}, "files": {"other": ("a", b"x")}}),
    ("POST", "/files", {"files": {"file": ("a.jsonl", b"x")}}),
    (
        "POST",
        "/files",
        {
            "data": {"purpose": "batch", "expires_after[seconds]": "soon"},
            "files": {"file": ("a.jsonl", b"x")},
        },
    ),
    (
        "POST",
        "/files",
        {
            "content": b"--x\r\nbroken",
            "headers": {"Content-Type": "multipart/form-data; boundary=x"},
        },
    ),
    ("POST", "/files", {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
    ("POST", "/batches/batch_missing/cancel", None),
    # PostgreSQL refuses NUL in text: every place a client can put one.
    ("GET", "/files/file-%00", None),
    ("DELETE", "/files/%00", None),
    ("GET", "/files?after=%00", None),
    ("GET", "/files?purpose=%00", None),
    ("GET", "/batches?after=batch_%00", None),
    ("POST", "/batches/%00/cancel", None),
    (
        "POST",
        "/batches",
        {
            "json": {
                "input_file_id": "file-\x00",
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }
        },
    ),
    (
        "POST",
        "/batches",
        {
            "json": {
                "input_file_id": "f",
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"\x00": "v"},
            }
        },
    ),
    (
        "POST",
        "/batches",
        {
            "json": {
                "input_file_id": "f",
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"k": "\x00"},
            }
        },
    ),
    ("POST", "/files", {"data": {"purpose": "batch\x00"}, "files": {"file": ("a.jsonl", b"x")}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CASES)
def test_malformed_requests_get_a_clear_4xx(api_url, alice_key, method, path, kwargs):
    kwargs = dict(kwargs or {})
    headers = {"Authorization": f"Bearer {alice_key}", **kwargs.pop("headers", {})}
    response = httpx.request(method, api_url + path, headers=headers, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in response.text


def test_control_characters_in_the_filename_are_dropped(api_url, alice_key):
    body = (
        b'--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a\x00b\x07.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n" + chat_requests(1) + b"\r\n--x--\r\n"
    )
    response = httpx.post(
        api_url + "/files",
        content=body,
        headers={
            "Authorization": f"Bearer {alice_key}",
            "Content-Type": "multipart/form-data; boundary=x",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "ab.jsonl"


def test_a_bad_request_changes_nothing_stored(openai_client, api_url, alice_key):
    uploaded = openai_client.files.create(file=("in.jsonl", chat_requests(2)), purpose="batch")
    httpx.post(
        api_url + "/batches",
        json={"input_file_id": uploaded.id, "endpoint": "/v1/x", "completion_window": "24h"},
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert openai_client.batches.list().data == []
    assert openai_client.files.content(uploaded.id).content == chat_requests(2)
