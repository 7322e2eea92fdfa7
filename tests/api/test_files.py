import os
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings

from batches.models import File
from tests.factories import chat_requests


def stored_files() -> list[Path]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*") if p.is_file())


def temp_files() -> list[str]:
    return os.listdir(settings.FILE_UPLOAD_TEMP_DIR)


def test_upload_retrieve_content_and_delete(openai_client, alice):
    content = chat_requests(3)
    uploaded = openai_client.files.create(file=("../../etc/passwd.jsonl", content), purpose="batch")

    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(content)
    assert uploaded.filename == "passwd.jsonl"  # a display name, never a path
    assert uploaded.purpose == "batch"
    assert uploaded.status == "processed"
    assert uploaded.expires_at - uploaded.created_at == 30 * 24 * 3600

    row = File.objects.get(public_id=uploaded.id)
    assert row.owner == alice
    assert Path(row.content.path).read_bytes() == content
    assert uploaded.id in row.content.name and "passwd" not in row.content.name

    assert openai_client.files.retrieve(uploaded.id) == uploaded
    downloaded = openai_client.files.content(uploaded.id)
    assert downloaded.content == content
    assert "attachment" in downloaded.response.headers["content-disposition"]

    deleted = openai_client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    assert not Path(row.content.path).exists()
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.delete(uploaded.id)


def test_upload_honours_expires_after(openai_client):
    uploaded = openai_client.files.create(
        file=("in.jsonl", chat_requests(1)),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert uploaded.expires_at - uploaded.created_at == 7200


def test_list_paginates_with_after_limit_and_order(openai_client):
    ids = [
        openai_client.files.create(file=(f"f{i}.jsonl", chat_requests(1)), purpose="batch").id
        for i in range(5)
    ]

    page = openai_client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2]
    assert page.has_more is True
    assert [f.id for f in openai_client.files.list(limit=2)] == ids[::-1]  # auto-pagination

    ascending = openai_client.files.list(limit=3, order="asc")
    assert [f.id for f in ascending.data] == ids[:3]
    last = openai_client.files.list(limit=3, order="asc", after=ids[2])
    assert [f.id for f in last.data] == ids[3:]
    assert last.has_more is False

    assert openai_client.files.list(purpose="batch_output").data == []


def test_list_rejects_bad_parameters(openai_client):
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.files.list(limit=0)
    assert raised.value.body["param"] == "limit"
    with pytest.raises(openai.BadRequestError):
        openai_client.files.list(order="sideways")
    with pytest.raises(openai.NotFoundError):
        openai_client.files.list(after="file-unknown")


def test_it_refuses_other_purposes(openai_client):
    before = stored_files()
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.files.create(file=("in.jsonl", chat_requests(1)), purpose="fine-tune")
    assert raised.value.body["param"] == "purpose"
    assert File.objects.count() == 0
    assert stored_files() == before


def test_it_refuses_an_empty_file_and_a_missing_file(openai_client, api_url, alice_key):
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.files.create(file=("in.jsonl", b""), purpose="batch")
    assert raised.value.body["param"] == "file"
    response = httpx.post(
        api_url + "/files",
        data={"purpose": "batch"},
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_an_oversized_upload_is_refused_and_leaves_nothing(openai_client, settings):
    settings.MAX_UPLOAD_BYTES = 64 * 1024
    existing = openai_client.files.create(file=("ok.jsonl", chat_requests(1)), purpose="batch")
    before = stored_files()

    with pytest.raises(openai.APIStatusError) as raised:
        openai_client.files.create(file=("big.jsonl", b"x" * (256 * 1024)), purpose="batch")

    assert raised.value.status_code == 413
    assert raised.value.body["code"] == "file_too_large"
    assert [f.public_id for f in File.objects.all()] == [existing.id]
    assert stored_files() == before
    assert temp_files() == []


def test_non_multipart_uploads_get_a_clear_error(api_url, alice_key):
    response = httpx.post(
        api_url + "/files",
        content=b"{not json",
        headers={"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
