import httpx
import openai
import pytest
from openai.types import Batch as SdkBatch

from batches.models import Batch, Request
from tests.factories import CHAT, chat_requests, jsonl, request_line


def upload(client, content: bytes) -> str:
    return client.files.create(file=("input.jsonl", content), purpose="batch").id


def create(client, file_id: str, **kwargs):
    return client.batches.create(
        input_file_id=file_id, endpoint=CHAT, completion_window="24h", **kwargs
    )


def test_a_batch_runs_from_upload_to_download(openai_client, q_sync):
    file_id = upload(openai_client, chat_requests(5))
    created = create(openai_client, file_id, metadata={"run": "nightly", "team": "aris"})
    assert created.status == "validating"
    assert created.input_file_id == file_id
    assert created.metadata == {"run": "nightly", "team": "aris"}
    assert created.expires_at - created.created_at == 24 * 3600

    batch = openai_client.batches.retrieve(created.id)
    SdkBatch.model_validate(batch.model_dump())  # strict check of the SDK's schema
    assert batch.status == "completed"
    assert batch.model == "tiny-chat"
    assert batch.request_counts.model_dump() == {"total": 5, "completed": 5, "failed": 0}
    assert batch.usage.input_tokens == sum(len(f"evaluate candidate {i}".split()) for i in range(5))
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens
    for field in ("in_progress_at", "finalizing_at", "completed_at"):
        assert getattr(batch, field) >= batch.created_at
    assert batch.failed_at is batch.cancelled_at is batch.error_file_id is None

    lines = openai_client.files.content(batch.output_file_id).text.splitlines()
    assert len(lines) == 5
    results = httpx.get(
        f"{openai_client.base_url}batches/{batch.id}/results",
        headers={"Authorization": f"Bearer {openai_client.api_key}"},
    )
    assert results.status_code == 200
    assert results.text.splitlines() == lines
    output_file = openai_client.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.filename == f"{batch.id}_output.jsonl"


def test_failed_requests_go_to_the_error_file(openai_client, q_sync):
    file_id = upload(
        openai_client,
        jsonl([request_line("ok"), request_line("bad", "[[fail:400]]"), request_line("ok2")]),
    )
    batch = openai_client.batches.retrieve(create(openai_client, file_id).id)
    assert batch.status == "completed"
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    errors = openai_client.files.content(batch.error_file_id).text.splitlines()
    assert len(errors) == 1 and '"custom_id":"bad"' in errors[0]


def test_validation_failure_is_reported_in_the_batch(openai_client, q_sync):
    file_id = upload(openai_client, jsonl([request_line("a"), "{oops", request_line("a")]))
    batch = openai_client.batches.retrieve(create(openai_client, file_id).id)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json", 2),
        ("duplicate_custom_id", 3),
    ]
    assert batch.request_counts.total == 0
    assert not Request.objects.exists()


def test_list_paginates_newest_first(openai_client, q_sync):
    file_id = upload(openai_client, chat_requests(1))
    ids = [create(openai_client, file_id).id for _ in range(4)]
    page = openai_client.batches.list(limit=3)
    assert [b.id for b in page.data] == ids[::-1][:3]
    assert page.has_more is True
    rest = openai_client.batches.list(limit=3, after=page.data[-1].id)
    assert [b.id for b in rest.data] == ids[:1]
    assert rest.has_more is False
    assert [b.id for b in openai_client.batches.list(limit=1)] == ids[::-1]


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"metadata": {"k": 5}}, "metadata.k"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, None),
    ],
)
def test_create_rejects_invalid_parameters(openai_client, overrides, param):
    file_id = upload(openai_client, chat_requests(1))
    kwargs = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **overrides}
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.batches.create(**kwargs)
    error = raised.value.body
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param
    assert not Batch.objects.exists()


def test_create_needs_an_existing_input_file(openai_client):
    with pytest.raises(openai.NotFoundError) as raised:
        create(openai_client, "file-doesnotexist")
    assert raised.value.body["param"] == "input_file_id"


def test_create_rejects_a_malformed_body(api_url, alice_key):
    response = httpx.post(
        api_url + "/batches",
        content=b'{"input_file_id": ',
        headers={"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(
        api_url + "/batches",
        json=["not", "an", "object"],
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 400


def test_results_wait_for_the_batch_to_finish(openai_client):
    file_id = upload(openai_client, chat_requests(1))
    batch = create(openai_client, file_id)  # no worker runs: it stays validating
    response = httpx.get(
        f"{openai_client.base_url}batches/{batch.id}/results",
        headers={"Authorization": f"Bearer {openai_client.api_key}"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "batch_not_finished"


def test_cancelling_a_validating_batch_ends_it_cancelled(openai_client):
    from batches.pipeline.ingest import batch_ingest

    batch = create(openai_client, upload(openai_client, chat_requests(3)))
    cancelling = openai_client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert openai_client.batches.cancel(batch.id).status == "cancelling"  # idempotent

    batch_ingest(batch_id=Batch.objects.get().pk)
    finished = openai_client.batches.retrieve(batch.id)
    assert finished.status == "cancelled"
    assert finished.cancelled_at is not None
    assert not Request.objects.exists()


def test_cancelling_a_finished_batch_is_a_clear_error(openai_client, q_sync):
    batch = create(openai_client, upload(openai_client, chat_requests(2)))
    with pytest.raises(openai.ConflictError) as raised:
        openai_client.batches.cancel(batch.id)
    assert raised.value.body["code"] == "batch_not_cancellable"
    assert "completed" in raised.value.body["message"]
    assert openai_client.batches.retrieve(batch.id).status == "completed"


def test_models_lists_what_the_server_serves(openai_client):
    assert [m.id for m in openai_client.models.list()] == ["tiny-chat"]
    assert openai_client.models.retrieve("tiny-chat").owned_by == "batchserver"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-4o")
