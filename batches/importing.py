"""Load batch output files made elsewhere (ours, or `vllm run-batch`'s) for curation.

An import becomes one completed Batch whose Request rows are the output file's
lines, so the viewer, exports and compare page treat it like a batch run here.
Files are streamed line by line and never held whole in memory. Lines that
cannot be imported are counted and reported (line number and reason); they do
not stop the import.

Importing the same output file again for the same owner is a no-op: the batch
records the SHA-256 of the file's bytes in `metadata.import_sha256`, and an
import first looks for a batch of the owner's with that digest.
"""

import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from batches.files import copy_hashing, delete_stored, scratch_dir
from batches.jsonl import (
    MAX_REPORTED_LINES,
    contains_nul,
    iter_lines,
    loads_or_none,
    without_bom,
)
from batches.models import Batch, File, Request
from batches.pipeline.ingest import INSERT_BATCH_SIZE
from batches.services import file_store_generated
from core.exceptions import ApplicationError, error_body
from core.text import quoted

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Token counts must fit the PositiveIntegerField columns on every database.
_MAX_COUNT = 2**31 - 1


class ResultsImportError(ApplicationError):
    """The file cannot be imported at all (as opposed to single lines skipped)."""

    code = "invalid_import"


@dataclass(frozen=True)
class SkippedLine:
    line: int
    reason: str


@dataclass
class ImportReport:
    batch_id: str = ""
    already_imported: bool = False
    imported: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    # The first MAX_REPORTED_LINES skipped lines; `skipped` counts them all.
    skipped_lines: list[SkippedLine] = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_lines) < MAX_REPORTED_LINES:
            self.skipped_lines.append(SkippedLine(line, reason))


@dataclass
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class _Result:
    """One output line, as the Request row it becomes (body added later)."""

    line: int
    custom_id: str
    status: str
    status_code: int | None
    response: dict | None
    error: dict | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None


