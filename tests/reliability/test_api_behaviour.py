"""Fair scheduling, Idempotency-Key, partial results and webhooks."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import openai
import pytest
from django.utils import timezone

from batches import engines
from batches.models import ApiKey, Batch, Chunk, File, WebhookDelivery
from batches.pipeline.execution import chunk_run, chunk_run_next
from batches.pipeline.finalize import batch_finalize
from batches.pipeline.reconcile import reconcile
from batches.services import api_key_set_webhook
from batches.webhooks import delivery_attempt
from tests.factories import CHAT, chat_requests, ingest

pytestmark = pytest.mark.django_db(transaction=True)


def test_batches_take_turns_and_priority_goes_first(alice, settings):
    settings.CHUNK_SIZE = 1
    big = ingest(alice, chat_requests(6))
    ingest(alice, chat_requests(2))  # the small batch
    order = []
    while (chunk := chunk_run_next()) is not None:
        order.append("big" if chunk.batch_id == big.pk else "small")
    # The small batch, created after the big one, starts on the second turn.
    assert order[:4] == ["big", "small", "big", "small"]
    assert order.count("big") == 6

    urgent = ingest(alice, chat_requests(1))
    Batch.objects.filter(pk=urgent.pk).update(priority=5)
    later = ingest(alice, chat_requests(1))
    assert chunk_run_next().batch_id == urgent.pk
    assert chunk_run_next().batch_id == later.pk


def test_a_worker_keeps_its_model_until_another_has_waited(alice, settings):
    settings.CHUNK_SIZE = 1
    settings.SERVED_MODELS = {"tiny-chat": "x", "other": "y"}
    engines._loaded.clear()
    first = ingest(alice, chat_requests(3))
    other = ingest(alice, chat_requests(2, model="other"))
    assert chunk_run_next().batch_id == first.pk  # loads tiny-chat
    settings.MODEL_SWITCH_AFTER_SECONDS = 3600
    assert chunk_run_next().batch_id == first.pk  # "other" has not waited long enough
    settings.MODEL_SWITCH_AFTER_SECONDS = 0
    assert chunk_run_next().batch_id == other.pk


def upload(client, content: bytes, **kwargs):
    return client.files.create(file=("in.jsonl", content), purpose="batch", **kwargs)


def test_an_idempotency_key_makes_a_retried_create_return_the_first_batch(openai_client):
    file = upload(openai_client, chat_requests(2))
    headers = {"Idempotency-Key": "nightly-2026-11-25"}
    first = openai_client.batches.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h", extra_headers=headers
    )
    again = openai_client.batches.with_raw_response.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h", extra_headers=headers
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.parse().id == first.id
    assert Batch.objects.count() == 1

    with pytest.raises(openai.UnprocessableEntityError) as raised:
        openai_client.batches.create(
            input_file_id=file.id,
            endpoint=CHAT,
            completion_window="24h",
            metadata={"other": "body"},
            extra_headers=headers,
        )
    assert raised.value.body["code"] == "idempotency_key_reused"
    # Without the header: OpenAI's behaviour, a new batch each time.
    openai_client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    assert Batch.objects.count() == 2


def test_an_idempotency_key_makes_a_retried_upload_return_the_first_file(openai_client):
    headers = {"Idempotency-Key": "upload-1"}
    first = upload(openai_client, chat_requests(3), extra_headers=headers)
    again = upload(openai_client, chat_requests(3), extra_headers=headers)
    assert again.id == first.id and File.objects.count() == 1
    with pytest.raises(openai.UnprocessableEntityError):
        upload(openai_client, chat_requests(4), extra_headers=headers)
    assert File.objects.count() == 1


def test_a_failed_create_does_not_burn_its_key(openai_client):
    headers = {"Idempotency-Key": "k"}
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.create(
            input_file_id="file-nope", endpoint=CHAT, completion_window="24h", extra_headers=headers
        )
    file = upload(openai_client, chat_requests(1))
    fixed = openai_client.batches.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h", extra_headers=headers
    )
    assert [b.public_id for b in Batch.objects.all()] == [fixed.id]


def test_partial_results_stream_while_the_batch_runs(openai_client, alice_key, api_url, settings):
    settings.CHUNK_SIZE = 2
    file = upload(openai_client, chat_requests(5))
    created = openai_client.batches.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h"
    )
    from batches.pipeline.ingest import batch_ingest

    batch = Batch.objects.get(public_id=created.id)
    batch_ingest(batch_id=batch.pk)
    chunk_run(chunk_id=Chunk.objects.filter(batch=batch).order_by("index").first().pk)

    retrieved = openai_client.batches.retrieve(created.id)
    assert retrieved.status == "in_progress"
    assert retrieved.request_counts.completed == 2
    assert retrieved.usage.output_tokens > 0
    response = httpx.get(
        f"{api_url}/batches/{created.id}/results?partial=true",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 200
    assert [json.loads(x)["custom_id"] for x in response.text.splitlines()] == ["req-0", "req-1"]


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint on loopback that fails as many times as told first."""

    received: list = []
    failures_left = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(500)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received, Receiver.failures_left = [], 0
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks"
    server.shutdown()


