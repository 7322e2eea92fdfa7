"""django-q2 entry points: load by id and call the service, nothing more."""

from batches.execution import chunk_run
from batches.finalize import batch_finalize
from batches.ingest import batch_ingest


def ingest_batch(batch_id: int) -> None:
    batch_ingest(batch_id=batch_id)


def run_chunk(chunk_id: int) -> None:
    chunk_run(chunk_id=chunk_id)


def finalize_batch(batch_id: int) -> None:
    batch_finalize(batch_id=batch_id)