def results_import(
    *,
    output_path: Path,
    input_path: Path | None,
    owner: "User",
    model: str | None,
    endpoint: str,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a batch output JSONL file as one completed batch owned by `owner`.

    The batch's model is the first response body's `model`, else `model`, else
    (with an input file) the first input body's. With `input_path`, each
    request's body is its input line's (matched by custom_id) and an output line
    without one is skipped; without it, bodies are placeholders holding only
    the model. `progress` is called with the number of output lines read.
    """
    if endpoint not in Batch.Endpoint.values:
        raise ResultsImportError(
            f"Unknown endpoint {quoted(endpoint)}: use {' or '.join(Batch.Endpoint.values)}."
        )
    report = ImportReport()
    tmp = scratch_dir()
    token = secrets.token_hex(8)
    output_copy = tmp / f"import-{token}-output.jsonl"
    input_copy = tmp / f"import-{token}-input.jsonl"
    staging = tmp / f"import-{token}-rows.jsonl"
    stored: list[File] = []
    try:
        # Everything slow happens before any transaction: copying, hashing and
        # parsing files that may be hundreds of MB would otherwise hold the
        # database (on SQLite, every writer) for as long as the disk takes.
        # file_store_generated moves the file it stores, so it gets a copy;
        # the digest is of exactly the bytes stored.
        sha256 = copy_hashing(output_path, output_copy)
        existing = _imported_batch(owner=owner, sha256=sha256)
        if existing is not None:
            return _already_imported(existing)

        index: dict[str, int] = {}
        input_model = None
        if input_path is not None:
            copy_hashing(input_path, input_copy)
            index, input_model = _index_input(input_copy)
        batch_model = _first_response_model(output_copy) or model or input_model
        if not batch_model:
            raise ResultsImportError(
                "No response body names the model: give it with --model."
                if input_path is None
                else "Neither the responses nor the input bodies name the model: give --model."
            )

        totals = _stage_rows(
            output_copy=output_copy,
            input_copy=input_copy if input_path is not None else None,
            index=index,
            staging=staging,
            placeholder=_placeholder_body(endpoint, batch_model),
            report=report,
            progress=progress,
        )
        if report.imported == 0:
            raise ResultsImportError(
                f"{output_path.name} holds no importable results ({report.skipped} lines skipped)."
            )

        expires_at = timezone.now() + timedelta(days=settings.RETENTION_DAYS)
        output_file = file_store_generated(
            owner=owner, path=output_copy, filename=output_path.name[:255], expires_at=expires_at
        )
        stored.append(output_file)
        input_file = None
        if input_path is not None:
            input_file = file_store_generated(
                owner=owner,
                path=input_copy,
                filename=input_path.name[:255],
                expires_at=expires_at,
                purpose=File.Purpose.BATCH,
            )
            stored.append(input_file)

        batch, created = _record(
            owner=owner,
            endpoint=endpoint,
            model=batch_model,
            metadata={"imported_from": output_path.name, "import_sha256": sha256},
            input_file=input_file,
            output_file=output_file,
            report=report,
            totals=totals,
            staging=staging,
        )
        if not created:
            # Another import of the same file won the race while this one parsed.
            delete_stored(stored)
            return _already_imported(batch)
        report.batch_id = batch.public_id
        return report
    except BaseException:
        delete_stored(stored)
        raise
    finally:
        for path in (output_copy, input_copy, staging):
            path.unlink(missing_ok=True)


def _imported_batch(*, owner: "User", sha256: str) -> Batch | None:
    return Batch.objects.filter(owner=owner, metadata__import_sha256=sha256).order_by("pk").first()


def _already_imported(batch: Batch) -> ImportReport:
    return ImportReport(
        batch_id=batch.public_id,
        already_imported=True,
        imported=batch.total_requests,
        completed=batch.completed_requests,
        failed=batch.failed_requests,
    )


def _lines(handle: IO[bytes]):
    """(line number, bytes or None if over-long, offset of the next line)."""
    for number, raw in iter_lines(handle, settings.MAX_LINE_BYTES):
        if raw is not None and number == 1:
            raw = without_bom(raw)
        yield number, raw, handle.tell()


def _index_input(path: Path) -> tuple[dict[str, int], str | None]:
    """custom_id -> byte offset of its input line (the first, if repeated), and
    the first body's model. Offsets rather than bodies keep memory small."""
    index: dict[str, int] = {}
    model = None
    with open(path, "rb") as handle:
        offset = 0
        for _, raw, next_offset in _lines(handle):
            data = loads_or_none(raw)
            if isinstance(data, dict) and isinstance(body := data.get("body"), dict):
                custom_id = data.get("custom_id")
                if isinstance(custom_id, str) and custom_id and custom_id not in index:
                    index[custom_id] = offset
                if model is None and isinstance(body.get("model"), str) and body["model"]:
                    model = body["model"]
            offset = next_offset
    return index, model


def _first_response_model(path: Path) -> str | None:
    """The `model` of the first response body that names one (usually line 1)."""
    with open(path, "rb") as handle:
        for _, raw, _ in _lines(handle):
            data = loads_or_none(raw)
            response = data.get("response") if isinstance(data, dict) else None
            body = response.get("body") if isinstance(response, dict) else None
            if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"]:
                return body["model"]
    return None


def _placeholder_body(endpoint: str, model: str) -> dict:
    if endpoint == Batch.Endpoint.COMPLETIONS:
        return {"model": model, "prompt": ""}
    return {"model": model, "messages": []}


def _stage_rows(
    *,
    output_copy: Path,
    input_copy: Path | None,
    index: dict[str, int],
    staging: Path,
    placeholder: dict,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> _Totals:
    """Parse every output line into `staging`, one ready row per line, so the
    transaction that inserts them does no parsing."""
    totals = _Totals()
    seen: set[str] = set()
    with ExitStack() as files:
        output = files.enter_context(open(output_copy, "rb"))
        rows = files.enter_context(open(staging, "wb"))
        inputs = files.enter_context(open(input_copy, "rb")) if input_copy else None
        for number, raw, _ in _lines(output):
            if progress:
                progress(number)
            result = _parse_result(number, raw)
            if result is None:
                continue
            if isinstance(result, str):
                report.skip(number, result)
                continue
            if result.custom_id in seen:
                report.skip(
                    number, f"custom_id {quoted(result.custom_id)} appears on an earlier line"
                )
                continue
            seen.add(result.custom_id)
            body: dict | str = placeholder
            if inputs is not None:
                body = _input_body(inputs, index, result.custom_id)
                if isinstance(body, str):
                    report.skip(number, body)
                    continue
            rows.write(orjson.dumps([*_fields(result), body]) + b"\n")
            report.imported += 1
            if result.status == Request.Status.COMPLETED:
                report.completed += 1
            else:
                report.failed += 1
            totals.input_tokens += result.prompt_tokens or 0
            totals.output_tokens += result.completion_tokens or 0
            totals.cached_tokens += result.cached_tokens or 0
    return totals


def _input_body(inputs: IO[bytes], index: dict[str, int], custom_id: str) -> dict | str:
    """The body of the input line with `custom_id`, or why there is none."""
    offset = index.get(custom_id)
    if offset is None:
        return f"custom_id {quoted(custom_id)} is not in the input file"
    inputs.seek(offset)
    raw = without_bom(inputs.readline())
    data = orjson.loads(raw)  # Parsed once already by _index_input.
    if b"\\u0000" in raw and contains_nul(data["body"]):
        return (
            f"the input line of {quoted(custom_id)} contains a NUL character, "
            "which cannot be stored"
        )
    return data["body"]


def _parse_result(number: int, raw: bytes | None) -> _Result | str | None:
    """The line's result, the reason it cannot be imported, or None if blank."""
    if raw is None:
        return f"longer than {settings.MAX_LINE_BYTES} bytes"
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as decode_error:
        return f"not valid JSON: {decode_error}"
    if not isinstance(data, dict):
        return "not a JSON object"
    if b"\\u0000" in raw and contains_nul(data):
        return "contains a NUL character (\\u0000), which cannot be stored"
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "no custom_id (a non-empty string)"
    if len(custom_id) > Request.CUSTOM_ID_MAX_LENGTH:
        return f"custom_id is longer than {Request.CUSTOM_ID_MAX_LENGTH} characters"

    response, error = data.get("response"), data.get("error")
    failed: dict[str, Any] = {
        "line": number,
        "custom_id": custom_id,
        "status": Request.Status.FAILED,
    }
    no_tokens: dict[str, Any] = {
        "prompt_tokens": None,
        "completion_tokens": None,
        "cached_tokens": None,
    }
    if response is None:
        # Our cancelled/expired/not-run lines: no response, an {code, message} error.
        if error is None:
            return "neither a response nor an error"
        if isinstance(error, str):
            error = {"code": None, "message": error}
        if not isinstance(error, dict):
            return "error is neither an object nor a string"
        return _Result(**failed, status_code=None, response=None, error=error, **no_tokens)
    if not isinstance(response, dict):
        return "response is not an object"
    status_code = response.get("status_code")
    if type(status_code) is not int or not 100 <= status_code <= 599:
        return "response.status_code is not an HTTP status code"
    body = response.get("body")
    if status_code == 200:
        if not isinstance(body, dict):
            return "status 200 without a response body"
        usage = body.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        details = usage.get("prompt_tokens_details")
        return _Result(
            line=number,
            custom_id=custom_id,
            status=Request.Status.COMPLETED,
            status_code=200,
            response=body,
            error=None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_count(
                details.get("cached_tokens") if isinstance(details, dict) else None
            ),
        )
    if not isinstance(body, dict):
        # vllm run-batch: no body, the error (an ErrorResponse or a message) beside it.
        body = _error_response(error, status_code)
    return _Result(**failed, status_code=status_code, response=body, error=None, **no_tokens)


def _error_response(error, status_code: int) -> dict:
    """A failed line's error as the response body our engines write:
    {"error": {message, type, param, code}}."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        return error
    if isinstance(error, dict) and "message" in error:
        # Older vLLM: a flat {"object": "error", message, type, param, code}.
        return error_body(
            str(error["message"]),
            type=str(error.get("type") or "invalid_request_error"),
            param=error.get("param"),
            code=error.get("code"),
        )
    message = error if isinstance(error, str) and error else f"HTTP {status_code}"
    kind = "server_error" if status_code >= 500 else "invalid_request_error"
    return error_body(message, type=kind)


def _count(value) -> int | None:
    if type(value) is int and 0 <= value <= _MAX_COUNT:
        return value
    return None


# A staged row: the result's fields in declaration order, then the body.
_STAGED_FIELDS = tuple(f.name for f in fields(_Result))


def _fields(result: _Result) -> list:
    return [getattr(result, name) for name in _STAGED_FIELDS]


@transaction.atomic
def _record(
    *,
    owner: "User",
    endpoint: str,
    model: str,
    metadata: dict,
    input_file: File | None,
    output_file: File,
    report: ImportReport,
    totals: _Totals,
    staging: Path,
) -> tuple[Batch, bool]:
    """The batch and its rows, all or nothing; (batch, created).

    No constraint can make a JSON key unique, so imports for one owner take
    turns on the owner's row (PostgreSQL; SQLite's IMMEDIATE transactions
    already serialize writers) and the digest is checked again under the lock.
    """
    users = get_user_model().objects
    list(users.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
    existing = _imported_batch(owner=owner, sha256=metadata["import_sha256"])
    if existing is not None:
        return existing, False

    now = timezone.now()
    batch = Batch.objects.create(
        owner=owner,
        endpoint=endpoint,
        input_file=input_file,
        output_file=output_file,
        status=Batch.Status.COMPLETED,
        model=model,
        metadata=metadata,
        created_at=now,
        expires_at=now,
        in_progress_at=now,
        finalizing_at=now,
        completed_at=now,
        total_requests=report.imported,
        completed_requests=report.completed,
        failed_requests=report.failed,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_tokens=totals.cached_tokens,
    )
    # The rows come from our own scratch file, already parsed and checked, so
    # the transaction spends its time on inserts only.
    pending: list[Request] = []
    with open(staging, "rb") as rows:
        for raw in rows:
            *values, body = orjson.loads(raw)
            fields = dict(zip(_STAGED_FIELDS, values, strict=True))
            pending.append(Request(batch=batch, body=body, attempts=1, finished_at=now, **fields))
            if len(pending) >= INSERT_BATCH_SIZE:
                Request.objects.bulk_create(pending)
                pending = []
    Request.objects.bulk_create(pending)
    return batch, True