def test_webhooks_are_signed_retried_and_never_block(openai_client, alice_key, receiver, q_sync):
    key = ApiKey.objects.get()
    api_key_set_webhook(api_key=key, url=receiver)
    Receiver.failures_left = 1
    file = upload(openai_client, chat_requests(2))
    created = openai_client.batches.create(
        input_file_id=file.id, endpoint=CHAT, completion_window="24h"
    )
    batch = openai_client.batches.retrieve(created.id)
    assert batch.status == "completed"  # the failing receiver held nothing up

    delivery = WebhookDelivery.objects.get()
    assert (delivery.event, delivery.attempts, delivery.delivered_at) == (
        "batch.completed",
        1,
        None,
    )
    assert delivery.last_error == "HTTP 500"
    assert delivery.next_attempt_at > timezone.now()  # backoff
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert reconcile()["webhooks"] == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.delivered_at is not None

    headers, body = Receiver.received[-1]
    assert json.loads(body) == {"type": "batch.completed", "data": {"id": created.id}}
    timestamp, signature = (
        part.split("=", 1)[1] for part in headers["Webhook-Signature"].split(",")
    )
    expected = hmac.new(
        key.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    )
    assert signature == expected.hexdigest()
    assert len(Receiver.received) == 2
    assert not delivery_attempt(delivery_id=delivery.pk)  # delivered: never sent again


def test_every_ending_has_its_event(alice, receiver):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from batches import services
    from batches.pipeline.ingest import batch_ingest

    key, _ = services.api_key_create(owner=alice, webhook_url=receiver)

    def submitted(content: bytes) -> Batch:
        file = services.file_create(
            owner=alice, uploaded=SimpleUploadedFile("in.jsonl", content), purpose="batch"
        )
        batch = services.batch_create(
            owner=alice,
            input_file_id=file.public_id,
            endpoint=CHAT,
            completion_window="24h",
            api_key=key,
        )
        batch_ingest(batch_id=batch.pk)
        return batch

    submitted(b"{oops\n")
    cancelled = submitted(chat_requests(1))
    services.batch_cancel(batch=cancelled)
    batch_finalize(batch_id=cancelled.pk)
    expired = submitted(chat_requests(1))
    Batch.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    reconcile()
    batch_finalize(batch_id=expired.pk)
    completed = submitted(chat_requests(1))
    while chunk_run_next() is not None:
        pass
    batch_finalize(batch_id=completed.pk)

    assert set(WebhookDelivery.objects.values_list("event", flat=True)) == {
        "batch.failed",
        "batch.cancelled",
        "batch.expired",
        "batch.completed",
    }
    reconcile()
    assert sorted(json.loads(body)["type"] for _, body in Receiver.received) == [
        "batch.cancelled",
        "batch.completed",
        "batch.expired",
        "batch.failed",
    ]
