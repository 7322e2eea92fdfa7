"""The reconciler: runs every minute (a django-q2 schedule) and puts right what a
dead worker, a lost task or the clock left undone. Every step is idempotent.
"""

import logging
import socket
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_q.brokers import get_broker

from batches import webhooks
from batches.models import Batch, Chunk
from batches.pipeline import enqueue, heartbeats
from batches.pipeline.enqueue import ENGINE_CLUSTER
from batches.services import request_finalize

logger = logging.getLogger(__name__)

TEMP_FILE_MAX_AGE = timedelta(days=1)


def reconcile() -> dict:
    """One pass; returns what it did, for logs and tests."""
    heartbeats.control_beat()
    done = {
        "expired": expire_overdue_batches(),
        "chunks_recovered": recover_lapsed_chunks(),
        "turns_added": top_up_engine_turns(),
        "finalizations": request_missing_finalizations(),
        "restarted": restart_stale_steps(),
        "webhooks": sum(
            webhooks.delivery_attempt(delivery_id=pk) for pk in webhooks.deliveries_due()
        ),
        "temp_files_removed": remove_stale_uploads(),
        "wal_bytes_freed": truncate_sqlite_wal(),
    }
    if any(done.values()):
        logger.info("reconcile: %s", done)
    return done


def expire_overdue_batches() -> int:
    """Batches past their completion window end `expired`.

    Running ones go to finalizing at once (their chunks stop at the next
    flush); completed lines are kept, the rest get `batch_expired`.
    """
    now = timezone.now()
    overdue = Batch.objects.filter(expires_at__lte=now)
    expired = 0
    with transaction.atomic():
        # Never validated: nothing ran, nothing to write.
        for batch_id in overdue.filter(status=Batch.Status.VALIDATING).values_list("pk", flat=True):
            if Batch.objects.filter(pk=batch_id, status=Batch.Status.VALIDATING).update(
                status=Batch.Status.EXPIRED, expired_at=now
            ):
                webhooks.notify_batch_ended(batch_id=batch_id)
                expired += 1
        running = list(overdue.filter(status=Batch.Status.IN_PROGRESS).values_list("pk", flat=True))
        for batch_id in running:
            if Batch.objects.filter(pk=batch_id, status=Batch.Status.IN_PROGRESS).update(
                status=Batch.Status.FINALIZING, finalizing_at=now, ending="expired"
            ):
                Chunk.objects.filter(batch_id=batch_id, status=Chunk.Status.PENDING).update(
                    status=Chunk.Status.CANCELLED, finished_at=now
                )
                request_finalize(batch_id=batch_id)
                expired += 1
    return expired


def recover_lapsed_chunks() -> int:
    """Chunks whose worker stopped run again (answered requests are not run
    twice: a chunk only runs its pending requests).

    A worker is known to have stopped when its lease lapsed, or, at once, when
    it was a process of this host that is gone: a killed engine worker's chunk
    need not wait out its lease. Engine workers call this every few seconds
    too (batches.pipeline.workers), so a live worker takes over a dead one's
    chunk without waiting for this minute's reconcile.
    """
    now = timezone.now()
    running = Chunk.objects.filter(status=Chunk.Status.RUNNING)
    dead_holders = Q(lease_expires_at__lt=now)
    for pk, holder, started_at in running.filter(
        leased_by__startswith=f"{socket.gethostname()}:"
    ).values_list("pk", "leased_by", "started_at"):
        if not heartbeats.process_alive(holder, since=started_at or now):
            # The holder too: the chunk may have changed hands since it was read.
            dead_holders |= Q(pk=pk, leased_by=holder)
    with transaction.atomic():
        recovered = running.filter(dead_holders).update(
            status=Chunk.Status.PENDING, leased_by="", lease_expires_at=None
        )
        if recovered:
            logger.warning("Recovered %d chunk(s) whose worker stopped", recovered)
            enqueue.engine_turns(recovered)
    return recovered


