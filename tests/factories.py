"""Test data written straight to the database, for tests about what reviewers do with it."""

from django.utils import timezone

from batches.models import Batch, File, Request


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
