"""Writes behind the Files and Batches API."""

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from batches import files
from batches.models import ApiKey, Batch, Chunk, File
from batches.pipeline import enqueue
from batches.selectors import file_get
from core.bearer import new_secret
from core.exceptions import ApplicationError, Conflict, NotFound
from core.text import quoted

if TYPE_CHECKING:
    from django.contrib.auth.models import User

COMPLETION_WINDOWS = ("24h",)
MIN_EXPIRES_AFTER = 3600
MAX_EXPIRES_AFTER = 30 * 24 * 3600


def api_key_create(*, owner: "User", name: str = "", webhook_url: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored."""
    raw_key = new_secret(ApiKey.PREFIX)
    api_key = ApiKey.objects.create(
        owner=owner, name=name, key_hash=ApiKey.hash(raw_key), hint=raw_key[-4:]
    )
    if webhook_url:
        api_key_set_webhook(api_key=api_key, url=webhook_url)
    return api_key, raw_key


def api_keys_revoke(api_keys: QuerySet[ApiKey]) -> int:
    """Revoke the keys at once (their next request is 401); return how many were live."""
    return api_keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_set_webhook(*, api_key: ApiKey, url: str) -> ApiKey:
    """Point the key's batch-end notifications at `url` (empty: none). A key gets
    its signing secret the first time it has a URL."""
    api_key.webhook_url = url
    if url and not api_key.webhook_secret:
        api_key.webhook_secret = "whsec_" + secrets.token_urlsafe(32)
    api_key.save(update_fields=["webhook_url", "webhook_secret"])
    return api_key


def file_create(
    *,
    owner: "User",
    uploaded: UploadedFile,
    purpose: str,
    expires_after_seconds: int | None = None,
) -> File:
    """Store an uploaded batch input file.

    The upload already lies in a temporary file on the storage's filesystem, so
    saving it is a rename; an upload never leaves half a file behind.
    """
    if purpose != File.Purpose.BATCH:
        raise ApplicationError(
            f"Invalid purpose {quoted(purpose)}: this server accepts only 'batch' uploads.",
            param="purpose",
            code="invalid_value",
        )
    # Django's upload handlers (and SimpleUploadedFile) always set the size.
    assert uploaded.size is not None
    now = timezone.now()
    file = File(
        owner=owner,
        purpose=purpose,
        filename=files.display_name(uploaded.name),
        bytes=uploaded.size,
        created_at=now,
        expires_at=now
        + (
            timedelta(seconds=expires_after_seconds)
            if expires_after_seconds
            else timedelta(days=settings.RETENTION_DAYS)
        ),
    )
    return files.store(file, uploaded)


def file_store_generated(
    *,
    owner: "User",
    path: Path,
    filename: str,
    expires_at: datetime,
    purpose: str = File.Purpose.BATCH_OUTPUT,
) -> File:
    """Register a file the server wrote (batch output, or an imported file) and
    move it into storage."""
    file = File(
        owner=owner,
        purpose=purpose,
        filename=filename,
        bytes=path.stat().st_size,
        expires_at=expires_at,
    )
    with open(path, "rb") as handle:
        return files.store(file, files.MovableFile(handle, path))


def file_delete(*, file: File) -> None:
    """Delete a file's content; the row stays so batches keep their file ids."""
    if file.deleted_at is not None:
        raise NotFound("File object", file.public_id)
    File.objects.filter(pk=file.pk).update(deleted_at=timezone.now())
    # The row says "deleted" before the bytes go, so a reader never gets a row
    # whose content has vanished.
    default_storage.delete(file.content.name)


def batch_create(
    *,
    owner: "User",
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict | None = None,
    output_expires_after_seconds: int | None = None,
    api_key: ApiKey | None = None,
) -> Batch:
    if endpoint not in Batch.Endpoint.values:
        raise ApplicationError(
            f"Invalid endpoint {quoted(endpoint)}: "
            f"supported are {', '.join(Batch.Endpoint.values)}.",
            param="endpoint",
            code="invalid_value",
        )
    if completion_window not in COMPLETION_WINDOWS:
        raise ApplicationError(
            f"Invalid completion_window {quoted(completion_window)}: only '24h' is supported.",
            param="completion_window",
            code="invalid_value",
        )
    try:
        input_file = file_get(owner=owner, file_id=input_file_id)
    except NotFound:
        raise NotFound("File object", input_file_id, param="input_file_id") from None
    if input_file.purpose != File.Purpose.BATCH:
        raise ApplicationError(
            f"File {input_file_id} has purpose '{input_file.purpose}'; a batch needs 'batch'.",
            param="input_file_id",
            code="invalid_value",
        )

    priority = _priority(metadata)
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.create(
            owner=owner,
            endpoint=endpoint,
            completion_window=completion_window,
            input_file=input_file,
            metadata=metadata,
            output_expires_after=output_expires_after_seconds,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.COMPLETION_WINDOW_SECONDS),
            validation_queued_at=now,
            api_key=api_key,
            priority=priority,
        )
        enqueue.ingest(batch.pk)
    return batch


def _priority(metadata: dict | None) -> int:
    """metadata["priority"]: an integer from -10 to 10 (default 0); higher runs first."""
    value = (metadata or {}).get("priority")
    if value is None:
        return 0
    try:
        priority = int(value)
    except ValueError:
        priority = None
    if priority is None or not -10 <= priority <= 10:
        raise ApplicationError(
            "Invalid 'metadata.priority': an integer from -10 to 10.",
            param="metadata.priority",
            code="invalid_value",
        )
    return priority


def batch_cancel(*, batch: Batch) -> Batch:
    """Stop a batch: no new chunk starts, the running one stops at its next flush.

    Finalization writes what completed to the output file and everything else,
    as `batch_cancelled`, to the error file.
    """
    now = timezone.now()
    with transaction.atomic():
        cancelled = Batch.objects.filter(
            pk=batch.pk, status__in=[Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS]
        ).update(status=Batch.Status.CANCELLING, cancelling_at=now)
        if not cancelled:
            batch.refresh_from_db()
            if batch.status == Batch.Status.CANCELLING:
                return batch
            raise Conflict(
                f"Cannot cancel batch {batch.public_id}: its status is '{batch.status}'.",
                param="batch_id",
                code="batch_not_cancellable",
            )
        Chunk.objects.filter(batch=batch, status=Chunk.Status.PENDING).update(
            status=Chunk.Status.CANCELLED, finished_at=now
        )
        # A validating batch has no chunks yet; ingestion finishes it instead.
        if batch.status != Batch.Status.VALIDATING:
            request_finalize(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def request_finalize(*, batch_id: int) -> bool:
    """Enqueue finalization once every chunk is closed. Only one caller wins.

    Must run inside a transaction: the winner enqueues on commit.
    """
    open_chunks = Chunk.objects.filter(batch=OuterRef("pk"), status__in=Chunk.OPEN_STATUSES)
    now = timezone.now()
    won = (
        Batch.objects.filter(
            pk=batch_id,
            finalize_requested_at__isnull=True,
            status__in=[Batch.Status.IN_PROGRESS, Batch.Status.CANCELLING],
        )
        .exclude(Exists(open_chunks))
        .update(finalize_requested_at=now)
    )
    if won:
        Batch.objects.filter(pk=batch_id, status=Batch.Status.IN_PROGRESS).update(
            status=Batch.Status.FINALIZING, finalizing_at=now
        )
        enqueue.finalize(batch_id)
    return bool(won)
