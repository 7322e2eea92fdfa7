"""Test data: request lines, JSONL input files and batches, as plain functions.

Data helpers live here, process and waiting helpers in tests/helpers.py, and
fixtures (personas, clients, servers) in the conftest.py files; test modules
import from these, never from one another.
"""

import json

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from batches import services
from batches.models import Batch, File, Request
from batches.pipeline.ingest import batch_ingest

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MODEL = settings.TINY_MODEL_NAME


def request_line(custom_id: str, content: str = "hello", *, model: str = MODEL, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def jsonl(lines: list) -> bytes:
    """JSONL bytes from dicts (serialized) and str/bytes (taken as they are)."""
    out = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out.append(line if isinstance(line, bytes) else line.encode())
    return b"\n".join(out) + b"\n"


def chat_requests(count: int, **body) -> bytes:
    return jsonl(
        [request_line(f"req-{i}", f"evaluate candidate {i}", **body) for i in range(count)]
    )


def ingest(owner, content: bytes, endpoint: str = CHAT) -> Batch:
    """A batch of `content` through the real upload, create and validation services."""
    file = services.file_create(
        owner=owner, uploaded=SimpleUploadedFile("in.jsonl", content), purpose="batch"
    )
    batch = services.batch_create(
        owner=owner, input_file_id=file.public_id, endpoint=endpoint, completion_window="24h"
    )
    batch_ingest(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def make_batch(owner, *, model: str = "tiny-chat", count: int = 3, prefix: str = "cand") -> Batch:
    """A finished batch with `count` completed results, written directly (no engine)."""
    now = timezone.now()
    input_file = File.objects.create(
        owner=owner, purpose=File.Purpose.BATCH, filename="in.jsonl", bytes=1, content="x"
    )
    batch = Batch.objects.create(
        owner=owner,
        endpoint=Batch.Endpoint.CHAT_COMPLETIONS,
        input_file=input_file,
        status=Batch.Status.COMPLETED,
        model=model,
        expires_at=now,
        total_requests=count,
        completed_requests=count,
    )
    Request.objects.bulk_create(
        Request(
            batch=batch,
            line=i + 1,
            custom_id=f"{prefix}-{i}",
            body={
                "model": model,
                "temperature": 0.2,
                "messages": [
                    {"role": "system", "content": "You evaluate candidates."},
                    {"role": "user", "content": f"Candidate {i} writes Rust and Python."},
                ],
            },
            status=Request.Status.COMPLETED,
            status_code=200,
            response={
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"{model} says hire {i}"},
                        "finish_reason": "stop",
                    }
                ],
            },
            prompt_tokens=12,
            completion_tokens=4,
            latency_ms=30,
            finished_at=now,
        )
        for i in range(count)
    )
    return batch
