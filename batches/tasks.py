"""django-q2 entry points: load by id and call the service, nothing more."""

from batches import health
from batches.execution import chunk_run_next
from batches.finalize import batch_finalize
from batches.ingest import batch_ingest
from batches.reconcile import reconcile as reconcile_all
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
    health.engine_heartbeat()
