"""Validate a batch's input file while streaming it, and store one row per request.

The file is read line by line and never held whole in memory. Any problem fails
the batch with OpenAI-style `errors.data[]` entries (code, message, param, line);
the codes are stable and listed in the README.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from batches import webhooks
from batches.engines import served_models
from batches.jsonl import (
    MAX_JSON_DEPTH,
    MAX_REPORTED_LINES,
    contains_nul,
    deeper_than,
    iter_lines,
    without_bom,
)
from batches.models import Batch, Chunk, Request
from batches.pipeline import enqueue
from core.text import quoted

logger = logging.getLogger(__name__)

INSERT_BATCH_SIZE = 1000


@dataclass
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(frozen=True)
class NewRequest:
    line: int
    custom_id: str
    body: dict


class InvalidInput(Exception):
    def __init__(self, errors: list[LineError]):
        super().__init__(errors[0].message)
        self.errors = errors


@dataclass
class InputValidator:
    """Checks one line at a time; remembers what spans lines (custom_ids, model)."""

    endpoint: str
    models: list[str]
    max_requests: int
    count: int = 0
    model: str | None = None
    custom_ids: set[str] = field(default_factory=set)

    def check(self, line: int, raw: bytes | None) -> "NewRequest | LineError | None":
        """The line's request, its error, or None for a blank line."""
        if raw is None:
            return LineError(
                "line_too_long",
                f"Line {line} is longer than {settings.MAX_LINE_BYTES} bytes.",
                line,
            )
        if line == 1:
            raw = without_bom(raw)
        if raw.isspace() or not raw:
            return None

        self.count += 1
        if self.count > self.max_requests:
            return LineError(
                "too_many_requests",
                f"The input file has more than {self.max_requests} requests.",
                line,
            )
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return LineError("invalid_encoding", f"Line {line} is not valid UTF-8.", line)
            return LineError("invalid_json", f"Line {line} is not valid JSON: {error}.", line)
        if not isinstance(data, dict):
            return LineError("invalid_line", f"Line {line} is not a JSON object.", line)
        # Counting brackets (in strings too) is cheap and rules out almost every line.
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and deeper_than(data, MAX_JSON_DEPTH):
            return LineError(
                "invalid_json",
                f"Line {line} nests JSON more than {MAX_JSON_DEPTH} levels deep.",
                line,
            )
        if b"\\u0000" in raw and contains_nul(data):
            return LineError(
                "invalid_character",
                f"Line {line} contains a NUL character (\\u0000), which cannot be stored.",
                line,
            )
        return self._check_request(line, data)

    def _check_request(self, line: int, data: dict) -> "NewRequest | LineError":
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return LineError(
                "missing_custom_id",
                f"Line {line} has no custom_id (a non-empty string).",
                line,
                "custom_id",
            )
        if len(custom_id) > Request.CUSTOM_ID_MAX_LENGTH:
            return LineError(
                "invalid_custom_id",
                f"Line {line}: custom_id is longer than {Request.CUSTOM_ID_MAX_LENGTH} characters.",
                line,
                "custom_id",
            )
        if custom_id in self.custom_ids:
            return LineError(
                "duplicate_custom_id",
                f"Line {line}: custom_id {quoted(custom_id)} appears on an earlier line.",
                line,
                "custom_id",
            )
        self.custom_ids.add(custom_id)

        if data.get("method") != "POST":
            return LineError(
                "invalid_method", f"Line {line}: method must be 'POST'.", line, "method"
            )
        if data.get("url") != self.endpoint:
            return LineError(
                "invalid_url",
                f"Line {line}: url must be the batch endpoint '{self.endpoint}'.",
                line,
                "url",
            )
        body = data.get("body")
        if not isinstance(body, dict):
            return LineError("invalid_body", f"Line {line}: body must be an object.", line, "body")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return LineError(
                "missing_model", f"Line {line}: body.model is required.", line, "body.model"
            )
        if model not in self.models:
            return LineError(
                "model_not_found",
                f"Line {line}: model {quoted(model)} is not served here "
                f"(served: {', '.join(self.models)}).",
                line,
                "body.model",
            )
        if self.model is None:
            self.model = model
        elif model != self.model:
            return LineError(
                "mixed_models",
                f"Line {line}: model {quoted(model)} differs from {self.model!r}; "
                "a batch runs one model.",
                line,
                "body.model",
            )
        if self.endpoint == Batch.Endpoint.CHAT_COMPLETIONS:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return LineError(
                    "missing_messages",
                    f"Line {line}: body.messages must be a non-empty list.",
                    line,
                    "body.messages",
                )
        elif body.get("prompt") in (None, "", []):
            return LineError(
                "missing_prompt", f"Line {line}: body.prompt is required.", line, "body.prompt"
            )
        return NewRequest(line=line, custom_id=custom_id, body=body)


