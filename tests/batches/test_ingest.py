"""Every validation rule: the batch ends failed with a stable code and the line."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches import services
from batches.models import Batch, Chunk, Request
from batches.pipeline.ingest import batch_ingest
from tests.factories import CHAT, COMPLETIONS, chat_requests, ingest, jsonl, request_line


def codes(batch: Batch) -> list[tuple[str, int | None]]:
    return [(e["code"], e["line"]) for e in batch.errors]


def test_valid_input_becomes_rows_and_chunks(alice, settings):
    settings.CHUNK_SIZE = 2
    batch = ingest(alice, chat_requests(5))
    assert batch.status == Batch.Status.IN_PROGRESS
    assert batch.in_progress_at is not None
    assert (batch.total_requests, batch.model) == (5, "tiny-chat")
    rows = list(Request.objects.filter(batch=batch).order_by("line"))
    assert [(r.line, r.custom_id, r.status) for r in rows] == [
        (i + 1, f"req-{i}", Request.Status.PENDING) for i in range(5)
    ]
    assert rows[0].body["messages"] == [{"role": "user", "content": "evaluate candidate 0"}]
    assert list(Chunk.objects.order_by("index").values_list("first_line", "last_line", "size")) == [
        (1, 2, 2),
        (3, 4, 2),
        (5, 5, 1),
    ]


def test_blank_lines_bom_and_crlf_are_accepted(alice):
    lines = [json.dumps(request_line(f"r{i}")).encode() for i in range(3)]
    content = b"\xef\xbb\xbf" + lines[0] + b"\r\n\r\n" + lines[1] + b"\r\n  \n" + lines[2]
    batch = ingest(alice, content)
    assert batch.status == Batch.Status.IN_PROGRESS
    assert list(Request.objects.order_by("line").values_list("line", flat=True)) == [1, 3, 5]


def test_the_completions_endpoint_needs_a_prompt(alice):
    line = {"custom_id": "a", "method": "POST", "url": COMPLETIONS, "body": {"model": "tiny-chat"}}
    ok = {**line, "custom_id": "b", "body": {"model": "tiny-chat", "prompt": "Once"}}
    batch = ingest(alice, jsonl([ok, line]), endpoint=COMPLETIONS)
    assert codes(batch) == [("missing_prompt", 2)]


def ok(custom_id="ok"):
    return request_line(custom_id)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{not json", "invalid_json"),
        (b'{"custom_id": "\xff\xfe"}', "invalid_encoding"),
        ("[1, 2, 3]", "invalid_line"),
        ('"just a string"', "invalid_line"),
        ({**ok(), "custom_id": None}, "missing_custom_id"),
        ({k: v for k, v in ok().items() if k != "custom_id"}, "missing_custom_id"),
        ({**ok(), "custom_id": 7}, "missing_custom_id"),
        ({**ok(), "custom_id": "x" * 513}, "invalid_custom_id"),
        (ok("first"), "duplicate_custom_id"),
        ({**ok(), "method": "GET"}, "invalid_method"),
        ({**ok(), "url": "/v1/completions"}, "invalid_url"),
        ({**ok(), "body": "text"}, "invalid_body"),
        ({**ok(), "body": {"messages": [{"role": "user", "content": "x"}]}}, "missing_model"),
        (request_line("ok", model="gpt-4o"), "model_not_found"),
        ({**ok(), "body": {"model": "tiny-chat"}}, "missing_messages"),
        ({**ok(), "body": {"model": "tiny-chat", "messages": []}}, "missing_messages"),
        (request_line("ok", "nul \u0000 byte"), "invalid_character"),
    ],
)
def test_each_invalid_line_fails_the_batch(alice, line, code):
    batch = ingest(alice, jsonl([request_line("first"), line, request_line("last")]))
    assert batch.status == Batch.Status.FAILED
    assert batch.failed_at is not None
    assert codes(batch) == [(code, 2)]
    error = batch.errors[0]
    assert set(error) == {"code", "message", "param", "line"} and error["message"]
    assert not Request.objects.exists() and not Chunk.objects.exists()


def test_mixed_models_fail_the_batch(alice, settings):
    settings.SERVED_MODELS = {"tiny-chat": "x", "other": "y"}
    batch = ingest(alice, jsonl([request_line("a"), request_line("b", model="other")]))
    assert codes(batch) == [("mixed_models", 2)]


def test_more_than_50000_requests_fail_the_batch(alice):
    batch = ingest(alice, chat_requests(50_001))
    assert codes(batch) == [("too_many_requests", 50_001)]
    assert not Request.objects.exists()


def test_an_oversized_file_fails_without_being_read(alice, settings):
    settings.MAX_UPLOAD_BYTES = 100
    batch = ingest(alice, chat_requests(5))
    assert codes(batch) == [("file_too_large", None)]


def test_an_overlong_line_is_skipped_not_read_whole(alice, settings):
    settings.MAX_LINE_BYTES = 1024
    long_line = request_line("long", "word " * 1000)
    batch = ingest(alice, jsonl([request_line("a"), long_line, "{broken"]))
    assert codes(batch) == [("line_too_long", 2), ("invalid_json", 3)]


def test_an_empty_file_fails(alice):
    batch = ingest(alice, b"\n  \n")
    assert codes(batch) == [("empty_file", None)]


def test_a_non_utf8_file_fails_with_the_encoding_code(alice):
    content = json.dumps(request_line("a", "naïve café")).encode("utf-16")
    batch = ingest(alice, content)
    assert batch.errors[0]["code"] in {"invalid_encoding", "invalid_json"}
    assert all(e["code"] in {"invalid_encoding", "invalid_json"} for e in batch.errors)
    latin1 = json.dumps(request_line("a", "café"), ensure_ascii=False).encode("latin-1")
    assert codes(ingest(alice, latin1)) == [("invalid_encoding", 1)]


def test_errors_are_capped_and_reading_stops(alice):
    batch = ingest(alice, b"{bad\n" * 500)
    assert len(batch.errors) == 100
    assert batch.errors[-1]["line"] == 100


def test_a_deleted_input_file_fails_the_batch(alice):
    file = services.file_create(
        owner=alice, uploaded=SimpleUploadedFile("in.jsonl", chat_requests(1)), purpose="batch"
    )
    batch = services.batch_create(
        owner=alice, input_file_id=file.public_id, endpoint=CHAT, completion_window="24h"
    )
    services.file_delete(file=file)
    batch_ingest(batch_id=batch.pk)
    batch.refresh_from_db()
    assert codes(batch) == [("input_file_missing", None)]


def test_ingesting_twice_changes_nothing(alice):
    batch = ingest(alice, chat_requests(3))
    batch_ingest(batch_id=batch.pk)
    assert Request.objects.count() == 3
    assert Chunk.objects.count() == 1