def top_up_engine_turns() -> int:
    """Make sure every pending chunk has a turn waiting in the queue.

    Turns are lost with a broker message, or held by a cluster that was killed
    after taking them (the ORM broker hands them out again only after `retry`).
    Only turns still waiting count; those a live cluster holds may be counted
    short, which costs a spare turn or two: a turn that finds nothing to run
    does nothing.
    """
    pending = Chunk.objects.filter(
        status=Chunk.Status.PENDING, batch__status=Batch.Status.IN_PROGRESS
    ).count()
    if not pending:
        return 0
    waiting = get_broker(ENGINE_CLUSTER).queue_size() or 0
    missing = max(0, pending - waiting)
    if missing:
        with transaction.atomic():
            enqueue.engine_turns(missing)
    return missing


def request_missing_finalizations() -> int:
    """Batches whose chunks are all closed but whose finalization was never requested."""
    open_chunks = Chunk.objects.filter(batch=OuterRef("pk"), status__in=Chunk.OPEN_STATUSES)
    candidates = (
        Batch.objects.filter(
            finalize_requested_at__isnull=True,
            status__in=[Batch.Status.IN_PROGRESS, Batch.Status.FINALIZING, Batch.Status.CANCELLING],
        )
        .exclude(Exists(open_chunks))
        .values_list("pk", flat=True)
    )
    requested = 0
    for batch_id in candidates:
        with transaction.atomic():
            requested += request_finalize(batch_id=batch_id)
    return requested


def restart_stale_steps() -> int:
    """Validation or finalization still unfinished RECONCILE_STALE_SECONDS after
    it was queued (its task died with its worker) is queued again, at most once
    per period. Both steps are idempotent; the period must exceed the longest
    validation (200 MB takes seconds)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RECONCILE_STALE_SECONDS)
    restarted = 0
    with transaction.atomic():
        validating = Batch.objects.filter(
            status=Batch.Status.VALIDATING, validation_queued_at__lt=stale
        )
        for batch_id in validating.values_list("pk", flat=True):
            if validating.filter(pk=batch_id).update(validation_queued_at=now):
                enqueue.ingest(batch_id)
                restarted += 1
        finalizing = Batch.objects.filter(
            status__in=[Batch.Status.FINALIZING, Batch.Status.CANCELLING],
            finalize_requested_at__lt=stale,
        )
        for batch_id in finalizing.values_list("pk", flat=True):
            if finalizing.filter(pk=batch_id).update(finalize_requested_at=now):
                enqueue.finalize(batch_id)
                restarted += 1
    return restarted


# How long the checkpoint below may hold back writers waiting for readers.
CHECKPOINT_WAIT_MS = 2000


def truncate_sqlite_wal() -> int:
    """SQLite only: a write-ahead log past SQLITE_WAL_LIMIT is checkpointed in
    full and truncated; returns the bytes freed.

    The automatic checkpoints copy the log into the database as it grows, but
    only a reset makes the file start over, and readers that overlap without
    pause can put that off for good. TRUNCATE waits for them (and holds new
    writers) for at most CHECKPOINT_WAIT_MS; if a reader outlasts that, the next
    pass tries again.
    """
    if connection.vendor != "sqlite":
        return 0
    wal = Path(f"{connection.settings_dict['NAME']}-wal")
    try:
        before = wal.stat().st_size
    except FileNotFoundError:
        return 0
    if before <= settings.SQLITE_WAL_LIMIT:
        return 0
    timeout_ms = int(connection.settings_dict["OPTIONS"].get("timeout", 5) * 1000)
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _, _ = cursor.fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
    after = wal.stat().st_size if wal.exists() else 0
    if busy:
        logger.warning(
            "The SQLite write-ahead log is %d MiB; a reader kept it from being reset", after >> 20
        )
    return max(0, before - after)


def remove_stale_uploads() -> int:
    """Temporary upload files a killed API process left behind."""
    cutoff = time.time() - TEMP_FILE_MAX_AGE.total_seconds()
    removed = 0
    for path in Path(settings.FILE_UPLOAD_TEMP_DIR).glob("*.upload*"):
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
