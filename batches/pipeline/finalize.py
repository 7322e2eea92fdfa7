"""Write a finished batch's output and error files and close it.

Counts are recomputed from the files written, so `request_counts` always match
what Aris downloads.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batches import webhooks
from batches.files import delete_stored, scratch_dir
from batches.models import Batch, Request
from batches.services import file_store_generated

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """Where finalizing leads, and what becomes of requests that never ran."""

    status: str
    timestamp_field: str
    not_run_status: str
    not_run_error: dict


# (status, ending) -> outcome.
_OUTCOMES: dict[tuple[str, str], Outcome] = {
    # Every chunk closed normally, so no request should be left; one that is
    # still gets an error line rather than vanishing from both files.
    (Batch.Status.FINALIZING, "completed"): Outcome(
        Batch.Status.COMPLETED,
        "completed_at",
        Request.Status.FAILED,
        {"code": "request_not_run", "message": "The request was not run."},
    ),
    (Batch.Status.FINALIZING, "expired"): Outcome(
        Batch.Status.EXPIRED,
        "expired_at",
        Request.Status.EXPIRED,
        {
            "code": "batch_expired",
            "message": "The batch expired (its completion window ended) before this request ran.",
        },
    ),
    (Batch.Status.CANCELLING, "completed"): Outcome(
        Batch.Status.CANCELLED,
        "cancelled_at",
        Request.Status.CANCELLED,
        {"code": "batch_cancelled", "message": "The batch was cancelled before this request ran."},
    ),
}


def batch_finalize(*, batch_id: int) -> None:
    batch = Batch.objects.select_related("owner").get(pk=batch_id)
    outcome = _OUTCOMES.get((batch.status, batch.ending))
    if outcome is None:
        logger.info("%s is %s; nothing to finalize", batch, batch.status)
        return
    Request.objects.filter(batch=batch, status=Request.Status.PENDING).update(
        status=outcome.not_run_status, error=outcome.not_run_error, finished_at=timezone.now()
    )

    # Slow file I/O happens outside any transaction.
    output_path, error_path, completed, failed = _write_files(batch)
    expires_at = timezone.now() + timedelta(
        seconds=batch.output_expires_after or settings.RETENTION_DAYS * 86400
    )
    output_file = error_file = None
    try:
        if completed:
            output_file = file_store_generated(
                owner=batch.owner,
                path=output_path,
                filename=f"{batch.public_id}_output.jsonl",
                expires_at=expires_at,
            )
        if failed:
            error_file = file_store_generated(
                owner=batch.owner,
                path=error_path,
                filename=f"{batch.public_id}_error.jsonl",
                expires_at=expires_at,
            )
        with transaction.atomic():
            closed = Batch.objects.filter(pk=batch.pk, status=batch.status).update(
                status=outcome.status,
                output_file=output_file,
                error_file=error_file,
                completed_requests=completed,
                failed_requests=failed,
                **{outcome.timestamp_field: timezone.now()},
            )
            if not closed:
                raise RuntimeError(f"{batch} changed status while finalizing")
            webhooks.notify_batch_ended(batch_id=batch.pk)
    except BaseException:
        delete_stored([output_file, error_file])
        raise
    finally:
        output_path.unlink(missing_ok=True)
        error_path.unlink(missing_ok=True)
    logger.info("%s %s: %d completed, %d failed", batch, outcome.status, completed, failed)


_LINE_FIELDS = ("line", "custom_id", "status", "status_code", "response", "error")


def _line(batch: Batch, line, custom_id, status_code, response, error) -> bytes:
    """One output or error file line, in OpenAI's batch output shape."""
    line_id, request_id = Request.line_ids(batch.public_id, line)
    if status_code is not None:
        record = {
            "id": line_id,
            "custom_id": custom_id,
            "response": {"status_code": status_code, "request_id": request_id, "body": response},
            "error": None,
        }
    else:
        record = {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
    return orjson.dumps(record) + b"\n"


def output_lines(batch: Batch) -> Iterator[bytes]:
    """The output file's lines completed so far, in input order (partial results)."""
    rows = (
        Request.objects.filter(batch=batch, status=Request.Status.COMPLETED)
        .order_by("line")
        .values_list(*_LINE_FIELDS)
    )
    for line, custom_id, _, status_code, response, error in _in_pages(rows):
        yield _line(batch, line, custom_id, status_code, response, error)


def _in_pages(rows, size: int = 2000) -> Iterator[tuple]:
    """`rows` (ordered by line, line first), one short query per page.

    One query streamed to a client would last as long as the client reads: its
    snapshot would hold back SQLite's checkpoints (the write-ahead log grows
    meanwhile) and PostgreSQL's vacuum.
    """
    last = -1
    while page := list(rows.filter(line__gt=last)[:size]):
        yield from page
        last = page[-1][0]


def _write_files(batch: Batch):
    """Stream the batch's rows, in input order, into the two JSONL files."""
    tmp = scratch_dir()
    output_path = tmp / f"{batch.public_id}_output.jsonl"
    error_path = tmp / f"{batch.public_id}_error.jsonl"
    completed = failed = 0
    rows = Request.objects.filter(batch=batch).order_by("line").values_list(*_LINE_FIELDS)
    with open(output_path, "wb") as output, open(error_path, "wb") as errors:
        for line, custom_id, status, status_code, response, error in _in_pages(rows):
            record = _line(batch, line, custom_id, status_code, response, error)
            if status == Request.Status.COMPLETED:
                output.write(record)
                completed += 1
            else:
                errors.write(record)
                failed += 1
    return output_path, error_path, completed, failed
