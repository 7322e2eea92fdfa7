"""Retention: results and files go after RETENTION_DAYS; curated data stays forever.

The purge runs daily (batches.tasks.purge_expired) and on demand
(`manage.py purge_expired`).

A result is curated when anyone starred it, annotated it, chose it or rejected
it in a comparison, or exported it. A curated result keeps its row and its
batch's row (id, model, endpoint), which is all an export needs to be made
again; its files' bytes go like everyone else's.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable
from django.utils import timezone

from batches.models import Batch, File, Heartbeat, IdempotencyKey, Request

logger = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    requests: int = 0
    batches: int = 0
    files: int = 0
    file_contents: int = 0
    kept_curated: int = 0
    idempotency_keys: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


# Apps whose rows are curated data. A result any of their tables points at
# (a star, an annotation, a preference, an export, and whatever curation
# records next) is kept forever, without this module naming their models.
CURATED_APPS = ("curation", "exports")


def curated_requests() -> QuerySet[Request]:
    """Results someone curated: any row of a curated app refers to them."""
    # Q() | Exists(...) is an Exists, and Exists | Exists a Q.
    refers: Q | Combinable = Q()
    for relation in Request._meta.related_objects:
        model = relation.related_model
        # A reverse relation's model is the class holding the foreign key: Django
        # resolves "self" and lazy references before apps are ready.
        assert not isinstance(model, str)
        if model._meta.app_label in CURATED_APPS:
            rows = model._default_manager.filter(**{relation.remote_field.name: OuterRef("pk")})
            refers |= Exists(rows)
    return Request.objects.filter(refers)


# Rows deleted per transaction: each one holds SQLite's write lock, or PostgreSQL's
# row locks, for a fraction of a second, so the API and the workers carry on
# while 170,000 results go; and Django loads each chunk's rows (primary keys
# only) to cascade, so memory stays flat.
DELETE_CHUNK = 2000


def purge_expired(*, now=None, dry_run: bool = False) -> PurgeReport:
    """Delete what outlived RETENTION_DAYS; `dry_run` counts the same rows and
    changes nothing."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.RETENTION_DAYS)
    curated = curated_requests()
    old_batches = Batch.objects.filter(created_at__lt=cutoff, status__in=Batch.TERMINAL_STATUSES)
    old_requests = Request.objects.filter(batch__in=old_batches)
    doomed_requests = old_requests.exclude(pk__in=curated.values("pk"))
    doomed_batches = old_batches.exclude(Exists(curated.filter(batch=OuterRef("pk"))))
    # Files past their expiry or the retention period lose their bytes; their
    # rows go too once no surviving batch names them.
    expiring = File.objects.filter(
        Q(expires_at__lte=now) | Q(created_at__lt=cutoff), deleted_at__isnull=True
    )
    named_by_survivor = Batch.objects.filter(
        Q(input_file=OuterRef("pk")) | Q(output_file=OuterRef("pk")) | Q(error_file=OuterRef("pk"))
    ).exclude(pk__in=doomed_batches.values("pk"))
    doomed_files = File.objects.filter(created_at__lt=cutoff).exclude(Exists(named_by_survivor))
    expired_keys = IdempotencyKey.objects.filter(
        created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    )

    report = PurgeReport(
        dry_run=dry_run, kept_curated=old_requests.filter(pk__in=curated.values("pk")).count()
    )
    if dry_run:
        report.requests = doomed_requests.count()
        report.batches = doomed_batches.count()
        report.file_contents = expiring.count()
        report.files = doomed_files.count()
        report.idempotency_keys = expired_keys.count()
    else:
        # Results first, then the batches they emptied, then the files no batch
        # names any more: each step leaves a consistent database if the next fails.
        report.requests = _delete_in_chunks(doomed_requests)
        report.batches = _delete_in_chunks(doomed_batches)
        report.file_contents = _forget_contents(expiring, now)
        report.files = _delete_in_chunks(doomed_files)
        report.idempotency_keys = _delete_in_chunks(expired_keys)
        Heartbeat.objects.filter(beat_at__lt=now - timedelta(days=1)).delete()
    logger.info("purge_expired: %s", report.as_dict())
    return report


def _delete_in_chunks(queryset) -> int:
    """Delete the rows of `queryset`, DELETE_CHUNK to a transaction.

    Each chunk is filtered by `queryset` again as it is deleted, so a result
    someone starred since the listing is kept.
    """
    model = queryset.model
    pks = list(queryset.values_list("pk", flat=True))
    deleted = 0
    for start in range(0, len(pks), DELETE_CHUNK):
        with transaction.atomic():
            chunk = queryset.filter(pk__in=pks[start : start + DELETE_CHUNK]).only("pk")
            _, per_model = chunk.delete()
        deleted += per_model.get(model._meta.label, 0)
    return deleted


def _forget_contents(files, now) -> int:
    """Mark `files` deleted and remove their bytes, once each chunk is committed."""
    pks = list(files.values_list("pk", flat=True))
    for start in range(0, len(pks), DELETE_CHUNK):
        with transaction.atomic():
            chunk = File.objects.filter(pk__in=pks[start : start + DELETE_CHUNK])
            names = [name for name in chunk.values_list("content", flat=True) if name]
            chunk.update(deleted_at=now)

            def delete_bytes(names: list[str] = names) -> None:
                for name in names:
                    default_storage.delete(name)

            # The bytes go once the rows say so for good (never on a rollback).
            transaction.on_commit(delete_bytes)
    return len(pks)
