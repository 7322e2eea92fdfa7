"""Reads behind the API: every one is scoped to the key's owner."""

import re
from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.utils import timezone

from batches.models import Batch, File
from core.exceptions import ApplicationError, Conflict, NotFound

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Public ids are generated (file-…, batch_…); anything else cannot exist, and is
# answered without a query (PostgreSQL refuses some strings, NUL for one).
PUBLIC_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_PUBLIC_ID = re.compile(PUBLIC_ID_PATTERN)


def _valid_id(object_id: str) -> bool:
    return bool(_PUBLIC_ID.fullmatch(object_id))


def file_get(*, owner: "User", file_id: str) -> File:
    """A live file of the owner's; deleted, expired and foreign files are 404."""
    if not _valid_id(file_id):
        raise NotFound("File object", file_id)
    file = File.objects.filter(owner=owner, public_id=file_id, deleted_at__isnull=True).first()
    if file is None:
        raise NotFound("File object", file_id)
    if file.expires_at is not None and file.expires_at <= timezone.now():
        raise ApplicationError(
            f"File {file_id} expired at {file.expires_at.isoformat()}.",
            param="id",
            code="file_expired",
            status=404,
        )
    return file


def files_list(
    *,
    owner: "User",
    purpose: str | None,
    after: str | None,
    limit: int,
    order: str,
) -> tuple[list[File], bool]:
    files = File.objects.filter(owner=owner, deleted_at__isnull=True)
    if purpose:
        files = files.filter(purpose=purpose)
    return _page(files, File.objects.filter(owner=owner), after, limit, order, "File object")


def batch_get(*, owner: "User", batch_id: str) -> Batch:
    if not _valid_id(batch_id):
        raise NotFound("Batch object", batch_id)
    batch = (
        Batch.objects.select_related("input_file", "output_file", "error_file")
        .filter(owner=owner, public_id=batch_id)
        .first()
    )
    if batch is None:
        raise NotFound("Batch object", batch_id)
    return batch


def batch_output_file(*, owner: "User", batch: Batch) -> File | None:
    """A finished batch's output file (None when no request completed).

    Results are available once the batch has finished; while it runs, only
    the lines completed so far are (pipeline.finalize.output_lines). The file
    answers like files.content: 404 once deleted or expired.
    """
    if not batch.is_terminal:
        raise Conflict(
            f"Batch {batch.public_id} is {batch.status}; results are available "
            "once it has finished (or as they come with ?partial=true).",
            param="batch_id",
            code="batch_not_finished",
        )
    if batch.output_file is None:
        return None
    return file_get(owner=owner, file_id=batch.output_file.public_id)


def batches_list(*, owner: "User", after: str | None, limit: int) -> tuple[list[Batch], bool]:
    batches = Batch.objects.select_related("input_file", "output_file", "error_file").filter(
        owner=owner
    )
    return _page(batches, Batch.objects.filter(owner=owner), after, limit, "desc", "Batch object")


def _page(
    queryset: QuerySet, cursors: QuerySet, after: str | None, limit: int, order: str, name: str
) -> tuple[list, bool]:
    """One page after the cursor object, by creation order; (objects, has_more).

    Ids are assigned in creation order, so the primary key is a stable cursor
    even when two objects share a created_at second.
    """
    if after:
        if not _valid_id(after):
            raise NotFound(name, after, param="after")
        cursor = cursors.filter(public_id=after).values_list("pk", flat=True).first()
        if cursor is None:
            raise NotFound(name, after, param="after")
        queryset = (
            queryset.filter(pk__lt=cursor) if order == "desc" else queryset.filter(pk__gt=cursor)
        )
    queryset = queryset.order_by("-pk" if order == "desc" else "pk")
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit
