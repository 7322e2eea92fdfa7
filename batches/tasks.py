"""django-q2 entry points: load by id and call the service, nothing more.

Their dotted paths are stored in queued tasks and in the schedules
(batches.apps), so they stay here while the code they call moves.
"""

from batches.pipeline import heartbeats
from batches.pipeline.execution import chunk_run_next
from batches.pipeline.finalize import batch_finalize
from batches.pipeline.ingest import batch_ingest
from batches.pipeline.reconcile import reconcile as reconcile_all
from batches.purge import purge_expired as purge
from batches.webhooks import delivery_attempt


def ingest_batch(batch_id: int) -> None:
    batch_ingest(batch_id=batch_id)


def run_next_chunk() -> None:
    chunk_run_next()


def finalize_batch(batch_id: int) -> None:
    batch_finalize(batch_id=batch_id)


def reconcile() -> None:
    reconcile_all()


def deliver_webhook(delivery_id: int) -> None:
    delivery_attempt(delivery_id=delivery_id)


def engine_heartbeat() -> None:
    """Retired schedule (workers beat from a thread now); kept for a task
    still queued by an older version."""
    heartbeats.engine_beat()


def purge_expired() -> None:
    purge()
