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


def _finished_batch(owner, *, model: str, count: int, failed: int = 0) -> Batch:
    input_file = File.objects.create(
        owner=owner, purpose=File.Purpose.BATCH, filename="in.jsonl", bytes=1, content="x"
    )
    return Batch.objects.create(
        owner=owner,
        endpoint=Batch.Endpoint.CHAT_COMPLETIONS,
        input_file=input_file,
        status=Batch.Status.COMPLETED,
        model=model,
        expires_at=timezone.now(),
        total_requests=count,
        completed_requests=count - failed,
        failed_requests=failed,
    )


def make_batch(owner, *, model: str = "tiny-chat", count: int = 3, prefix: str = "cand") -> Batch:
    """A finished batch with `count` completed results, written directly (no engine)."""
    now = timezone.now()
    batch = _finished_batch(owner, model=model, count=count)
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


# --- Odd stored bodies -------------------------------------------------------------

_TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def _chat(*messages) -> dict:
    return {"model": MODEL, "messages": list(messages)}


def _user(content) -> dict:
    return {"role": "user", "content": content}


def _answer(content, **message) -> dict:
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message}}],
    }


HUGE_TEXT = "lorem ipsum " * 100_000  # 1.2 MB: far more than a table cell should hold
_DEEP: list = ["deep"]
for _ in range(90):  # ingest refuses JSON nested more than 100 levels
    _DEEP = [_DEEP]

# (custom_id, body, response, status): what a stored row can hold, however it got
# there (the engine keeps a failed request's row; imports keep the input's body).
# Every viewer page, admin page and export must render each of them.
ODD_BODIES: list[tuple[str, object, object, str]] = [
    (
        "text-part-int",  # fails in the engine; the row is kept
        _chat(_user([{"type": "text", "text": 5}])),
        {"error": {"message": "Invalid content part", "type": "BadRequestError", "code": 400}},
        Request.Status.FAILED,
    ),
    (
        "text-parts",
        _chat(_user([{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}])),
        _answer([{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]),
        Request.Status.COMPLETED,
    ),
    (
        "image-part",
        _chat(
            _user([{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {}}])
        ),
        _answer("A cat."),
        Request.Status.COMPLETED,
    ),
    (
        "mixed-list",
        _chat(_user(["plain", 5, None, True, [1, 2], {"nested": {"a": [1, {"b": None}]}}])),
        _answer(["loose", 7]),
        Request.Status.COMPLETED,
    ),
    (
        "odd-types",
        _chat(_user({"a": {"b": [1, 2]}}), _user(42), _user(True), _user(None), _user(1.5)),
        _answer({"not": "text"}),
        Request.Status.COMPLETED,
    ),
    (
        "tool-messages",
        _chat(
            _user("What is the weather in Paris?"),
            {"role": "assistant", "content": None, "tool_calls": [_TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ),
        _answer(None, tool_calls=[_TOOL_CALL]),
        Request.Status.COMPLETED,
    ),
    (
        "odd-tool-calls",
        _chat(
            _user("Call something."),
            {"role": "assistant", "content": None, "tool_calls": "not a list"},
            {"role": "assistant", "tool_calls": [5, {"function": "x"}, {"function": {}}]},
        ),
        _answer("", tool_calls={"function": None}),
        Request.Status.COMPLETED,
    ),
    (
        "missing-role",
        _chat({"content": "Who am I?"}, {"role": 7, "content": "x"}, {"role": ["a"], "content": 1}),
        _answer("Nobody."),
        Request.Status.COMPLETED,
    ),
    (
        "non-object-messages",
        _chat("just a string", 3, None, [], _user("And a real one.")),
        _answer("Fine."),
        Request.Status.COMPLETED,
    ),
    ("no-messages", {"model": MODEL}, _answer("Nothing asked."), Request.Status.COMPLETED),
    ("body-not-object", ["a", "list"], _answer("?"), Request.Status.COMPLETED),
    (
        "prompt-token-ids",
        {"model": MODEL, "prompt": [1, 2, 3]},
        {"object": "text_completion", "choices": [{"index": 0, "text": " four"}]},
        Request.Status.COMPLETED,
    ),
    (
        "shadowing-keys",  # keys a template would take for a dict's methods
        {**_chat(_user("Hi.")), "items": 5, "keys": None, "values": [1], "get": {}},
        _answer("Hello."),
        Request.Status.COMPLETED,
    ),
    ("huge", _chat(_user(HUGE_TEXT)), _answer(HUGE_TEXT), Request.Status.COMPLETED),
    ("deep", _chat(_user(_DEEP)), _answer(_DEEP), Request.Status.COMPLETED),
    (
        "markup",
        _chat(_user("<script>alert('prompt')</script>")),
        _answer("<img src=x onerror=alert('response')>"),
        Request.Status.COMPLETED,
    ),
    ("response-none", _chat(_user("Cancelled.")), None, Request.Status.CANCELLED),
    ("response-string", _chat(_user("Odd.")), "a string", Request.Status.COMPLETED),
    ("response-list", _chat(_user("Odd.")), [1, 2], Request.Status.COMPLETED),
    ("choices-empty", _chat(_user("Odd.")), {"choices": []}, Request.Status.COMPLETED),
    ("choices-not-list", _chat(_user("Odd.")), {"choices": "x"}, Request.Status.COMPLETED),
    ("choice-not-object", _chat(_user("Odd.")), {"choices": [5]}, Request.Status.COMPLETED),
    (
        "message-not-object",
        _chat(_user("Odd.")),
        {"choices": [{"message": "str"}, {"message": None}]},
        Request.Status.COMPLETED,
    ),
    ("text-not-string", _chat(_user("Odd.")), {"choices": [{"text": 7}]}, Request.Status.COMPLETED),
    ("error-string", _chat(_user("Odd.")), {"error": "went wrong"}, Request.Status.FAILED),
    ("error-message-int", _chat(_user("Odd.")), {"error": {"message": 5}}, Request.Status.FAILED),
    (
        "error-null",
        _chat(_user("Odd.")),
        {"error": None, **_answer("Fine after all.")},
        Request.Status.COMPLETED,
    ),
]


def make_odd_batch(owner, *, model: str = "tiny-chat") -> Batch:
    """A finished batch holding one result per ODD_BODIES entry (custom_id = its name),
    written directly; two such batches share every custom_id, for the compare page."""
    now = timezone.now()
    failed = sum(status != Request.Status.COMPLETED for *_, status in ODD_BODIES)
    batch = _finished_batch(owner, model=model, count=len(ODD_BODIES), failed=failed)
    for line, (custom_id, body, response, status) in enumerate(ODD_BODIES, start=1):
        completed = status == Request.Status.COMPLETED
        Request.objects.create(
            batch=batch,
            line=line,
            custom_id=custom_id,
            body=body,
            status=status,
            status_code=200 if completed else 400 if response is not None else None,
            response=response,
            prompt_tokens=5 if completed else None,
            completion_tokens=3 if completed else None,
            finished_at=now,
        )
    return batch