def batch_ingest(*, batch_id: int) -> None:
    """Validate the input file and store its requests, chunked and enqueued.

    Rows are inserted in autocommitted slices rather than one long transaction,
    so on SQLite the engine's result writes are not locked out for the whole
    file; a failure removes the slices already written.
    """
    batch = Batch.objects.select_related("input_file").get(pk=batch_id)
    if batch.status == Batch.Status.CANCELLING:
        _finish_cancelled(batch)
        return
    if batch.status != Batch.Status.VALIDATING:
        return
    # Rows left by an attempt that died half-way.
    Request.objects.filter(batch=batch).delete()

    try:
        model, count = _store_requests(batch)
    except InvalidInput as invalid:
        Request.objects.filter(batch=batch).delete()
        _finish_failed(batch, invalid.errors)
        return

    chunk_size = settings.CHUNK_SIZE
    with transaction.atomic():
        started = Batch.objects.filter(pk=batch.pk, status=Batch.Status.VALIDATING).update(
            status=Batch.Status.IN_PROGRESS,
            in_progress_at=timezone.now(),
            model=model,
            total_requests=count,
        )
        if started:
            chunks = Chunk.objects.bulk_create(
                Chunk(batch=batch, index=i, first_line=first, last_line=last, size=size)
                for i, (first, last, size) in enumerate(_chunk_ranges(batch, chunk_size))
            )
            enqueue.engine_turns(len(chunks))
    if not started:
        # Cancelled while validating: nothing ran, nothing is kept.
        Request.objects.filter(batch=batch).delete()
        _finish_cancelled(batch)
        return
    logger.info("%s: %d requests in %d chunks", batch, count, len(chunks))


def _store_requests(batch: Batch) -> tuple[str, int]:
    """Stream, validate and insert; return (model, request count)."""
    # Only imported batches have no input file, and they are created completed.
    assert batch.input_file is not None
    if batch.input_file.deleted_at is not None:
        raise InvalidInput(
            [
                LineError(
                    "input_file_missing", f"Input file {batch.input_file.public_id} was deleted."
                )
            ]
        )
    if batch.input_file.bytes > settings.MAX_UPLOAD_BYTES:
        raise InvalidInput(
            [
                LineError(
                    "file_too_large",
                    f"The input file is larger than {settings.MAX_UPLOAD_BYTES} bytes.",
                )
            ]
        )

    validator = InputValidator(
        endpoint=batch.endpoint,
        models=served_models(),
        max_requests=settings.MAX_BATCH_REQUESTS,
    )
    errors: list[LineError] = []
    pending: list[NewRequest] = []
    with batch.input_file.content.open("rb") as handle:
        for line, raw in iter_lines(handle, settings.MAX_LINE_BYTES):
            result = validator.check(line, raw)
            if isinstance(result, LineError):
                errors.append(result)
                if len(errors) >= MAX_REPORTED_LINES or result.code == "too_many_requests":
                    break
            elif result is not None and not errors:
                pending.append(result)
                if len(pending) >= INSERT_BATCH_SIZE:
                    insert_requests(batch.pk, pending)
                    pending = []
    if not errors and validator.count == 0:
        errors.append(LineError("empty_file", "The input file has no requests."))
    if errors:
        raise InvalidInput(errors)
    insert_requests(batch.pk, pending)
    # No errors and at least one request: every request passed _check_request,
    # which sets the model.
    assert validator.model is not None
    return validator.model, validator.count


def insert_requests(batch_id: int, requests: list[NewRequest]) -> None:
    """Insert new Request rows, bypassing the ORM's per-row work.

    This is the ingest hot path: 50,000 rows and 200 MB of JSON per batch.
    bulk_create spent most of its time building model instances and adapting
    parameters (on PostgreSQL, quoting UNNEST arrays); COPY on PostgreSQL and
    executemany on SQLite store the same rows several times faster.
    """
    if not requests:
        return
    table = Request._meta.db_table
    # Concrete fields, never relations seen from the other side.
    columns = [cast(Field, Request._meta.get_field(f)).column for f in _INSERTED_FIELDS]
    rows = [
        (batch_id, r.line, r.custom_id, orjson.dumps(r.body).decode(), Request.Status.PENDING, 0)
        for r in requests
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
            with cursor.copy(
                f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
            )


_INSERTED_FIELDS = ["batch", "line", "custom_id", "body", "status", "attempts"]


def _chunk_ranges(batch: Batch, size: int) -> Iterator[tuple[int, int, int]]:
    """(first_line, last_line, requests) of consecutive chunks of `size` requests.

    Blank lines are not requests, so chunk bounds come from the stored line
    numbers rather than arithmetic on the file.
    """
    lines = Request.objects.filter(batch=batch).order_by("line").values_list("line", flat=True)
    first = previous = None
    in_chunk = 0
    for line in lines.iterator(chunk_size=10_000):
        if first is None:
            first = line
        previous = line
        in_chunk += 1
        if in_chunk == size:
            yield first, previous, in_chunk
            first, in_chunk = None, 0
    if first is not None:
        assert previous is not None  # set together with first
        yield first, previous, in_chunk


def _finish_failed(batch: Batch, errors: list[LineError]) -> None:
    now = timezone.now()
    with transaction.atomic():
        failed = Batch.objects.filter(pk=batch.pk, status=Batch.Status.VALIDATING).update(
            status=Batch.Status.FAILED,
            failed_at=now,
            errors=[e.as_dict() for e in errors],
        )
        if failed:
            webhooks.notify_batch_ended(batch_id=batch.pk)
    if not failed:
        _finish_cancelled(batch)
    logger.info("%s failed validation: %s", batch, errors[0].message)


def _finish_cancelled(batch: Batch) -> None:
    with transaction.atomic():
        cancelled = Batch.objects.filter(pk=batch.pk, status=Batch.Status.CANCELLING).update(
            status=Batch.Status.CANCELLED, cancelled_at=timezone.now()
        )
        if cancelled:
            webhooks.notify_batch_ended(batch_id=batch.pk)
