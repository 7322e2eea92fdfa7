import httpx
import openai
import pytest
from django.utils import timezone

from batches.models import ApiKey, File
from tests.factories import chat_requests


def test_it_stores_only_a_hash_of_the_key(alice_key):
    api_key = ApiKey.objects.get()
    assert alice_key.startswith("sk-bs-")
    assert alice_key not in (api_key.key_hash, api_key.hint, api_key.name)
    assert api_key.key_hash == ApiKey.hash(alice_key)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/files", "GET"),
        ("/files", "POST"),
        ("/files/file-abc", "GET"),
        ("/files/file-abc", "DELETE"),
        ("/files/file-abc/content", "GET"),
        ("/batches", "GET"),
        ("/batches", "POST"),
        ("/batches/batch_abc", "GET"),
        ("/batches/batch_abc/cancel", "POST"),
        ("/batches/batch_abc/results", "GET"),
        ("/models", "GET"),
    ],
)
def test_every_endpoint_needs_a_key(api_url, path, method):
    response = httpx.request(method, api_url + path)
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "API key" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_it_rejects_a_wrong_key_in_openai_shape(api_url, alice_key):
    client = openai.OpenAI(base_url=api_url, api_key=alice_key + "x", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.files.list()
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"
    assert alice_key not in raised.value.body["message"]


def test_it_rejects_a_revoked_key(api_url, alice_key):
    ApiKey.objects.update(revoked_at=timezone.now())
    client = openai.OpenAI(base_url=api_url, api_key=alice_key, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.batches.list()


def test_it_rejects_a_malformed_authorization_header(api_url):
    response = httpx.get(api_url + "/files", headers={"Authorization": "Bearer a b"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_key_sees_only_its_owners_objects(api_url, openai_client, bob_key, q_sync):
    uploaded = openai_client.files.create(file=("in.jsonl", chat_requests(2)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    bob_client = openai.OpenAI(base_url=api_url, api_key=bob_key, max_retries=0)

    assert bob_client.files.list().data == []
    assert bob_client.batches.list().data == []
    for call in (
        lambda: bob_client.files.retrieve(uploaded.id),
        lambda: bob_client.files.content(uploaded.id),
        lambda: bob_client.files.delete(uploaded.id),
        lambda: bob_client.batches.retrieve(batch.id),
        lambda: bob_client.batches.cancel(batch.id),
        lambda: bob_client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert File.objects.get(public_id=uploaded.id).deleted_at is None


def test_the_viewer_session_does_not_open_the_api(api_url, client, django_user_model):
    staff = django_user_model.objects.create_user("carol", password="pw", is_staff=True)
    client.force_login(staff)
    response = client.get("/v1/files")
    assert response.status_code == 401


def test_unknown_api_urls_are_json_404(api_url, alice_key):
    response = httpx.get(
        api_url.removesuffix("/v1") + "/admin/", headers={"Authorization": f"Bearer {alice_key}"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
